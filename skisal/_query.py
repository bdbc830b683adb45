"""One influence query's machinery: its inputs checked, its engine built, its pool scored.

:class:`~skisal.InfluenceQueryStrategy` runs a query as a short sequence of named steps; the
steps' work is here, so that the strategy reads as that sequence. The functions read the
strategy's parameters (the ``strategy`` argument) and never set its attributes: storing the
results is the strategy's own step. Everything but :func:`solve_and_score` is cheap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import NotFittedError

from . import _modal
from ._device import module_for
from ._validation import (
    is_non_negative_real,
    is_positive_int,
    is_positive_real,
    n_rows,
    take_rows,
)
from .adapters import ModelAdapter, resolve_adapter
from .engine import (
    CURVATURES,
    BoundModel,
    ConjugateGradientSolver,
    ExactSolver,
    IdentitySolver,
    InfluenceDiagnostics,
    InfluenceEngine,
    InverseHVPSolver,
    KFACSolver,
    KroneckerCurvature,
    LanczosSolver,
    LissaSolver,
    ParameterSpace,
    evaluation_mode,
    select_parameters,
)
from .engine.distributed import ProcessGroup, fingerprints
from .exceptions import InvalidParameterError

__all__ = [
    "AUTO_CG_TOL",
    "CONSTRAINTS",
    "INVERSE_HVP_METHODS",
    "PRECONDITIONER_SAMPLES",
    "SELECTIONS",
    "Query",
    "Scored",
    "prepare",
    "query_fingerprints",
    "solve_and_score",
    "warn_if_all_equal",
]

INVERSE_HVP_METHODS = ("lissa", "cg", "pcg", "lanczos", "kfac", "ekfac", "exact", "identity")
SELECTIONS = ("auto", "top", "diverse")
#: Labelled samples the "pcg" preconditioner's K-FAC factors are fitted over, at most: a
#: subsample preconditions about as well as all of them (the user guide's solver section).
PRECONDITIONER_SAMPLES = 512
#: hessian_subsample="auto": the curvature over at most this many labelled samples for the
#: solvers that pass over the labelled set, so that their cost stops growing with it. In the
#: query benchmark at 8,000 labelled, PCG over 4,096 of them scored the pool with a Pearson of
#: 0.96 against the converged solve over all of them, for half the time (docs' performance page).
AUTO_HESSIAN_SUBSAMPLE = 4096
#: The solvers "auto" subsamples for: not "exact" (the reference), nor LiSSA, whose minibatch
#: products already cost the same whatever the size of the labelled set.
SUBSAMPLED_BY_AUTO = ("cg", "pcg", "lanczos", "kfac", "ekfac")
#: cg_tol="auto": "pcg" (the default) stops where the ranking has settled, "cg" at the float32
#: floor. At 0.3, PCG scored the pool with a Pearson of at least 0.94 against the converged
#: solve on 12 benchmark nets (digits and 1-D CNNs, 2,000 and 8,000 labelled, 3 seeds), in 23%
#: fewer iterations than at 0.2 (the docs' performance page).
AUTO_CG_TOL = {"pcg": 0.3, "cg": 1e-5}

#: The strategy's parameters: name -> (check, what was expected); checked at call time, as
#: scikit-learn does (:func:`~skisal._validation.check_constraints`).
CONSTRAINTS = {
    "inverse_hvp": (
        lambda v: v == "auto" or v in INVERSE_HVP_METHODS,
        f"'auto' or one of {INVERSE_HVP_METHODS}",
    ),
    "damping": (is_non_negative_real, "a finite real >= 0"),
    "curvature": (lambda v: v in ("auto", *CURVATURES), f"one of {('auto', *CURVATURES)}"),
    "lissa_depth": (is_positive_int, "an integer >= 1"),
    "lissa_repeats": (is_positive_int, "an integer >= 1"),
    "lissa_scale": (lambda v: v == "auto" or is_positive_real(v), "'auto' or a real > 0"),
    "lissa_tol": (is_non_negative_real, "a finite real >= 0"),
    "hessian_batch_size": (is_positive_int, "an integer >= 1"),
    "cg_max_iter": (is_positive_int, "an integer >= 1"),
    "cg_tol": (lambda v: v == "auto" or is_positive_real(v), "'auto' or a real > 0"),
    "lanczos_rank": (is_positive_int, "an integer >= 1"),
    "hessian_subsample": (
        lambda v: v is None or (isinstance(v, str) and v == "auto") or is_positive_int(v),
        "'auto', None (the whole labelled set) or an integer >= 1",
    ),
    "batch_size": (is_positive_int, "an integer >= 1"),
    "scoring": (lambda v: v in ("auto", "forward", "reverse"), "'auto', 'forward' or 'reverse'"),
    "progress": (lambda v: isinstance(v, bool), "a bool"),
    "return_scores": _modal.RETURN_SCORES,
    "selection": (lambda v: v in SELECTIONS, f"one of {SELECTIONS}"),
    "min_reference_accuracy": (
        lambda v: is_non_negative_real(v) and v <= 1,
        "a real in [0, 1], e.g. 0.5",
    ),
    "distributed": (lambda v: isinstance(v, bool), "a bool"),
    "autocast": (
        lambda v: isinstance(v, bool) or v in (torch.float16, torch.bfloat16),
        "a bool, torch.float16 or torch.bfloat16",
    ),
}


@dataclass
class Query:
    """One call's checked data, and the model and engine built for it."""

    X_pool: Any
    X_lab: Any
    y_lab: Any
    X_ref: Any
    y_ref: Any
    ref_name: str  # the labels the reference set came with: y_reference or y_labeled
    n_instances: int | None = None
    model: BoundModel = field(init=False)
    engine: InfluenceEngine = field(init=False)

    @property
    def set_names(self) -> tuple[str, str]:
        """The reference and labelled sets' argument names, for messages."""
        return self.ref_name.replace("y_", "X_"), "X_labeled"

    @property
    def n_pool(self) -> int:
        """Samples in the pool, as the adapter counts them."""
        return self.model.adapter.n_samples(self.X_pool)


