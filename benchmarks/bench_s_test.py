"""s_test solvers against the exact solve on a convex model.

The model is tests/test_ground_truth.py's: multinomial logistic regression
(``nn.Linear(64, 10)``, cross-entropy) in float64 on scikit-learn's digits, as a skorch
net, moved by Newton's method to the optimum of ``mean CE + (damping / 2) ||theta||^2``.
There the Hessian is exact and cheap, so ``s_test = (H + damping I)^-1 grad l(R)`` is known
to round-off by ``torch.linalg.solve`` on the dense matrix, built here in closed form,
independently of skisal (and cross-checked against skisal's own dense matrix).

Measured, each against that exact ``s_test`` (relative error ``||s - s*|| / ||s*||``):

* conjugate gradient (``ConjugateGradientSolver``) as a function of its iterations;
* LiSSA (``LissaSolver``) as a function of depth x repeats, with ``scale="auto"``
  and with fixed scales (1, 2, 10 and 100 times the true top eigenvalue of
  ``H + damping I``, and the reference code's 1e4) at the same cost: the fixed scales
  run as many extra steps as auto's power iteration spends Hessian-vector products.

Every solver runs on skisal's default Gauss-Newton products (equal to the Hessian for
this model) with its default ``hessian_batch_size`` of 32; the stopping tolerances are
set to zero so that every run spends its whole budget.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import numpy as np
import torch
from _common import fmt_num, fmt_time, markdown_table, measure, synchronize
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier
from torch import nn
from torch.nn import functional as F

from skisal.adapters import SkorchClassifierAdapter
from skisal.engine import (
    BoundModel,
    ConjugateGradientSolver,
    DampedCurvature,
    LissaSolver,
    ParameterSpace,
    select_parameters,
)
from skisal.exceptions import SolverDivergenceError

DAMPING = 0.01
HESSIAN_BATCH_SIZE = 32
N_FEATURES, N_CLASSES = 64, 10
#: Fixed LiSSA scales, as multiples of the true top eigenvalue of H + damping I.
SCALE_MULTIPLES = (1.0, 2.0, 10.0, 100.0)
#: The ISAL reference code's LiSSA scale.
REFERENCE_CODE_SCALE = 1e4
#: "auto" matches a fixed scale when its error is at most this factor above it.
MATCH_TOLERANCE = 1.1

CONFIG = {
    "full": {
        "n_labeled": 1000,
        "n_reference": 200,
        "cg_iterations": [1, 2, 5, 10, 20, 50, 100],
        "lissa_budgets": [(100, 1), (300, 1), (1000, 1), (3000, 1), (1000, 4)],
        "seeds": 3,
        "repeats": 3,
    },
    "quick": {
        "n_labeled": 300,
        "n_reference": 100,
        "cg_iterations": [1, 5, 20],
        "lissa_budgets": [(100, 1), (1000, 1)],
        "seeds": 1,
        "repeats": 1,
    },
}


class LogisticRegression(nn.Module):
    """Multinomial logistic regression in float64."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(N_FEATURES, N_CLASSES, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits.

        Parameters
        ----------
        x : torch.Tensor
            ``(n, 64)`` inputs.

        Returns
        -------
        torch.Tensor
            ``(n, 10)`` logits.
        """
        return self.linear(x)


def _logits(theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Logits of flat parameters ``theta`` (weight row-major, then bias) on ``X``."""
    split = N_CLASSES * N_FEATURES
    return X @ theta[:split].view(N_CLASSES, N_FEATURES).T + theta[split:]


