"""skisal: Influence Selection for Active Learning (ISAL) for modAL and skorch.

The main entry point is :class:`InfluenceQueryStrategy`, a modAL query
strategy (its ``explain()`` tells why it picked what it picked, and
:class:`InfluenceDisplay` draws it); :mod:`skisal.engine` holds the
model-agnostic influence engine and :mod:`skisal.adapters` the
per-model-family adapters. Baselines to compare
with live in :mod:`skisal.baselines`, and whole comparisons (datasets, a
resumable runner, reports, the ``skisal-experiment`` command) in
:mod:`skisal.experiments`. For scikit-activeml, :mod:`skisal.skactiveml`
offers ISAL as one of its pool query strategies (the ``skactiveml`` extra).

``import skisal`` also makes the installed modAL work on current scikit-learn
and pandas (:mod:`skisal.modal_compat`; ``SKISAL_MODAL_COMPAT=0`` turns that off).
"""

from . import modal_compat
from .adapters import ModelAdapter, SkorchClassifierAdapter, register_adapter, resolve_adapter
from .baselines import CoresetSampling, RandomSampling, gradient_similarity
from .display import InfluenceDisplay
from .engine import InfluenceDiagnostics, SolverReport
from .exceptions import (
    InvalidParameterError,
    NonFiniteScoreError,
    SkisalError,
    SolverDivergenceError,
)
from .strategy import InfluenceQueryStrategy

__version__ = "0.1.0"

modal_compat._apply_on_import()

# A bare torchvision detector resolves after `import skisal` alone: class paths and a
# "module:attribute" adapter import neither torchvision nor skisal.detection until needed.
register_adapter(
    (
        "torchvision.models.detection.fcos.FCOS",
        "torchvision.models.detection.retinanet.RetinaNet",
        "torchvision.models.detection.faster_rcnn.FasterRCNN",
    ),
    "skisal.detection:DetectionAdapter",
    default=True,
)

__all__ = [
    "CoresetSampling",
    "InfluenceDiagnostics",
    "InfluenceDisplay",
    "InfluenceQueryStrategy",
    "InvalidParameterError",
    "ModelAdapter",
    "NonFiniteScoreError",
    "RandomSampling",
    "SkisalError",
    "SkorchClassifierAdapter",
    "SolverDivergenceError",
    "SolverReport",
    "__version__",
    "gradient_similarity",
    "resolve_adapter",
]
