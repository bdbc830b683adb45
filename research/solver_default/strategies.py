"""ISAL with a converged solve against ISAL with a cheap one, for ``skisal-experiment``.

The query benchmark (``benchmarks/bench_query.py``) measures how close a cheap ``s_test`` is
to a converged one; these factories measure what matters to a user, the learning curve, on
paired seeds (``README.md`` here has the commands and the results).
"""

from __future__ import annotations

from skisal import InfluenceQueryStrategy
from skisal.experiments import StrategyContext


def isal_converged(context: StrategyContext) -> InfluenceQueryStrategy:
    """ISAL with conjugate gradient to the float32 floor (``cg_tol=1e-5``)."""
    return InfluenceQueryStrategy(
        context.X_reference,
        context.y_reference,
        inverse_hvp="cg",
        cg_tol=1e-5,
        random_state=context.random_state,
    )


def _pcg_loose(samples: int | str, doc: str, tol: float = 0.2):
    """A factory of ISAL with K-FAC-preconditioned CG to ``tol`` over ``samples`` labelled ones."""

    def factory(context: StrategyContext) -> InfluenceQueryStrategy:
        return InfluenceQueryStrategy(
            context.X_reference,
            context.y_reference,
            inverse_hvp="pcg",
            cg_tol=tol,
            hessian_subsample=samples,
            random_state=context.random_state,
        )

    factory.__doc__ = doc
    return factory


#: The whole labelled set: these loops never reach the 4,096 samples of "auto".
isal_pcg_loose = _pcg_loose(
    "auto", "ISAL with K-FAC-preconditioned CG to a relative residual of 0.2."
)
#: These caps bind from the second or third query on, at a quarter to a half of the labelled
#: set: a harsher test of what subsampling does to the learning curve.
isal_pcg_sub128 = _pcg_loose(128, "ISAL with PCG to 0.2 over 128 labelled samples (digits).")
isal_pcg_sub32 = _pcg_loose(32, "ISAL with PCG to 0.2 over 32 labelled samples (breast cancer).")
#: The default tolerance since 2026-12-07 (cg_tol="auto" for "pcg"), against 0.2 before it.
isal_pcg_tol03 = _pcg_loose(
    "auto", "ISAL with K-FAC-preconditioned CG to a relative residual of 0.3.", tol=0.3
)
