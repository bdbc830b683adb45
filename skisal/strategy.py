"""``InfluenceQueryStrategy``: ISAL as a modAL query strategy."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state

from . import _modal
from ._explain import QueryRecord, explanation_frame
from ._query import (
    CONSTRAINTS,
    INVERSE_HVP_METHODS,  # noqa: F401 (the strategy's solvers, read by benchmarks/bench_query.py)
    Query,
    Scored,
    prepare,
    query_fingerprints,
    solve_and_score,
    warn_if_all_equal,
)
from ._repr import SummarisedArraysRepr
from ._selection import factor_recorder, reference_accuracy, select_from
from ._validation import check_constraints, check_query_size
from .adapters import ModelAdapter
from .engine import evaluation_mode
from .engine.distributed import ProcessGroup, current_group

__all__ = ["InfluenceQueryStrategy"]


class InfluenceQueryStrategy(SummarisedArraysRepr, BaseEstimator):
    """Influence Selection for Active Learning (ISAL) as a modAL query strategy.

    Scores every pool sample ``z`` by its influence on the loss over a
    reference set ``R`` (Liu et al., ICCV 2021, Eq. 4)::

        I(z, R) = -grad l(R)^T (H + damping I)^-1 G_z

    where ``H`` is the Hessian of the mean training loss over the labelled set
    and ``G_z`` is the loss gradient at the model's own top-1 prediction
    (UUIC). The most negative influence -- the sample whose labelling is
    predicted to lower the reference loss most -- is selected first.
    ``s_test = (H + damping I)^-1 grad l(R)`` is computed once per query; the
    pool is then scored in batches by forward-mode differentiation.

    Parameters
    ----------
    X_reference, y_reference : array-like, optional
        The reference set ``R`` (the paper uses the validation set). When
        omitted, the learner's labelled set is used: the paper's ISAL_v3
        ablation, which needs no extra labels but measures progress on data
        the model was trained on, so its gradient is small and selection is
        somewhat worse (in the paper, CIFAR-10: 88.7% against 89.3% after 9k
        labels).
    inverse_hvp : {"auto", "pcg", "cg", "lanczos", "kfac", "ekfac", "lissa", "exact", \
"identity"}, default="auto"
        How ``s_test`` is computed. "auto" takes the adapter's choice: "pcg"
        for classifiers, "cg" for detectors (K-FAC fits their heads poorly).
        "pcg", conjugate gradient preconditioned by the K-FAC inverse, to a
        relative residual of 0.3 by default (``cg_tol="auto"``), where the
        ranking has settled (measurements in :doc:`/guide/isal`);
        "cg", conjugate gradient over the labelled set to the float32 floor
        (deterministic; the detectors' choice);
        "lanczos", ``lanczos_rank`` Lanczos steps from ``grad l(R)`` (CG's
        Krylov space, fully reorthogonalised, with a fixed budget of
        products); "kfac" and "ekfac", the damped inverse of the
        Kronecker-factored curvature of ``nn.Linear``/``nn.Conv1d``/
        ``nn.Conv2d`` layers (one or two passes, no iteration; approximate);
        "lissa", the paper's stochastic recursion (Algorithm 3); "exact", a
        dense solve, for at most a few thousand parameters; "identity",
        ``s_test = grad l(R)``, the paper's gradient-similarity ablation
        (ignores ``damping``, needs no labelled data).
    damping : float, default=0.01
        ``s_test = (H + damping I)^-1 grad l(R)`` for every solver. The
        reference code's ``(damping=d, scale=s)`` pair corresponds to
        ``damping = d * s`` here (0.01 * 1e4 = 100). Larger damping moves
        ISAL towards gradient similarity; it must make ``H + damping I``
        positive definite.
    curvature : {"auto", "gauss_newton", "hessian", "fisher"}, default="auto"
        The matrix ``H``. "hessian" is the paper's exact Hessian of the
        training loss. A network that is not at a convex minimum has negative
        curvature there (a digits MLP after 50 epochs: ``p^T H p < 0`` along
        CG's first directions), so ``H + damping I`` can be indefinite and
        the solvers refuse or diverge. "gauss_newton" is the generalised
        Gauss-Newton matrix, positive semi-definite for cross-entropy, equal to
        the Hessian for models linear in their parameters and at
        zero-residual minima. "fisher" is the empirical Fisher, positive
        semi-definite for any loss: for losses not convex in the outputs (a
        detector's focal and GIoU losses), where Gauss-Newton is indefinite
        too. "auto" takes the adapter's choice: "gauss_newton" for
        classifiers, "fisher" for detectors.
    lissa_depth : int, default=1000
        LiSSA recursion steps per repeat.
    lissa_repeats : int, default=1
        Independent LiSSA runs averaged (the paper used 4).
    lissa_scale : float or "auto", default="auto"
        LiSSA scale; must exceed the top eigenvalue of the damped Hessian.
        "auto" estimates it by power iteration (and doubles it, with a note in
        the diagnostics, if the recursion still diverges).
    lissa_tol : float, default=1e-6
        LiSSA stops early when the relative change of its iterate falls below.
    hessian_batch_size : int, default=32
        Labelled samples per Hessian-vector product (LiSSA's minibatch).
    cg_max_iter : int, default=100
        Conjugate-gradient iterations (each a pass over the labelled set).
    cg_tol : float or "auto", default="auto"
        Relative residual at which "cg" and "pcg" stop; "auto": 0.3 for
        "pcg", 1e-5 (about the float32 floor) for "cg".
    lanczos_rank : int, default=20
        Lanczos steps of ``inverse_hvp="lanczos"`` (one product each).
    hessian_subsample : int, "auto" or None, default="auto"
        Take the curvature over this many labelled samples, drawn at random
        (``random_state``) for each query, instead of all of them: every
        solver's passes cost that much less. None: the whole labelled set.
        "auto": at most 4,096 for "pcg", "cg", "lanczos", "kfac" and
        "ekfac", so that their cost stops growing with the labelled set
        (pool scores correlating 0.96 with the whole set's converged solve
        at 8,000 labelled, :doc:`/performance`); the whole set for "exact"
        and "lissa".
    parameters : "all", "weights", str, list of str or callable, optional
        Parameters to differentiate: "all" trainable ones; "weights" only
        tensors with more than one dimension (the reference code); module or
        parameter names, e.g. ``["fc2"]`` for a last layer; or a callable
        ``f(name, param) -> bool``. None uses the adapter's default ("all"
        for classifiers).
    adapter : ModelAdapter, optional
        How the model family computes its loss and pseudo-labels; resolved
        from the estimator when None (skorch nets get
        :class:`~skisal.SkorchClassifierAdapter`). Task options such as the
        expected-gradient ``top_k`` of Eq. 3 live on the adapter.
    selection : {"auto", "top", "diverse"}, default="auto"
        How a query picks ``n_instances`` samples from the scores.
        "auto" first measures the model's accuracy on the reference set.
        Below ``min_reference_accuracy`` most pseudo-labels are wrong, and so
        is the influence computed at them: it then picks the smallest
        margins, class-balanced (round-robin over the pseudo-labels);
        otherwise it selects as "diverse". Adapters that cannot tell a right
        pseudo-label (detectors) rank by influence, as "top" does.
        "top": the most negative influences (the paper); on a weak model it
        does worse than random sampling (:doc:`/guide/results`, the
        ``signals`` benchmark).
        "diverse": k-means++ seeding over the pool's last-layer UUIC
        gradients, each weighted by its rank by influence, starting from the
        most helpful sample (BADGE-style diversity tilted by influence; needs
        a network whose output comes from an ``nn.Linear``).
        :doc:`/guide/results` compares the three; ``diagnostics_.selection``
        and ``selection_reason`` say which rule a query used and why.
    min_reference_accuracy : float, default=0.5
        With ``selection="auto"``, the accuracy on the reference set from
        which influence is used: by default, once the model's top-1
        prediction is right more often than not. Without ``X_reference`` it
        is measured on the labelled set, which the model was trained on, and
        overstates how often the pseudo-labels are right.
    batch_size : int, default=256
        Pool and reference samples per forward pass.
    device : str or torch.device, optional
        Where to compute; defaults to the module's device. A different device
        works on a copy of the module (the user's stays where it is).
    scoring : {"auto", "forward", "reverse"}, default="auto"
        Pool scoring by forward-mode AD, or per-sample reverse mode; "auto"
        falls back to reverse mode only where forward mode is unsupported.
    progress : bool, default=False
        Show tqdm progress bars for ``s_test`` and pool scoring.
    autocast : bool or torch.dtype, default=False
        Mixed precision for the pool-scoring forward passes (the dominant cost
        on a large pool): True uses float16 on CUDA and bfloat16 elsewhere, or
        pass the dtype. ``s_test`` is solved in the model's precision and the
        scores are accumulated in float64. Expect scores close to full
        precision's (:doc:`/performance`); rankings of close samples can swap,
        and a sample whose top two classes nearly tie can take the other
        pseudo-label, and another score with it. Where forward mode does not
        support a layer under autocast (a custom operation whose rule returns a
        float32 tangent), the pool is scored in full precision and
        ``diagnostics_.scoring_fallback_reason`` says so.
    distributed : bool, default=False
        Score the pool across the processes of the initialised
        ``torch.distributed`` group (launched with ``torchrun``; gloo on CPU,
        NCCL on GPU). Every rank must call the query with the same model and
        data; rank 0 solves ``s_test`` and broadcasts it, each rank scores a
        shard of the pool, and the gathered scores give every rank the same
        selection as one process with the same ``random_state``. Without an
        initialised group of more than one process, it computes alone.
    random_state : int, RandomState instance or None, default=None
        Seeds the solvers' randomness (the K-FAC sketch and sample draw of
        "pcg", "kfac" and "ekfac", LiSSA's minibatches and power iteration,
        ``hessian_subsample``'s draw); the same integer gives the same
        selection. None: the default solver's scores vary slightly between
        queries.
    X_labeled, y_labeled : array-like, optional
        Labelled data for the Hessian when the learner keeps none (modAL's
        ``DeepActiveLearner``, or a bare skorch net). They can also be passed
        per query: ``learner.query(X_pool, X_labeled=X, y_labeled=y)``.
    return_scores : "auto" or bool, default="auto"
        Return ``(indices, scores)`` (modAL 0.4.2.x protocol) or indices only
        (modAL 0.4.1). "auto" follows the calling learner, else the installed
        modAL.

    Attributes
    ----------
    scores_ : ndarray of shape (n_pool,)
        ``I(z, R)`` of the last query's pool (lower = more helpful).
    s_test_ : dict of str to torch.Tensor
        ``(H + damping I)^-1 grad l(R)`` per parameter, from the last query.
    reference_gradient_ : dict of str to torch.Tensor
        ``grad l(R)`` per parameter.
    parameter_names_ : list of str
        Names of the differentiated parameters.
    diagnostics_ : InfluenceDiagnostics
        Solver report (iterations, residual or norm trace), scoring method
        and seconds per phase.
    annotation_costs_ : ndarray of shape (n_pool,)
        The adapter's predicted annotation cost of each pool sample in the
        last query (a detector's predicted box count; 1 for classifiers).
    deferred_ : ndarray of bool, shape (n_pool,)
        Pool samples the adapter ranks after all others in the last query
        (a detector's images without a prediction; none for classifiers).
    query_cost_ : float
        Summed ``annotation_costs_`` of the last selection. Only after a
        selection (``__call__``): :meth:`influence` removes it.

    Examples
    --------
    In a modAL loop the learner calls the strategy with itself and the pool;
    its ``X_training`` and ``y_training`` give the Hessian's labelled data:

    >>> from modAL.models import ActiveLearner
    >>> from skisal import InfluenceQueryStrategy
    >>> strategy = InfluenceQueryStrategy(X_reference, y_reference, random_state=0)
    >>> learner = ActiveLearner(estimator=make_net(), query_strategy=strategy,
    ...                         X_training=X_labeled, y_training=y_labeled)
    >>> idx, X_selected = learner.query(X_pool, n_instances=3)
    >>> X_selected.shape, strategy.diagnostics_.selection
    ((3, 4), 'margin')

    The small net of this example is wrong on most of the reference set, so the
    default ``selection="auto"`` chose by margin, and says why:

    >>> print(strategy.diagnostics_.selection_reason)  # doctest: +NORMALIZE_WHITESPACE
    by margin, class-balanced: the model is right on 30% of the reference set,
    below min_reference_accuracy=0.5, so the influence at its pseudo-labels is
    not trusted

    By annotation cost instead of count (1 per sample for a classifier):

    >>> idx, _ = learner.query(X_pool, budget=2.5)
    >>> len(idx), strategy.query_cost_
    (2, 2.0)

    Without modAL, the influence of every pool sample on a fitted net:

    >>> scores = strategy.influence(net, X_pool, X_labeled=X_labeled, y_labeled=y_labeled)
    >>> scores.shape, scores.dtype
    ((30,), dtype('float64'))
    """

    def __init__(
        self,
        X_reference: Any = None,
        y_reference: Any = None,
        *,
        inverse_hvp: str = "auto",
        damping: float = 0.01,
        curvature: str = "auto",
        lissa_depth: int = 1000,
        lissa_repeats: int = 1,
        lissa_scale: float | str = "auto",
        lissa_tol: float = 1e-6,
        hessian_batch_size: int = 32,
        cg_max_iter: int = 100,
        cg_tol: float | str = "auto",
        lanczos_rank: int = 20,
        hessian_subsample: int | str | None = "auto",
        parameters: Any = None,
        adapter: ModelAdapter | None = None,
        selection: str = "auto",
        min_reference_accuracy: float = 0.5,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        scoring: str = "auto",
        progress: bool = False,
        autocast: bool | torch.dtype = False,
        distributed: bool = False,
        random_state: Any = None,
        X_labeled: Any = None,
        y_labeled: Any = None,
        return_scores: str | bool = "auto",
    ) -> None:
        self.X_reference = X_reference
        self.y_reference = y_reference
        self.inverse_hvp = inverse_hvp
        self.damping = damping
        self.curvature = curvature
        self.lissa_depth = lissa_depth
        self.lissa_repeats = lissa_repeats
        self.lissa_scale = lissa_scale
        self.lissa_tol = lissa_tol
        self.hessian_batch_size = hessian_batch_size
        self.cg_max_iter = cg_max_iter
        self.cg_tol = cg_tol
        self.lanczos_rank = lanczos_rank
        self.hessian_subsample = hessian_subsample
        self.parameters = parameters
        self.adapter = adapter
        self.selection = selection
        self.min_reference_accuracy = min_reference_accuracy
        self.batch_size = batch_size
        self.device = device
        self.scoring = scoring
        self.progress = progress
        self.autocast = autocast
        self.distributed = distributed
        self.random_state = random_state
        self.X_labeled = X_labeled
        self.y_labeled = y_labeled
        self.return_scores = return_scores

    def __getstate__(self) -> dict[str, Any]:
        """Pickled state: the last query's tensors on the CPU, so it loads on any machine.

        A CUDA tensor unpickles only where CUDA is; ``s_test_`` and
        ``reference_gradient_`` are results to read, not inputs of the next query.
        """
        state = dict(super().__getstate__())  # object.__getstate__ may return __dict__ itself
        for name in ("s_test_", "reference_gradient_"):
            if name in state:
                state[name] = {k: t.detach().cpu() for k, t in state[name].items()}
        return state

    # -- modAL protocol -------------------------------------------------------
    def __call__(
        self,
        classifier: Any,
        X_pool: Any,
        n_instances: int | None = None,
        *,
        budget: float | None = None,
        X_labeled: Any = None,
        y_labeled: Any = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Select the ``n_instances`` pool samples of most negative influence.

        Parameters
        ----------
        classifier : learner, skorch net or Pipeline ending in one
            A modAL ``ActiveLearner`` or any learner-like object with an
            ``estimator`` and ``X_training``/``y_training`` (which give the
            Hessian's labelled data), a ``DeepActiveLearner``, or a bare
            estimator (labelled data from ``X_labeled``/``y_labeled``).
        X_pool : array-like or torch.Tensor
            Unlabelled samples; never modified.
        n_instances : int, optional
            Number of samples to select; 1 when neither it nor ``budget`` is
            given.
        budget : float, optional
            Select by annotation cost instead of count: samples are taken in
            ranking order while their summed predicted cost stays within
            ``budget`` (at least one sample is always selected). The cost is
            the adapter's (a detector's predicted box count; 1 per sample for
            classifiers). Not with ``selection="diverse"``; with "auto" the
            samples are taken by influence, as with "top". With modAL:
            ``learner.query(X_pool, budget=200)``.
        X_labeled, y_labeled : array-like, optional
            Labelled data for the Hessian, overriding the constructor's and
            the learner's.

        Returns
        -------
        indices : ndarray of shape (n_instances,)
            Selected pool indices, most helpful first.
        scores : ndarray of shape (n_instances,)
            Their influences (only with the modAL 0.4.2.x protocol, see
            ``return_scores``).

        Raises
        ------
        skisal.exceptions.InvalidParameterError
            For an invalid parameter of the strategy, naming it (a
            ``ValueError`` and a ``TypeError``).
        ValueError, TypeError
            For invalid input, naming the argument.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        skisal.SolverDivergenceError
            If LiSSA diverges at a fixed scale or the damped Hessian is not
            positive definite (CG, exact).
        """
        _modal.reraise_on_retry(self)
        returns_scores = _modal.returns_scores(self.return_scores, classifier)
        try:
            scores, order = self._influence(
                classifier, X_pool, X_labeled, y_labeled, n_instances, budget, select=True
            )
        except BaseException as exc:  # Ctrl-C too: modAL's bare except would retry it
            _modal.note_failure(exc, self)
            raise
        return _modal.format_result(order, scores[order], returns_scores)

    # -- influence --------------------------------------------------------------
    def influence(
        self,
        classifier: Any,
        X_pool: Any,
        *,
        X_labeled: Any = None,
        y_labeled: Any = None,
    ) -> np.ndarray:
        """``I(z, R)`` for every sample of ``X_pool`` (lower = more helpful).

        Parameters
        ----------
        classifier : modAL learner, skorch net or Pipeline ending in one
            See :meth:`__call__`.
        X_pool : array-like or torch.Tensor
            Unlabelled samples; never modified.
        X_labeled, y_labeled : array-like, optional
            Labelled data for the Hessian (see :meth:`__call__`).

        Returns
        -------
        ndarray of shape (n_pool,)
            Influence of each pool sample, float64, always finite.

        Raises
        ------
        ValueError, TypeError, NotFittedError, SolverDivergenceError
            As :meth:`__call__`.
        """
        return self._influence(classifier, X_pool, X_labeled, y_labeled)[0].copy()

    def explain(self) -> Any:
        """Why the last query ranked and picked each pool sample: one row per sample.

        Works after a query (``learner.query``, or calling the strategy) and
        after :meth:`influence` (then nothing is selected).

        Returns
        -------
        pandas.DataFrame
            One row per sample of the last query's pool, in pool order (index
            ``pool_index``), with the columns:

            - ``influence``: ``I(z, R)``, as ``scores_`` (lower = more helpful);
            - ``rank``: 1 for the most helpful sample (samples the adapter
              defers, e.g. images without a prediction, rank last);
            - ``selected``, ``selection_order`` (1 = picked first, ``<NA>`` if
              not picked);
            - ``pseudo_label``: the label the influence was computed for (the
              model's prediction; a detector's most confident box; None without
              one), ``confidence``: the model's probability of it (a box's
              score), ``margin``: its lead over the second class (classifiers);
            - ``cost``: the predicted annotation cost (1 for a classifier, the
              predicted box count for a detector);
            - ``reason``: why a selected sample was picked, None otherwise:
              ``"rank 3 by influence"`` ("top"); ``"smallest margin (0.03) left
              among pseudo-label 7; influence not used: ..."`` ("auto" on a
              weak model); with "diverse" (and "auto" otherwise)
              ``"most helpful sample (first pick)"`` and ``"k-means++ pick 4:
              gradient distance 0.82 to earlier picks; rank 17 by influence"``;
            - ``distance``: with ``selection="diverse"``, a pick's distance in
              last-layer gradient space to the nearest earlier pick (NaN
              otherwise): k-means++ favours samples far from those chosen.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before any query or :meth:`influence` call.
        ImportError
            Without pandas.

        Examples
        --------
        >>> from modAL.models import ActiveLearner
        >>> from skisal import InfluenceQueryStrategy
        >>> strategy = InfluenceQueryStrategy(X_reference, y_reference, random_state=0)
        >>> learner = ActiveLearner(estimator=make_net(), query_strategy=strategy,
        ...                         X_training=X_labeled, y_training=y_labeled)
        >>> idx, _ = learner.query(X_pool, n_instances=3)
        >>> table = strategy.explain()
        >>> table.shape, list(table.columns[:4])
        ((30, 10), ['influence', 'rank', 'selected', 'selection_order'])
        >>> picked = table[table.selected].sort_values("selection_order")
        >>> picked.index.tolist() == idx.tolist(), picked["rank"].tolist()
        (True, [12, 17, 27])
        >>> picked["reason"].iloc[0]  # doctest: +ELLIPSIS
        'smallest margin (0.000135) left among pseudo-label 1; influence not used: ...'
        """
        record = getattr(self, "_last_query", None)
        if record is None:
            raise NotFittedError(
                "explain() describes the last query: query with this strategy "
                "(learner.query(X_pool)) or call strategy.influence(...) first."
            )
        return explanation_frame(record)

    def _influence(
        self,
        classifier: Any,
        X_pool: Any,
        X_labeled: Any,
        y_labeled: Any,
        n_instances: Any = None,
        budget: Any = None,
        select: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Check everything (cheap), then score the pool (expensive); store the results.

        Returns the scores and, with ``select``, the selection.
        """
        group = current_group() if self.distributed else None  # None: this process alone
        query = self._checked_query(
            group, classifier, X_pool, X_labeled, y_labeled, n_instances, budget, select
        )
        rng = check_random_state(self.random_state)
        with evaluation_mode(query.model.module), torch.no_grad():
            start = time.perf_counter()
            # selection="auto"'s measure, taken first: it decides what the scoring records
            accuracy = reference_accuracy(self, query) if select and budget is None else None
            recorder = factor_recorder(self, query, accuracy, select, budget, group)
            before_scoring = time.perf_counter() - start
            scored = solve_and_score(query, rng, group, recorder)
            # Deferred samples (the adapter's, e.g. images without a prediction) go last; the
            # sort is stable, so ties keep pool order and equal inputs give equal selections.
            ranking = np.lexsort((scored.scores.cpu().numpy(), scored.deferred))
            order, distances = None, None
            if select:
                start = time.perf_counter()
                factors = None if recorder is None else recorder.result()
                order, distances = select_from(
                    self, query, scored, ranking, budget, rng, group, accuracy, factors
                )
                scored.diagnostics.timings["selection"] = (
                    time.perf_counter() - start + before_scoring
                )
        self._store(query, scored, ranking, order, distances)
        warn_if_all_equal(self.scores_)
        return self.scores_, order

    # -- steps of a query --------------------------------------------------------
    def _validate_params(self) -> None:
        check_constraints(self, CONSTRAINTS)

    def _checked_query(
        self,
        group: ProcessGroup | None,
        classifier: Any,
        X_pool: Any,
        X_labeled: Any,
        y_labeled: Any,
        n_instances: Any,
        budget: Any,
        select: bool,
    ) -> Query:
        """Every check of this call, and the engine built for it; no expensive work.

        The parameters, the model and the data are checked, the module is placed on
        ``device`` (a copy if it is elsewhere) and the engine is built over it. Across a
        ``group``, the ranks then agree that they checked the same inputs (or learn that one
        rank failed) before any collective.
        """
        try:
            self._validate_params()
            query = prepare(self, classifier, X_pool, X_labeled, y_labeled)
            if select:
                query.n_instances = check_query_size(n_instances, budget, query.n_pool)
                if budget is not None and self.selection == "diverse":
                    raise ValueError(
                        "budget does not work with selection='diverse': use selection='top' "
                        "or 'auto' (both take samples by influence within a budget)."
                    )
            prints = None if group is None else query_fingerprints(self, query, budget, select)
        except Exception as exc:
            if group is not None:  # the other ranks would wait for this one in a collective
                group.check_same(None, failure=exc)
            raise
        if group is not None:
            group.check_same(prints)
        return query

    def _store(
        self,
        query: Query,
        scored: Scored,
        ranking: np.ndarray,
        order: np.ndarray | None,
        distances: np.ndarray | None,
    ) -> None:
        """The last query's results, as the fitted attributes documented on the class."""
        space = query.model.space
        self.scores_ = scored.scores.cpu().numpy().astype(np.float64)
        self.annotation_costs_ = scored.annotation_costs
        self.deferred_ = scored.deferred
        self.__dict__.pop("query_cost_", None)  # only a selection has a cost
        if order is not None:
            self.query_cost_ = float(self.annotation_costs_[order].sum())
        self.parameter_names_ = space.names
        self.s_test_ = {k: t.clone() for k, t in space.split(scored.s_test).items()}
        self.reference_gradient_ = {
            k: t.clone() for k, t in space.split(scored.reference_gradient).items()
        }
        self.diagnostics_ = scored.diagnostics
        self._last_query = QueryRecord.from_query(
            self.scores_,
            ranking,
            order,
            scored.summary,
            query.model.adapter.label_names(query.model.estimator),
            distances,
            scored.diagnostics.selection,
        )
