"""The influence engine: Algorithm 2 of the paper, independent of modAL and model family.

1. ``v = grad l(R)``, the gradient of the mean loss over the reference set;
2. ``s_test = (H + damping I)^-1 v`` by the chosen solver, once per round;
3. ``I(z, R) = -<s_test, G_z>`` for every pool sample (``G_z`` at the model's
   own prediction: UUIC), streamed in batches.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ..exceptions import SolverDivergenceError
from .curvature import DampedCurvature, product_chunk_size
from .inverse_hvp import InverseHVPSolver, SolverReport
from .model import BoundModel
from .scoring import score_pool

__all__ = ["InfluenceDiagnostics", "InfluenceEngine"]


@dataclass
class InfluenceDiagnostics:
    """What one influence computation did; ``strategy.diagnostics_`` after a query.

    Parameters
    ----------
    solver : SolverReport
        The inverse-HVP solver's report (iterations, residual or norm trace).
    scoring_method : str
        "forward" (one forward-mode pass per batch) or "reverse" (per-sample
        gradients, the fallback).
    scoring_fallback_reason : str or None
        Why forward mode was abandoned, if it was.
    n_parameters : int
        Size of the parameter vector influence is taken over.
    n_reference, n_labeled, n_pool : int
        Sizes of the reference set, the labelled set, and the pool.
    n_curvature : int
        Labelled samples the curvature was taken over (``hessian_subsample``).
    reference_gradient_norm : float
        ``||grad l(R)||``; near zero means the model already fits R.
    timings : dict of str to float
        Seconds per phase: "finite_check" (a forward pass over the reference
        and labelled sets), "reference_gradient", "s_test", "scoring" and,
        after a selection, "selection" (with "auto", the reference set's
        accuracy too; with "diverse", the pool's last-layer gradients and
        k-means++).
    selection : str or None
        The rule of the last selection: "top", "diverse" or "margin" (see
        ``InfluenceQueryStrategy``'s ``selection``); None after
        :meth:`~skisal.InfluenceQueryStrategy.influence`.
    reference_accuracy : float or None
        With ``selection="auto"``, the fraction of the reference set whose
        pseudo-label is right, which chose the rule.
    selection_reason : str or None
        The rule and why, in words.

    Examples
    --------
    >>> from skisal import InfluenceQueryStrategy
    >>> strategy = InfluenceQueryStrategy(X_reference, y_reference, X_labeled=X_labeled,
    ...                                   y_labeled=y_labeled, random_state=0)
    >>> _ = strategy.influence(net, X_pool)
    >>> d = strategy.diagnostics_
    >>> d.solver.method, d.scoring_method, d.n_reference, d.n_labeled, d.n_pool, d.n_parameters
    ('pcg', 'forward', 10, 20, 30, 10)
    >>> sorted(d.timings)
    ['finite_check', 'reference_gradient', 's_test', 'scoring']

    Printed, it says the same in words (:meth:`summary`); the times vary:

    >>> print(d)  # doctest: +ELLIPSIS
    s_test: PCG stopped after 1 iteration at relative residual ... (converged)
    curvature H: 20 of 20 labelled samples, 10 parameters
    reference set R: 10 samples, ||grad l(R)|| = 0.67
    pool: 30 samples scored by forward mode; ... s in all (s_test ... s, scoring ... s)
    """

    solver: SolverReport
    scoring_method: str = "forward"
    scoring_fallback_reason: str | None = None
    n_parameters: int = 0
    n_reference: int = 0
    n_labeled: int = 0
    n_pool: int = 0
    n_curvature: int = 0
    reference_gradient_norm: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    selection: str | None = None
    reference_accuracy: float | None = None
    selection_reason: str | None = None

    def summary(self) -> str:
        """What the computation did, in words; ``str(diagnostics)`` too.

        Returns
        -------
        str
            The solver's :meth:`SolverReport.summary`; the curvature's labelled
            samples, the parameter count, the reference set and the norm of its
            loss gradient (near zero: the model already fits it, and every
            influence is small); the pool size, the scoring method (and why
            forward mode was abandoned, if it was) and the seconds spent; after a
            selection, its rule and why.

        Examples
        --------
        >>> from skisal import InfluenceDiagnostics, SolverReport
        >>> d = InfluenceDiagnostics(SolverReport("cg", 0.01, [48], relative_residual=9e-6),
        ...     n_parameters=2243, n_reference=100, n_labeled=130, n_curvature=130,
        ...     n_pool=370, reference_gradient_norm=0.52, timings={"s_test": 0.2, "scoring": 0.01})
        >>> print(d.summary())
        s_test: CG stopped after 48 iterations at relative residual 9e-06 (converged)
        curvature H: 130 of 130 labelled samples, 2,243 parameters
        reference set R: 100 samples, ||grad l(R)|| = 0.52
        pool: 370 samples scored by forward mode; 0.21 s in all (s_test 0.2 s, scoring 0.01 s)
        """
        if self.n_curvature:
            curvature = (
                f"curvature H: {self.n_curvature:,} of {self.n_labeled:,} labelled samples,"
                f" {self.n_parameters:,} parameters"
            )
        else:
            curvature = f"curvature H: none, {self.n_parameters:,} parameters"
        reference = (
            f"reference set R: {self.n_reference:,} samples,"
            f" ||grad l(R)|| = {self.reference_gradient_norm:.2g}"
        )
        scoring = f"pool: {self.n_pool:,} samples scored by {self.scoring_method} mode"
        if self.scoring_fallback_reason:
            scoring += f" (forward mode abandoned: {self.scoring_fallback_reason})"
        seconds = ", ".join(
            f"{phase} {_seconds(self.timings[phase])}"
            for phase in ("s_test", "scoring", "selection")
            if phase in self.timings
        )
        total = f"{_seconds(sum(self.timings.values()))} in all" + (
            f" ({seconds})" if seconds else ""
        )
        lines = [self.solver.summary(), curvature, reference, f"{scoring}; {total}"]
        if self.selection_reason:
            lines.append(f"selection: {self.selection_reason}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _seconds(t: float) -> str:
    """``0.153 s``, ``12.3 s``, or ``<0.01 s``: what a reader needs of a duration."""
    return f"{t:.3g} s" if t >= 0.01 else "<0.01 s"


class _Timer:
    """Wall-clock phases; synchronises CUDA once per phase so times are honest."""

    def __init__(self, device: torch.device, timings: dict[str, float]) -> None:
        self.device = device
        self.timings = timings

    def __call__(self, name: str) -> _Timer:
        self.name = name
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[self.name] = time.perf_counter() - self.start


class InfluenceEngine:
    """Computes ``s_test`` and pool influences for one bound model.

    Parameters
    ----------
    model : BoundModel
        Adapter, estimator, module and selected parameters (module in eval mode).
    solver : InverseHVPSolver
        Inverse-HVP solver.
    damping : float
        ``damping`` of ``(H + damping I)``.
    batch_size : int
        Pool and reference samples per forward pass.
    hessian_batch_size : int
        Labelled samples per Hessian-vector product.
    curvature : {"gauss_newton", "hessian", "fisher"}, default="gauss_newton"
        Which curvature matrix ``H`` is (see :mod:`skisal.engine.curvature`):
        the exact Hessian, the generalised Gauss-Newton matrix, or the
        empirical Fisher.
    hessian_subsample : int, optional
        Take ``H`` over this many labelled samples, drawn with ``rng`` in
        :meth:`s_test`; None: all of them.
    scoring : {"auto", "forward", "reverse"}, default="auto"
        Pool scoring method (see :func:`skisal.engine.scoring.score_pool`).
    progress : bool, default=False
        Show tqdm bars.
    autocast : torch.dtype, optional
        Mixed precision for the pool-scoring forward passes only (``s_test``
        is always solved in the parameters' precision).

    Examples
    --------
    What :class:`~skisal.InfluenceQueryStrategy` does in a query, step by step:

    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, ConjugateGradientSolver, InfluenceEngine,
    ...     ParameterSpace, evaluation_mode, select_parameters)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> engine = InfluenceEngine(model, ConjugateGradientSolver(), damping=0.01,
    ...                          batch_size=16, hessian_batch_size=16)
    >>> rng = np.random.RandomState(0)
    >>> with evaluation_mode(net.module_):
    ...     s_test, v, diagnostics = engine.s_test(X_reference, y_reference, X_labeled,
    ...                                            y_labeled, rng)
    ...     scores, summary = engine.scores(s_test, X_pool, diagnostics)
    >>> s_test.shape, diagnostics.solver.method, diagnostics.n_labeled
    (torch.Size([10]), 'cg', 20)
    >>> scores.shape, scores.dtype, diagnostics.scoring_method, diagnostics.n_pool
    (torch.Size([30]), torch.float64, 'forward', 30)
    >>> summary["pseudo_label"].shape  # the adapter's per-sample facts (explain() shows them)
    torch.Size([30])
    """

    def __init__(
        self,
        model: BoundModel,
        solver: InverseHVPSolver,
        *,
        damping: float,
        batch_size: int,
        hessian_batch_size: int,
        curvature: str = "gauss_newton",
        hessian_subsample: int | None = None,
        scoring: str = "auto",
        progress: bool = False,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.model = model
        self.solver = solver
        self.damping = damping
        self.batch_size = batch_size
        self.hessian_batch_size = hessian_batch_size
        self.curvature = curvature
        self.hessian_subsample = hessian_subsample
        self.scoring = scoring
        self.progress = progress
        self.autocast = autocast

    def s_test(
        self,
        X_reference: Any,
        y_reference: Any,
        X_labeled: Any,
        y_labeled: Any,
        rng: np.random.RandomState,
        diagnostics: InfluenceDiagnostics | None = None,
        *,
        names: tuple[str, str] = ("X_reference", "X_labeled"),
    ) -> tuple[torch.Tensor, torch.Tensor, InfluenceDiagnostics]:
        """Solve ``s_test = (H + damping I)^-1 grad l(R)``, once per query.

        Parameters
        ----------
        X_reference, y_reference : object
            The reference set ``R``, as the adapter's checks returned it.
        X_labeled, y_labeled : object or None
            The labelled set the curvature is taken over; None only for a
            solver that does not need it (``needs_hessian`` False).
        rng : numpy.random.RandomState
            Randomness of stochastic solvers.
        diagnostics : InfluenceDiagnostics, optional
            A report to fill in and return, as :meth:`scores` fills the one it
            is given: its solver report, sizes, reference gradient norm and
            timings are replaced; its scoring fields are left for
            :meth:`scores`. None: a new report.
        names : tuple of str, default=("X_reference", "X_labeled")
            What the caller calls the reference and the labelled set, for
            error messages.

        Returns
        -------
        s_test : torch.Tensor of shape (space.dim,)
            The solution.
        reference_gradient : torch.Tensor of shape (space.dim,)
            ``grad l(R)``, the right-hand side.
        diagnostics : InfluenceDiagnostics
            The solver's report, sizes and timings (``diagnostics`` itself,
            when given); :meth:`scores` completes it.

        Raises
        ------
        skisal.SolverDivergenceError
            If the solver diverges, the damped curvature is not positive
            definite (see the solvers), or an unconverged solve ends at a
            relative residual of 1 or more (no better than ``s_test = 0``).
        skisal.NonFiniteScoreError
            If the model's outputs or losses are not finite on some reference
            samples, or on labelled samples the solver uses.

        Warns
        -----
        sklearn.exceptions.ConvergenceWarning
            If the solver stopped above its tolerance (the remedy is in the
            message and in ``diagnostics.solver.notes``).
        """
        adapter = self.model.adapter
        timings: dict[str, float] = {}
        timer = _Timer(self.model.device, timings)
        with timer("finite_check"):  # one no-grad pass each; names the rows at fault
            self.model.check_finite(X_reference, y_reference, self.batch_size, names[0])
            if self.solver.needs_hessian:
                self.model.check_finite(X_labeled, y_labeled, self.batch_size, names[1])
        with timer("reference_gradient"):
            v = self.model.loss_gradient(X_reference, y_reference, self.batch_size)
        hessian = None
        if self.solver.needs_hessian:
            hessian = DampedCurvature(
                self.model,
                X_labeled,
                y_labeled,
                self.damping,
                self.hessian_batch_size,
                self.curvature,
                chunk_size=product_chunk_size(
                    self.model, X_labeled, max(self.batch_size, self.hessian_batch_size)
                ),
            )
            if self.hessian_subsample is not None and self.hessian_subsample < hessian.n:
                hessian = hessian.restrict(
                    rng.choice(hessian.n, size=self.hessian_subsample, replace=False)
                )
        with timer("s_test"):
            s_test, report = self.solver.solve(hessian, v, rng, progress=self.progress)
        residual = report.relative_residual
        if not report.converged and residual is not None and not residual < 1:
            # Whatever the solver (Lanczos, a caller's own): no better than s_test = 0.
            raise SolverDivergenceError(
                f"inverse_hvp={report.method!r} stopped at relative residual {residual:.3g}, "
                "no better than s_test = 0 (relative residual 1): its s_test is meaningless. "
                + (
                    f"H + damping I (curvature={self.curvature!r}) is singular or too "
                    "ill-conditioned at damping=0: use damping > 0 (the default is 0.01)."
                    if self.damping <= 0
                    else f"H + damping I (curvature={self.curvature!r}) is too ill-conditioned "
                    f"at damping={self.damping:g}: raise damping."
                )
            )
        if not report.converged:
            warnings.warn(
                f"inverse_hvp={report.method!r} stopped above its tolerance: "
                + " ".join(report.notes),
                ConvergenceWarning,
                stacklevel=2,
            )
        found = dict(
            solver=report,
            n_parameters=self.model.space.dim,
            n_reference=adapter.n_samples(X_reference),
            n_labeled=0 if X_labeled is None else adapter.n_samples(X_labeled),
            n_curvature=0 if hessian is None else hessian.n,
            reference_gradient_norm=float(v.norm()),
            timings=timings,
        )
        if diagnostics is None:
            return s_test, v, InfluenceDiagnostics(**found)
        for name, value in found.items():
            setattr(diagnostics, name, value)
        return s_test, v, diagnostics

    def scores(
        self,
        s_test: torch.Tensor,
        X_pool: Any,
        diagnostics: InfluenceDiagnostics,
        observer: Any = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``I(z, R)`` for every pool sample (on the model's device); fills ``diagnostics``.

        Also returns the adapter's per-sample pseudo-label summary (see
        :func:`~skisal.engine.scoring.score_pool`).

        Parameters
        ----------
        s_test : torch.Tensor
            The flat ``s_test`` from :meth:`s_test`.
        X_pool : object
            The pool, as the adapter's checks returned it.
        diagnostics : InfluenceDiagnostics
            Receives the scoring method, the fallback reason, the pool size
            and the "scoring" time.
        observer : object, optional
            Sees the forward-mode passes (``score_pool``'s ``observer``); not
            used under ``autocast``.

        Returns
        -------
        scores : torch.Tensor of shape (n_pool,)
            Influences, float64 (float32 on MPS); lower is more helpful.
        summary : dict of str to torch.Tensor
            The adapter's pseudo-label summary (empty for classifiers).

        Raises
        ------
        skisal.NonFiniteScoreError
            If a score is NaN or infinite.
        """
        with _Timer(self.model.device, diagnostics.timings)("scoring"):
            scores, method, reason, summary = score_pool(
                self.model,
                s_test,
                X_pool,
                self.batch_size,
                self.scoring,
                self.progress,
                self.autocast,
                observer=observer if self.autocast is None else None,
            )
        diagnostics.scoring_method = method
        diagnostics.scoring_fallback_reason = reason
        diagnostics.n_pool = self.model.adapter.n_samples(X_pool)
        return scores, summary
