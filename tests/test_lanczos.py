"""LanczosSolver: the low-rank Lanczos (symmetric Arnoldi) inverse-HVP solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier

from skisal import SkorchClassifierAdapter, SolverDivergenceError
from skisal.engine import (
    BoundModel,
    ConjugateGradientSolver,
    DampedCurvature,
    ExactSolver,
    ParameterSpace,
    select_parameters,
)
from skisal.engine.lanczos import LanczosSolver


class DenseOperator:
    """Duck-typed DampedCurvature: products with ``H + damping I`` for a dense symmetric ``H``."""

    def __init__(self, H: torch.Tensor, damping: float) -> None:
        self.H = H
        self.damping = float(damping)
        self.dim = H.shape[0]
        self.hvp_count = 0

    def matvec(self, v: torch.Tensor, indices=None) -> torch.Tensor:
        self.hvp_count += 1
        return self.H.to(v.dtype) @ v + self.damping * v

    def solve(self, v: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(self.dim, dtype=torch.float64)
        return torch.linalg.solve(self.H.double() + self.damping * eye, v.double())


def _spectrum_matrix(eigenvalues, seed: int = 0) -> torch.Tensor:
    """Symmetric matrix with the given eigenvalues and random eigenvectors (float64)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    basis, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=gen))
    return basis @ torch.diag(torch.as_tensor(eigenvalues, dtype=torch.float64)) @ basis.T


def _vector(dim: int, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).to(
        dtype
    )


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(scope="module")
def tiny64():
    """``nn.Linear(3, 3)`` in float64 (12 parameters), briefly trained: model, X, y, v."""
    torch.manual_seed(0)
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    net = NeuralNetClassifier(
        torch.nn.Linear,
        module__in_features=3,
        module__out_features=3,
        module__dtype=torch.float64,
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=3,
        train_split=None,
        verbose=0,
    ).fit(X, y)
    space = ParameterSpace(select_parameters(net.module_))
    model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    v = model.loss_gradient(X, y, batch_size=60)
    assert v.dtype == torch.float64 and v.numel() == 12
    return model, X, y, v


# -- (1) a real model: rank >= dim reproduces the exact solve ----------------------------------
@pytest.mark.parametrize("curvature", ["gauss_newton", "hessian", "fisher"])
def test_full_rank_matches_exact_solver_on_a_float64_model(tiny64, curvature):
    model, X, y, v = tiny64
    exact, _ = ExactSolver().solve(
        DampedCurvature(model, X, y, damping=0.05, batch_size=16, curvature=curvature), v, None
    )
    hessian = DampedCurvature(model, X, y, damping=0.05, batch_size=16, curvature=curvature)
    s_test, report = LanczosSolver(rank=20).solve(hessian, v, np.random.RandomState(0))
    assert _rel_err(s_test, exact) <= 1e-6
    assert report.method == "lanczos" and report.damping == 0.05
    assert report.converged and report.relative_residual <= 1e-10
    assert report.iterations[0] <= v.numel()  # capped at dim, or an earlier breakdown
    # one product per step (of 60 samples) plus one for the residual
    assert report.hessian_vector_products == 60 * (report.iterations[0] + 1)
    dense = hessian.dense()
    eigenvalues = torch.linalg.eigvalsh(dense)
    assert report.top_eigenvalue == pytest.approx(float(eigenvalues[-1]), rel=1e-8)
    assert report.min_eigenvalue >= float(eigenvalues[0]) - 1e-10


def test_works_on_a_subsample_hessian(tiny64):
    """A DampedCurvature over part of the labelled set: the solve is that operator's."""
    model, X, y, v = tiny64
    sub = DampedCurvature(model, X[:20], y[:20], damping=0.1, batch_size=8)
    exact, _ = ExactSolver().solve(DampedCurvature(model, X[:20], y[:20], 0.1, 8), v, None)
    s_test, report = LanczosSolver(rank=12).solve(sub, v, np.random.RandomState(0))
    assert _rel_err(s_test, exact) <= 1e-8 and report.converged


