"""What skisal needs to know about modAL: its strategy protocol and its learners.

modAL 0.4.1 expects a strategy to return indices; 0.4.2.x expects
``(indices, scores)`` and, on *any* exception while unpacking (a bare
``except:``, so Ctrl-C too), calls the strategy a second time. The installed
version is recognised by the signature of ``BaseLearner.query`` (0.4.2 added
``return_metrics``); :func:`note_failure` and :func:`reraise_on_retry` let a
strategy's failure through that second call unchanged.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any

__all__ = [
    "RETURN_SCORES",
    "format_result",
    "installed_modal_returns_scores",
    "is_learner",
    "is_learner_like",
    "learner_returns_scores",
    "note_failure",
    "reraise_on_retry",
    "returns_scores",
]

# The attribute tagging an exception with the strategy it escaped from.
_FAILED_IN = "_skisal_failed_in"

#: Every strategy's ``return_scores`` option: (check, what was expected), an entry of the
#: constraints that :func:`skisal._validation.check_constraints` checks.
RETURN_SCORES = (lambda v: v == "auto" or isinstance(v, bool), "'auto' or a bool")


@functools.cache
def installed_modal_returns_scores() -> bool:
    """True when the installed modAL expects ``(indices, scores)`` (0.4.2 and later).

    Returns
    -------
    bool
        Whether ``BaseLearner.query`` has 0.4.2's ``return_metrics`` parameter; False
        when modAL is not installed or fails to import.

    Examples
    --------
    >>> import inspect
    >>> from modAL.models.base import BaseLearner
    >>> installed_modal_returns_scores() == (
    ...     "return_metrics" in inspect.signature(BaseLearner.query).parameters)
    True
    """
    try:
        from modAL.models.base import BaseLearner
    except Exception:  # modAL absent, or broken by its own imports
        return False
    return "return_metrics" in inspect.signature(BaseLearner.query).parameters


def is_learner(obj: Any) -> bool:
    """Whether ``obj`` is a modAL learner: it wraps an ``estimator`` and owns a ``query_strategy``.

    Parameters
    ----------
    obj : object
        What a strategy was called with.

    Returns
    -------
    bool
        True for a learner, False for a bare estimator.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> is_learner(SimpleNamespace(estimator=None, query_strategy=None))
    True
    >>> is_learner(SimpleNamespace(estimator=None))
    False
    """
    return hasattr(obj, "estimator") and hasattr(obj, "query_strategy")


def is_learner_like(obj: Any) -> bool:
    """Whether ``obj`` can stand for a learner: a modAL learner, or any object with an
    ``estimator`` and its training data (``X_training`` and/or ``y_training``).

    Such an object (a custom learner, a modAL fork) gives a strategy its
    estimator and, unless given otherwise, its labelled data. The training data
    is required so that scikit-learn meta-estimators, which also have an
    ``estimator`` attribute, are not mistaken for learners.

    Parameters
    ----------
    obj : object
        What a strategy was called with.

    Returns
    -------
    bool
        True for a modAL learner or a learner-like object.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> is_learner_like(SimpleNamespace(estimator=None, X_training=None, y_training=None))
    True
    >>> is_learner_like(SimpleNamespace(estimator=None))
    False
    """
    return is_learner(obj) or (
        hasattr(obj, "estimator") and (hasattr(obj, "X_training") or hasattr(obj, "y_training"))
    )


def learner_returns_scores(learner: Any) -> bool:
    """Whether this learner's ``query`` expects ``(indices, scores)`` from its strategy.

    Read from the signature of ``type(learner).query``, so forks and subclasses
    are recognised too; falls back to :func:`installed_modal_returns_scores`.

    Parameters
    ----------
    learner : modAL learner
        The learner calling the strategy.

    Returns
    -------
    bool
        True for the modAL 0.4.2.x protocol (``query`` has ``return_metrics``).

    Examples
    --------
    >>> class Learner042:
    ...     def query(self, X_pool, return_metrics=False): ...
    >>> class Learner041:
    ...     def query(self, X_pool): ...
    >>> learner_returns_scores(Learner042()), learner_returns_scores(Learner041())
    (True, False)
    """
    try:
        return "return_metrics" in inspect.signature(type(learner).query).parameters
    except (TypeError, ValueError, AttributeError):
        return installed_modal_returns_scores()


def returns_scores(setting: str | bool, classifier: Any) -> bool:
    """Resolve a strategy's ``return_scores`` option for this call.

    "auto" follows the calling learner's protocol (read from its ``query``), else
    the installed modAL's: so does a learner-like object without a ``query`` method.

    Parameters
    ----------
    setting : "auto" or bool
        The strategy's ``return_scores``.
    classifier : object
        What the strategy was called with: a modAL learner or a bare estimator.

    Returns
    -------
    bool
        Whether to return ``(indices, scores)`` rather than indices only.

    Examples
    --------
    >>> class Learner041:
    ...     estimator = query_strategy = None
    ...     def query(self, X_pool): ...
    >>> returns_scores("auto", Learner041()), returns_scores(True, Learner041())
    (False, True)
    >>> class Custom:  # no ``query``: the installed modAL decides
    ...     estimator = X_training = y_training = None
    >>> returns_scores("auto", Custom()) == installed_modal_returns_scores()
    True
    """
    if setting != "auto":
        return bool(setting)
    if is_learner_like(classifier):
        return learner_returns_scores(classifier)
    return installed_modal_returns_scores()


def format_result(indices: Any, scores: Any, with_scores: bool) -> Any:
    """A strategy's return value: ``(indices, scores)`` or indices only.

    Parameters
    ----------
    indices : ndarray
        Selected pool indices.
    scores : ndarray
        Their scores.
    with_scores : bool
        Return both (modAL 0.4.2.x) or the indices only (0.4.1).

    Returns
    -------
    tuple of ndarray or ndarray
        ``(indices, scores)`` with ``with_scores``, else ``indices``.

    Examples
    --------
    >>> import numpy as np
    >>> format_result(np.array([3, 1]), np.array([-0.5, -0.2]), with_scores=False)
    array([3, 1])
    """
    return (indices, scores) if with_scores else indices


def note_failure(exc: BaseException, strategy: Any) -> None:
    """Tag ``exc`` as escaping from ``strategy``, for :func:`reraise_on_retry`.

    Parameters
    ----------
    exc : BaseException
        What the strategy's call raised (``KeyboardInterrupt`` included).
    strategy : object
        The strategy.

    Examples
    --------
    >>> exc = ValueError("X_pool is empty")
    >>> note_failure(exc, "strategy")
    >>> exc._skisal_failed_in
    'strategy'
    """
    try:
        setattr(exc, _FAILED_IN, strategy)
    except AttributeError:  # an exception type with __slots__: no retry guard for it
        pass


def reraise_on_retry(strategy: Any) -> None:
    """Re-raise ``strategy``'s own failure when modAL's ``query`` calls it again.

    modAL 0.4.2.x calls the strategy inside ``try: ... except:`` and, in the
    handler, calls it a second time. That second call would redo all the work
    and turn a ``KeyboardInterrupt`` or a clear error into a ``TypeError``.
    It runs while the first failure is being handled, so it is recognised
    exactly: the exception being handled is one this strategy raised (see
    :func:`note_failure`) and the strategy is called from a ``query`` method.
    Any other call, such as a retry in the user's own ``except`` block, runs
    normally; the tag is cleared once re-raised, so nothing stale survives.

    Call it first thing in the strategy's ``__call__`` (it reads the caller of
    its caller).

    Parameters
    ----------
    strategy : object
        The strategy being called.

    Raises
    ------
    BaseException
        The strategy's failure being handled, when this is modAL's retry.

    Examples
    --------
    >>> class Strategy:
    ...     def __call__(self):
    ...         reraise_on_retry(self)
    ...         try:
    ...             raise KeyboardInterrupt
    ...         except BaseException as exc:
    ...             note_failure(exc, self)
    ...             raise
    >>> def query(strategy):  # what modAL 0.4.2.x does
    ...     try:
    ...         return strategy()
    ...     except:
    ...         return strategy()
    >>> try:
    ...     query(Strategy())
    ... except KeyboardInterrupt:
    ...     print("KeyboardInterrupt reached the caller")
    KeyboardInterrupt reached the caller
    """
    handled = sys.exc_info()[1]
    if handled is None or getattr(handled, _FAILED_IN, None) is not strategy:
        return
    if sys._getframe(2).f_code.co_name != "query":
        return
    delattr(handled, _FAILED_IN)
    raise handled
