"""What skisal needs to know about modAL: its strategy protocol and its learners.

modAL 0.4.1 expects a strategy to return indices; 0.4.2.x expects
``(indices, scores)`` and, on *any* exception while unpacking, calls the
strategy a second time. The installed version is recognised by the
signature of ``BaseLearner.query`` (0.4.2 added ``return_metrics``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

__all__ = [
    "format_result",
    "installed_modal_returns_scores",
    "is_learner",
    "learner_returns_scores",
    "returns_scores",
]


@functools.cache
def installed_modal_returns_scores() -> bool:
    """True when the installed modAL expects ``(indices, scores)`` (0.4.2 and later)."""
    try:
        from modAL.models.base import BaseLearner
    except Exception:  # modAL absent, or broken by its own imports
        return False
    return "return_metrics" in inspect.signature(BaseLearner.query).parameters


def is_learner(obj: Any) -> bool:
    """A modAL learner: wraps an ``estimator`` and owns a ``query_strategy``."""
    return hasattr(obj, "estimator") and hasattr(obj, "query_strategy")


def learner_returns_scores(learner: Any) -> bool:
    """Protocol of this learner's ``query`` (works for forks and subclasses too)."""
    try:
        return "return_metrics" in inspect.signature(type(learner).query).parameters
    except (TypeError, ValueError, AttributeError):
        return installed_modal_returns_scores()


def returns_scores(setting: str | bool, classifier: Any) -> bool:
    """Resolve a strategy's ``return_scores`` option for this call.

    "auto" follows the calling learner's protocol, else the installed modAL's.
    """
    if setting != "auto":
        return bool(setting)
    if is_learner(classifier):
        return learner_returns_scores(classifier)
    return installed_modal_returns_scores()


def format_result(indices: Any, scores: Any, with_scores: bool) -> Any:
    """A strategy's return value: ``(indices, scores)`` or indices only."""
    return (indices, scores) if with_scores else indices
