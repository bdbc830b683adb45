"""Pool scoring: ISAL's forward-mode scoring against a forward pass and per-sample gradients.

For one model, one pool, one batch size and one fixed ``s_test``, times

* ``forward``: a plain forward pass over the pool (softmax of the logits), batch by
  batch, the price of modAL's uncertainty sampling; also skorch's ``predict_proba``
  (what modAL actually calls: the same forward pass plus skorch's data loader);
* ``isal``: skisal's engine, ``InfluenceEngine.scores`` (forward-mode
  ``score_pool``), ``I(z, R) = -<s_test, G_z>`` for every pool sample;
* ``loop``: the ISAL reference code's method, written here: for each sample
  separately, ``torch.autograd.grad`` of the pseudo-label loss with respect to the
  parameters, dotted with ``s_test``;
* ``vmap``: ``torch.func.vmap(torch.func.grad(...))`` per-sample gradients of the
  same loss, dotted with ``s_test``, in chunks;

and checks that the three give the same scores. ``s_test`` is computed once
(untimed in the ratios: a query pays it once, whatever the pool size).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch
from _common import (
    fmt_num,
    fmt_time,
    markdown_table,
    measure,
    measure_interleaved,
    relative_error,
    synchronize,
)
from skorch import NeuralNetClassifier
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from skisal.adapters import SkorchClassifierAdapter
from skisal.engine import (
    BoundModel,
    ConjugateGradientSolver,
    IdentitySolver,
    InfluenceEngine,
    ParameterSpace,
    evaluation_mode,
    score_pool,
    select_parameters,
)
from skisal.experiments import load_dataset

#: Targets of the issue (benchmark CNN and ResNet-18): ISAL / forward <= 3; loop / ISAL >= 10.
TARGET_FORWARD_RATIO = 3.0
TARGET_LOOP_SPEEDUP = 10.0
TARGET_LOOP_MIN_POOL = 10_000
#: A sample "disagrees" when |difference| > OUTLIER * max |score| (float32 rounding is ~1e-7).
OUTLIER = 1e-5
#: Per-sample gradients held at once by the vmap baseline (bytes of float32 gradients).
VMAP_MEMORY_BUDGET = 512 * 2**20


@dataclasses.dataclass(frozen=True)
class Case:
    """One model/pool/batch configuration.

    Attributes
    ----------
    name : str
        Short name ("digits_cnn", "resnet18").
    pool : int
        Pool size (every method but the loop and vmap scores all of it).
    batch_size : int
        Samples per forward pass, for every method.
    loop_samples : int
        Pool samples scored by the per-sample loop (its time is extrapolated
        per sample when fewer than ``pool``).
    vmap_samples : int
        Pool samples scored by the vmap baseline (likewise).
    repeats : int
        Timed rounds (median reported) after one warm-up round; forward,
        predict_proba and ISAL alternate within each round.
    loop_repeats : int
        Timed repeats of the loop and vmap baselines (after a warm-up on two
        samples).
    """

    name: str
    pool: int
    batch_size: int
    loop_samples: int
    vmap_samples: int
    repeats: int
    loop_repeats: int


CASES = {
    "full": [
        Case("digits_cnn", 20_000, 256, 20_000, 20_000, 9, 3),
        Case("resnet18", 2_048, 128, 128, 128, 5, 3),
    ],
    "quick": [
        Case("digits_cnn", 4_096, 256, 256, 4_096, 5, 1),
        Case("resnet18", 128, 64, 8, 16, 3, 1),
    ],
}


# -- models and data ---------------------------------------------------------------------------
def build_digits_cnn(
    device: torch.device, pool: int, batch_size: int, seed: int, epochs: int = 20
) -> dict[str, Any]:
    """DigitsCNN trained on 500 digits; a pool of noisy digits; CG ``s_test``.

    Parameters
    ----------
    device : torch.device
    pool : int
        Pool size: the 1,197 digits left after the labelled and reference
        sets, drawn with replacement and perturbed by Gaussian noise (sd 0.1,
        clipped to [0, 1]) so that every sample differs.
    batch_size : int
        Prediction batch size of the skorch net (``predict_proba``).
    seed : int
    epochs : int, default=20
        Training epochs (Adam, lr 1e-2, batches of 64, as skisal's experiments).

    Returns
    -------
    dict
        ``net``, ``X_pool``, ``X_ref``, ``y_ref``, ``X_lab``, ``y_lab``,
        ``solver``, ``description``.
    """
    digits = load_dataset("digits")  # the experiments' images and CNN
    X, y = digits.X, digits.y
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(X))
    lab, ref, rest = order[:500], order[500:600], order[600:]
    torch.manual_seed(seed)
    net = digits.make_estimator(epochs)
    net.set_params(iterator_valid__batch_size=batch_size, device=device)
    net.fit(X[lab], y[lab])
    picks = rng.choice(rest, size=pool, replace=True)
    noise = rng.standard_normal((pool, *X.shape[1:])).astype(np.float32)
    X_pool = np.clip(X[picks] + 0.1 * noise, 0.0, 1.0).astype(np.float32)
    return {
        "net": net,
        "X_pool": X_pool,
        "X_ref": X[ref],
        "y_ref": y[ref],
        "X_lab": X[lab],
        "y_lab": y[lab],
        "solver": ConjugateGradientSolver(),
        "description": (
            f"skisal's DigitsCNN (8x8 digits), trained {epochs} epochs on 500 digits; pool of "
            "noisy digits; s_test by CG (tol 1e-5) over the 500 labelled, 100 reference"
        ),
    }


def build_resnet18(device: torch.device, pool: int, batch_size: int, seed: int) -> dict[str, Any]:
    """torchvision ResNet-18 (weights=None, num_classes=10) on random 3x32x32 inputs.

    Untrained: the cost of scoring does not depend on the weights. ``s_test``
    is the reference gradient (identity solver): it does not depend on how
    ``s_test`` was obtained either, and a solve over 11M parameters on CPU
    would dominate the run.

    Parameters
    ----------
    device : torch.device
    pool : int
    batch_size : int
        Prediction batch size of the skorch net.
    seed : int

    Returns
    -------
    dict
        As :func:`build_digits_cnn` (``X_lab``/``y_lab`` are None).
    """
    import torchvision

    torch.manual_seed(seed)
    net = NeuralNetClassifier(
        torchvision.models.resnet18,
        module__weights=None,
        module__num_classes=10,
        criterion=nn.CrossEntropyLoss,
        iterator_valid__batch_size=batch_size,
        train_split=None,
        device=device,
        verbose=0,
    ).initialize()
    rng = np.random.RandomState(seed)
    X_pool = rng.standard_normal((pool, 3, 32, 32)).astype(np.float32)
    X_ref = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    y_ref = rng.randint(0, 10, size=64).astype(np.int64)
    return {
        "net": net,
        "X_pool": X_pool,
        "X_ref": X_ref,
        "y_ref": y_ref,
        "X_lab": None,
        "y_lab": None,
        "solver": IdentitySolver(),
        "description": (
            "torchvision ResNet-18 (weights=None, num_classes=10, eval mode), random "
            "N(0, 1) 3x32x32 inputs; s_test = reference gradient (64 random samples)"
        ),
    }


BUILDERS = {"digits_cnn": build_digits_cnn, "resnet18": build_resnet18}


# -- the four methods --------------------------------------------------------------------------
def forward_probabilities(
    module: nn.Module, X: np.ndarray, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Softmax of the logits over ``X`` in batches: uncertainty sampling's forward pass.

    Parameters
    ----------
    module : torch.nn.Module
        In eval mode.
    X : ndarray
        The pool.
    batch_size : int
    device : torch.device

    Returns
    -------
    torch.Tensor
        ``(n, n_classes)`` probabilities on ``device``.
    """
    out = []
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            x = torch.as_tensor(X[start : start + batch_size]).to(device)
            out.append(module(x).softmax(dim=1))
    return torch.cat(out)


def loop_scores(
    module: nn.Module,
    s_test: dict[str, torch.Tensor],
    X: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """The reference code's method: per sample, autograd grad of the UUIC loss, dot s_test.

    Batches of ``batch_size`` are moved to ``device`` as in the other methods;
    inside a batch every sample gets its own forward and backward pass.

    Parameters
    ----------
    module : torch.nn.Module
        In eval mode; its parameters are read, never written (``autograd.grad``
        leaves ``.grad`` alone).
    s_test : dict of str to torch.Tensor
        ``s_test`` per parameter name (the differentiated parameters).
    X : ndarray
        Pool samples.
    batch_size : int
    device : torch.device

    Returns
    -------
    torch.Tensor
        ``-<s_test, G_z>`` per sample, float64, on ``device``.
    """
    params = dict(module.named_parameters())
    names = list(s_test)
    wrt = [params[n] for n in names]
    named_s = [s_test[n] for n in names]
    scores = []
    with torch.enable_grad():
        for start in range(0, len(X), batch_size):
            xb = torch.as_tensor(X[start : start + batch_size]).to(device)
            for x in xb:
                logits = module(x[None])
                loss = F.cross_entropy(logits, logits.argmax(dim=1))
                grads = torch.autograd.grad(loss, wrt)
                # per-parameter sum(g * s) in float32, as the reference code (torch's sum
                # is cascaded: accurate), then summed over parameters in float64
                dots = torch.stack([(g * s).sum() for g, s in zip(grads, named_s, strict=True)])
                scores.append(-dots.to(torch.float64).sum())
    return torch.stack(scores)


def vmap_chunk(dim: int, batch_size: int) -> int:
    """Samples per vmap call: ``batch_size``, capped by :data:`VMAP_MEMORY_BUDGET`.

    Parameters
    ----------
    dim : int
        Number of parameters (float32 per-sample gradient size).
    batch_size : int

    Returns
    -------
    int
    """
    return max(1, min(batch_size, VMAP_MEMORY_BUDGET // (4 * dim)))


def vmap_scores(
    module: nn.Module,
    s_test: dict[str, torch.Tensor],
    X: np.ndarray,
    chunk: int,
    device: torch.device,
) -> torch.Tensor:
    """``torch.func.vmap(grad)`` per-sample gradients of the UUIC loss, dotted with s_test.

    Parameters
    ----------
    module : torch.nn.Module
        In eval mode (BatchNorm on running statistics).
    s_test : dict of str to torch.Tensor
        ``s_test`` per differentiated parameter.
    X : ndarray
        Pool samples.
    chunk : int
        Samples per vmap call (per-sample gradients of a chunk are held at once).
    device : torch.device

    Returns
    -------
    torch.Tensor
        ``-<s_test, G_z>`` per sample, float64, on ``device``.
    """
    names = list(s_test)
    frozen = {n: p.detach() for n, p in module.named_parameters() if n not in s_test}
    buffers = {n: b.detach() for n, b in module.named_buffers()}
    params = {n: p.detach() for n, p in module.named_parameters() if n in s_test}
    flat_s = {n: s_test[n].reshape(-1) for n in names}

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        logits = functional_call(module, (p, frozen, buffers), (x[None],))
        return F.cross_entropy(logits, logits.argmax(dim=1))

    per_sample_grad = vmap(grad(loss), in_dims=(None, 0))
    scores = []
    for start in range(0, len(X), chunk):
        xb = torch.as_tensor(X[start : start + chunk]).to(device)
        g = per_sample_grad(params, xb)
        total = sum((g[n].reshape(len(xb), -1) @ flat_s[n]).to(torch.float64) for n in names)
        scores.append(-total)
    return torch.cat(scores)


def flops_per_sample(fn: Any, n: int) -> float:
    """Floating-point operations of ``fn()`` per sample, as :class:`FlopCounterMode` counts them.

    Counts the matrix products and convolutions (not elementwise work); for
    ISAL, those of the dual-number pass, so the ratio to the forward pass is
    the arithmetic floor of its time ratio.

    Parameters
    ----------
    fn : callable
        One pass over ``n`` samples.
    n : int

    Returns
    -------
    float
    """
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / n


def outliers(a: torch.Tensor, b: torch.Tensor) -> int:
    """Samples where ``|a - b| > OUTLIER * max |b|``.

    Parameters
    ----------
    a, b : torch.Tensor
        Scores of two methods on the same samples (b the reference).

    Returns
    -------
    int
    """
    a, b = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
    return int(((a - b).abs() > OUTLIER * b.abs().max()).sum())


# -- one case ----------------------------------------------------------------------------------
def _bound_model(net: NeuralNetClassifier) -> BoundModel:
    """skisal's engine view of a skorch net: every parameter, on the net's device."""
    adapter = SkorchClassifierAdapter()
    module = adapter.get_module(net)
    space = ParameterSpace(select_parameters(module, "all"))
    return BoundModel(adapter, net, module, space, adapter.get_device(net))


def run_case(case: Case, device: torch.device, seed: int, log: Any = print) -> dict[str, Any]:
    """Build one model and pool, time the four methods, compare their scores.

    Parameters
    ----------
    case : Case
    device : torch.device
    seed : int
    log : callable, default=print
        Progress messages.

    Returns
    -------
    dict
        Configuration, timings (median of repeats), per-sample costs, ratios
        and agreement; see the keys.
    """
    t0 = time.perf_counter()
    built = BUILDERS[case.name](device, case.pool, case.batch_size, seed)
    net, X = built["net"], built["X_pool"]
    model = _bound_model(net)
    module = model.module
    engine = InfluenceEngine(
        model,
        built["solver"],
        damping=0.01,
        batch_size=case.batch_size,
        hessian_batch_size=32,
        scoring="forward",
    )
    adapter = model.adapter
    rng = np.random.RandomState(seed)
    n_loop, n_vmap = min(case.loop_samples, case.pool), min(case.vmap_samples, case.pool)
    chunk = vmap_chunk(model.space.dim, case.batch_size)
    log(f"[scoring/{case.name}] built in {time.perf_counter() - t0:.1f}s; {model.space.dim} params")
    with evaluation_mode(module), torch.no_grad():
        probe = model.forward(None, model.inputs(X, np.arange(1)))
        y_ref = adapter.check_targets(net, built["y_ref"], "y_reference", probe)
        y_lab = built["y_lab"]
        if y_lab is not None:
            y_lab = adapter.check_targets(net, y_lab, "y_labeled", probe)
        synchronize(device)
        start = time.perf_counter()
        s_test, _, diagnostics = engine.s_test(built["X_ref"], y_ref, built["X_lab"], y_lab, rng)
        synchronize(device)
        s_test_seconds = time.perf_counter() - start
        s_named = model.space.split(s_test)

        def isal() -> torch.Tensor:
            return engine.scores(s_test, X, diagnostics)[0]

        timed = measure_interleaved(
            {
                "forward": lambda: forward_probabilities(module, X, case.batch_size, device),
                "predict_proba": lambda: net.predict_proba(X),
                "isal": isal,
            },
            device,
            case.repeats,
        )
        t_fwd, t_proba = timed["forward"][0], timed["predict_proba"][0]
        t_isal, isal_scores = timed["isal"]
        log(
            f"[scoring/{case.name}] forward {t_fwd['median_s']:.3f}s, "
            f"ISAL {t_isal['median_s']:.3f}s"
        )
        # warm the baselines up on a few samples, then time them on their subsets
        loop_scores(module, s_named, X[:2], case.batch_size, device)
        t_loop, loop = measure(
            lambda: loop_scores(module, s_named, X[:n_loop], case.batch_size, device),
            device,
            case.loop_repeats,
            warmup=0,
        )
        log(f"[scoring/{case.name}] loop {t_loop['median_s']:.3f}s for {n_loop} samples")
        vmap_scores(module, s_named, X[: min(2, n_vmap)], chunk, device)
        t_vmap, vm = measure(
            lambda: vmap_scores(module, s_named, X[:n_vmap], chunk, device),
            device,
            case.loop_repeats,
            warmup=0,
        )
        log(f"[scoring/{case.name}] vmap {t_vmap['median_s']:.3f}s for {n_vmap} samples")
        first = X[: case.batch_size]
        flops = {
            "forward": flops_per_sample(
                lambda: forward_probabilities(module, first, case.batch_size, device), len(first)
            ),
            "isal": flops_per_sample(
                lambda: score_pool(model, s_test, first, case.batch_size), len(first)
            ),
        }
    method = diagnostics.scoring_method
    per = {
        "forward": t_fwd["median_s"] / case.pool,
        "predict_proba": t_proba["median_s"] / case.pool,
        "isal": t_isal["median_s"] / case.pool,
        "loop": t_loop["median_s"] / n_loop,
        "vmap": t_vmap["median_s"] / n_vmap,
    }
    isal_loop = isal_scores[:n_loop]
    isal_vmap = isal_scores[:n_vmap]
    n_common = min(n_loop, n_vmap)
    result = {
        "case": dataclasses.asdict(case),
        "description": built["description"],
        "n_parameters": model.space.dim,
        "vmap_chunk": chunk,
        "scoring_method": method,
        "s_test": {
            "solver": diagnostics.solver.method,
            "seconds": s_test_seconds,
            "iterations": diagnostics.solver.iterations,
            "relative_residual": diagnostics.solver.relative_residual,
        },
        "timings": {
            "forward": t_fwd,
            "predict_proba": t_proba,
            "isal": t_isal,
            "loop": {**t_loop, "samples": n_loop},
            "vmap": {**t_vmap, "samples": n_vmap},
        },
        "per_sample_s": per,
        "extrapolated": {
            "loop": n_loop < case.pool,
            "vmap": n_vmap < case.pool,
            "loop_pool_s": per["loop"] * case.pool,
            "vmap_pool_s": per["vmap"] * case.pool,
        },
        "flops_per_sample": flops,
        "ratios": {
            "isal_over_forward": per["isal"] / per["forward"],
            "isal_over_forward_flops": flops["isal"] / flops["forward"],
            "isal_over_predict_proba": per["isal"] / per["predict_proba"],
            "loop_over_isal": per["loop"] / per["isal"],
            "vmap_over_isal": per["vmap"] / per["isal"],
        },
        "agreement": {
            "loop_vs_isal": relative_error(loop, isal_loop),
            "vmap_vs_isal": relative_error(vm, isal_vmap),
            "vmap_vs_loop": relative_error(vm[:n_common], loop[:n_common]),
            "outlier_threshold": OUTLIER,
            "loop_vs_isal_outliers": outliers(loop, isal_loop),
            "vmap_vs_isal_outliers": outliers(vm, isal_vmap),
            "vmap_vs_loop_outliers": outliers(vm[:n_common], loop[:n_common]),
            "max_abs_score": float(isal_scores.abs().max()),
            "top1_agrees": bool(int(torch.argmin(loop)) == int(torch.argmin(isal_loop))),
        },
    }
    result["targets"] = {
        "isal_over_forward_le_3": result["ratios"]["isal_over_forward"] <= TARGET_FORWARD_RATIO,
        "loop_over_isal_ge_10": (
            result["ratios"]["loop_over_isal"] >= TARGET_LOOP_SPEEDUP
            if case.name == "digits_cnn"
            else None
        ),
        "loop_target_pool_ok": case.pool >= TARGET_LOOP_MIN_POOL,
    }
    return result


def run(args: Any, log: Any = print) -> dict[str, Any]:
    """Every scoring case of the mode (``args.quick``), on ``args.device``.

    Parameters
    ----------
    args : argparse.Namespace
        ``quick``, ``device``, ``seed``.
    log : callable, default=print

    Returns
    -------
    dict
        ``{"mode", "cases": {name: run_case result}}``.
    """
    mode = "quick" if args.quick else "full"
    device = torch.device(args.device)
    cases = {c.name: run_case(c, device, args.seed, log) for c in CASES[mode]}
    return {"benchmark": "scoring", "mode": mode, "cases": cases}


# -- report ------------------------------------------------------------------------------------
def _verdict(ok: bool | None) -> str:
    """Return ``"met"``, ``"NOT met"`` or ``"n/a"`` (no target for this case)."""
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def _subset_cost(r: dict[str, Any], key: str) -> str:
    """Per-sample cost of the loop or vmap baseline, with how many samples were timed."""
    note = " extrapolated" if r["extrapolated"][key] else ""
    samples = r["timings"][key]["samples"]
    return f"{fmt_time(r['per_sample_s'][key])} ({samples:,} timed{note})"


def _target_line(name: str, r: dict[str, Any]) -> str:
    """One markdown bullet: the case's set-up and whether its targets were met."""
    tg = r["targets"]
    line = (
        f"- `{name}`: {r['description']}; {r['n_parameters']:,} parameters; scoring method "
        f"`{r['scoring_method']}`; vmap chunk {r['vmap_chunk']}; s_test by "
        f"`{r['s_test']['solver']}` in {fmt_time(r['s_test']['seconds'])} (not in the "
        f"ratios). Target ISAL / forward <= {TARGET_FORWARD_RATIO:g}x: "
        f"**{_verdict(tg['isal_over_forward_le_3'])}**"
    )
    if tg["loop_over_isal_ge_10"] is not None:
        line += (
            f"; target loop / ISAL >= {TARGET_LOOP_SPEEDUP:g}x at a pool >= "
            f"{TARGET_LOOP_MIN_POOL:,}: **{_verdict(tg['loop_over_isal_ge_10'])}**"
        )
        if not tg["loop_target_pool_ok"]:
            line += f" (but this pool is below {TARGET_LOOP_MIN_POOL:,}: not the target's setting)"
    return line + "."


def markdown(result: dict[str, Any]) -> str:
    """Markdown tables of a :func:`run` result.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """
    rows, agree, details = [], [], []
    for name, r in result["cases"].items():
        c, per, ratios, a = r["case"], r["per_sample_s"], r["ratios"], r["agreement"]
        rows.append(
            [
                name,
                f"{c['pool']:,}",
                c["batch_size"],
                fmt_time(per["forward"]),
                fmt_time(per["predict_proba"]),
                fmt_time(per["isal"]),
                _subset_cost(r, "loop"),
                _subset_cost(r, "vmap"),
                f"**{ratios['isal_over_forward']:.2f}x**",
                f"{ratios['isal_over_forward_flops']:.2f}x",
                f"{ratios['isal_over_predict_proba']:.2f}x",
                f"**{ratios['loop_over_isal']:.1f}x**",
                f"{ratios['vmap_over_isal']:.1f}x",
            ]
        )
        agree.append(
            [
                name,
                f"{fmt_num(a['loop_vs_isal'])} ({a['loop_vs_isal_outliers']})",
                f"{fmt_num(a['vmap_vs_isal'])} ({a['vmap_vs_isal_outliers']})",
                f"{fmt_num(a['vmap_vs_loop'])} ({a['vmap_vs_loop_outliers']})",
                "yes" if a["top1_agrees"] else "no",
            ]
        )
        details.append(_target_line(name, r))
    table = markdown_table(
        [
            "model",
            "pool",
            "batch",
            "forward / sample",
            "predict_proba / sample",
            "ISAL / sample",
            "loop / sample",
            "vmap / sample",
            "ISAL / forward",
            "ISAL / forward, FLOPs",
            "ISAL / predict_proba",
            "loop / ISAL",
            "vmap / ISAL",
        ],
        rows,
    )
    agreement = markdown_table(
        ["model", "loop vs ISAL", "vmap vs ISAL", "vmap vs loop", "same top-1 (loop subset)"],
        agree,
    )
    return (
        "### Pool scoring\n\n"
        "Per-sample cost = median wall time of a method over its samples / their number "
        "(one warm-up, then the median of the repeats; forward, predict_proba and ISAL "
        "alternate in every round, so that they see the same machine state; the loop and vmap "
        "baselines are timed "
        "on the first samples of the pool and extrapolated per sample when that is not the "
        "whole pool). ISAL / forward is ISAL's cost per pool sample over the plain forward "
        "pass's (softmax of the logits, same batches); ISAL / forward, FLOPs is the same ratio "
        "for the floating-point operations of the matrix products and convolutions "
        "(`torch.utils.flop_counter`, one batch): the arithmetic that an exact forward-mode "
        "score cannot avoid, about 3x (the dual-number pass computes every layer's output, its "
        "input tangent through the weights and its weight tangent on the input; the first layer "
        "has no input tangent); ISAL / predict_proba the same against "
        "skorch's `predict_proba` (what modAL's uncertainty sampling calls); loop / ISAL and "
        "vmap / ISAL are how many times faster ISAL is per sample.\n\n"
        f"{table}\n\n"
        "Agreement of the scores: max |difference| / max |reference score| over the samples "
        "both methods scored (the second method is the reference); in brackets, the number of "
        f"samples whose |difference| exceeds {OUTLIER:g} x max |score|. Such samples are "
        "expected now and then: the loop evaluates one sample at a time, whose float32 "
        "rounding differs from a batch's, and a pre-activation within rounding of 0 then "
        "takes the other side of a ReLU (the gradient's kink).\n\n"
        f"{agreement}\n\n" + "\n".join(details) + "\n"
    )
