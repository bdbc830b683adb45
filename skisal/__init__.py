"""skisal: Influence Selection for Active Learning (ISAL) for modAL and skorch.

The main entry point is :class:`InfluenceQueryStrategy`, a modAL query
strategy; :mod:`skisal.engine` holds the model-agnostic influence engine and
:mod:`skisal.adapters` the per-model-family adapters.
"""

from .adapters import ModelAdapter, SkorchClassifierAdapter, resolve_adapter
from .engine import InfluenceDiagnostics, SolverReport
from .exceptions import NonFiniteScoreError, SolverDivergenceError
from .strategy import InfluenceQueryStrategy

__version__ = "0.1.0"

__all__ = [
    "InfluenceDiagnostics",
    "InfluenceQueryStrategy",
    "ModelAdapter",
    "NonFiniteScoreError",
    "SkorchClassifierAdapter",
    "SolverDivergenceError",
    "SolverReport",
    "__version__",
    "resolve_adapter",
]