@dataclass
class Scored:
    """What the expensive part of a query computed."""

    s_test: torch.Tensor
    reference_gradient: torch.Tensor
    diagnostics: InfluenceDiagnostics
    scores: torch.Tensor
    summary: dict[str, torch.Tensor]  # the adapter's per-sample extras: "cost", "deferred"

    @property
    def annotation_costs(self) -> np.ndarray:
        """Each pool sample's predicted annotation cost (1 when the adapter predicts none)."""
        costs = self.summary.get("cost")
        if costs is None:
            return np.ones(len(self.scores))
        return costs.cpu().numpy().astype(np.float64)

    @property
    def deferred(self) -> np.ndarray:
        """The pool samples the adapter ranks last (e.g. images without a prediction)."""
        deferred = self.summary.get("deferred")
        if deferred is None:
            return np.zeros(len(self.scores), dtype=bool)
        return deferred.cpu().numpy().astype(bool)


# -- checks and engine: cheap ---------------------------------------------------------------
def prepare(strategy: Any, classifier: Any, X_pool: Any, X_labeled: Any, y_labeled: Any) -> Query:
    """Every check of one call, and the engine built for it; no expensive work."""
    estimator, X_lab, y_lab = _labelled_data(strategy, classifier, X_labeled, y_labeled)
    adapter = resolve_adapter(estimator, strategy.adapter)
    try:
        adapter.check_estimator(estimator)
    except NotFittedError as exc:
        raise NotFittedError(f"classifier is not fitted: {exc}") from exc
    solver = _make_solver(strategy, adapter)
    query = _check_sets(strategy, adapter, estimator, X_pool, X_lab, y_lab, solver)
    query.model, query.engine = _build_engine(strategy, adapter, estimator, solver)
    _check_labels(query)
    return query


def _labelled_data(
    strategy: Any, classifier: Any, X_labeled: Any, y_labeled: Any
) -> tuple[Any, Any, Any]:
    """Estimator and labelled data: call-time > constructor > learner's training set.

    A learner is a modAL learner or any learner-like object: one with an
    ``estimator`` and ``X_training``/``y_training`` (:func:`_modal.is_learner_like`).
    """
    estimator = classifier.estimator if _modal.is_learner_like(classifier) else classifier
    if X_labeled is None and y_labeled is None:
        X_labeled, y_labeled = strategy.X_labeled, strategy.y_labeled
    if X_labeled is None and y_labeled is None:
        X_labeled = getattr(classifier, "X_training", None)
        y_labeled = getattr(classifier, "y_training", None)
    return estimator, X_labeled, y_labeled


def _method(strategy: Any, adapter: ModelAdapter) -> str:
    """The ``inverse_hvp`` method this query uses ("auto" resolved by the adapter)."""
    return adapter.default_inverse_hvp if strategy.inverse_hvp == "auto" else strategy.inverse_hvp


def _hessian_subsample(strategy: Any, adapter: ModelAdapter) -> int | None:
    """``hessian_subsample`` with "auto" resolved for this query's solver."""
    if strategy.hessian_subsample != "auto":
        return strategy.hessian_subsample
    return AUTO_HESSIAN_SUBSAMPLE if _method(strategy, adapter) in SUBSAMPLED_BY_AUTO else None


