"""What to tell a user whose solve failed: the remedies the solvers' errors and notes share."""

from __future__ import annotations

from typing import Any

import torch


def damping_remedy(hessian: Any, smallest: float, exact: bool) -> str:
    """What makes ``H + damping I`` positive definite, given its smallest eigenvalue.

    ``smallest`` is an eigenvalue of the *damped* matrix (``exact``) or a
    Rayleigh quotient of it, which bounds the smallest eigenvalue from above:
    damping must then exceed ``damping - smallest`` (exactly, or at least).
    Gauss-Newton and Fisher are positive semi-definite, so a non-positive
    value there is a singular matrix plus round-off, not a non-convex point.

    Parameters
    ----------
    hessian : DampedCurvature
        The operator (or a caller's own, without a ``curvature`` attribute).
    smallest : float
        The eigenvalue or Rayleigh quotient of ``H + damping I`` found.
    exact : bool
        Whether ``smallest`` is the exact smallest eigenvalue.

    Returns
    -------
    str
        One or two sentences, naming the damping needed.
    """
    damping = hessian.damping
    needed = f"{'' if exact else 'at least '}{damping - smallest:.4g}"
    curvature = getattr(hessian, "curvature", None)  # None: an operator of the caller's
    if curvature is None:
        return f"Increase damping above {needed} (damping={damping:g} now)."
    if curvature == "hessian":
        return (
            f"The model is not at a minimum of the loss, where curvature='hessian' is "
            f"indefinite: increase damping above {needed} (damping={damping:g} now), or use "
            "curvature='gauss_newton' (positive semi-definite)."
        )
    if damping <= 0:
        return (
            f"curvature={curvature!r} is positive semi-definite but singular here "
            "(zero up to round-off), and damping=0 leaves it singular: use damping > 0 "
            "(the default is 0.01)."
        )
    return (
        f"curvature={curvature!r} is positive semi-definite, so this is round-off of "
        f"a nearly singular matrix that damping={damping:g} does not cover: increase damping "
        f"above {needed} (the default is 0.01; a damping that small leaves the system "
        "ill-conditioned)."
    )


def conditioning_remedy(hessian: Any, remedy: str) -> str:
    """Why a positive (semi-)definite solve fails: ``H + damping I`` is (nearly) singular.

    Parameters
    ----------
    hessian : DampedCurvature
        The operator.
    remedy : str
        What to change when ``damping > 0`` (at ``damping=0`` the remedy is
        always a positive damping).

    Returns
    -------
    str
        One sentence.
    """
    if hessian.damping <= 0:
        return (
            "H + damping I is singular or too ill-conditioned at damping=0 (curvature="
            f"{getattr(hessian, 'curvature', 'unknown')!r}): use damping > 0 (the default is "
            "0.01)."
        )
    return f"H + damping I is too ill-conditioned at damping={hessian.damping:g}: {remedy}."


def attainable_residual(dtype: torch.dtype) -> float:
    """Relative residual attainable with Hessian-vector products in ``dtype``."""
    return 1e-4 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-10
