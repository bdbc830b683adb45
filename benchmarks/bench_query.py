"""End-to-end query: a whole ISAL query against modAL's margin sampling, per solver.

For one trained skorch ``NeuralNetClassifier``, one labelled set, one reference set and
one pool, times side by side (alternating within every timing round)

* ``margin``: ``modAL.uncertainty.margin_sampling(net, X_pool, n_instances=k)``, what
  an uncertainty-sampling query costs (one ``predict_proba`` over the pool);
* one row per inverse-HVP method: ``InfluenceQueryStrategy(X_ref, y_ref,
  inverse_hvp=method, ...)(net, X_pool, n_instances=k, X_labeled=..., y_labeled=...)``,
  the whole query (reference gradient, ``s_test``, pool scoring, selection);

and reads each query's ``strategy.diagnostics_`` (seconds per phase, the solver's
report). Untimed, each method's ``s_test`` and pool scores are compared with a tightly
converged conjugate-gradient solve of the same damped curvature on the full labelled
set (tolerance 1e-8, at most 2,000 iterations; skisal's engine directly, so that one
solve serves every pool of a net): relative error of ``s_test``, Pearson correlation of
the pool scores, overlap of the selected top ``k``.

The methods are the table :data:`METHODS` (label -> extra strategy keyword arguments)
plus any other name of ``skisal.strategy.INVERSE_HVP_METHODS`` except "exact"; a label
whose method or keyword arguments this version of skisal does not know is skipped with
a printed note, so the benchmark picks new solvers up as they land.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import fmt_num, fmt_time, markdown_table, synchronize
from modAL.uncertainty import margin_sampling
from skorch import NeuralNetClassifier
from torch import nn

from skisal import InfluenceQueryStrategy, SolverDivergenceError
from skisal.adapters import resolve_adapter
from skisal.engine import (
    BoundModel,
    ConjugateGradientSolver,
    InfluenceEngine,
    ParameterSpace,
    evaluation_mode,
    select_parameters,
)
from skisal.experiments import load_dataset
from skisal.strategy import INVERSE_HVP_METHODS

#: The rows: label -> keyword arguments of ``InfluenceQueryStrategy`` on top of the
#: common ones (reference set, ``random_state``, ``return_scores=True``). The method is
#: ``kwargs["inverse_hvp"]``, or the label itself. Labels whose method is not in
#: ``INVERSE_HVP_METHODS``, or whose keyword arguments the strategy does not accept, are
#: skipped with a note. Names of ``INVERSE_HVP_METHODS`` missing here run with ``{}``.
METHODS: dict[str, dict[str, Any]] = {
    "identity": {},  # s_test = grad l(R): no solve, the floor of an ISAL query's cost
    "cg": {},  # tol 1e-5 (cg_tol="auto"), at most 100 passes over the labelled set
    "lissa": {},  # depth 1000 x 1 repeat, minibatches of 32, scale "auto"
    # skisal's default: K-FAC-preconditioned CG to tol 0.3 (cg_tol="auto"), the curvature over
    # at most 4,096 labelled samples (hessian_subsample="auto")
    "pcg": {},
    "kfac": {},
    "ekfac": {},
    "lanczos": {},
    "cg-sub1000": {"inverse_hvp": "cg", "hessian_subsample": 1000},
    # fixed budgets: a few passes (these warn that they stop above cg_tol)
    "cg-10it": {"inverse_hvp": "cg", "cg_max_iter": 10},
    "pcg-5it": {"inverse_hvp": "pcg", "cg_max_iter": 5},
    "cg-10it-sub2000": {"inverse_hvp": "cg", "cg_max_iter": 10, "hessian_subsample": 2000},
    "pcg-5it-sub2000": {"inverse_hvp": "pcg", "cg_max_iter": 5, "hessian_subsample": 2000},
    # loose tolerances: a ranking needs far less than the float32 floor
    "cg-tol0.1": {"inverse_hvp": "cg", "cg_tol": 0.1},
    "pcg-tol0.1": {"inverse_hvp": "pcg", "cg_tol": 0.1},
    "pcg-tol0.2": {"inverse_hvp": "pcg", "cg_tol": 0.2},  # the default until 2026-12-07
    "pcg-tol0.4": {"inverse_hvp": "pcg", "cg_tol": 0.4},
    "pcg-whole": {"inverse_hvp": "pcg", "hessian_subsample": None},  # all labelled samples
    "pcg-sub2048": {"inverse_hvp": "pcg", "hessian_subsample": 2048},
    "pcg-sub1024": {"inverse_hvp": "pcg", "hessian_subsample": 1024},
    "pcg-sub512": {"inverse_hvp": "pcg", "hessian_subsample": 512},
    "pcg-b1024": {"inverse_hvp": "pcg", "batch_size": 1024},  # passes in chunks of 1,024
    # skisal's whole default query; the other rows take the paper's top n (see `strategies`)
    "pcg-auto": {"inverse_hvp": "pcg", "selection": "auto"},
}
#: What full mode runs on the small CNNs: the default, its variants and every other solver
#: once (the other rows of METHODS only when named with --methods).
DEFAULT_METHODS = (
    "identity",
    "cg",
    "pcg",
    "pcg-auto",
    "pcg-tol0.2",
    "pcg-whole",
    "pcg-5it",
    "cg-10it",
    "lanczos",
    "kfac",
    "ekfac",
    "lissa",
)
#: Never run unless named with --methods: a dense solve, for a few thousand parameters.
EXCLUDED = ("exact",)
#: The accuracy reference: CG to this relative residual, at most this many iterations.
REFERENCE_TOL = 1e-8
REFERENCE_MAX_ITER = 2000
#: Targets of the issue: ISAL query / margin query at most this, at pool TARGET_POOL.
TARGETS = {2_000: 3.0, 8_000: 5.0}
TARGET_POOL = 20_000


@dataclasses.dataclass(frozen=True)
class ModelCase:
    """One model's grid.

    Attributes
    ----------
    name : str
        "digits_cnn", "conv1d" or "resnet18" (a key of :data:`BUILDERS`).
    labelled : tuple of int
        Labelled-set sizes; a net is trained on each.
    pools : tuple of int
        Pool sizes, each queried with every net.
    methods : tuple of str or None
        Method labels; None: :data:`DEFAULT_METHODS` (see :func:`method_table`).
    epochs : int
        Training epochs of each net.
    repeats : int
        Timed rounds after one warm-up call per net and method (median reported).
    accuracy : bool
        Compare every method with the converged CG solve (not on ResNet-18 by
        default: a tight solve over 11M parameters takes hours on a CPU).
    """

    name: str
    labelled: tuple[int, ...]
    pools: tuple[int, ...]
    methods: tuple[str, ...] | None
    epochs: int
    repeats: int
    accuracy: bool


CONFIG: dict[str, dict[str, Any]] = {
    "full": {
        "cases": [
            ModelCase("digits_cnn", (500, 2_000, 8_000), (2_000, 20_000), None, 5, 3, True),
            ModelCase("conv1d", (500, 2_000, 8_000), (2_000, 20_000), None, 5, 3, True),
            # only the reference-gradient method: a CG or LiSSA solve over 11M parameters
            # takes minutes per query on a CPU (add some with --methods)
            ModelCase("resnet18", (500,), (2_000,), ("identity",), 6, 3, False),
        ],
        "n_instances": 50,
        "n_reference": 200,
        "batch_size": 256,
        # a method is timed in at most (this / its warm-up query's time) rounds of a cell,
        # at least one: keeps the slow solvers' cells, and the full run, within bounds
        "method_budget_s": 60.0,
    },
    "quick": {
        "cases": [ModelCase("digits_cnn", (200,), (1_000,), ("identity", "cg"), 2, 2, True)],
        "n_instances": 20,
        "n_reference": 100,
        "batch_size": 256,
        "method_budget_s": 10.0,
    },
}


# -- the methods -------------------------------------------------------------------------------
def method_table(names: list[str] | None = None) -> tuple[dict[str, dict[str, Any]], dict]:
    """The method rows to run, and the ones skipped with why.

    Parameters
    ----------
    names : list of str, optional
        Labels to run (of :data:`METHODS`, or any ``inverse_hvp`` name); None:
        :data:`DEFAULT_METHODS`.

    Returns
    -------
    runnable : dict of str to dict
        Label -> full keyword arguments (``inverse_hvp`` included).
    skipped : dict of str to str
        Label -> reason.
    """
    if names is None:
        names = [n for n in DEFAULT_METHODS if n not in EXCLUDED]
    accepted = set(InfluenceQueryStrategy().get_params())
    runnable, skipped = {}, {}
    for label in names:
        kwargs = {"inverse_hvp": label, **METHODS.get(label, {})}
        unknown = sorted(set(kwargs) - accepted)
        if kwargs["inverse_hvp"] not in INVERSE_HVP_METHODS:
            skipped[label] = (
                f"inverse_hvp={kwargs['inverse_hvp']!r} is not in this skisal's "
                f"INVERSE_HVP_METHODS {INVERSE_HVP_METHODS}"
            )
        elif unknown:
            skipped[label] = f"InfluenceQueryStrategy has no parameter {', '.join(unknown)}"
        else:
            runnable[label] = kwargs
    return runnable, skipped


# -- models and data ---------------------------------------------------------------------------
class Conv1dNet(nn.Module):
    """Two strided 1-D convolutions and a linear layer: (n, 1, 64) sequences to 10 logits.

    4,690 parameters: conv 12 (kernel 7, stride 2), ReLU, conv 24 (kernel 5, stride 2),
    ReLU, flatten (24 x 13), linear.
    """

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 12, kernel_size=7, stride=2),
            nn.ReLU(),
            nn.Conv1d(12, 24, kernel_size=5, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(24 * 13, n_classes)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of sequences of shape (n, 1, 64)."""
        return self.classifier(self.features(X))