def _make_solver(strategy: Any, adapter: ModelAdapter) -> InverseHVPSolver:
    method = _method(strategy, adapter)
    tol = AUTO_CG_TOL.get(method, 1e-5) if strategy.cg_tol == "auto" else float(strategy.cg_tol)
    if method == "lissa":
        return LissaSolver(
            depth=strategy.lissa_depth,
            repeats=strategy.lissa_repeats,
            scale=strategy.lissa_scale,
            tol=strategy.lissa_tol,
        )
    if method == "cg":
        return ConjugateGradientSolver(tol=tol, max_iter=strategy.cg_max_iter)
    if method == "pcg":
        return ConjugateGradientSolver(
            tol=tol,
            max_iter=strategy.cg_max_iter,
            preconditioner=KroneckerCurvature("kfac", max_samples=PRECONDITIONER_SAMPLES),
        )
    if method in ("kfac", "ekfac"):
        return KFACSolver(method)
    if method == "lanczos":
        return LanczosSolver(rank=strategy.lanczos_rank)
    if method == "exact":
        return ExactSolver()
    return IdentitySolver()


def _check_sets(
    strategy: Any,
    adapter: ModelAdapter,
    estimator: Any,
    X_pool: Any,
    X_lab: Any,
    y_lab: Any,
    solver: InverseHVPSolver,
) -> Query:
    """The pool, labelled and reference sets, checked alone and against each other."""
    X_pool = adapter.check_inputs(estimator, X_pool, "X_pool")
    if X_lab is not None:
        X_lab = adapter.check_inputs(estimator, X_lab, "X_labeled")
        adapter.check_compatible(X_pool, "X_pool", X_lab, "the labelled data")
        if y_lab is None or n_rows(y_lab) != n_rows(X_lab):
            raise ValueError(
                "the labelled data needs as many labels as samples: got "
                f"{n_rows(X_lab)} samples and "
                f"{'no' if y_lab is None else n_rows(y_lab)} labels."
            )
    if strategy.X_reference is not None:
        X_ref = adapter.check_inputs(estimator, strategy.X_reference, "X_reference")
        if strategy.y_reference is None:
            raise InvalidParameterError("y_reference is required when X_reference is given.")
        if n_rows(strategy.y_reference) != n_rows(X_ref):
            raise InvalidParameterError(
                f"X_reference has {n_rows(X_ref)} samples but y_reference has "
                f"{n_rows(strategy.y_reference)} labels."
            )
        y_ref, ref_name = strategy.y_reference, "y_reference"
        adapter.check_compatible(X_pool, "X_pool", X_ref, "X_reference")
    else:
        if strategy.y_reference is not None:
            raise InvalidParameterError("X_reference is required when y_reference is given.")
        X_ref, y_ref, ref_name = X_lab, y_lab, "y_labeled"
    if X_lab is None and (solver.needs_hessian or X_ref is None):
        raise ValueError(
            "no labelled data for the Hessian"
            + ("" if X_ref is not None else " or the reference set")
            + ": use a modAL ActiveLearner (it keeps X_training), or pass "
            "X_labeled/y_labeled to the strategy or to query()."
        )
    return Query(X_pool, X_lab, y_lab, X_ref, y_ref, ref_name)


def _build_engine(
    strategy: Any, adapter: ModelAdapter, estimator: Any, solver: InverseHVPSolver
) -> tuple[BoundModel, InfluenceEngine]:
    """The model bound to its adapter on the chosen device, and the engine over it."""
    module, device = module_for(adapter, estimator, strategy.device)
    spec = adapter.default_parameters if strategy.parameters is None else strategy.parameters
    space = ParameterSpace(select_parameters(module, spec))
    adapter.check_parameters(estimator, space.names)
    model = BoundModel(adapter, estimator, module, space, device)
    curvature = strategy.curvature
    engine = InfluenceEngine(
        model,
        solver,
        damping=float(strategy.damping),
        batch_size=strategy.batch_size,
        hessian_batch_size=strategy.hessian_batch_size,
        curvature=adapter.default_curvature if curvature == "auto" else curvature,
        hessian_subsample=_hessian_subsample(strategy, adapter),
        scoring=strategy.scoring,
        progress=strategy.progress,
        autocast=_autocast_dtype(strategy.autocast, device),
    )
    return model, engine


def _autocast_dtype(autocast: bool | torch.dtype, device: torch.device) -> torch.dtype | None:
    if autocast is False:
        return None
    if autocast is True:
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    return autocast


