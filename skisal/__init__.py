"""skisal: Influence Selection for Active Learning (ISAL) for modAL and skorch.

The main entry point is :class:`InfluenceQueryStrategy`, a modAL query
strategy; :mod:`skisal.engine` holds the model-agnostic influence engine and
:mod:`skisal.adapters` the per-model-family adapters. Baselines to compare
with live in :mod:`skisal.baselines`, and whole comparisons (datasets, a
resumable runner, reports, the ``skisal-experiment`` command) in
:mod:`skisal.experiments`. For scikit-activeml, :mod:`skisal.skactiveml`
offers ISAL as one of its pool query strategies (the ``skactiveml`` extra).

``import skisal`` also makes the installed modAL work on current scikit-learn
and pandas (:mod:`skisal.modal_compat`; ``SKISAL_MODAL_COMPAT=0`` turns that off).
"""

from . import modal_compat
from .adapters import ModelAdapter, SkorchClassifierAdapter, resolve_adapter
from .baselines import CoresetSampling, RandomSampling, gradient_similarity
from .engine import InfluenceDiagnostics, SolverReport
from .exceptions import NonFiniteScoreError, SolverDivergenceError
from .strategy import InfluenceQueryStrategy

__version__ = "0.1.0"

modal_compat._apply_on_import()

__all__ = [
    "CoresetSampling",
    "InfluenceDiagnostics",
    "InfluenceQueryStrategy",
    "ModelAdapter",
    "NonFiniteScoreError",
    "RandomSampling",
    "SkorchClassifierAdapter",
    "SolverDivergenceError",
    "SolverReport",
    "__version__",
    "gradient_similarity",
    "resolve_adapter",
]
