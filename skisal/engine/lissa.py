"""LiSSA, the paper's stochastic inverse-HVP recursion, with damping, scale and divergence checks.

Mapping from the ISAL reference code: its LiSSA update
``h <- v + (1 - d) h - H h / scale`` converges to ``(H + d*scale I) h = scale v``.
Its ``(d, scale) = (0.01, 1e4)`` is therefore skisal's ``damping = d * scale =
100`` (up to the factor ``scale`` on ``s_test``, which leaves the ranking
unchanged), with ``scale = 1e4``.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from ..exceptions import SolverDivergenceError
from ._remedies import damping_remedy
from .curvature import top_eigenvalue
from .inverse_hvp import InverseHVPSolver, SolverReport

__all__ = ["LissaSolver"]


class LissaSolver(InverseHVPSolver):
    """LiSSA (Agarwal et al. 2017), the paper's Algorithm 3, with damping and scale.

    The recursion ``h_j = v + h_{j-1} - (H_j + damping I) h_{j-1} / scale``,
    with ``H_j`` the curvature of a random minibatch of the labelled set,
    converges to ``scale * (H + damping I)^-1 v`` when ``scale`` exceeds the
    largest eigenvalue of every ``H_j + damping I``; ``s_test = h / scale``,
    averaged over ``repeats`` independent runs.

    Divergence never passes silently: every step checks that ``h_j`` is finite
    and within ``10 * ||v|| * (j + 1)`` (``min(j + 1, scale / damping)`` for
    the positive semi-definite Gauss-Newton and Fisher), a bound every
    convergent run satisfies. When the minibatch is the whole labelled set
    the recursion is deterministic, and the Rayleigh quotient of its
    residual comes free each step: negative in 3 consecutive steps proves
    ``H + damping I`` indefinite, which raises at once (no scale fixes it).
    With minibatches, an estimate from an indefinite curvature
    (``curvature="hessian"``) or from a run whose scale had to be doubled is
    checked with one product over the whole set (``report.relative_residual``):
    non-positive curvature along it, or a relative residual of 1 or more,
    raises. With ``scale="auto"`` the scale is
    ``1.5 x`` a power-iteration estimate of the top eigenvalue (over a probe
    of two minibatches, at least 64 samples, to 1% relative change: a few
    hundred single-sample products, ``report.power_iteration_products``) and
    is doubled (at most three times, noted in the report) if the run
    diverges; a fixed scale raises
    :class:`~skisal.exceptions.SolverDivergenceError` instead.

    Parameters
    ----------
    depth : int, default=1000
        Recursion steps per repeat.
    repeats : int, default=1
        Independent runs averaged (the paper used 4).
    scale : float or "auto", default="auto"
        Must exceed the top eigenvalue of the damped minibatch curvatures.
    tol : float, default=1e-6
        Early stop when ``||h_j - h_{j-1}|| <= tol * ||h_j||``.
    power_iterations : int, default=20
        Budget of the top-eigenvalue estimate (``scale="auto"``).

    Examples
    --------
    With minibatches as large as the labelled set (``batch_size=20`` below),
    every step uses the full curvature and LiSSA converges to CG's answer; with
    smaller ones it stops at a noise floor that more ``repeats`` lower.

    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, ConjugateGradientSolver, DampedCurvature,
    ...     LissaSolver, ParameterSpace, select_parameters)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> hessian = DampedCurvature(model, X_labeled, y_labeled, damping=0.1, batch_size=20)
    >>> v = model.loss_gradient(X_reference, y_reference, batch_size=10)  # grad l(R)
    >>> s_lissa, report = LissaSolver(depth=200).solve(hessian, v, np.random.RandomState(0))
    >>> report.converged, report.scale > report.top_eigenvalue
    (True, True)
    >>> s_cg, _ = ConjugateGradientSolver().solve(hessian, v, np.random.RandomState(0))
    >>> bool((s_lissa - s_cg).norm() <= 1e-3 * s_cg.norm())
    True

    A fixed scale below the top eigenvalue diverges, and says so:

    >>> LissaSolver(depth=100, scale=0.01).solve(hessian, v, np.random.RandomState(0))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    skisal.exceptions.SolverDivergenceError: inverse_hvp='lissa' diverged at step ...
    """

    name = "lissa"
    _growth_slack = 10.0
    #: Full batch: a step's curvature counts as negative beyond this many eps * ||h|| ...
    _noise_factor = 16.0
    #: ... in this many consecutive steps (round-off flips single signs near convergence).
    _negative_steps = 3
    _auto_safety = 1.5
    _auto_retries = 3
    #: The power iteration's probe: this many minibatches, at least ``_auto_probe_min`` samples.
    _auto_probe_batches = 2
    _auto_probe_min = 64
    #: Relative change of the estimate at which the power iteration stops.
    _auto_tol = 1e-2

    def __init__(
        self,
        depth: int = 1000,
        repeats: int = 1,
        scale: float | str = "auto",
        tol: float = 1e-6,
        power_iterations: int = 20,
    ) -> None:
        self.depth = depth
        self.repeats = repeats
        self.scale = scale
        self.tol = tol
        self.power_iterations = power_iterations

    def solve(self, hessian, v, rng, progress=False):
        """Run the recursion ``repeats`` times and average (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedCurvature
            Products with the damped curvature (minibatches of ``hessian.batch_size`` samples).
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState
            Draws the minibatches and the power iteration's start vector.
        progress : bool, default=False
            Show a tqdm bar over the recursion steps.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            With the steps per repeat, the norm trace, the scale and any retries.

        Raises
        ------
        skisal.SolverDivergenceError
            If a run diverges at a fixed ``scale``, or still diverges after
            the automatic scale was doubled three times; or ``H + damping I``
            is shown not positive definite; or the checked estimate's relative
            residual is 1 or more.
        """
        report = SolverReport(method=self.name, damping=hessian.damping)
        if self.scale == "auto":
            # A small probe and a loose tolerance: the probe's own sampling noise dwarfs a
            # tighter estimate, and the safety factor and the doubling on divergence absorb
            # both (the measured saving is in docs/performance.md).
            size = max(self._auto_probe_batches * hessian.batch_size, self._auto_probe_min)
            probe = hessian.sample(rng, size=size)
            before = hessian.hvp_count
            report.top_eigenvalue = top_eigenvalue(
                hessian, probe, rng, self.power_iterations, tol=self._auto_tol
            )
            report.power_iteration_products = hessian.hvp_count - before
            scale = self._auto_safety * max(report.top_eigenvalue, hessian.damping, 1e-12)
        else:
            scale = float(self.scale)
        for attempt in range(self._auto_retries + 1):
            try:
                estimate = self._run(hessian, v, rng, scale, report, progress)
                break
            except _Outgrown as exc:
                if self.scale != "auto" or attempt == self._auto_retries:
                    raise SolverDivergenceError(
                        self._divergence_message(exc, hessian, scale, attempt)
                    ) from None
                report.notes.append(f"diverged at scale {scale:.4g}; retried at {2 * scale:.4g}")
                report.iterations.clear()
                report.norm_trace.clear()
                scale *= 2
        report.scale = scale
        psd = getattr(hessian, "curvature", None) in ("gauss_newton", "fisher")
        if hessian.batch_size < hessian.n and (attempt or not psd):
            # Minibatches hide an indefinite H + damping I (and a run the doubled scale
            # merely slowed down): one product over the whole set checks the estimate.
            self._check_estimate(hessian, v, estimate, report, attempt)
        report.hessian_vector_products = hessian.hvp_count
        return estimate, report

    @staticmethod
    def _check_estimate(hessian, v, estimate, report, doubled):
        """Raise unless ``estimate`` has positive curvature and beats ``s_test = 0``."""
        product = hessian.matvec(estimate)
        curvature, residual, size = torch.stack(
            [
                torch.dot(estimate, product) / torch.dot(estimate, estimate).clamp_min(1e-300),
                (product - v).norm() / v.norm().clamp_min(1e-300),
                estimate.norm(),
            ]
        ).tolist()
        report.relative_residual = residual
        if size == 0:  # v = 0: s_test = 0 is exact
            return
        doubling = (
            f" (lissa_scale='auto' doubled its scale {doubled} times, which no scale fixes)"
            if doubled
            else ""
        )
        if curvature <= 0:
            raise SolverDivergenceError(
                "inverse_hvp='lissa': H + damping I is not positive definite: the estimate s "
                f"has s^T (H + damping I) s / s^T s = {curvature:.3g} over the whole labelled "
                f"set{doubling}, so it is meaningless. "
                + damping_remedy(hessian, curvature, exact=False)
            )
        if residual >= 1:
            raise SolverDivergenceError(
                f"inverse_hvp='lissa' ended at relative residual {residual:.3g} over the whole "
                f"labelled set{doubling}, no better than s_test = 0 (relative residual 1): the "
                "estimate is meaningless. Either H + damping I is (nearly) indefinite or "
                f"ill-conditioned at damping={hessian.damping:g} (raise damping; "
                "inverse_hvp='cg' raises on an indefinite system), or the minibatch noise "
                f"swamps it (raise hessian_batch_size={hessian.batch_size} towards "
                f"{hessian.n}, or lissa_repeats)."
            )

    def _run(self, hessian, v, rng, scale, report, progress):
        v_norm = float(v.norm())
        curvature = getattr(hessian, "curvature", None)
        # ||h_j|| <= ||v|| * scale / damping holds only where every H_j is positive
        # semi-definite (Gauss-Newton, Fisher); an indefinite H has smaller eigenvalues.
        psd = curvature in ("gauss_newton", "fisher")
        ceiling = scale / hessian.damping if psd and hessian.damping > 0 else math.inf
        # With the whole labelled set in every step the recursion is deterministic: the
        # step h_{j+1} - h_j = v - H_d h_j / scale is the residual of h_j / scale, and two
        # consecutive steps differ by H_d times the first over scale, so its Rayleigh
        # quotient comes free (one dot product): a negative one proves H_d indefinite.
        full = hessian.batch_size >= hessian.n
        noise = self._noise_factor * float(torch.finfo(v.dtype).eps)
        total = torch.zeros_like(v)
        record_every = max(1, self.depth // 200)
        bar = tqdm(
            total=self.repeats * self.depth,
            desc="s_test (LiSSA)",
            disable=not progress,
            leave=False,
        )
        converged = True
        last_change = 0.0
        try:
            for _ in range(self.repeats):
                h = v.clone()
                trace = [v_norm / scale]
                steps = 0
                done = False
                previous, previous_norm, negative, quotient = None, 0.0, 0, None
                for steps in range(1, self.depth + 1):
                    h_new = v + h - hessian.matvec(h, hessian.sample(rng)) / scale
                    step = h_new - h
                    stats = [h_new.norm(), step.norm()]
                    if full and previous is not None:
                        stats.append(torch.dot(previous, previous - step))
                    values = torch.stack(stats).tolist()  # one sync per step, not per sample
                    norm, change = values[0], values[1]
                    h = h_new
                    bar.update(1)
                    if steps % record_every == 0:
                        trace.append(norm / scale)
                    if len(values) == 3 and previous_norm > 0:
                        quotient = scale * values[2] / previous_norm**2
                        # A step carries round-off of about eps * ||h||: count only beyond it.
                        if values[2] < -noise * norm * previous_norm:
                            negative += 1
                        else:
                            negative = 0
                    bound = self._growth_slack * v_norm * min(steps + 1, ceiling)
                    if not math.isfinite(norm) or norm > bound:
                        if negative:
                            raise self._indefinite(hessian, steps, quotient)
                        raise _Outgrown(steps, norm, bound, full, quotient)
                    if negative >= self._negative_steps:
                        raise self._indefinite(hessian, steps, quotient)
                    previous, previous_norm = step, change
                    if change <= self.tol * norm:
                        done = True
                        break
                converged &= done
                last_change = change / max(norm, 1e-300)
                trace.append(float(h.norm()) / scale)
                report.iterations.append(steps)
                report.norm_trace.append(trace)
                total += h / scale
        finally:
            bar.close()
        report.converged = converged
        if not converged and full and last_change <= noise:
            report.notes.append(
                f"LiSSA used its full depth ({self.depth}) without meeting tol={self.tol:g}: "
                f"its steps stalled at {last_change:.1e} of ||h||, the round-off of "
                f"{str(v.dtype).replace('torch.', '')} products, below which no step resolves; "
                f"set lissa_tol above {last_change:.1e}."
            )
        elif not converged and full:
            report.notes.append(
                f"LiSSA used its full depth ({self.depth}) without meeting tol={self.tol:g} "
                f"(its last step moved h by {last_change:.2e} of its norm). Every step used "
                f"the whole labelled set (hessian_batch_size >= {hessian.n} samples), so this "
                "is no minibatch noise: the recursion contracts at rate 1 - (smallest "
                "eigenvalue of H + damping I) / scale, and H + damping I is ill-conditioned "
                f"(or not positive definite) at damping={hessian.damping:g}. Raise damping or "
                "lissa_depth, or use inverse_hvp='cg' or 'pcg' (they raise on an indefinite "
                "system)."
            )
        elif not converged:
            report.notes.append(
                f"LiSSA used its full depth ({self.depth}) without meeting tol={self.tol:g} "
                "(minibatch Hessians keep the iterate moving): raise lissa_repeats to average "
                "the noise, raise lissa_depth, or use inverse_hvp='cg' or 'pcg' for a solve "
                "that converges."
            )
        return total / self.repeats

    @staticmethod
    def _indefinite(hessian, steps, quotient):
        """The error for a proof (full batch) that ``H + damping I`` is not positive definite."""
        return SolverDivergenceError(
            f"inverse_hvp='lissa': H + damping I is not positive definite, so the recursion "
            f"cannot converge: by step {steps} its residual grew along a direction of "
            f"negative curvature (Rayleigh quotient {quotient:.3g}). Every step used the "
            f"whole labelled set ({hessian.n} samples), so this is no minibatch noise and no "
            "scale fixes it. " + damping_remedy(hessian, quotient, exact=False)
        )

    def _divergence_message(self, exc, hessian, scale, doubled):
        """Why a run outgrew its bound, and what to change, for the case at hand."""
        parts = [
            f"inverse_hvp='lissa' diverged at step {exc.step} (||h|| = {exc.norm:.3g}, bound "
            f"{exc.bound:.3g}) with scale={scale:.4g}, damping={hessian.damping:g}."
        ]
        along_top = exc.full and exc.quotient is not None and exc.quotient > scale
        if exc.full:
            parts.append(
                "Every step used the whole labelled set (no minibatch noise), so the "
                "recursion itself does not contract: scale must exceed the top eigenvalue of "
                "the damped Hessian"
                + (
                    f" (its residual grew along curvature {exc.quotient:.3g}, above scale)."
                    if along_top
                    else "."
                )
            )
        else:
            parts.append(
                "scale must exceed the top eigenvalue of the damped Hessian of every "
                f"minibatch (hessian_batch_size={hessian.batch_size} of {hessian.n} samples; "
                "larger minibatches vary less)."
            )
        if getattr(hessian, "curvature", None) not in ("gauss_newton", "fisher") and not along_top:
            parts.append(
                "With curvature='hessian', H + damping I (or a minibatch's) may also have "
                "negative eigenvalues, which no scale fixes: inverse_hvp='cg' or 'exact' "
                "raise if so; then raise damping or use curvature='gauss_newton'."
            )
        if self.scale == "auto":
            parts.append(
                f"lissa_scale='auto' already doubled its estimate {doubled} times: pass a "
                "larger lissa_scale, raise damping, or use inverse_hvp='cg'."
            )
        else:
            parts.append(
                "Use lissa_scale='auto' or a larger lissa_scale, raise damping, or use "
                "inverse_hvp='cg'."
            )
        return " ".join(parts)


class _Outgrown(Exception):  # internal signal: never escapes LissaSolver.solve
    """A LiSSA run left the bound of a convergent run: retry at a larger automatic scale."""

    def __init__(self, step, norm, bound, full, quotient):
        super().__init__(step)
        self.step, self.norm, self.bound = step, norm, bound
        self.full, self.quotient = full, quotient
