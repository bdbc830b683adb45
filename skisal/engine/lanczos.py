"""Low-rank inverse Hessian-vector products by Lanczos: ``s_test = (H + damping I)^-1 v``.

Schioppa et al. (2022), "Scaling Up Influence Functions", approximate ``H`` by
its projection on a Krylov space built by Arnoldi iteration; for a symmetric
``H`` Arnoldi is Lanczos. :class:`LanczosSolver` builds the space from the
right-hand side ``v`` itself, the space conjugate gradient would build, so the
solve is exact as soon as the space is invariant (``H`` of rank below the
number of steps, or a ``v`` spanned by few eigenvectors).

Because ``v`` lies in the space, the complement term of the low-rank inverse
vanishes up to round-off: in exact arithmetic ``rank`` Lanczos steps give
``rank`` steps of CG's answer. What the solver adds is full
reorthogonalisation in float64 (no loss of orthogonality on ill-conditioned
curvatures), a fixed budget of products, and the Ritz values of ``H``, which
bound its spectrum and say whether ``H + damping I`` is positive definite on
the space.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from tqdm.auto import tqdm

from ..exceptions import InvalidParameterError, SolverDivergenceError
from ._remedies import attainable_residual, conditioning_remedy, damping_remedy
from .curvature import DampedCurvature
from .inverse_hvp import InverseHVPSolver, SolverReport

__all__ = ["LanczosSolver"]


class LanczosSolver(InverseHVPSolver):
    """Low-rank solve on a ``rank``-step Lanczos (symmetric Arnoldi) space of ``H``.

    Runs ``rank`` steps of Lanczos on the undamped curvature ``H`` (products
    ``(H + damping I) p - damping p``, so any
    :class:`~skisal.engine.DampedCurvature` works, also one over a subsample of
    the labelled set), from ``v / ||v||``, with full reorthogonalisation: the
    basis ``V`` is kept in float64 on ``v``'s device and the products run in
    ``v``'s dtype, as in CG. With ``T = U diag(theta) U^T`` the tridiagonal
    projection of ``H`` and ``Q = V U`` its Ritz vectors,

    ``s_test = Q diag(1 / (theta + damping)) Q^T v + (v - Q Q^T v) / damping``,

    the curvature outside the space taken as zero. The iteration stops early
    when the space is invariant (``beta_j <= tol * ||H v|| / ||v||``, or
    ``dim`` steps): the solve is then exact up to round-off. Otherwise it is
    approximate; the residual ``||(H + damping I) s_test - v|| / ||v||`` is
    measured once (one extra full product) and ``converged`` is whether it is
    at most ``tol_residual``.

    Cost: at most ``min(rank, dim)`` full products plus one for the residual,
    and ``8 * min(rank, dim) * dim`` bytes for the basis.

    Parameters
    ----------
    rank : int, default=20
        Lanczos steps ``k`` (the rank of the approximation;
        ``InfluenceQueryStrategy(lanczos_rank=...)``). Capped at the
        parameter count.
    tol : float, default=1e-8
        Breakdown threshold: stop when the new direction's norm is at most
        ``tol`` times the first product's.
    tol_residual : float, default=1e-2
        Report ``converged`` when the measured relative residual is at most
        this (or at the round-off floor of ``v``'s dtype, as CG).

    Notes
    -----
    The report's ``top_eigenvalue`` and ``min_eigenvalue`` are the extreme
    Ritz values plus ``damping``: eigenvalues of the damped Hessian when the
    space is invariant, otherwise inner bounds (the true extremes lie
    outside them). ``norm_trace`` holds, per step ``j``, the Lanczos estimate
    ``beta_j |e_j^T (T_j + damping I)^-1 e_1|`` of the relative residual of
    the solve on the first ``j`` vectors (no extra products).

    Examples
    --------
    Two-class logistic regression on four features: 10 parameters, but a
    Gauss-Newton matrix of rank 5 (features and bias, times one logit
    difference), so the space stops growing after a few steps (5, and the
    float32 products' round-off) and the solve is exact.

    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, DampedCurvature, ExactSolver, LanczosSolver,
    ...     ParameterSpace, select_parameters)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> hessian = DampedCurvature(model, X_labeled, y_labeled, damping=0.1, batch_size=20)
    >>> v = model.loss_gradient(X_reference, y_reference, batch_size=10)  # grad l(R)
    >>> s_test, report = LanczosSolver(rank=20).solve(hessian, v, np.random.RandomState(0))
    >>> report.method, report.iterations, report.converged
    ('lanczos', [7], True)
    >>> s_exact, _ = ExactSolver().solve(hessian, v, np.random.RandomState(0))
    >>> bool((s_test - s_exact).norm() <= 1e-4 * s_exact.norm())
    True

    Too small a rank leaves the solve unconverged, with a note on the remedy:

    >>> solver = LanczosSolver(rank=1, tol_residual=1e-6)
    >>> s_test, report = solver.solve(hessian, v, np.random.RandomState(0))
    >>> report.iterations, report.converged, "lanczos_rank" in report.notes[0]
    ([1], False, True)
    """

    name = "lanczos"

    def __init__(self, rank: int = 20, tol: float = 1e-8, tol_residual: float = 1e-2) -> None:
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 1:
            raise InvalidParameterError(
                f"LanczosSolver: rank (lanczos_rank) must be a positive integer, got {rank!r}; "
                "use e.g. rank=20."
            )
        if not tol >= 0:
            raise InvalidParameterError(
                f"LanczosSolver: tol must be non-negative, got {tol!r}; use e.g. tol=1e-8."
            )
        if not tol_residual > 0:
            raise InvalidParameterError(
                f"LanczosSolver: tol_residual must be positive, got {tol_residual!r}; "
                "use e.g. tol_residual=1e-2."
            )
        self.rank = int(rank)
        self.tol = tol
        self.tol_residual = tol_residual

    def solve(
        self,
        hessian: DampedCurvature,
        v: torch.Tensor,
        rng: np.random.RandomState | None,
        progress: bool = False,
    ) -> tuple[torch.Tensor, SolverReport]:
        """Solve on a Lanczos space of ``rank`` vectors (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedCurvature
            Products with the damped Hessian (full products: ``matvec`` without indices).
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState or None
            Accepted for the common solver interface; Lanczos is deterministic
            (its start vector is ``v``).
        progress : bool, default=False
            Show a tqdm bar over the Lanczos steps.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            With the steps taken, the extreme Ritz values plus ``damping``, the
            estimated residual per step and the measured final residual.

        Raises
        ------
        skisal.SolverDivergenceError
            If a Hessian-vector product is not finite, or a Ritz value of
            ``H + damping I`` is not positive (the damped Hessian is not
            positive definite).
        """
        damping = hessian.damping
        report = SolverReport(method=self.name, damping=damping)
        b = v.to(torch.float64)
        b_norm = b.norm()
        if b_norm == 0:  # s_test = 0, no product needed
            report.iterations = [0]
            report.relative_residual = 0.0
            report.hessian_vector_products = hessian.hvp_count
            return torch.zeros_like(v), report
        steps_max = min(self.rank, hessian.dim)
        basis = torch.empty(steps_max, b.numel(), dtype=torch.float64, device=b.device)
        basis[0] = b / b_norm
        alphas: list[float] = []
        betas: list[float] = []
        trace: list[float] = []
        first = None
        invariant = False
        # Running quantities of the residual estimate (LDL^T of T_j + damping I).
        pivot, product = None, 1.0
        bar = tqdm(total=steps_max, desc="s_test (Lanczos)", disable=not progress, leave=False)
        for j in range(steps_max):
            p = basis[j].to(v.dtype)
            w = hessian.matvec(p).to(torch.float64) - damping * p.to(torch.float64)
            raw_norm = w.norm()
            # Full reorthogonalisation, classical Gram-Schmidt twice.
            known = basis[: j + 1]
            coefficients = known @ w
            w = w - known.T @ coefficients
            w = w - known.T @ (known @ w)
            # One device synchronisation per step.
            alpha, beta, raw = torch.stack([coefficients[j], w.norm(), raw_norm]).tolist()
            if not (math.isfinite(alpha) and math.isfinite(beta) and math.isfinite(raw)):
                bar.close()
                raise SolverDivergenceError(
                    "inverse_hvp='lanczos': a Hessian-vector product is not finite; the "
                    "network's loss is not twice differentiable at this point or overflows."
                )
            first = raw if first is None else first
            alphas.append(alpha)
            bar.update(1)
            pivot, product, estimate = _residual_step(alpha + damping, betas, pivot, product, beta)
            trace.append(estimate)
            if beta <= self.tol * first or j + 1 == hessian.dim:
                invariant = True
                break
            if j + 1 == steps_max:
                break
            betas.append(beta)
            basis[j + 1] = w / beta
        bar.close()
        steps = len(alphas)
        V = basis[:steps]
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64, device=b.device))
        if steps > 1:
            off = torch.tensor(betas, dtype=torch.float64, device=b.device)
            T = T + torch.diag(off, 1) + torch.diag(off, -1)
        theta, U = torch.linalg.eigh(T)
        report.iterations = [steps]
        report.norm_trace = [trace]
        report.top_eigenvalue = float(theta[-1]) + damping
        report.min_eigenvalue = float(theta[0]) + damping
        if report.min_eigenvalue <= 0:
            raise SolverDivergenceError(
                f"inverse_hvp='lanczos' found a non-positive Ritz value of the damped Hessian "
                f"({report.min_eigenvalue:.3g} after {steps} steps): H + damping I is not "
                "positive definite. " + damping_remedy(hessian, report.min_eigenvalue, exact=False)
            )
        # With the Ritz vectors Q = V U (never formed: Q Q^T = V^T V as U is orthogonal).
        coordinates = V @ b
        x = V.T @ (U @ ((U.T @ coordinates) / (theta + damping)))
        if damping > 0:  # zero up to round-off: v lies in the space
            x = x + (b - V.T @ coordinates) / damping
        report.relative_residual = self._residual(hessian, x, b)
        report.converged = report.relative_residual <= max(
            self.tol_residual, 10 * attainable_residual(v.dtype)
        )
        if invariant and steps < self.rank:
            report.notes.append(
                f"Lanczos space invariant after {steps} steps (rank {self.rank}): the solve is "
                "exact up to round-off."
            )
        if not report.converged:
            remedy = conditioning_remedy(hessian, "raise lanczos_rank or damping")
            if report.relative_residual >= 1:  # no better than s_test = 0: meaningless
                raise SolverDivergenceError(
                    f"inverse_hvp='lanczos' with rank {self.rank} ended at relative residual "
                    f"{report.relative_residual:.3g}, no better than s_test = 0. {remedy}"
                )
            report.notes.append(
                f"Lanczos with rank {self.rank} stopped at relative residual "
                f"{report.relative_residual:.2e} (tol_residual {self.tol_residual:g}): {remedy}"
            )
        report.hessian_vector_products = hessian.hvp_count
        return x.to(v.dtype), report


def _residual_step(
    diagonal: float, betas: list[float], pivot: float | None, product: float, beta: float
) -> tuple[float, float, float]:
    """One step of the relative residual estimate ``beta_j |e_j^T (T_j + d I)^-1 e_1|``.

    ``T_j + d I`` is tridiagonal: its LDL^T pivots follow ``p_j = a_j - b_{j-1}^2 / p_{j-1}``
    and ``e_j^T (T_j + d I)^-1 e_1 = prod_{i<j} (b_i / p_i) / p_j`` (the quantities CG's
    residual recursion carries). Returns the new pivot, the running product and the estimate
    (``inf`` at a zero pivot: the system restricted to the space is singular).
    """
    if pivot is not None:
        if pivot == 0:
            return 0.0, math.inf, math.inf
        product *= betas[-1] / pivot
        diagonal -= betas[-1] ** 2 / pivot
    if diagonal == 0 or not math.isfinite(product):
        return diagonal, product, math.inf
    return diagonal, product, beta * abs(product / diagonal)
