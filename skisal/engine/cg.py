"""Conjugate gradient over the labelled set, optionally preconditioned: deterministic, accurate."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..exceptions import SolverDivergenceError
from ._remedies import attainable_residual, conditioning_remedy, damping_remedy
from .curvature import DampedCurvature
from .inverse_hvp import InverseHVPSolver, SolverReport

__all__ = ["ConjugateGradientSolver"]


class ConjugateGradientSolver(InverseHVPSolver):
    """(Preconditioned) conjugate gradient over the labelled set: deterministic and accurate.

    Vectors are kept in float64; Hessian-vector products run in the model's
    dtype, which sets the attainable residual (about 1e-5 in float32).

    Once the updated residual meets ``tol``, the true residual is
    recomputed from the solution (float32 products let the two drift apart
    on an ill-conditioned system), and CG restarts from it while that still
    gains. A solve that stops above ``tol`` (budget spent, or drift) is
    returned with ``report.converged`` False and a note naming the cause and
    its remedy (out of budget, the iterate of lowest residual: CG's residual
    is not monotone); one whose relative residual is 1 or more (no better than
    ``s_test = 0``) raises, and so does negative curvature (an indefinite
    damped curvature).

    With a ``preconditioner`` (an approximation ``M`` of the damped curvature
    whose inverse is cheap, such as :class:`~skisal.engine.kfac.KroneckerCurvature`),
    each iteration works on ``M^-1 r`` instead of the residual ``r``: the
    number of iterations then depends on how well ``M`` matches the
    curvature, not on the curvature's condition number. The report's method
    is then "pcg".

    Parameters
    ----------
    tol : float, default=1e-5
        Stop when ``||r|| <= tol * ||v||``.
    max_iter : int, default=100
        Maximum number of iterations (each one full pass over the labelled set).
    preconditioner : object, optional
        Has ``fit(hessian, rng)`` (returning the fitted object) and
        ``solve(r, damping)`` returning ``M^-1 r``; fitted once per solve.

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, ConjugateGradientSolver, DampedCurvature,
    ...     ParameterSpace, select_parameters)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> hessian = DampedCurvature(model, X_labeled, y_labeled, damping=0.1, batch_size=20)
    >>> v = model.loss_gradient(X_reference, y_reference, batch_size=10)  # grad l(R)
    >>> s_test, report = ConjugateGradientSolver().solve(hessian, v, np.random.RandomState(0))
    >>> report.method, report.converged, report.relative_residual < 1e-4
    ('cg', True, True)

    Out of iterations, the solve is returned unconverged, with a note saying why:

    >>> solver = ConjugateGradientSolver(max_iter=2)
    >>> s_test, report = solver.solve(hessian, v, np.random.RandomState(0))
    >>> report.iterations, report.converged, "raise cg_max_iter" in report.notes[0]
    ([2], False, True)
    """

    name = "cg"

    def __init__(self, tol: float = 1e-5, max_iter: int = 100, preconditioner: Any = None) -> None:
        self.tol = tol
        self.max_iter = max_iter
        self.preconditioner = preconditioner

    def solve(self, hessian, v, rng, progress=False):
        """Solve by conjugate gradient (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedCurvature
            Products with the damped curvature over the whole labelled set.
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState
            Passed to the preconditioner's ``fit`` (K-FAC's sketches); CG
            itself is deterministic.
        progress : bool, default=False
            Show a tqdm bar over the iterations.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            With the iterations, the residual per iteration and the final residual.

        Raises
        ------
        skisal.SolverDivergenceError
            If a Hessian-vector product is not finite, the damped curvature
            has non-positive curvature along a search direction, or the
            final relative residual is 1 or more.
        """
        method = self.name if self.preconditioner is None else "pcg"
        report = SolverReport(method=method, damping=hessian.damping)
        precondition = self._fit_preconditioner(hessian, rng, report)
        b = v.to(torch.float64)
        if not bool(b.any()):  # v = 0: s_test = 0 exactly (a zero direction has no curvature)
            report.iterations, report.relative_residual = [0], 0.0
            report.hessian_vector_products = hessian.hvp_count
            return torch.zeros_like(v), report
        b_norm = b.norm().clamp_min(1e-300)
        accept = max(self.tol, 10 * attainable_residual(v.dtype))
        x = torch.zeros_like(b)
        r = b.clone()
        z = precondition(r)
        p = z.clone()
        rz = torch.dot(r, z)
        trace = []
        # The residual of CG is not monotone on an ill-conditioned system: a run stopped by its
        # budget returns its best iterate, not its last one.
        best_x, best_rel, best_at = x, 1.0, 0
        residual = None  # the true relative residual of the current x, once measured
        last_restart = math.inf  # the true residual CG last restarted from
        restarts = 0
        stop = "budget"
        bar = tqdm(
            total=self.max_iter, desc=f"s_test ({method})", disable=not progress, leave=False
        )
        for _ in range(self.max_iter):
            hp = hessian.matvec(p.to(v.dtype)).to(torch.float64)
            curvature = torch.dot(p, hp)
            if not torch.isfinite(curvature):
                bar.close()
                raise SolverDivergenceError(
                    f"inverse_hvp={method!r}: a Hessian-vector product is not finite; the "
                    "network's loss is not twice differentiable at this point or overflows."
                )
            if curvature <= 0:
                bar.close()
                quotient = float(curvature / torch.dot(p, p).clamp_min(1e-300))
                raise SolverDivergenceError(
                    f"inverse_hvp={method!r} met {'negative' if quotient < 0 else 'zero'} "
                    f"curvature after {len(trace)} "
                    f"iterations (Rayleigh quotient p^T (H + damping I) p / p^T p = "
                    f"{quotient:.3g} along a search direction): H + damping I is not positive "
                    "definite. " + damping_remedy(hessian, quotient, exact=False)
                )
            alpha = rz / curvature
            x = x + alpha * p
            r = r - alpha * hp
            rel = float(r.norm() / b_norm)
            trace.append(rel)
            if rel < best_rel:
                best_x, best_rel, best_at = x, rel, len(trace)
            bar.update(1)
            if rel <= self.tol:
                # The recurrence says converged; products in float32 let it drift from the
                # true residual, so measure that (the product the report needs anyway).
                true_r = b - hessian.matvec(x).to(torch.float64)
                residual = float(true_r.norm() / b_norm)
                if residual <= accept:
                    stop = "tol"
                    break
                # Restart from the true residual while restarts still gain a factor 2.
                if residual > 0.5 * last_restart:
                    stop = "drift"
                    break
                last_restart = residual
                restarts += 1
                r = true_r
                z = precondition(r)
                p = z.clone()
                rz = torch.dot(r, z)
                continue
            residual = None  # x moved on
            z = precondition(r)
            rz_new = torch.dot(r, z)
            p = z + (rz_new / rz) * p
            rz = rz_new
        bar.close()
        report.iterations = [len(trace)]
        report.norm_trace = [trace]
        if residual is None and best_rel < trace[-1]:  # the budget ran out past the best
            x = best_x
            where = f"iteration {best_at} of {len(trace)}" if best_at else "the start, s_test = 0"
            report.notes.append(
                f"{method.upper()}'s residual rose after its best iterate ({where}, relative "
                f"residual {best_rel:.2e} in the recurrence): that iterate is returned."
            )
        if residual is None:  # the budget ran out: measure the true residual once
            residual = self._residual(hessian, x, b)
        report.relative_residual = residual
        report.converged = residual <= accept
        report.hessian_vector_products = hessian.hvp_count
        if restarts:
            report.notes.append(
                f"{method.upper()} restarted {restarts} time(s) from the recomputed residual "
                "(its recurrence had drifted from it)."
            )
        if residual >= 1:
            raise SolverDivergenceError(
                f"inverse_hvp={method!r} ended at relative residual {residual:.3g} after "
                f"{len(trace)} iterations, no better than s_test = 0 (relative residual 1): "
                "the solve is meaningless. " + conditioning_remedy(hessian, "raise damping")
            )
        if not report.converged:
            if stop == "drift":
                cause = (
                    f"its recurrence met cg_tol={self.tol:g} after {len(trace)} iterations, but "
                    f"the residual recomputed from the solution is {residual:.2e}: the "
                    f"Hessian-vector products ({str(v.dtype).replace('torch.', '')}) are too "
                    "inexact for how ill-conditioned H + damping I is (saturated outputs make "
                    "the curvature nearly singular), and more iterations do not help. "
                    + conditioning_remedy(
                        hessian,
                        f"raise damping, or accept this residual with cg_tol >= {residual:.1e}",
                    )
                )
            elif hessian.damping <= 0:
                cause = (
                    f"it used all cg_max_iter={self.max_iter} iterations and stopped at "
                    f"relative residual {residual:.2e} (tol {self.tol:g}). At damping=0, "
                    f"H + damping I (curvature={getattr(hessian, 'curvature', 'unknown')!r}) "
                    "is singular or nearly so, which more iterations do not cure: use "
                    "damping > 0 (the default is 0.01)."
                )
            else:
                cause = (
                    f"it used all cg_max_iter={self.max_iter} iterations and stopped at "
                    f"relative residual {residual:.2e} (tol {self.tol:g}); raise cg_max_iter, "
                    "or raise damping (a better conditioned system converges in fewer "
                    "iterations)."
                )
            report.notes.append(f"{method.upper()} did not converge: {cause}")
        return x.to(v.dtype), report

    def _fit_preconditioner(
        self, hessian: DampedCurvature, rng: np.random.RandomState, report: SolverReport
    ) -> Any:
        """``r -> M^-1 r`` (the identity without a preconditioner)."""
        if self.preconditioner is None:
            return lambda r: r
        fitted = self.preconditioner.fit(hessian, rng)
        report.notes.extend(getattr(fitted, "notes_", []))
        return lambda r: fitted.solve(r, hessian.damping)
