"""Exceptions raised by skisal.

Every exception skisal defines derives from :class:`SkisalError`, and also from
the built-in exception a caller would expect (``ValueError``/``TypeError`` for
a bad parameter, ``ArithmeticError`` for a numerical failure), so that both
``except SkisalError`` and the usual built-in handlers catch it.
"""

from __future__ import annotations

__all__ = [
    "InvalidParameterError",
    "NonFiniteScoreError",
    "SkisalError",
    "SolverDivergenceError",
]


class SkisalError(Exception):
    """The base of every exception skisal defines.

    Catch it to handle skisal's own failures apart from those of torch, skorch
    or modAL. Each subclass also derives from a built-in exception, which
    existing handlers keep catching.

    Examples
    --------
    >>> from skisal import InfluenceQueryStrategy
    >>> from skisal.exceptions import SkisalError
    >>> try:
    ...     InfluenceQueryStrategy(damping=-1.0).influence(net, X_pool, X_labeled=X_labeled,
    ...                                                    y_labeled=y_labeled)
    ... except SkisalError as exc:
    ...     print(type(exc).__name__, exc)
    InvalidParameterError damping must be a finite real >= 0; got -1.0.
    """


class InvalidParameterError(SkisalError, ValueError, TypeError):
    """An estimator's parameter has a value it does not accept.

    Raised when a strategy or adapter checks its parameters (at call time, as
    scikit-learn does); the message names the parameter and what it must be.
    Like scikit-learn's own ``InvalidParameterError``, it is both a
    :class:`ValueError` and a :class:`TypeError`, whichever of the two the
    wrong value would suggest.

    Examples
    --------
    >>> from skisal import InfluenceQueryStrategy
    >>> from skisal.exceptions import InvalidParameterError
    >>> strategy = InfluenceQueryStrategy(selection="best")
    >>> try:
    ...     strategy(net, X_pool, X_labeled=X_labeled, y_labeled=y_labeled)
    ... except ValueError as exc:
    ...     print(isinstance(exc, InvalidParameterError), exc)
    True selection must be one of ('auto', 'top', 'diverse'); got 'best'.
    """


class SolverDivergenceError(SkisalError, ArithmeticError):
    """An inverse-HVP solver produced non-finite or provably divergent iterates.

    The message says which quantity diverged and what to change (``scale``,
    ``damping`` or another ``inverse_hvp``). skisal raises this instead of
    returning a score computed from a diverged ``s_test``. It is an
    :class:`ArithmeticError`, so ``except ArithmeticError`` catches it too.

    Examples
    --------
    >>> from skisal import SolverDivergenceError
    >>> try:
    ...     raise SolverDivergenceError("inverse_hvp='lissa' diverged at step 12")
    ... except ArithmeticError as exc:
    ...     print(type(exc).__name__, exc)
    SolverDivergenceError inverse_hvp='lissa' diverged at step 12
    """


class NonFiniteScoreError(SkisalError, ArithmeticError):
    """The model produced a non-finite output or score for some pool samples.

    The message names the offending pool indices; no NaN or inf is ever
    returned as a score. It is an :class:`ArithmeticError`.

    Examples
    --------
    >>> from skisal.exceptions import NonFiniteScoreError, SkisalError
    >>> [issubclass(NonFiniteScoreError, base) for base in (ArithmeticError, SkisalError)]
    [True, True]
    """
