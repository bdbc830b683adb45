"""Solver reliability: an indefinite or singular system, or a solve no better than
``s_test = 0``, raises; and every solver message gives the remedy for the case at hand."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch import NeuralNetClassifier

from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter, SolverDivergenceError
from skisal.engine import (
    BoundModel,
    ConjugateGradientSolver,
    DampedCurvature,
    ParameterSpace,
    select_parameters,
)


class _Tanh(torch.nn.Module):
    """3 -> 4 -> 2, untrained: far from a minimum, so its Hessian is indefinite."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(3, 4)
        self.b = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


@pytest.fixture(scope="module")
def tiny():
    """A 26-parameter net, its data (30 labelled rows) and the Hessian's smallest eigenvalue."""
    X = np.random.RandomState(0).randn(80, 3).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        _Tanh, criterion=torch.nn.CrossEntropyLoss, train_split=None, verbose=0
    ).initialize()
    data = dict(Xl=X[:30], yl=y[:30], Xr=X[30:45], yr=y[30:45], Xp=X[45:])
    space = ParameterSpace(select_parameters(net.module_))
    model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    hessian = DampedCurvature(model, data["Xl"], data["yl"], 0.0, 30, curvature="hessian")
    lowest = float(torch.linalg.eigvalsh(hessian.dense())[0])
    assert lowest < -0.05  # the premise: an indefinite Hessian
    return net, data, lowest


def _query(tiny, **kw):
    net, data, _ = tiny
    strategy = InfluenceQueryStrategy(
        data["Xr"],
        data["yr"],
        X_labeled=data["Xl"],
        y_labeled=data["yl"],
        return_scores=True,
        random_state=0,
        **kw,
    )
    return strategy, strategy(net, data["Xp"], n_instances=5)


def _digits_query(digits, net, **kw):
    strategy = InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"],
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
        random_state=0,
        parameters=["out"],
        **kw,
    )
    return strategy, strategy.influence(net, digits["X_pool"])


# -- item 1: LiSSA on an indefinite system ----------------------------------------------------
def test_full_batch_lissa_proves_an_indefinite_hessian_and_names_the_damping(tiny):
    damping = -tiny[2] - 0.01  # H + damping I has the eigenvalue -0.01
    with pytest.raises(SolverDivergenceError, match="not positive definite"):
        _query(tiny, curvature="hessian", damping=damping, inverse_hvp="exact")
    with pytest.raises(SolverDivergenceError, match="not positive definite") as info:
        _query(
            tiny,
            curvature="hessian",
            damping=damping,
            inverse_hvp="lissa",
            hessian_batch_size=30,  # the whole labelled set
            lissa_depth=1000,
        )
    message = str(info.value)
    assert "no minibatch noise" in message and "curvature='gauss_newton'" in message
    needed = float(re.search(r"increase damping above at least (\d[\d.e+-]*\d)", message)[1])
    assert damping < needed <= -tiny[2] + 1e-3  # a lower bound of what it takes


def test_full_batch_lissa_that_stops_short_does_not_blame_minibatch_noise(tiny):
    strategy = None
    with pytest.warns(ConvergenceWarning) as record:
        strategy, _ = _query(
            tiny,
            curvature="hessian",
            damping=-tiny[2] + 0.002,  # positive definite, but barely: slow to converge
            inverse_hvp="lissa",
            hessian_batch_size=30,
            lissa_depth=100,
        )
    assert not strategy.diagnostics_.solver.converged
    message = " ".join(str(w.message) for w in record)
    assert "minibatch Hessians" not in message
    assert "no minibatch noise" in message and "Raise damping" in message


def test_minibatch_lissa_estimate_of_an_indefinite_hessian_raises(tiny):
    with pytest.raises(SolverDivergenceError, match="not positive definite") as info:
        _query(
            tiny,
            curvature="hessian",
            damping=-tiny[2] - 0.09,
            inverse_hvp="lissa",
            hessian_batch_size=10,
            lissa_depth=300,
        )
    assert "increase damping above" in str(info.value)


def test_lissa_fixed_scale_divergence_names_the_cause_per_batch_mode(tiny):
    kw = dict(curvature="gauss_newton", inverse_hvp="lissa", lissa_scale=0.1, lissa_depth=50)
    with pytest.raises(SolverDivergenceError, match="scale must exceed") as full:
        _query(tiny, hessian_batch_size=30, **kw)
    assert "no minibatch noise" in str(full.value) and "lissa_scale='auto'" in str(full.value)
    with pytest.raises(SolverDivergenceError, match="scale must exceed") as mini:
        _query(tiny, hessian_batch_size=10, **kw)
    assert "hessian_batch_size=10 of 30" in str(mini.value)


# -- item 5: a solve no better than s_test = 0 ------------------------------------------------
def test_cg_no_better_than_zero_raises_with_the_damping_remedy(digits, fitted_net):
    with pytest.raises(SolverDivergenceError, match=r"no better than s_test = 0") as info:
        _digits_query(digits, fitted_net, inverse_hvp="cg", curvature="fisher", damping=0.0)
    assert "singular" in str(info.value) and "damping > 0" in str(info.value)


def test_lanczos_no_better_than_zero_raises_through_the_engine(digits, fitted_net):
    with pytest.raises(SolverDivergenceError, match=r"no better than s_test = 0.*damping > 0"):
        _digits_query(digits, fitted_net, inverse_hvp="lanczos", curvature="fisher", damping=0.0)