def _net(module: Any, epochs: int, lr: float, batch_size: int, device: torch.device, **kw: Any):
    """A skorch classifier trained as skisal's experiments train theirs (Adam, batches of 64)."""
    return NeuralNetClassifier(
        module,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=lr,
        max_epochs=epochs,
        batch_size=64,
        iterator_train__shuffle=True,
        iterator_valid__batch_size=batch_size,  # predict_proba's batches = the strategy's
        train_split=None,
        classes=np.arange(10),
        device=device,
        verbose=0,
        **kw,
    )


def augment_digits(
    images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` digits drawn with replacement, shifted and noisy.

    Each draw is moved by -1, 0 or 1 pixel along each axis (zero fill) and
    gets Gaussian noise (sd 0.1), clipped to [0, 1].

    Parameters
    ----------
    images : ndarray of shape (m, 1, 8, 8)
        Images in [0, 1].
    labels : ndarray of shape (m,)
    n : int
    rng : numpy.random.RandomState

    Returns
    -------
    X : ndarray of shape (n, 1, 8, 8), float32
    y : ndarray of shape (n,), int64
    """
    picks = rng.randint(len(images), size=n)
    padded = np.pad(images[picks], ((0, 0), (0, 0), (1, 1), (1, 1)))
    shifts = rng.randint(0, 3, size=(n, 2))
    rows = shifts[:, 0, None] + np.arange(8)  # (n, 8)
    cols = shifts[:, 1, None] + np.arange(8)
    X = padded[np.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]][:, None]
    X = X + 0.1 * rng.standard_normal(X.shape)
    return np.clip(X, 0.0, 1.0).astype(np.float32), labels[picks].astype(np.int64)


def _digits_split(seed: int) -> dict[str, np.ndarray]:
    """scikit-learn's digits split by image: reference, labelled and pool sources."""
    digits = load_dataset("digits")
    order = np.random.RandomState(seed).permutation(len(digits.X))
    ref, lab, pool = order[:200], order[200:1200], order[1200:]
    return {
        "X": digits.X,
        "y": digits.y,
        "ref": ref,
        "lab": lab,
        "pool": pool,
        "make_estimator": digits.make_estimator,
    }


def build_digits_cnn(
    n_lab: int, n_ref: int, epochs: int, batch_size: int, device: torch.device, seed: int
) -> dict[str, Any]:
    """skisal's DigitsCNN on augmented digits.

    The 1,797 digits are split by image: 200 for the reference set (as they
    are; the first ``n_ref`` of them), 1,000 the labelled set is drawn from,
    597 the pool is drawn from; labelled and pool samples are
    :func:`augment_digits` draws of their images.

    Returns
    -------
    dict
        ``net`` (fitted), ``X_lab``, ``y_lab``, ``X_ref``, ``y_ref``, ``pool``
        (``pool(n)`` -> array), ``description``.
    """
    d = _digits_split(seed)
    X, y = d["X"], d["y"]
    rng = np.random.RandomState(seed + 1)
    X_lab, y_lab = augment_digits(X[d["lab"]], y[d["lab"]], n_lab, rng)
    ref = d["ref"][:n_ref]
    torch.manual_seed(seed)
    net = d["make_estimator"](epochs)
    net.set_params(iterator_valid__batch_size=batch_size, device=device)
    net.fit(X_lab, y_lab)

    def pool(n: int) -> np.ndarray:
        return augment_digits(X[d["pool"]], y[d["pool"]], n, np.random.RandomState(seed + n))[0]

    return {
        "net": net,
        "X_lab": X_lab,
        "y_lab": y_lab,
        "X_ref": X[ref],
        "y_ref": y[ref],
        "pool": pool,
        "description": (
            f"skisal's DigitsCNN (8x8 digits), Adam lr 1e-2, {epochs} epochs; labelled set and "
            "pool drawn from disjoint digits with random 1-pixel shifts and Gaussian noise "
            "(sd 0.1); reference set: unaugmented digits of a third disjoint part"
        ),
    }


def make_sequences(n: int, rng: np.random.RandomState, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 10-class sequence classification: a shifted, scaled class template + noise.

    The templates (one per class, length 80, Gaussian-smoothed white noise with unit
    variance) depend on ``seed`` only; a sample of class ``c`` is a window of 64 steps of
    template ``c`` at a random offset (0-16), times a random amplitude (0.7-1.3), plus
    Gaussian noise (sd 0.6).

    Parameters
    ----------
    n : int
    rng : numpy.random.RandomState
        The samples' randomness.
    seed : int
        The templates' seed.

    Returns
    -------
    X : ndarray of shape (n, 1, 64), float32
    y : ndarray of shape (n,), int64
    """
    t_rng = np.random.RandomState(seed)
    kernel = np.exp(-0.5 * (np.arange(-9, 10) / 3.0) ** 2)
    raw = t_rng.standard_normal((10, 80 + len(kernel) - 1))
    templates = np.stack([np.convolve(r, kernel, mode="valid") for r in raw])
    templates = (templates - templates.mean(1, keepdims=True)) / templates.std(1, keepdims=True)
    y = rng.randint(10, size=n)
    offsets = rng.randint(0, 17, size=n)
    windows = templates[y[:, None], offsets[:, None] + np.arange(64)]
    X = windows * rng.uniform(0.7, 1.3, size=(n, 1)) + 0.6 * rng.standard_normal((n, 64))
    return X[:, None].astype(np.float32), y.astype(np.int64)


def build_conv1d(
    n_lab: int, n_ref: int, epochs: int, batch_size: int, device: torch.device, seed: int
) -> dict[str, Any]:
    """A small 1-D CNN (:class:`Conv1dNet`) on :func:`make_sequences` data.

    Returns
    -------
    dict
        As :func:`build_digits_cnn`.
    """
    X_lab, y_lab = make_sequences(n_lab, np.random.RandomState(seed + 1), seed)
    X_ref, y_ref = make_sequences(n_ref, np.random.RandomState(seed + 2), seed)
    torch.manual_seed(seed)
    net = _net(Conv1dNet, epochs, 1e-2, batch_size, device).fit(X_lab, y_lab)

    def pool(n: int) -> np.ndarray:
        return make_sequences(n, np.random.RandomState(seed + 3 + n), seed)[0]

    return {
        "net": net,
        "X_lab": X_lab,
        "y_lab": y_lab,
        "X_ref": X_ref,
        "y_ref": y_ref,
        "pool": pool,
        "description": (
            f"1-D CNN (conv 12 k7 s2, conv 24 k5 s2, linear; 4,690 parameters), Adam lr 1e-2, "
            f"{epochs} epochs, on synthetic sequences (length 64, 10 classes: a class template "
            "at a random offset and amplitude plus Gaussian noise)"
        ),
    }


def _digits_rgb32(X: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """8x8 digits as 3x32x32 images: each pixel a 4x4 block, 3 channels, fresh noise."""
    big = np.repeat(np.repeat(X, 4, axis=2), 4, axis=3)
    rgb = np.repeat(big, 3, axis=1) + 0.1 * rng.standard_normal((len(X), 3, 32, 32))
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def build_resnet18(
    n_lab: int, n_ref: int, epochs: int, batch_size: int, device: torch.device, seed: int
) -> dict[str, Any]:
    """torchvision ResNet-18 (``weights=None, num_classes=10``) on digits at 3x32x32.

    The digits of :func:`build_digits_cnn` (same split and augmentation),
    upsampled (each pixel a 4x4 block), in 3 channels with noise (sd 0.1).

    Returns
    -------
    dict
        As :func:`build_digits_cnn`.
    """
    import torchvision

    d = _digits_split(seed)
    X, y = d["X"], d["y"]
    rng = np.random.RandomState(seed + 1)
    X_lab, y_lab = augment_digits(X[d["lab"]], y[d["lab"]], n_lab, rng)
    X_lab = _digits_rgb32(X_lab, rng)
    ref = d["ref"][:n_ref]
    X_ref = _digits_rgb32(X[ref], rng)
    torch.manual_seed(seed)
    net = _net(
        torchvision.models.resnet18,
        epochs,
        1e-3,
        batch_size,
        device,
        module__weights=None,
        module__num_classes=10,
    ).fit(X_lab, y_lab)

    def pool(n: int) -> np.ndarray:
        p_rng = np.random.RandomState(seed + n)
        return _digits_rgb32(augment_digits(X[d["pool"]], y[d["pool"]], n, p_rng)[0], p_rng)

    return {
        "net": net,
        "X_lab": X_lab,
        "y_lab": y_lab,
        "X_ref": X_ref,
        "y_ref": y[ref],
        "pool": pool,
        "description": (
            f"torchvision ResNet-18 (weights=None, num_classes=10; 11.2M parameters), Adam lr "
            f"1e-3, {epochs} epochs, on the digits of digits_cnn upsampled to 3x32x32 "
            "(4x4 blocks, 3 channels, noise sd 0.1)"
        ),
    }


BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "digits_cnn": build_digits_cnn,
    "conv1d": build_conv1d,
    "resnet18": build_resnet18,
}


# -- accuracy reference ------------------------------------------------------------------------
class Reference:
    """The converged CG solve of one net's damped curvature, computed once, scored per pool.

    Parameters
    ----------
    problem : dict
        A builder's result.
    kwargs : dict
        The method's strategy keyword arguments: ``damping``, ``curvature``,
        ``parameters``, ``batch_size``, ``hessian_batch_size`` are honoured (the
        strategy's defaults otherwise), so that the solved system is the
        method's, on the full labelled set.
    seed : int
    """

    def __init__(self, problem: dict[str, Any], kwargs: dict[str, Any], seed: int) -> None:
        params = {**InfluenceQueryStrategy().get_params(), **kwargs}
        net = problem["net"]
        adapter = resolve_adapter(net, params["adapter"])
        module = adapter.get_module(net)
        spec = adapter.default_parameters if params["parameters"] is None else params["parameters"]
        space = ParameterSpace(select_parameters(module, spec))
        self.model = BoundModel(adapter, net, module, space, adapter.get_device(net))
        curvature = params["curvature"]
        self.engine = InfluenceEngine(
            self.model,
            ConjugateGradientSolver(tol=REFERENCE_TOL, max_iter=REFERENCE_MAX_ITER),
            damping=float(params["damping"]),
            batch_size=params["batch_size"],
            hessian_batch_size=params["hessian_batch_size"],
            curvature=adapter.default_curvature if curvature == "auto" else curvature,
        )
        X_ref = adapter.check_inputs(net, problem["X_ref"], "X_reference")
        X_lab = adapter.check_inputs(net, problem["X_lab"], "X_labeled")
        start = time.perf_counter()
        with evaluation_mode(module), torch.no_grad():
            probe = self.model.forward(None, self.model.inputs(X_ref, np.arange(1)))
            y_ref = adapter.check_targets(net, problem["y_ref"], "y_reference", probe, X=X_ref)
            y_lab = adapter.check_targets(net, problem["y_lab"], "y_labeled", probe, X=X_lab)
            self.s_test, _, self.diagnostics = self.engine.s_test(
                X_ref, y_ref, X_lab, y_lab, np.random.RandomState(seed)
            )
        self.seconds = time.perf_counter() - start
        self.named = {k: t.detach().cpu().double() for k, t in space.split(self.s_test).items()}
        report = self.diagnostics.solver
        self.report = {
            "damping": float(params["damping"]),
            "curvature": self.engine.curvature,
            "tol": REFERENCE_TOL,
            "max_iter": REFERENCE_MAX_ITER,
            "iterations": sum(report.iterations),
            "converged": report.converged,
            "relative_residual": report.relative_residual,
            "hessian_vector_products": report.hessian_vector_products,
            "seconds": self.seconds,
        }

    def scores(self, X_pool: np.ndarray) -> np.ndarray:
        """Pool scores with the reference ``s_test`` (float64 numpy)."""
        net = self.model.estimator
        X_pool = self.model.adapter.check_inputs(net, X_pool, "X_pool")
        with evaluation_mode(self.model.module), torch.no_grad():
            scores, _ = self.engine.scores(self.s_test, X_pool, self.diagnostics)
        return scores.cpu().numpy().astype(np.float64)


def compare(
    strategy: InfluenceQueryStrategy,
    selected: np.ndarray,
    reference: Reference,
    ref_scores: np.ndarray,
    n_instances: int,
) -> dict[str, Any]:
    """A method's ``s_test``, scores and selection against the reference solve's.

    Returns
    -------
    dict
        ``relative_error`` ``||s - s*|| / ||s*||``, ``cosine`` of ``s`` and
        ``s*``, ``pearson`` of the pool scores, ``top_overlap`` ``|A & B| / k``.
    """
    names = list(strategy.parameter_names_)
    s = torch.cat([strategy.s_test_[n].detach().cpu().double().reshape(-1) for n in names])
    s_ref = torch.cat([reference.named[n].reshape(-1) for n in names])
    ref_top = np.argsort(ref_scores, kind="stable")[:n_instances]
    scores = strategy.scores_
    pearson = float(np.corrcoef(scores, ref_scores)[0, 1]) if scores.std() > 0 else float("nan")
    return {
        "relative_error": float((s - s_ref).norm() / s_ref.norm().clamp_min(1e-300)),
        "cosine": float(s @ s_ref / (s.norm() * s_ref.norm()).clamp_min(1e-300)),
        "pearson": pearson,
        # only a top-n selection is meant to be the reference's top n
        "top_overlap": (
            len(set(map(int, selected)) & set(map(int, ref_top))) / n_instances
            if strategy.selection == "top"
            else None
        ),
    }


# -- timing ------------------------------------------------------------------------------------
def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


def _solver_record(strategy: InfluenceQueryStrategy) -> dict[str, Any]:
    report = strategy.diagnostics_.solver
    return {
        "method": report.method,
        "iterations": list(report.iterations),
        "converged": bool(report.converged),
        "relative_residual": report.relative_residual,
        "hessian_vector_products": report.hessian_vector_products,
        "power_iteration_products": report.power_iteration_products,
        "scale": report.scale,
        "notes": list(report.notes),
    }


def run_net(
    case: ModelCase,
    n_lab: int,
    methods: dict[str, dict[str, Any]],
    cfg: dict[str, Any],
    accuracy: bool,
    device: torch.device,
    seed: int,
    log: Any = print,
) -> dict[str, Any]:
    """Train one net on ``n_lab`` samples; time and compare every method at every pool.

    One warm-up call of each method (and of margin sampling) on the first pool, then per
    pool ``case.repeats`` rounds in which margin sampling and every method alternate. A
    method whose warm-up took more than ``cfg["method_budget_s"] / repeats`` takes part in
    fewer rounds (at least one).

    Returns
    -------
    dict
        ``net`` (set-up, training time, reference accuracy, reference solve) and
        ``pools`` (pool size -> cell).
    """
    tag = f"[query/{case.name}/{n_lab}]"
    start = time.perf_counter()
    problem = BUILDERS[case.name](
        n_lab, cfg["n_reference"], case.epochs, cfg["batch_size"], device, seed
    )
    net = problem["net"]
    train_s = time.perf_counter() - start
    ref_acc = float((net.predict(problem["X_ref"]) == problem["y_ref"]).mean())
    n_params = sum(p.numel() for p in net.module_.parameters() if p.requires_grad)
    log(f"{tag} trained in {train_s:.1f}s; {n_params:,} params; reference accuracy {ref_acc:.3f}")
    k = cfg["n_instances"]
    # The paper's top n unless a row says otherwise, so that the rows time the same selection
    # and "top-n overlap" compares like with like; `pcg-auto` is skisal's default query.
    strategies = {
        label: InfluenceQueryStrategy(
            problem["X_ref"],
            problem["y_ref"],
            random_state=seed,
            return_scores=True,
            **{"selection": "top", "batch_size": cfg["batch_size"], **kwargs},
        )
        for label, kwargs in methods.items()
    }
    references: dict[str, Reference] = {}  # by (damping, curvature, parameters)
    warm: dict[str, float] = {}
    pools: dict[str, Any] = {}
    for n_pool in case.pools:
        X_pool = problem["pool"](n_pool)
        records: dict[str, list[dict[str, Any]]] = {name: [] for name in ["margin", *methods]}
        selections: dict[str, np.ndarray] = {}

        def call(
            name: str,
            X_pool: np.ndarray = X_pool,
            selections: dict[str, np.ndarray] = selections,
        ) -> dict[str, Any]:
            if name == "margin":
                seconds, out = _timed(lambda: margin_sampling(net, X_pool, n_instances=k), device)
                selections[name] = np.asarray(out[0] if isinstance(out, tuple) else out)
                return {"seconds": seconds}
            strategy = strategies[name]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                seconds, out = _timed(
                    lambda: strategy(
                        net,
                        X_pool,
                        n_instances=k,
                        X_labeled=problem["X_lab"],
                        y_labeled=problem["y_lab"],
                    ),
                    device,
                )
            selections[name] = np.asarray(out[0])
            return {
                "seconds": seconds,
                "phases": dict(strategy.diagnostics_.timings),
                "solver": _solver_record(strategy),
                "scoring_method": strategy.diagnostics_.scoring_method,
                "warnings": sorted({str(w.message) for w in caught}),
            }

        failed: dict[str, str] = {}  # method -> why its query raised (it is not timed)
        for name in list(records):  # one warm-up per net and method
            if name not in warm:
                try:
                    warm[name] = call(name)["seconds"]
                except SolverDivergenceError as exc:  # a row of its own, not the end of the run
                    failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                    del records[name]
                    log(f"{tag} pool {n_pool:,}: {name} raised {failed[name]}")
                    continue
                log(f"{tag} pool {n_pool:,}: warm-up {name} {warm[name]:.2f}s")
        rounds = {
            name: case.repeats
            if name == "margin"
            else max(1, min(case.repeats, int(cfg["method_budget_s"] // warm[name])))
            for name in records
        }
        for round_ in range(case.repeats):
            for name in records:
                if round_ < rounds[name]:
                    records[name].append(call(name))
        margin_s = statistics.median(r["seconds"] for r in records["margin"])
        cell: dict[str, Any] = {
            "n_pool": n_pool,
            "margin": {"median_s": margin_s, "times_s": [r["seconds"] for r in records["margin"]]},
            "methods": {},
        }
        ref_scores: dict[str, np.ndarray] = {}
        for label, kwargs in methods.items():
            if label in failed:
                cell["methods"][label] = {"kwargs": dict(kwargs), "failed": failed[label]}
                continue
            recs = records[label]
            median_s = statistics.median(r["seconds"] for r in recs)
            phases = {
                phase: statistics.median(r["phases"].get(phase, 0.0) for r in recs)
                for phase in ("finite_check", "reference_gradient", "s_test", "scoring")
            }
            row: dict[str, Any] = {
                "kwargs": {k_: v for k_, v in kwargs.items()},
                "median_s": median_s,
                "times_s": [r["seconds"] for r in recs],
                "repeats": len(recs),
                "warmup_s": warm[label],
                "ratio": median_s / margin_s,
                "phases_s": phases,
                "shares": {p: t / median_s for p, t in phases.items()},
                "solver": recs[-1]["solver"],
                "scoring_method": recs[-1]["scoring_method"],
                "warnings": sorted({w for r in recs for w in r["warnings"]}),
                "accuracy": None,
            }
            if accuracy:
                key = repr(
                    [kwargs.get(p) for p in ("damping", "curvature", "parameters", "batch_size")]
                )
                if key not in references:
                    log(f"{tag} reference solve (CG tol {REFERENCE_TOL:g}) ...")
                    references[key] = Reference(problem, kwargs, seed)
                    rep = references[key].report
                    log(
                        f"{tag} reference: {rep['iterations']} iterations, residual "
                        f"{rep['relative_residual']:.2e}, {rep['seconds']:.1f}s"
                    )
                if key not in ref_scores:
                    ref_scores[key] = references[key].scores(X_pool)
                row["accuracy"] = compare(
                    strategies[label], selections[label], references[key], ref_scores[key], k
                )
                row["accuracy"]["reference"] = key
            cell["methods"][label] = row
            acc = row["accuracy"] or {}
            log(
                f"{tag} pool {n_pool:,} {label}: {median_s:.3f}s (x{len(recs)}), margin "
                f"{margin_s:.3f}s, ratio {row['ratio']:.2f}; rel. error "
                f"{fmt_num(acc.get('relative_error'))}, Pearson {fmt_num(acc.get('pearson'), 4)}"
            )
        pools[str(n_pool)] = cell
    return {
        "net": {
            "description": problem["description"],
            "n_labelled": n_lab,
            "n_reference": len(problem["y_ref"]),
            "n_parameters": n_params,
            "train_s": train_s,
            "reference_accuracy": ref_acc,
            "references": {key: r.report for key, r in references.items()},
        },
        "pools": pools,
    }


def _csv(value: str | None, cast: Callable[[str], Any] = str) -> list[Any] | None:
    return None if not value else [cast(v.strip()) for v in value.split(",") if v.strip()]


def run(args: Any, log: Any = print) -> dict[str, Any]:
    """Every model, labelled size and pool of the mode (``args.quick``), on ``args.device``.

    Parameters
    ----------
    args : argparse.Namespace
        ``quick``, ``device``, ``seed``; optional ``methods``, ``models``,
        ``labelled``, ``pools`` (comma-separated overrides of the grid),
        ``n_instances``, ``repeats``, ``no_accuracy``.
    log : callable, default=print

    Returns
    -------
    dict
        ``{"mode", "config", "skipped", "models": {name: {n_labelled: run_net result}}}``.
    """
    mode = "quick" if args.quick else "full"
    cfg = dict(CONFIG[mode])
    device = torch.device(args.device)
    if getattr(args, "n_instances", None):
        cfg["n_instances"] = args.n_instances
    wanted_models = _csv(getattr(args, "models", None))
    method_names = _csv(getattr(args, "methods", None))
    labelled = _csv(getattr(args, "labelled", None), int)
    pools = _csv(getattr(args, "pools", None), int)
    repeats = getattr(args, "repeats", None)
    cases = list(CONFIG[mode]["cases"])
    if wanted_models:  # a model the mode does not list runs with the full mode's grid
        listed = {c.name for c in cases}
        cases += [c for c in CONFIG["full"]["cases"] if c.name not in listed]
        cases = [c for c in cases if c.name in wanted_models]
    cases = [
        dataclasses.replace(
            case,
            labelled=tuple(labelled or case.labelled),
            pools=tuple(pools or case.pools),
            methods=tuple(method_names) if method_names else case.methods,
            repeats=repeats or case.repeats,
            accuracy=case.accuracy and not getattr(args, "no_accuracy", False),
        )
        for case in cases
    ]
    skipped: dict[str, str] = {}
    models: dict[str, Any] = {}
    for case in cases:
        methods, skip = method_table(list(case.methods) if case.methods else None)
        for label, reason in skip.items():
            if label not in skipped:
                log(f"[query] skipping {label}: {reason}")
            skipped[label] = reason
        models[case.name] = {
            "case": dataclasses.asdict(case),
            "methods": methods,
            "nets": {
                str(n_lab): run_net(
                    case, n_lab, methods, cfg, case.accuracy, device, args.seed, log
                )
                for n_lab in case.labelled
            },
        }
    return {
        "benchmark": "query",
        "mode": mode,
        "config": {
            **{k: v for k, v in cfg.items() if k != "cases"},
            "reference_tol": REFERENCE_TOL,
            "reference_max_iter": REFERENCE_MAX_ITER,
            "inverse_hvp_methods": list(INVERSE_HVP_METHODS),
        },
        "skipped": skipped,
        "models": models,
    }


# -- report ------------------------------------------------------------------------------------
def _fixed(value: float | None, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, or "n/a"."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{decimals}f}"


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.0f}%"


def _solver_cell(solver: dict[str, Any]) -> str:
    its = sum(solver["iterations"])
    hvp = solver["hessian_vector_products"]
    if not its and not hvp:
        return "-"
    return f"{its} it, {hvp / 1000:.0f}k HVP" if hvp >= 1000 else f"{its} it, {hvp} HVP"


def _target_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for model, m in result["models"].items():
        for n_lab, limit in TARGETS.items():
            cell = m["nets"].get(str(n_lab), {}).get("pools", {}).get(str(TARGET_POOL))
            if cell is None:
                continue
            verdicts = []
            for label, row in cell["methods"].items():
                if "failed" in row:
                    verdicts.append(f"{label} raised")
                    continue
                met = "met" if row["ratio"] <= limit else "NOT met"
                verdicts.append(f"{label} {row['ratio']:.2f}x ({met})")
            lines.append(
                f"- `{model}`, {n_lab:,} labelled, pool {TARGET_POOL:,}: target ISAL / margin "
                f"<= {limit:g}x: " + "; ".join(verdicts) + "."
            )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """Markdown table of a :func:`run` result.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """
    rows, nets, failures = [], [], []
    for model, m in result["models"].items():
        for n_lab, r in m["nets"].items():
            net = r["net"]
            refs = "; ".join(
                f"reference CG {rep['iterations']} it, residual {fmt_num(rep['relative_residual'])}"
                f", {fmt_time(rep['seconds'])}"
                for rep in net["references"].values()
            )
            nets.append(
                f"- `{model}`, {int(n_lab):,} labelled: {net['n_parameters']:,} parameters, "
                f"trained in {fmt_time(net['train_s'])}, accuracy on the reference set "
                f"{net['reference_accuracy']:.3f}" + (f"; {refs}" if refs else "")
            )
            for n_pool, cell in r["pools"].items():
                for label, row in cell["methods"].items():
                    if "failed" in row:
                        head = [model, f"{int(n_lab):,}", f"{int(n_pool):,}", label]
                        rows.append([*head, "raised", *["-"] * 8])
                        failures.append(
                            f"- `{model}`, {int(n_lab):,} labelled, `{label}`: {row['failed']}"
                        )
                        continue
                    acc = row["accuracy"] or {}
                    sh = row["shares"]
                    rows.append(
                        [
                            model,
                            f"{int(n_lab):,}",
                            f"{int(n_pool):,}",
                            label,
                            fmt_time(row["median_s"]) + ("" if row["repeats"] > 1 else " (1x)"),
                            fmt_time(cell["margin"]["median_s"]),
                            f"**{row['ratio']:.2f}x**",
                            f"{_pct(sh['s_test'])} / {_pct(sh['scoring'])} / "
                            f"{_pct(sh['reference_gradient'])} / {_pct(sh.get('finite_check'))}",
                            fmt_num(acc.get("relative_error")),
                            _fixed(acc.get("pearson"), 4),
                            _fixed(acc.get("top_overlap"), 2),
                            _solver_cell(row["solver"]),
                            "yes" if row["solver"]["converged"] else "no",
                        ]
                    )
    table = markdown_table(
        [
            "model",
            "n_labelled",
            "n_pool",
            "method",
            "ISAL query",
            "margin query",
            "ISAL / margin",
            "share s_test / scoring / reference / finite check",
            "rel. error",
            "Pearson",
            "top-n overlap",
            "solver",
            "converged",
        ],
        rows,
    )
    cfg = result["config"]
    skipped = "".join(f"- skipped `{k}`: {v}\n" for k, v in result.get("skipped", {}).items())
    return (
        "### End-to-end query\n\n"
        f"A whole ISAL query (`InfluenceQueryStrategy(...)(net, X_pool, "
        f"n_instances={cfg['n_instances']}, X_labeled=..., y_labeled=...)`, reference set of "
        f"{cfg['n_reference']}) against modAL's `margin_sampling(net, X_pool, "
        f"n_instances={cfg['n_instances']})` on the same trained skorch net and pool: median "
        "wall time after one warm-up call per net and method, margin sampling and every "
        "method alternating in each round ((1x): timed once, its query being long). Shares: "
        "the strategy's own phase timings over the query's time (finite check: the forward "
        "pass over the reference and labelled sets that names rows with non-finite outputs; "
        "the rest is validation and selection). Accuracy against CG to a relative residual of "
        f"{cfg['reference_tol']:g} (at most {cfg['reference_max_iter']:,} iterations) on the "
        "same damped curvature over the full labelled set: rel. error = "
        "||s - s*|| / ||s*|| of s_test (for identity, s = grad l(R): not an approximation "
        "of s*, its Pearson is the point), Pearson of the pool scores, top-n overlap = "
        "|selected & reference's top n| / n. Every row selects the top n by influence "
        '(`selection="top"`) except `pcg-auto`, skisal\'s default whole query '
        '(`selection="auto"`: a forward pass over the reference set, then class-balanced '
        "margin or influence-weighted k-means++; no top-n overlap). Solver: iterations (or "
        "LiSSA steps) and "
        "single-sample Hessian-vector products.\n\n"
        f"{table}\n\n"
        + "".join(f"{line}\n" for line in [*nets, "", *_target_lines(result)])
        + ("\nRaised (not timed):\n\n" + "".join(f"{f}\n" for f in failures) if failures else "")
        + (f"\n{skipped}" if skipped else "")
    )