def ce_hessian(theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Closed-form Hessian of the mean cross-entropy of logistic regression.

    ``(1/n) sum_i (diag p_i - p_i p_i^T) kron x_i x_i^T`` (with a bias column),
    in skisal's flattening order: weight (row-major, 10 x 64), then bias.

    Parameters
    ----------
    theta : torch.Tensor
        Flat parameters, float64.
    X : torch.Tensor
        ``(n, 64)`` inputs.

    Returns
    -------
    torch.Tensor
        ``(650, 650)`` Hessian.
    """
    P = torch.softmax(_logits(theta, X), dim=1)
    A = torch.diag_embed(P) - P[:, :, None] * P[:, None, :]
    Xa = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)
    dim = N_CLASSES * (N_FEATURES + 1)
    Ha = torch.einsum("icd,ij,ik->cjdk", A, Xa, Xa).reshape(dim, dim) / len(X)
    order = torch.as_tensor(
        [
            c * N_FEATURES + j if j < N_FEATURES else N_CLASSES * N_FEATURES + c
            for c in range(N_CLASSES)
            for j in range(N_FEATURES + 1)
        ],
        device=X.device,
    )
    H = torch.empty_like(Ha)
    H[order[:, None], order[None, :]] = Ha
    return H


def build_problem(
    n_labeled: int, n_reference: int, device: torch.device, seed: int
) -> dict[str, Any]:
    """The convex problem, its exact ``s_test`` and skisal's bound model.

    Parameters
    ----------
    n_labeled, n_reference : int
        Sizes of the labelled set (the Hessian) and the reference set.
    device : torch.device
    seed : int
        Split of the digits.

    Returns
    -------
    dict
        ``model`` (BoundModel), ``X_lab``, ``y_lab``, ``v`` (skisal's
        reference gradient), ``exact`` (the exact s_test), ``top_eigenvalue``,
        ``min_eigenvalue`` of ``H + damping I``, ``newton_gradient_norm``,
        ``engine_dense_vs_closed_form``, ``exact_solve`` timing and ``dim``.
    """
    X, y = load_digits(return_X_y=True)
    order = np.random.RandomState(seed).permutation(len(X))
    X, y = X[order] / 16.0, y[order].astype(np.int64)
    X_lab, y_lab = X[:n_labeled], y[:n_labeled]
    X_ref, y_ref = X[n_labeled : n_labeled + n_reference], y[n_labeled : n_labeled + n_reference]
    Xl = torch.as_tensor(X_lab, device=device)
    yl = torch.as_tensor(y_lab, device=device)
    dim = N_CLASSES * (N_FEATURES + 1)
    eye = torch.eye(dim, dtype=torch.float64, device=device)

    def objective(theta: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(_logits(theta, Xl), yl) + DAMPING / 2 * theta.dot(theta)

    theta = torch.zeros(dim, dtype=torch.float64, device=device)
    for _ in range(50):  # Newton's method to the regularised optimum
        gradient = torch.func.grad(objective)(theta)
        if float(gradient.norm()) <= 1e-12:
            break
        theta = theta - torch.linalg.solve(ce_hessian(theta, Xl) + DAMPING * eye, gradient)
    gradient_norm = float(torch.func.grad(objective)(theta).norm())

    torch.manual_seed(seed)
    net = NeuralNetClassifier(
        LogisticRegression, criterion=nn.CrossEntropyLoss, train_split=None, device=device
    ).initialize()
    linear = net.module_.linear
    with torch.no_grad():
        linear.weight.copy_(theta[: N_CLASSES * N_FEATURES].view(N_CLASSES, N_FEATURES))
        linear.bias.copy_(theta[N_CLASSES * N_FEATURES :])
    adapter = SkorchClassifierAdapter()
    space = ParameterSpace(select_parameters(net.module_, "all"))
    model = BoundModel(adapter, net, net.module_, space, adapter.get_device(net))
    v = model.loss_gradient(X_ref, y_ref, 256)

    matrix = ce_hessian(theta, Xl) + DAMPING * eye
    engine_dense = DampedCurvature(model, X_lab, y_lab, DAMPING, 256, "hessian").dense()
    dense_diff = float((engine_dense - matrix).abs().max() / matrix.abs().max())
    timing, exact = measure(lambda: torch.linalg.solve(matrix, v), device, repeats=5)
    eigenvalues = torch.linalg.eigvalsh(matrix)
    return {
        "model": model,
        "X_lab": X_lab,
        "y_lab": y_lab,
        "v": v,
        "exact": exact,
        "dim": dim,
        "top_eigenvalue": float(eigenvalues[-1]),
        "min_eigenvalue": float(eigenvalues[0]),
        "newton_gradient_norm": gradient_norm,
        "engine_dense_vs_closed_form": dense_diff,
        "exact_solve": timing,
    }


def _rel_err(s: torch.Tensor, exact: torch.Tensor) -> float:
    """``||s - exact|| / ||exact||`` in float64."""
    return float((s.to(torch.float64) - exact).norm() / exact.norm())


def _hessian(problem: dict[str, Any]) -> DampedCurvature:
    """A fresh damped Hessian (its product counter at 0) over the labelled set."""
    return DampedCurvature(
        problem["model"], problem["X_lab"], problem["y_lab"], DAMPING, HESSIAN_BATCH_SIZE
    )


def run_cg(problem: dict[str, Any], iterations: list[int], repeats: int) -> list[dict[str, Any]]:
    """CG with a fixed iteration budget (tolerance 0), each timed (median of repeats).

    Parameters
    ----------
    problem : dict
        From :func:`build_problem`.
    iterations : list of int
        Budgets (``max_iter``).
    repeats : int

    Returns
    -------
    list of dict
        Per budget: iterations done, median seconds, relative error, solver's
        relative residual, single-sample Hessian-vector products.
    """
    device = problem["v"].device
    rows = []
    for budget in iterations:
        solver = ConjugateGradientSolver(tol=0.0, max_iter=budget)

        def solve(solver: ConjugateGradientSolver = solver) -> Any:
            return solver.solve(_hessian(problem), problem["v"], np.random.RandomState(0))

        timing, (s, report) = measure(solve, device, repeats)
        rows.append(
            {
                "budget": budget,
                "iterations": report.iterations[0],
                "seconds": timing["median_s"],
                "relative_error": _rel_err(s, problem["exact"]),
                "relative_residual": report.relative_residual,
                "hessian_vector_products": report.hessian_vector_products,
            }
        )
    return rows


def _lissa_once(
    problem: dict[str, Any], depth: int, repeats: int, scale: float | str, seed: int
) -> dict[str, Any]:
    """One LiSSA solve, timed; ``diverged`` when it raises ``SolverDivergenceError``."""
    solver = LissaSolver(depth=depth, repeats=repeats, scale=scale, tol=0.0)
    device = problem["v"].device
    synchronize(device)
    start = time.perf_counter()
    try:
        s, report = solver.solve(_hessian(problem), problem["v"], np.random.RandomState(seed))
    except SolverDivergenceError:
        synchronize(device)
        return {"diverged": True, "seconds": time.perf_counter() - start}
    synchronize(device)
    return {
        "diverged": False,
        "seconds": time.perf_counter() - start,
        "relative_error": _rel_err(s, problem["exact"]),
        "scale_used": report.scale,
        "hessian_vector_products": report.hessian_vector_products,
        "power_iteration_products": report.power_iteration_products,
        "retries": sum("diverged at scale" in note for note in report.notes),
    }


def run_lissa(
    problem: dict[str, Any], budgets: list[tuple[int, int]], seeds: int
) -> list[dict[str, Any]]:
    """LiSSA at every budget and scale, ``seeds`` runs each (medians reported), at equal cost.

    A budget is ``depth x repeats``; "auto" also spends products on its power
    iteration, so every fixed scale runs ``extra_depth`` more steps per repeat,
    enough to match auto's median power-iteration products: the comparison is
    at an equal number of Hessian-vector products.

    Parameters
    ----------
    problem : dict
        From :func:`build_problem`.
    budgets : list of (depth, repeats)
    seeds : int
        Independent runs (minibatch draws) per cell.

    Returns
    -------
    list of dict
        One per (budget, scale): median relative error and seconds over the
        runs that did not diverge, number diverged, scale used, products.
    """
    top = problem["top_eigenvalue"]
    scales: list[tuple[str, float | str]] = [("auto", "auto")]
    scales += [(f"{m:g}x top", m * top) for m in SCALE_MULTIPLES]
    scales += [(f"{REFERENCE_CODE_SCALE:g} (reference code)", REFERENCE_CODE_SCALE)]
    _lissa_once(problem, 10, 1, "auto", 0)  # warm-up
    rows = []
    for depth, repeats in budgets:
        extra = 0
        for label, scale in scales:  # auto first: its power iteration sets the extra steps
            runs = [
                _lissa_once(problem, depth + extra, repeats, scale, seed) for seed in range(seeds)
            ]
            ok = [r for r in runs if not r["diverged"]]
            if scale == "auto" and ok:
                power = statistics.median(r["power_iteration_products"] for r in ok)
                extra = math.ceil(power / (repeats * HESSIAN_BATCH_SIZE))
            rows.append(
                {
                    "depth": depth,
                    "repeats": repeats,
                    "extra_depth": 0 if scale == "auto" else extra,
                    "scale": label,
                    "scale_value": scale if scale != "auto" else None,
                    "scale_used": [r["scale_used"] for r in ok],
                    "runs": len(runs),
                    "diverged": len(runs) - len(ok),
                    "relative_error": (
                        statistics.median(r["relative_error"] for r in ok) if ok else None
                    ),
                    "relative_errors": [r.get("relative_error") for r in runs],
                    "seconds": statistics.median(r["seconds"] for r in runs),
                    "hessian_vector_products": (
                        statistics.median(r["hessian_vector_products"] for r in ok) if ok else None
                    ),
                }
            )
    return rows


def verdict(lissa: list[dict[str, Any]]) -> dict[str, Any]:
    """Does ``scale="auto"`` match or beat the fixed scales at equal cost?

    "auto" *matches or beats* a fixed scale at a budget when its median relative
    error is at most :data:`MATCH_TOLERANCE` times the fixed scale's, or the
    fixed scale diverged (and "auto" did not).

    Parameters
    ----------
    lissa : list of dict
        From :func:`run_lissa`.

    Returns
    -------
    dict
        ``per_scale``: {fixed scale: {"matches_or_beats": k, "budgets": n,
        "worse_at": [...]}}, ``all`` (bool) and ``text`` (a sentence).
    """
    budgets = sorted({(r["depth"], r["repeats"]) for r in lissa})
    cell = {(r["depth"], r["repeats"], r["scale"]): r for r in lissa}
    fixed = [r["scale"] for r in lissa if r["scale"] != "auto"]
    fixed = list(dict.fromkeys(fixed))
    per_scale = {}
    for label in fixed:
        wins, worse = 0, []
        for depth, repeats in budgets:
            auto = cell[(depth, repeats, "auto")]["relative_error"]
            other = cell[(depth, repeats, label)]
            if auto is None:
                worse.append(f"{depth}x{repeats} (auto diverged)")
            elif (
                other["relative_error"] is None or auto <= MATCH_TOLERANCE * other["relative_error"]
            ):
                wins += 1
            else:
                worse.append(
                    f"{depth}x{repeats} (auto {auto:.3g} vs {other['relative_error']:.3g})"
                )
        per_scale[label] = {"matches_or_beats": wins, "budgets": len(budgets), "worse_at": worse}
    everywhere = all(not v["worse_at"] for v in per_scale.values())
    always = [label for label, v in per_scale.items() if not v["worse_at"]]
    text = (
        "At equal cost (Hessian-vector products, auto's power iteration included), auto "
        f"matches or beats (error at most {MATCH_TOLERANCE:g}x) "
        + ("every fixed scale at every budget" if everywhere else "")
        + (
            f"{', '.join(always) or 'no fixed scale'} at every budget; it is worse than "
            + "; ".join(
                f"{label} at {v['budgets'] - v['matches_or_beats']}/{v['budgets']} budgets "
                f"[{', '.join(v['worse_at'])}]"
                for label, v in per_scale.items()
                if v["worse_at"]
            )
            if not everywhere
            else ""
        )
        + "."
    )
    return {"per_scale": per_scale, "all": everywhere, "text": text}


def run(args: Any, log: Any = print) -> dict[str, Any]:
    """The s_test benchmark in the mode of ``args.quick``, on ``args.device``.

    Parameters
    ----------
    args : argparse.Namespace
        ``quick``, ``device``, ``seed``.
    log : callable, default=print

    Returns
    -------
    dict
    """
    mode = "quick" if args.quick else "full"
    cfg = CONFIG[mode]
    device = torch.device(args.device)
    start = time.perf_counter()
    problem = build_problem(cfg["n_labeled"], cfg["n_reference"], device, args.seed)
    log(
        f"[s_test] problem built in {time.perf_counter() - start:.1f}s: {problem['dim']} params, "
        f"top eigenvalue {problem['top_eigenvalue']:.4g}"
    )
    cg = run_cg(problem, cfg["cg_iterations"], cfg["repeats"])
    log(f"[s_test] CG done ({time.perf_counter() - start:.1f}s)")
    lissa = run_lissa(problem, cfg["lissa_budgets"], cfg["seeds"])
    log(f"[s_test] LiSSA done ({time.perf_counter() - start:.1f}s)")
    return {
        "benchmark": "s_test",
        "mode": mode,
        "config": {**cfg, "damping": DAMPING, "hessian_batch_size": HESSIAN_BATCH_SIZE},
        "problem": {
            "model": "float64 multinomial logistic regression on digits (nn.Linear(64, 10))",
            "n_parameters": problem["dim"],
            "top_eigenvalue": problem["top_eigenvalue"],
            "min_eigenvalue": problem["min_eigenvalue"],
            "condition_number": problem["top_eigenvalue"] / problem["min_eigenvalue"],
            "newton_gradient_norm": problem["newton_gradient_norm"],
            "engine_dense_vs_closed_form": problem["engine_dense_vs_closed_form"],
            "exact_solve_s": problem["exact_solve"]["median_s"],
        },
        "cg": cg,
        "lissa": lissa,
        "verdict": verdict(lissa),
    }


def markdown(result: dict[str, Any]) -> str:
    """Markdown tables of a :func:`run` result.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """
    p, cfg = result["problem"], result["config"]
    head = (
        "### s_test against the exact solve\n\n"
        f"{p['model']}, {p['n_parameters']} parameters, {cfg['n_labeled']} labelled and "
        f"{cfg['n_reference']} reference samples, damping {cfg['damping']:g}, at the "
        f"regularised optimum (gradient norm {p['newton_gradient_norm']:.2g}). "
        f"H + damping I: top eigenvalue {p['top_eigenvalue']:.4g}, condition number "
        f"{p['condition_number']:.3g}; skisal's dense matrix vs the closed form: "
        f"{p['engine_dense_vs_closed_form']:.2g}. Exact solve (torch.linalg.solve): "
        f"{fmt_time(p['exact_solve_s'])}. Relative error = ||s - s*|| / ||s*||; HVPs = "
        "single-sample Hessian-vector products (skisal's count, CG's final residual check "
        f"and LiSSA's power iteration included); minibatches of {cfg['hessian_batch_size']}.\n\n"
    )
    cg = markdown_table(
        ["CG iterations", "relative error", "relative residual", "HVPs", "time"],
        [
            [
                r["iterations"],
                fmt_num(r["relative_error"]),
                fmt_num(r["relative_residual"]),
                f"{r['hessian_vector_products']:,}",
                fmt_time(r["seconds"]),
            ]
            for r in result["cg"]
        ],
    )
    scales = list(dict.fromkeys(r["scale"] for r in result["lissa"]))
    budgets = list(dict.fromkeys((r["depth"], r["repeats"]) for r in result["lissa"]))
    cell = {(r["depth"], r["repeats"], r["scale"]): r for r in result["lissa"]}

    def err(r: dict[str, Any]) -> str:
        if r["relative_error"] is None:
            return f"diverged ({r['diverged']}/{r['runs']})"
        note = f" ({r['diverged']}/{r['runs']} diverged)" if r["diverged"] else ""
        return fmt_num(r["relative_error"]) + note

    rows_err = [[f"{d} x {k}"] + [err(cell[(d, k, s)]) for s in scales] for d, k in budgets]
    rows_time = [
        [f"{d} x {k}"] + [fmt_time(cell[(d, k, s)]["seconds"]) for s in scales] for d, k in budgets
    ]
    fixed_scales = [label for label in scales if label != "auto"]

    def hvps(d: int, k: int) -> str:
        fixed = [cell[(d, k, s)]["hessian_vector_products"] for s in fixed_scales]
        fixed = [h for h in fixed if h is not None]
        auto = cell[(d, k, "auto")]
        used = auto["scale_used"]
        extra = max((cell[(d, k, s)].get("extra_depth", 0) for s in fixed_scales), default=0)
        return (
            f"{d} x {k}: scale {fmt_num(statistics.median(used), 4) if used else 'n/a'}, "
            f"{fmt_num(auto['hessian_vector_products'], 6)} HVPs against "
            f"{fmt_num(statistics.median(fixed), 6) if fixed else 'n/a'} at a fixed scale "
            f"(depth {d} + {extra})"
        )

    return (
        head
        + "CG, by iteration budget (tolerance 0):\n\n"
        + cg
        + f"\n\nLiSSA relative error (median of {cfg['seeds']} seeds), by depth x repeats and "
        "scale (`auto` = 1.5 x a power-iteration estimate, doubled on divergence; fixed "
        f"scales as multiples of the true top eigenvalue {p['top_eigenvalue']:.4g}), at equal "
        "cost: each fixed scale runs as many extra steps per repeat as auto's power iteration "
        "costs in Hessian-vector products (below):\n\n"
        + markdown_table(["depth x repeats", *scales], rows_err)
        + "\n\nLiSSA wall time (median), same cells:\n\n"
        + markdown_table(["depth x repeats", *scales], rows_time)
        + "\n\nauto's scale and cost (power iteration included), median per budget: "
        + "; ".join(hvps(d, k) for d, k in budgets)
        + ".\n\n"
        + f"**Verdict:** {result['verdict']['text']}\n"
    )