def test_an_unconverged_but_improving_cg_solve_warns(digits, fitted_net):
    with pytest.warns(ConvergenceWarning, match="raise cg_max_iter"):
        strategy, _ = _digits_query(digits, fitted_net, inverse_hvp="cg", cg_max_iter=3)
    assert strategy.diagnostics_.solver.relative_residual < 1


# -- item 8: advice that fits the case ----------------------------------------------------------
def test_exact_solver_advises_the_damping_that_works(tiny):
    with pytest.raises(SolverDivergenceError) as info:
        _query(tiny, curvature="hessian", damping=-tiny[2] - 0.02, inverse_hvp="exact")
    needed = float(re.search(r"increase damping above (\d[\d.e+-]*\d)", str(info.value))[1])
    with pytest.raises(SolverDivergenceError):
        _query(tiny, curvature="hessian", damping=0.99 * needed, inverse_hvp="exact")
    strategy, _ = _query(tiny, curvature="hessian", damping=1.01 * needed, inverse_hvp="exact")
    assert strategy.diagnostics_.solver.min_eigenvalue > 0


@pytest.mark.parametrize("curvature", ["gauss_newton", "fisher"])
@pytest.mark.parametrize("inverse_hvp", ["exact", "cg"])
def test_singular_psd_curvature_at_zero_damping_asks_for_damping(tiny, curvature, inverse_hvp):
    """Gauss-Newton and Fisher are PSD: switching to them cannot help, damping > 0 does."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        try:
            _query(tiny, curvature=curvature, damping=0.0, inverse_hvp=inverse_hvp)
            message = " ".join(str(w.message) for w in record)
        except SolverDivergenceError as exc:
            message = str(exc)
    assert "damping > 0" in message
    assert "use curvature=" not in message.lower()  # the old advice, useless here
    assert "raise cg_max_iter" not in message


class _Operator:
    """``(A + damping I) x + eta ||x|| w``: the error float32 products of an ill-conditioned
    model make, with ``w`` fixed (a bias that CG absorbs once restarted from the true
    residual) or varying with ``x`` (noise that no restart removes)."""

    def __init__(self, matrix, damping=0.0, eta=0.0, varying=False):
        self.matrix, self.damping, self.eta, self.varying = matrix, damping, eta, varying
        self.curvature = "gauss_newton"
        self.hvp_count = 0
        w = torch.randn(len(matrix), generator=torch.Generator().manual_seed(0)).double()
        self.w = w / w.norm()

    def matvec(self, x, indices=None):
        self.hvp_count += 1
        x64 = x.double()
        w = torch.sin(12345.678 * x64 + torch.arange(len(x64))) if self.varying else self.w
        out = self.matrix @ x64 + self.damping * x64 + self.eta * x64.norm() * w / w.norm()
        return out.to(x.dtype)


def test_cg_whose_recurrence_drifts_names_that_cause_not_the_budget():
    """CG's updated residual meets tol while the recomputed one stays at the products' noise."""
    operator = _Operator(
        torch.diag(torch.logspace(0, -1, 20, dtype=torch.float64)), 1e-3, 1e-3, varying=True
    )
    solver = ConjugateGradientSolver(tol=1e-5, max_iter=100)
    _, report = solver.solve(operator, torch.ones(20), np.random.RandomState(0))
    assert not report.converged and report.iterations[0] < 100  # stopped early: not the budget
    note = report.notes[-1]
    assert "recurrence met cg_tol" in note and "raise damping" in note
    assert "raise cg_max_iter" not in note


def test_cg_converges_after_restarting_from_a_drifted_residual():
    """A systematic product error: one restart from the true residual reaches the tolerance."""
    matrix = torch.diag(torch.logspace(0, -1, 20, dtype=torch.float64))
    operator = _Operator(matrix, 1e-3, 1e-3)
    solver = ConjugateGradientSolver(tol=1e-5, max_iter=100)
    _, report = solver.solve(operator, torch.ones(20), np.random.RandomState(0))
    assert report.converged and report.relative_residual <= 1e-3
    assert "restarted" in report.notes[0]


def test_cg_stopped_by_its_budget_returns_its_best_iterate():
    """CG's residual is not monotone: on this system it rises from 0.19 (iteration 35) to 1.11
    (iteration 36). A budget of 36 returns iteration 35's solution, and says so."""
    operator = _Operator(torch.diag(torch.logspace(0, -4, 40, dtype=torch.float64)))
    b = torch.ones(40, dtype=torch.float64)
    best, report = ConjugateGradientSolver(tol=1e-12, max_iter=36).solve(
        operator, b, np.random.RandomState(0)
    )
    trace = report.norm_trace[0]
    assert trace[-1] > 1 > 0.2 > trace[34] == min(trace)
    expected, _ = ConjugateGradientSolver(tol=1e-12, max_iter=35).solve(
        operator, b, np.random.RandomState(0)
    )
    torch.testing.assert_close(best, expected)
    assert report.relative_residual == pytest.approx(trace[34], rel=1e-6)
    assert not report.converged and "iteration 35 of 36" in report.notes[0]


def test_cg_zero_gradient_returns_zero_without_a_curvature_error():
    operator = _Operator(torch.eye(5, dtype=torch.float64))  # v = 0 made CG raise
    s_test, report = ConjugateGradientSolver().solve(
        operator, torch.zeros(5), np.random.RandomState(0)
    )
    assert torch.equal(s_test, torch.zeros(5)) and report.converged