# -- (2) exact rank r < k: breakdown, and the dense solve to 1e-8 ------------------------------
def test_low_rank_curvature_breaks_down_and_is_exact():
    dim, r, damping = 40, 4, 0.01
    eigenvalues = [0.0] * (dim - r) + [0.5, 2.0, 7.0, 30.0]
    operator = DenseOperator(_spectrum_matrix(eigenvalues), damping)
    v = _vector(dim)
    s_test, report = LanczosSolver(rank=15).solve(operator, v, np.random.RandomState(0))
    # v's null-space part and its r eigen-directions: an invariant space of r + 1 vectors
    assert report.iterations == [r + 1]
    assert _rel_err(s_test, operator.solve(v)) <= 1e-8
    assert report.converged and report.relative_residual <= 1e-10
    assert any("invariant after 5 steps" in note for note in report.notes)
    # Ritz values of an invariant space are eigenvalues: the extremes exactly
    assert report.top_eigenvalue == pytest.approx(30.0 + damping, rel=1e-10)
    assert report.min_eigenvalue == pytest.approx(damping, rel=1e-8)
    assert operator.hvp_count == r + 2  # r + 1 steps and the residual
    assert report.hessian_vector_products == operator.hvp_count


def test_rank_above_dim_is_capped_and_exact():
    operator = DenseOperator(_spectrum_matrix(np.logspace(-2, 2, 10)), 0.1)
    v = _vector(10)
    s_test, report = LanczosSolver(rank=50).solve(operator, v, np.random.RandomState(0))
    assert report.iterations == [10] and report.converged
    assert _rel_err(s_test, operator.solve(v)) <= 1e-10


def test_rank_k_is_k_steps_of_cg():
    """Starting from v, the space is CG's: rank-k Lanczos and k-step CG agree."""
    operator = DenseOperator(_spectrum_matrix(np.linspace(0.5, 5.0, 30)), 0.1)
    v = _vector(30)
    s_lanczos, _ = LanczosSolver(rank=6).solve(operator, v, np.random.RandomState(0))
    s_cg, _ = ConjugateGradientSolver(tol=0.0, max_iter=6).solve(operator, v, None)
    assert _rel_err(s_lanczos, s_cg) <= 1e-9
    assert _rel_err(s_lanczos, operator.solve(v)) > 1e-6  # and both are still approximate


# -- (3) full rank, small k: honest non-convergence --------------------------------------------
def test_too_small_rank_is_reported_not_converged():
    damping = 1e-2
    operator = DenseOperator(_spectrum_matrix(np.logspace(-1, 1, 60)), damping)
    v = _vector(60)
    s_test, report = LanczosSolver(rank=4).solve(operator, v, np.random.RandomState(0))
    assert report.iterations == [4]
    assert report.relative_residual > 1e-2
    assert not report.converged
    assert len(report.notes) == 1 and "lanczos_rank" in report.notes[0]
    # the reported residual is the true one, and the per-step estimate agrees with it
    true = float((operator.H @ s_test + damping * s_test - v).norm() / v.norm())
    assert report.relative_residual == pytest.approx(true, rel=1e-10)
    assert len(report.norm_trace[0]) == 4
    assert report.norm_trace[0][-1] == pytest.approx(true, rel=1e-6)
    # Ritz values lie inside the spectrum of H + damping I
    assert damping + 1e-1 <= report.min_eigenvalue <= report.top_eigenvalue <= 1e1 + damping


def test_a_rank_that_ends_no_better_than_zero_raises_with_the_remedy():
    # Ill-conditioned (cond 1e6): 4 steps give a residual above ||v||, worse than s_test = 0.
    operator = DenseOperator(_spectrum_matrix(np.logspace(-3, 3, 60)), 1e-3)
    with pytest.raises(SolverDivergenceError, match=r"no better than s_test = 0.*lanczos_rank"):
        LanczosSolver(rank=4).solve(operator, _vector(60), np.random.RandomState(0))


