"""The interface of an inverse Hessian-vector product solver, and the report it returns.

Every solver solves the same damped system ``(H + damping I) x = v``, so ``damping``
means the same thing whichever solver is chosen; subclasses of
:class:`InverseHVPSolver` change only :meth:`~InverseHVPSolver.solve`.
:mod:`skisal.engine.solvers` gathers skisal's own solvers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch

from .curvature import DampedCurvature

__all__ = ["InverseHVPSolver", "SolverReport"]


@dataclass
class SolverReport:
    """What a solver did: inspect ``strategy.diagnostics_.solver`` after a query.

    Parameters
    ----------
    method : str
        Solver name.
    damping : float
        Damping of the solved system.
    iterations : list of int
        Iterations (CG, Lanczos), passes over the samples (K-FAC) or recursion
        steps (LiSSA, one entry per repeat).
    converged : bool
        Whether the stopping criterion was met within the budget.
    relative_residual : float or None
        ``||(H + damping I) x - v|| / ||v||``, measured once after solving by
        CG, PCG, Lanczos and the exact solve, by LiSSA when it checks its
        estimate over the whole labelled set, and by
        ``KFACSolver(check_residual=True)`` (the strategy's ``inverse_hvp="kfac"``
        and ``"ekfac"`` leave that check off). An iterative solve ending at 1 or
        more (no better than ``s_test = 0``) raises
        :class:`~skisal.exceptions.SolverDivergenceError` instead.
    scale : float or None
        LiSSA scale used.
    top_eigenvalue : float or None
        Power-iteration estimate of the damped curvature's top eigenvalue
        (LiSSA with ``scale="auto"``), the exact one (``"exact"``), or
        Lanczos's largest Ritz value plus ``damping``.
    min_eigenvalue : float or None
        Smallest eigenvalue of the damped curvature (``"exact"``, and
        Lanczos's estimate); damping must exceed ``damping - min_eigenvalue``
        to make the system positive definite.
    norm_trace : list of list of float
        LiSSA: ``||h_j|| / scale`` along the recursion, per repeat. CG: the
        relative residual per iteration. Lanczos: the estimated relative
        residual per step.
    hessian_vector_products : int
        Single-sample Hessian-vector products spent.
    power_iteration_products : int
        Of those, the ones the top-eigenvalue estimate took (LiSSA with
        ``scale="auto"``; 0 otherwise).
    notes : list of str
        Anything worth knowing (retries, fallbacks, why a solve stopped early).

    Examples
    --------
    After a query, ``strategy.diagnostics_.solver`` is one of these; a solver
    returns one with ``s_test``:

    >>> from skisal import SolverReport
    >>> report = SolverReport(method="cg", damping=0.01, iterations=[12],
    ...                       relative_residual=3e-6)
    >>> report.converged, report.notes
    (True, [])

    Printed, it says what the numbers mean (:meth:`summary`):

    >>> print(report)
    s_test: CG stopped after 12 iterations at relative residual 3e-06 (converged)
    """

    method: str
    damping: float
    iterations: list[int] = field(default_factory=list)
    converged: bool = True
    relative_residual: float | None = None
    scale: float | None = None
    top_eigenvalue: float | None = None
    min_eigenvalue: float | None = None
    norm_trace: list[list[float]] = field(default_factory=list)
    hessian_vector_products: int = 0
    power_iteration_products: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line saying what the solver did, in words; ``str(report)`` too.

        Returns
        -------
        str
            The solver, its steps (iterations, passes or recursion steps), the
            relative residual ``||(H + damping I) s_test - grad l(R)|| / ||grad l(R)||``
            where it was measured (0: exact; 1: no better than ``s_test = 0``), and
            whether it met its stopping criterion (solvers that have one). The
            ``notes`` are left out.

        Examples
        --------
        >>> from skisal import SolverReport
        >>> print(SolverReport(method="pcg", damping=0.01, iterations=[6],
        ...                    relative_residual=0.18))
        s_test: PCG stopped after 6 iterations at relative residual 0.18 (converged)
        >>> print(SolverReport(method="lissa", damping=0.01, iterations=[1000, 1000],
        ...                    scale=25.0, converged=False))
        s_test: LiSSA ran 2 repeats of 1000 recursion steps at scale 25 (not converged: see notes)
        >>> SolverReport(method="kfac", damping=0.01, iterations=[2]).summary()
        's_test: K-FAC took 2 passes over the labelled set'
        """
        if self.method == "identity":
            return "s_test = grad l(R) (inverse_hvp='identity': no solve)"
        name, one, many = _STEPS.get(self.method, (self.method, "iteration", "iterations"))
        steps = [int(n) for n in self.iterations]
        if len(steps) > 1:  # LiSSA's repeats
            count = str(steps[0]) if len(set(steps)) == 1 else f"{min(steps)} to {max(steps)}"
            line = f"{name} ran {len(steps)} repeats of {count} {many}"
        elif steps and self.method in ("kfac", "ekfac"):
            line = f"{name} took {steps[0]} {one if steps[0] == 1 else many}"
        elif steps:
            line = f"{name} stopped after {steps[0]} {one if steps[0] == 1 else many}"
        else:
            line = name
        plain = line.startswith(f"{name} stopped after")  # "... at relative residual r"
        if self.scale is not None:
            plain = False
            line += f" at scale {self.scale:.3g}"
        if self.min_eigenvalue is not None and self.top_eigenvalue is not None:
            plain = False
            line += (
                f", eigenvalues of H + damping I from {self.min_eigenvalue:.3g}"
                f" to {self.top_eigenvalue:.3g}"
            )
        if self.relative_residual is not None:
            line += f"{' at' if plain else ','} relative residual {self.relative_residual:.2g}"
        if self.method not in ("kfac", "ekfac"):  # K-FAC has no stopping criterion
            line += " (converged)" if self.converged else " (not converged: see notes)"
        return f"s_test: {line}"

    def __str__(self) -> str:
        return self.summary()


# How summary() names skisal's solvers and one step of each (singular, plural).
_STEPS = {
    "cg": ("CG", "iteration", "iterations"),
    "pcg": ("PCG", "iteration", "iterations"),
    "lanczos": ("Lanczos", "step", "steps"),
    "kfac": ("K-FAC", "pass over the labelled set", "passes over the labelled set"),
    "ekfac": ("EK-FAC", "pass over the labelled set", "passes over the labelled set"),
    "lissa": ("LiSSA", "recursion step", "recursion steps"),
    "exact": ("exact solve", "step", "steps"),
}


class InverseHVPSolver(ABC):
    """Base class: solve ``(H + damping I) x = v`` given products with the damped curvature.

    A solver receives a :class:`~skisal.engine.DampedCurvature` (products with
    ``H + damping I`` over the labelled set, or minibatches of it) and the
    reference gradient ``v``, and returns ``s_test`` with a
    :class:`~skisal.SolverReport`. :class:`~skisal.engine.InfluenceEngine`
    accepts any subclass; :class:`~skisal.InfluenceQueryStrategy` picks one
    by its ``inverse_hvp`` name.

    Attributes
    ----------
    name : str
        Short name, recorded in the report.
    needs_hessian : bool
        False for solvers that never touch the curvature: they receive
        ``hessian=None`` and need no labelled data.

    Examples
    --------
    A solver that ignores the curvature, ``s_test = v / damping`` (what every
    damped solve tends to as ``damping`` grows):

    >>> from skisal.engine import InverseHVPSolver, SolverReport
    >>> class ScaledGradient(InverseHVPSolver):
    ...     name = "scaled_gradient"
    ...     needs_hessian = False
    ...     def __init__(self, damping=1.0):
    ...         self.damping = damping
    ...     def solve(self, hessian, v, rng, progress=False):
    ...         report = SolverReport(method=self.name, damping=self.damping)
    ...         return v / self.damping, report
    >>> s_test, report = ScaledGradient(2.0).solve(None, torch.ones(3),
    ...                                            np.random.RandomState(0))
    >>> s_test, report.method
    (tensor([0.5000, 0.5000, 0.5000]), 'scaled_gradient')
    """

    name: str = "base"
    #: False for solvers that never touch the curvature (no labelled data needed).
    needs_hessian: bool = True

    @abstractmethod
    def solve(
        self,
        hessian: DampedCurvature | None,
        v: torch.Tensor,
        rng: np.random.RandomState,
        progress: bool = False,
    ) -> tuple[torch.Tensor, SolverReport]:
        """Return ``s_test = (H + damping I)^-1 v`` and a report.

        Parameters
        ----------
        hessian : DampedCurvature or None
            Products with the damped curvature; None for a solver whose
            ``needs_hessian`` is False.
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState
            Randomness of stochastic solvers (minibatches, start vectors,
            sketches); every solver accepts it.
        progress : bool, default=False
            Show a tqdm bar (solvers that iterate); every solver accepts it.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            What the solver did.

        Raises
        ------
        skisal.SolverDivergenceError
            If the solve diverges or the damped curvature is not positive
            definite (solvers that can tell).
        """

    @staticmethod
    def _residual(hessian: DampedCurvature, x: torch.Tensor, v: torch.Tensor) -> float:
        r = hessian.matvec(x.to(v.dtype)) - v
        return float(r.norm() / v.norm().clamp_min(torch.finfo(v.dtype).tiny))
