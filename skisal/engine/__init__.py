"""The model-agnostic influence engine (reference gradient, HVPs, solvers, scoring)."""

from .cg import ConjugateGradientSolver
from .curvature import CURVATURES, DampedCurvature, DampedHessian, top_eigenvalue
from .direct import ExactSolver, IdentitySolver
from .influence import InfluenceDiagnostics, InfluenceEngine
from .inverse_hvp import InverseHVPSolver, SolverReport
from .kfac import KFACSolver, KroneckerCurvature, supported_layer
from .lanczos import LanczosSolver
from .lissa import LissaSolver
from .model import BoundModel, evaluation_mode
from .parameters import ParameterSpace, select_parameters
from .scoring import score_pool

__all__ = [
    "CURVATURES",
    "BoundModel",
    "ConjugateGradientSolver",
    "DampedCurvature",
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