def test_residual_estimate_falls_and_a_larger_rank_converges():
    operator = DenseOperator(_spectrum_matrix(np.logspace(-1, 1, 60)), 0.01)
    v = _vector(60)
    _, small = LanczosSolver(rank=4).solve(operator, v, np.random.RandomState(0))
    s_test, large = LanczosSolver(rank=40).solve(operator, v, np.random.RandomState(0))
    assert not small.converged and large.converged and large.notes == []
    trace = large.norm_trace[0]
    assert trace[:4] == small.norm_trace[0]
    assert trace[-1] < 1e-2 and trace[-1] < trace[0]
    assert _rel_err(s_test, operator.solve(v)) <= 1e-2 * 1e3  # cond(H + dI) * residual


# -- (4) indefinite curvature ------------------------------------------------------------------
def test_indefinite_curvature_raises_with_the_fix():
    operator = DenseOperator(_spectrum_matrix([-1.0, 0.5, 1.0, 2.0, 3.0, 4.0]), 0.01)
    with pytest.raises(SolverDivergenceError, match="Ritz value") as info:
        LanczosSolver(rank=6).solve(operator, _vector(6), np.random.RandomState(0))
    message = str(info.value)
    assert "inverse_hvp='lanczos'" in message
    # A bare operator has no curvature type: the generic remedy, with the damping that works
    # (H's smallest eigenvalue is -1).
    assert "Increase damping above at least 1 (damping=0.01 now)" in message


def test_non_finite_product_raises():
    H = torch.eye(5, dtype=torch.float64)
    H[0, 0] = float("nan")
    with pytest.raises(SolverDivergenceError, match="not finite"):
        LanczosSolver().solve(DenseOperator(H, 0.1), _vector(5), np.random.RandomState(0))


# -- (5) the result's layout, no mutation, edge cases ------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_result_has_v_layout_and_v_is_not_mutated(dtype):
    operator = DenseOperator(_spectrum_matrix(np.linspace(0.1, 3.0, 12)), 0.05)
    v = _vector(12, dtype=dtype)
    before = v.clone()
    s_test, report = LanczosSolver(rank=12).solve(operator, v, np.random.RandomState(0))
    assert torch.equal(v, before)
    assert s_test.dtype == v.dtype and s_test.shape == v.shape and s_test.device == v.device
    assert s_test.data_ptr() != v.data_ptr()
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert _rel_err(s_test, operator.solve(v)) <= tol and report.converged


def test_zero_right_hand_side_costs_nothing():
    operator = DenseOperator(torch.eye(4, dtype=torch.float64), 0.1)
    s_test, report = LanczosSolver().solve(operator, torch.zeros(4), np.random.RandomState(0))
    assert torch.equal(s_test, torch.zeros(4)) and report.converged
    assert operator.hvp_count == 0 and report.iterations == [0]


def test_rng_is_not_used_and_the_solve_is_deterministic():
    operator = DenseOperator(_spectrum_matrix(np.linspace(0.1, 3.0, 12)), 0.05)
    v = _vector(12)
    a, _ = LanczosSolver(rank=5).solve(operator, v, None)
    b, _ = LanczosSolver(rank=5).solve(operator, v, np.random.RandomState(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": 2.5}, "rank"),
        ({"rank": True}, "rank"),
        ({"tol": -1.0}, "tol must"),
        ({"tol_residual": 0.0}, "tol_residual"),
    ],
)
def test_invalid_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LanczosSolver(**kwargs)


def test_numpy_integer_rank_is_accepted():
    assert LanczosSolver(rank=np.int64(7)).rank == 7


def test_class_attributes():
    assert LanczosSolver.name == "lanczos" and LanczosSolver.needs_hessian
