"""Query strategies an experiment can compare, by name.

Each entry builds a modAL query strategy from a :class:`StrategyContext` (the
seed's reference set). modAL's ``uncertainty_sampling``, ``margin_sampling``
and ``entropy_sampling`` are used as they are. A custom strategy is named on
the command line as ``package.module:function``, the function taking a
:class:`StrategyContext` and returning a strategy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..baselines import CoresetSampling, RandomSampling, gradient_similarity
from ..strategy import InfluenceQueryStrategy
from ._naming import resolve

__all__ = [
    "STRATEGIES",
    "STRATEGY_REVISIONS",
    "StrategyContext",
    "make_strategy",
    "strategy_factory",
]


@dataclasses.dataclass(frozen=True)
class StrategyContext:
    """What a strategy may use besides the learner: the seed's reference set.

    ``random_state`` is the run's seed; the runner reseeds any strategy with a
    ``random_state`` parameter before each query, so that a resumed run makes
    the same choices as an uninterrupted one.

    Parameters
    ----------
    X_reference, y_reference : array-like
        The seed's reference set (ISAL's ``R``), drawn from the dataset.
    random_state : int
        The run's seed.

    Examples
    --------
    A custom strategy for ``skisal-experiment --strategies mypkg.al:mine``
    (``X_reference`` and ``y_reference`` are the shared set-up's, see
    :doc:`/api/index`):

    >>> from skisal import InfluenceQueryStrategy
    >>> from skisal.experiments import StrategyContext
    >>> def mine(context):
    ...     return InfluenceQueryStrategy(context.X_reference, context.y_reference,
    ...                                   damping=0.1, random_state=context.random_state)
    >>> context = StrategyContext(X_reference, y_reference, random_state=3)
    >>> mine(context).damping
    0.1
    """

    X_reference: Any
    y_reference: Any
    random_state: int


def _modal(name: str) -> Callable[[StrategyContext], Any]:
    def factory(context: StrategyContext) -> Any:
        from modAL import uncertainty

        return getattr(uncertainty, name)

    factory.__doc__ = f"modAL's ``{name}``, unchanged."
    return factory


def _isal(selection: str, doc: str) -> Callable[[StrategyContext], InfluenceQueryStrategy]:
    """The factory of ``InfluenceQueryStrategy`` with this ``selection`` and the seed's set."""

    def factory(context: StrategyContext) -> InfluenceQueryStrategy:
        return InfluenceQueryStrategy(
            context.X_reference,
            context.y_reference,
            selection=selection,
            random_state=context.random_state,
        )

    factory.__doc__ = doc
    return factory


def _gradient_similarity(context: StrategyContext) -> InfluenceQueryStrategy:
    return gradient_similarity(
        context.X_reference, context.y_reference, random_state=context.random_state
    )


#: name -> factory(context) of a modAL query strategy.
STRATEGIES: dict[str, Callable[[StrategyContext], Any]] = {
    "isal": _isal("auto", "``InfluenceQueryStrategy`` with skisal's defaults."),
    "isal_top": _isal("top", "The paper's ISAL: the most helpful samples by influence."),
    "isal_diverse": _isal("diverse", "ISAL's influence-weighted k-means++ on UUIC gradients."),
    "gradient_similarity": _gradient_similarity,
    "coreset": lambda context: CoresetSampling(random_state=context.random_state),
    "uncertainty": _modal("uncertainty_sampling"),
    "margin": _modal("margin_sampling"),
    "entropy": _modal("entropy_sampling"),
    "random": lambda context: RandomSampling(random_state=context.random_state),
}


#: Built-in names whose strategy has changed, with what changed. The runner's configuration
#: fingerprint includes them, so that a run begun before the change is not resumed with the new
#: strategy under the same name.
STRATEGY_REVISIONS: dict[str, str] = {
    "isal": "2026-12-07: skisal's default became selection='auto'; the paper's is isal_top. "
    "Later that day: k-means++ distances from float32 products. "
    "Then: PCG's cg_tol='auto' 0.2 -> 0.3; its K-FAC preconditioner fitted on 512 samples, "
    "products in chunks grown to the memory bound. "
    "2026-12-08: k-means++ skips the points a lower bound rules out (ties break by rounding)",
    "isal_top": "2026-12-07: PCG's cg_tol='auto' 0.2 -> 0.3; its K-FAC preconditioner fitted "
    "on 512 samples, products in chunks grown to the memory bound",
    "isal_diverse": "2026-12-07: k-means++ distances from float32 products. "
    "Then: PCG's cg_tol='auto' 0.2 -> 0.3; its K-FAC preconditioner fitted on 512 samples, "
    "products in chunks grown to the memory bound. "
    "2026-12-08: k-means++ skips the points a lower bound rules out (ties break by rounding)",
}


def strategy_factory(name: str) -> Callable[[StrategyContext], Any]:
    """The factory of strategy ``name`` (built in, or ``"package.module:function"``).

    Parameters
    ----------
    name : str
        One of :data:`STRATEGIES`, or ``"package.module:function"``.

    Returns
    -------
    callable
        ``factory(context) -> strategy``, taking a :class:`StrategyContext`.

    Raises
    ------
    ValueError
        If the name is neither built in nor an importable ``module:function``.

    Examples
    --------
    >>> from skisal.experiments.strategies import strategy_factory
    >>> strategy_factory("nonsense")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown strategy 'nonsense': use one of [...] or 'package.module:function' ...
    """
    return resolve(name, STRATEGIES, "strategy", "taking a StrategyContext")


def make_strategy(name: str, context: StrategyContext) -> Any:
    """Build the strategy ``name`` for one run (see :func:`strategy_factory`).

    Parameters
    ----------
    name : str
        One of :data:`STRATEGIES`, or ``"package.module:function"``.
    context : StrategyContext
        The run's reference set and seed.

    Returns
    -------
    object
        A modAL query strategy.

    Raises
    ------
    ValueError
        If the name is neither built in nor an importable ``module:function``.

    Examples
    --------
    >>> from skisal.experiments import StrategyContext, make_strategy
    >>> context = StrategyContext(X_reference, y_reference, random_state=0)
    >>> make_strategy("isal_diverse", context).selection
    'diverse'
    """
    return strategy_factory(name)(context)