def _check_labels(query: Query) -> None:
    """The reference and labelled targets, checked against the network's outputs."""
    adapter, estimator = query.model.adapter, query.model.estimator
    with evaluation_mode(query.model.module), torch.no_grad():
        probe = _probe(query.model, query.X_pool, "X_pool")
        query.y_ref = adapter.check_targets(
            estimator, query.y_ref, query.ref_name, probe, X=query.X_ref
        )
        if query.X_lab is not None:
            query.y_lab = adapter.check_targets(
                estimator, query.y_lab, "y_labeled", probe, X=query.X_lab
            )


def _probe(model: BoundModel, X: Any, name: str) -> Any:
    """The model's outputs on the first sample of ``X``; a failure names ``name``."""
    try:
        return model.forward(None, model.inputs(X, np.arange(1)))
    except torch.cuda.OutOfMemoryError:
        raise
    except (RuntimeError, TypeError, ValueError) as exc:  # raised inside torch or the network
        shape, dtype = getattr(X, "shape", None), getattr(X, "dtype", None)
        described = f" (shape {tuple(shape)}, dtype {dtype})" if shape is not None else ""
        raise ValueError(
            f"the network cannot take the samples of {name}{described}: "
            f"{type(exc).__name__}: {exc}. Give {name} samples of the shape and dtype the "
            "network was trained on."
        ) from exc


def query_fingerprints(strategy: Any, query: Query, budget: Any, select: bool) -> dict[str, Any]:
    """What every rank of a distributed query must hold alike (``ProcessGroup.check_same``)."""
    options = strategy.get_params(deep=False)
    for per_rank in ("device", "progress"):  # may differ: cuda:0, cuda:1
        options.pop(per_rank)
    options.update(n_instances=query.n_instances, budget=budget, select=select)
    own_reference = strategy.X_reference is not None  # else the labelled set
    return fingerprints(
        query.model.module,
        options,
        X_pool=query.X_pool,
        X_labeled=query.X_lab,
        y_labeled=query.y_lab,
        X_reference=query.X_ref if own_reference else None,
        y_reference=query.y_ref if own_reference else None,
    )


# -- the solve and the pool's scores: expensive ----------------------------------------------
def solve_and_score(
    query: Query,
    rng: np.random.RandomState,
    group: ProcessGroup | None,
    observer: Any = None,
) -> Scored:
    """``s_test`` and the pool's scores, in this process or across the group.

    Across a group, rank 0 solves ``s_test`` and broadcasts it, each rank scores its shard
    of the pool, and every rank gathers all the scores. ``observer`` sees the pool's
    forward passes (``score_pool``'s), in this process only.
    """
    engine = query.engine
    if group is None:
        s_test, v, diagnostics = _solve(query, rng)
        scores, summary = engine.scores(s_test, query.X_pool, diagnostics, observer)
        return Scored(s_test, v, diagnostics, scores, summary)

    def solve() -> tuple[Any, ...]:
        return (*_solve(query, rng), rng.get_state())

    s_test, v, diagnostics, rng_state = group.broadcast_from_root(solve, engine.model.device)
    rng.set_state(rng_state)  # later draws (diverse selection) agree on every rank
    n_pool = query.n_pool
    if n_pool < group.world_size:
        raise ValueError(
            f"X_pool has {n_pool} samples, fewer than the {group.world_size} processes "
            "scoring it: use distributed=False for so small a pool."
        )
    shard, sizes = group.shard(n_pool)
    local, local_summary = group.run_everywhere(
        lambda: engine.scores(s_test, take_rows(query.X_pool, shard), diagnostics)
    )
    diagnostics.n_pool = n_pool
    summary = {k: group.gather_rows(t, sizes) for k, t in local_summary.items()}
    return Scored(s_test, v, diagnostics, group.gather_rows(local, sizes), summary)


def _solve(query: Query, rng: np.random.RandomState) -> tuple[Any, ...]:
    return query.engine.s_test(
        query.X_ref, query.y_ref, query.X_lab, query.y_lab, rng, names=query.set_names
    )


def warn_if_all_equal(scores: np.ndarray) -> None:
    """Warn when the scores cannot rank the pool: every sample scored the same."""
    if len(scores) > 1 and scores.max() == scores.min():
        warnings.warn(
            f"every X_pool sample has the same influence ({scores[0]:.3g}), so the ranking "
            "is pool order and the selection says nothing. Usually the model's outputs are "
            "saturated (softmax probabilities of exactly 0 and 1, e.g. for inputs far outside "
            "the training range): standardise the inputs, or query with a baseline "
            "(random sampling) until the model is trained on such data.",
            UserWarning,
            stacklevel=3,
        )
