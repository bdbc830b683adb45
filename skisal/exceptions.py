"""Exceptions raised by skisal."""

from __future__ import annotations

__all__ = ["NonFiniteScoreError", "SolverDivergenceError"]


class SolverDivergenceError(ArithmeticError):
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


class NonFiniteScoreError(ArithmeticError):
    """The model produced a non-finite output or score for some pool samples.

    The message names the offending pool indices; no NaN or inf is ever
    returned as a score. It is an :class:`ArithmeticError`.

    Examples
    --------
    >>> from skisal import NonFiniteScoreError
    >>> issubclass(NonFiniteScoreError, ArithmeticError)
    True
    """
