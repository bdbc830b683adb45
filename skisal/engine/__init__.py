"""The model-agnostic influence engine (reference gradient, HVPs, solvers, scoring)."""

from .curvature import CURVATURES, DampedHessian
from .influence import InfluenceDiagnostics, InfluenceEngine
from .kfac import KFACSolver, KroneckerCurvature, supported_layer
from .lanczos import LanczosSolver
from .model import BoundModel, evaluation_mode
from .parameters import ParameterSpace, select_parameters
from .scoring import score_pool
from .solvers import (
    ConjugateGradientSolver,
    ExactSolver,
    IdentitySolver,
    InverseHVPSolver,
    LissaSolver,
    SolverReport,
    top_eigenvalue,
)

__all__ = [
    "CURVATURES",
    "BoundModel",
    "ConjugateGradientSolver",
    "DampedHessian",
    "ExactSolver",
    "IdentitySolver",
    "InfluenceDiagnostics",
    "InfluenceEngine",
    "InverseHVPSolver",
    "KFACSolver",
    "KroneckerCurvature",
    "LanczosSolver",
    "LissaSolver",
    "ParameterSpace",
    "SolverReport",
    "evaluation_mode",
    "score_pool",
    "select_parameters",
    "supported_layer",
    "top_eigenvalue",
]
