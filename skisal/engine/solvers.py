"""Inverse Hessian-vector product solvers: ``s_test = (H + damping I)^-1 v``: the index.

Every solver solves the same damped system, so ``damping`` means the same thing
whichever solver is chosen. Each one lives in a module of its own, beside the
interface they share (:mod:`~skisal.engine.inverse_hvp`):

* :class:`~skisal.engine.IdentitySolver` and :class:`~skisal.engine.ExactSolver`
  (:mod:`~skisal.engine.direct`): no iteration;
* :class:`~skisal.engine.ConjugateGradientSolver` (:mod:`~skisal.engine.cg`): CG and,
  with a preconditioner, PCG;
* :class:`~skisal.engine.LissaSolver` (:mod:`~skisal.engine.lissa`): the paper's
  stochastic recursion;
* :class:`~skisal.engine.LanczosSolver` (:mod:`~skisal.engine.lanczos`): a low-rank
  solve on a Krylov space;
* :class:`~skisal.engine.KFACSolver` (:mod:`~skisal.engine.kfac`): Kronecker-factored
  curvature.

This module re-exports them all, with :class:`~skisal.SolverReport` and
:func:`~skisal.engine.top_eigenvalue`, so that the names it offered before the split
still import from here.
"""

from __future__ import annotations

from .cg import ConjugateGradientSolver
from .curvature import top_eigenvalue
from .direct import ExactSolver, IdentitySolver
from .inverse_hvp import InverseHVPSolver, SolverReport
from .kfac import KFACSolver
from .lanczos import LanczosSolver
from .lissa import LissaSolver

__all__ = [
    "ConjugateGradientSolver",
    "ExactSolver",
    "IdentitySolver",
    "InverseHVPSolver",
    "KFACSolver",
    "LanczosSolver",
    "LissaSolver",
    "SolverReport",
    "top_eigenvalue",
]
