"""``InfluenceQueryStrategy``: ISAL as a modAL query strategy."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state

from . import _modal
from ._validation import (
    check_constraints,
    check_device,
    check_query_size,
    is_non_negative_real,
    is_positive_int,
    is_positive_real,
    n_rows,
    take_rows,
    within_budget,
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
    LissaSolver,
    ParameterSpace,
    evaluation_mode,
    select_parameters,
)
from .engine.distributed import ProcessGroup, current_group, fingerprints
from .engine.diversity import gradient_factors, influence_rank_weights, kmeans_pp_select
from .engine.kfac import KFACSolver, KroneckerCurvature
from .engine.lanczos import LanczosSolver
from .engine.model import module_on

__all__ = ["InfluenceQueryStrategy"]


@dataclass
class _Query:
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


INVERSE_HVP_METHODS = ("lissa", "cg", "pcg", "lanczos", "kfac", "ekfac", "exact", "identity")
SELECTIONS = ("top", "diverse")
#: Labelled samples the "pcg" preconditioner's K-FAC factors are fitted over, at most: on the
#: digits CNN (2,000 labelled) K-FAC fitted on 500 preconditioned as well as EK-FAC on all.
PRECONDITIONER_SAMPLES = 1024
#: cg_tol="auto": "pcg" (the default) stops where the ranking has settled (pool scores with a
#: Pearson of 0.97-0.99 against a converged solve in benchmarks/bench_query.py), "cg" at the
#: float32 floor.
AUTO_CG_TOL = {"pcg": 0.2, "cg": 1e-5}


#: name -> (check, what was expected); checked at call time, as scikit-learn does.
_CONSTRAINTS = {
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
        lambda v: v is None or is_positive_int(v),
        "None (the whole labelled set) or an integer >= 1",
    ),
    "batch_size": (is_positive_int, "an integer >= 1"),
    "scoring": (lambda v: v in ("auto", "forward", "reverse"), "'auto', 'forward' or 'reverse'"),
    "progress": (lambda v: isinstance(v, bool), "a bool"),
    "return_scores": (lambda v: v == "auto" or isinstance(v, bool), "'auto' or a bool"),
    "selection": (lambda v: v in SELECTIONS, f"one of {SELECTIONS}"),
    "distributed": (lambda v: isinstance(v, bool), "a bool"),
    "autocast": (
        lambda v: isinstance(v, bool) or v in (torch.float16, torch.bfloat16),
        "a bool, torch.float16 or torch.bfloat16",
    ),
}


class InfluenceQueryStrategy(BaseEstimator):
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
        somewhat worse (CIFAR-10: 88.7% against 89.3% after 9k labels).
    inverse_hvp : {"auto", "pcg", "cg", "lanczos", "kfac", "ekfac", "lissa", "exact", \
"identity"}, default="auto"
        How ``s_test`` is computed. "auto" takes the adapter's choice: "pcg"
        for classifiers, "cg" for detectors (K-FAC fits their heads poorly).
        "pcg", conjugate gradient preconditioned
        by the K-FAC inverse, to a relative residual of 0.2 by default
        (``cg_tol="auto"``): the ranking has settled there, at 4.5 to 7 times
        less than a converged solve (see the user guide's solver section);
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
        Relative residual at which "cg" and "pcg" stop; "auto": 0.2 for
        "pcg", 1e-5 (about the float32 floor) for "cg".
    lanczos_rank : int, default=20
        Lanczos steps of ``inverse_hvp="lanczos"`` (one product each).
    hessian_subsample : int, optional
        Take the curvature over this many labelled samples, drawn at random
        (``random_state``) for each query, instead of all of them: every
        solver's passes cost that much less. None: the whole labelled set.
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
    selection : {"top", "diverse"}, default="top"
        How a query picks ``n_instances`` samples from the scores. "top": the
        most negative influences (the paper). "diverse": k-means++ seeding
        over the pool's last-layer UUIC gradients, each weighted by its rank
        by influence, starting from the most helpful sample (BADGE-style
        diversity tilted by influence; needs a network whose output comes from
        an ``nn.Linear``). On digits it matched margin sampling's AULC where
        "top" trailed it; see the user guide for the measurements.
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
        scores are accumulated in float64. Expect scores within about a
        percent of full precision (2% tangent error measured in bfloat16 on
        the digits CNN); rankings of close samples can swap, and a sample whose
        top two classes nearly tie can take the other pseudo-label, and another
        score with it. Where forward mode does not support a layer under
        autocast (a custom operation whose rule returns a float32 tangent), the
        pool is scored in full precision and
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

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skorch import NeuralNetClassifier
    >>> from skisal import InfluenceQueryStrategy
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(60, 4).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> net = NeuralNetClassifier(torch.nn.Sequential(torch.nn.Linear(4, 2)),
    ...     criterion=torch.nn.CrossEntropyLoss, max_epochs=5, train_split=None,
    ...     verbose=0).fit(X[:20], y[:20])
    >>> strategy = InfluenceQueryStrategy(X[20:30], y[20:30], X_labeled=X[:20],
    ...     y_labeled=y[:20], return_scores=True, random_state=0)
    >>> idx, scores = strategy(net, X[30:], n_instances=3)
    >>> idx.shape, bool(np.all(np.diff(scores) >= 0))
    ((3,), True)
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
        hessian_subsample: int | None = None,
        parameters: Any = None,
        adapter: ModelAdapter | None = None,
        selection: str = "top",
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
            classifiers). Only with ``selection="top"``. With modAL:
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
        ValueError, TypeError
            For invalid input, naming the argument.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        skisal.SolverDivergenceError
            If LiSSA diverges at a fixed scale or the damped Hessian is not
            positive definite (CG, exact).

        Examples
        --------
        In a modAL loop the learner calls it with itself and the pool; its
        ``X_training`` and ``y_training`` give the Hessian's labelled data:

        >>> import numpy as np, torch
        >>> from modAL.models import ActiveLearner
        >>> from skorch import NeuralNetClassifier
        >>> from skisal import InfluenceQueryStrategy
        >>> X = np.random.RandomState(0).randn(60, 4).astype(np.float32)
        >>> y = (X[:, 0] > 0).astype(np.int64)
        >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=4,
        ...     module__out_features=2, criterion=torch.nn.CrossEntropyLoss, max_epochs=5,
        ...     train_split=None, verbose=0)
        >>> strategy = InfluenceQueryStrategy(X[20:30], y[20:30], random_state=0)
        >>> learner = ActiveLearner(estimator=net, query_strategy=strategy,
        ...                         X_training=X[:20], y_training=y[:20])
        >>> idx, X_selected = learner.query(X[30:], n_instances=4)
        >>> X_selected.shape, bool(np.all(np.diff(strategy.scores_[idx]) >= 0))
        ((4, 4), True)

        By annotation cost instead (1 per sample for a classifier):

        >>> idx, _ = learner.query(X[30:], budget=2.5)
        >>> len(idx), strategy.query_cost_
        (2, 2.0)
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

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skorch import NeuralNetClassifier
        >>> X = np.random.RandomState(0).randn(50, 3).astype(np.float32)
        >>> y = (X[:, 0] > 0).astype(np.int64)
        >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=3,
        ...     module__out_features=2, criterion=torch.nn.CrossEntropyLoss,
        ...     train_split=None, max_epochs=3, verbose=0).fit(X[:20], y[:20])
        >>> strategy = InfluenceQueryStrategy(X[20:30], y[20:30])
        >>> scores = strategy.influence(net, X[30:], X_labeled=X[:20], y_labeled=y[:20])
        >>> scores.shape, bool(np.isfinite(scores).all())
        ((20,), True)
        """
        return self._influence(classifier, X_pool, X_labeled, y_labeled)[0].copy()

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
        """Validate everything (cheap), then compute the scores (expensive).

        With ``distributed=True``, the ranks agree that they validated the same
        inputs (or learn that one rank failed) before any collective. Returns
        the scores and, with ``select``, the selection.
        """
        group = current_group() if self.distributed else None
        try:
            query = self._prepare(classifier, X_pool, X_labeled, y_labeled)
            if select:
                query.n_instances = self._check_size(
                    n_instances, budget, query.model.adapter.n_samples(query.X_pool)
                )
            prints = None if group is None else self._fingerprints(query, budget, select)
        except Exception as exc:
            if group is not None:  # the other ranks would wait for this one in a collective
                group.check_same(None, failure=exc)
            raise
        if group is not None:
            group.check_same(prints)
        rng = check_random_state(self.random_state)
        with evaluation_mode(query.model.module), torch.no_grad():
            s_test, v, diagnostics, scores, summary = self._solve_and_score(query, rng, group)
            self._store_summary(summary, len(scores))
            order = None
            if select:
                order = self._select(
                    query.model, query.X_pool, scores, query.n_instances, budget, rng, group
                )
        self._store(query.model.space, s_test, v, diagnostics)
        self.scores_ = scores.cpu().numpy().astype(np.float64)
        _warn_if_all_equal(self.scores_)
        self.__dict__.pop("query_cost_", None)  # only a selection has a cost
        if order is not None:
            self.query_cost_ = float(self.annotation_costs_[order].sum())
        return self.scores_, order

    def _prepare(self, classifier: Any, X_pool: Any, X_labeled: Any, y_labeled: Any) -> _Query:
        """Every check of this call, and the engine built for it; no expensive work."""
        self._validate_params()
        estimator, X_lab, y_lab = self._unwrap(classifier, X_labeled, y_labeled)
        adapter = resolve_adapter(estimator, self.adapter)
        try:
            adapter.check_estimator(estimator)
        except NotFittedError as exc:
            raise NotFittedError(f"classifier is not fitted: {exc}") from exc
        solver = self._make_solver(adapter)
        query = self._check_data(adapter, estimator, X_pool, X_lab, y_lab, solver)
        query.model, query.engine = self._build_engine(adapter, estimator, solver)
        with evaluation_mode(query.model.module), torch.no_grad():
            probe = _probe(query.model, query.X_pool, "X_pool")
            query.y_ref = adapter.check_targets(
                estimator, query.y_ref, query.ref_name, probe, X=query.X_ref
            )
            if query.X_lab is not None:
                query.y_lab = adapter.check_targets(
                    estimator, query.y_lab, "y_labeled", probe, X=query.X_lab
                )
        return query

    def _check_data(
        self,
        adapter: ModelAdapter,
        estimator: Any,
        X_pool: Any,
        X_lab: Any,
        y_lab: Any,
        solver: InverseHVPSolver,
    ) -> _Query:
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
        if self.X_reference is not None:
            X_ref = adapter.check_inputs(estimator, self.X_reference, "X_reference")
            if self.y_reference is None:
                raise ValueError("y_reference is required when X_reference is given.")
            if n_rows(self.y_reference) != n_rows(X_ref):
                raise ValueError(
                    f"X_reference has {n_rows(X_ref)} samples but y_reference has "
                    f"{n_rows(self.y_reference)} labels."
                )
            y_ref, ref_name = self.y_reference, "y_reference"
            adapter.check_compatible(X_pool, "X_pool", X_ref, "X_reference")
        else:
            if self.y_reference is not None:
                raise ValueError("X_reference is required when y_reference is given.")
            X_ref, y_ref, ref_name = X_lab, y_lab, "y_labeled"
        if X_lab is None and (solver.needs_hessian or X_ref is None):
            raise ValueError(
                "no labelled data for the Hessian"
                + ("" if X_ref is not None else " or the reference set")
                + ": use a modAL ActiveLearner (it keeps X_training), or pass "
                "X_labeled/y_labeled to the strategy or to query()."
            )
        return _Query(X_pool, X_lab, y_lab, X_ref, y_ref, ref_name)

    def _build_engine(
        self, adapter: ModelAdapter, estimator: Any, solver: InverseHVPSolver
    ) -> tuple[BoundModel, InfluenceEngine]:
        """The model bound to its adapter on the chosen device, and the engine over it."""
        module_device = adapter.get_device(estimator)
        device = check_device(self.device, module_device)
        module = module_on(adapter.get_module(estimator), device, module_device)
        spec = adapter.default_parameters if self.parameters is None else self.parameters
        space = ParameterSpace(select_parameters(module, spec))
        adapter.check_parameters(estimator, space.names)
        model = BoundModel(adapter, estimator, module, space, device)
        engine = InfluenceEngine(
            model,
            solver,
            damping=float(self.damping),
            batch_size=self.batch_size,
            hessian_batch_size=self.hessian_batch_size,
            curvature=(adapter.default_curvature if self.curvature == "auto" else self.curvature),
            hessian_subsample=self.hessian_subsample,
            scoring=self.scoring,
            progress=self.progress,
            autocast=self._autocast_dtype(device),
        )
        return model, engine

    def _fingerprints(self, query: _Query, budget: Any, select: bool) -> dict[str, Any]:
        """What every rank of a distributed query must hold alike (``ProcessGroup.check_same``)."""
        options = self.get_params(deep=False)
        for per_rank in ("device", "progress"):  # may differ: cuda:0, cuda:1
            options.pop(per_rank)
        options.update(n_instances=query.n_instances, budget=budget, select=select)
        own_reference = self.X_reference is not None  # else the labelled set
        return fingerprints(
            query.model.module,
            options,
            X_pool=query.X_pool,
            X_labeled=query.X_lab,
            y_labeled=query.y_lab,
            X_reference=query.X_ref if own_reference else None,
            y_reference=query.y_ref if own_reference else None,
        )

    def _solve_and_score(
        self, query: _Query, rng: np.random.RandomState, group: ProcessGroup | None
    ) -> tuple[Any, ...]:
        """``s_test`` and the pool's scores, in this process or across the group."""
        if group is not None:
            return self._distributed_scores(group, query, rng)
        s_test, v, diagnostics = query.engine.s_test(
            query.X_ref, query.y_ref, query.X_lab, query.y_lab, rng, names=query.set_names
        )
        scores, summary = query.engine.scores(s_test, query.X_pool, diagnostics)
        return s_test, v, diagnostics, scores, summary

    def _check_size(self, n_instances: Any, budget: Any, n_pool: int) -> int | None:
        """``n_instances`` (1 by default) or None when a valid ``budget`` replaces it."""
        size = check_query_size(n_instances, budget, n_pool)
        if budget is not None and self.selection != "top":
            raise ValueError("budget works with selection='top' only.")
        return size

    def _store_summary(self, summary: dict[str, torch.Tensor], n_pool: int) -> None:
        costs = summary.get("cost")
        deferred = summary.get("deferred")
        self.annotation_costs_ = (
            np.ones(n_pool) if costs is None else costs.cpu().numpy().astype(np.float64)
        )
        self.deferred_ = np.zeros(n_pool, dtype=bool)
        if deferred is not None:
            self.deferred_ = deferred.cpu().numpy().astype(bool)

    def _autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        if self.autocast is False:
            return None
        if self.autocast is True:
            return torch.float16 if device.type == "cuda" else torch.bfloat16
        return self.autocast

    @staticmethod
    def _distributed_scores(
        group: ProcessGroup, query: _Query, rng: np.random.RandomState
    ) -> tuple[
        torch.Tensor, torch.Tensor, InfluenceDiagnostics, torch.Tensor, dict[str, torch.Tensor]
    ]:
        """s_test on rank 0, broadcast; each rank scores its shard; scores gathered."""
        engine, X_pool = query.engine, query.X_pool

        def solve() -> tuple[Any, ...]:
            s_test, v, diagnostics = engine.s_test(
                query.X_ref, query.y_ref, query.X_lab, query.y_lab, rng, names=query.set_names
            )
            return s_test, v, diagnostics, rng.get_state()

        s_test, v, diagnostics, rng_state = group.broadcast_from_root(solve, engine.model.device)
        rng.set_state(rng_state)  # later draws (diverse selection) agree on every rank
        n_pool = engine.model.adapter.n_samples(X_pool)
        if n_pool < group.world_size:
            raise ValueError(
                f"X_pool has {n_pool} samples, fewer than the {group.world_size} processes "
                "scoring it: use distributed=False for so small a pool."
            )
        shard, sizes = group.shard(n_pool)
        local, local_summary = group.run_everywhere(
            lambda: engine.scores(s_test, take_rows(X_pool, shard), diagnostics)
        )
        diagnostics.n_pool = n_pool
        summary = {k: group.gather_rows(t, sizes) for k, t in local_summary.items()}
        return s_test, v, diagnostics, group.gather_rows(local, sizes), summary

    def _select(
        self,
        model: BoundModel,
        X_pool: Any,
        scores: torch.Tensor,
        n_instances: int | None,
        budget: float | None,
        rng: np.random.RandomState,
        group: ProcessGroup | None = None,
    ) -> np.ndarray:
        # Deferred samples (the adapter's, e.g. images without a prediction) go last;
        # the sort is stable, so ties keep pool order and equal inputs give equal selections.
        ranking_np = np.lexsort((scores.cpu().numpy(), self.deferred_))
        if budget is not None:
            return within_budget(ranking_np, self.annotation_costs_, budget)
        if self.selection == "top" or n_instances == 1:
            return ranking_np[:n_instances]
        if group is None:
            outer, inner = gradient_factors(model, X_pool, self.batch_size)
        else:
            shard, sizes = group.shard(model.adapter.n_samples(X_pool))
            local = gradient_factors(model, take_rows(X_pool, shard), self.batch_size)
            outer, inner = (group.gather_rows(t, sizes) for t in local)
        outer = outer * influence_rank_weights(scores).sqrt()[:, None]
        return kmeans_pp_select(outer, inner, n_instances, int(ranking_np[0]), rng)

    # -- helpers ----------------------------------------------------------------
    def _validate_params(self) -> None:
        check_constraints(self, _CONSTRAINTS)

    def _make_solver(self, adapter: ModelAdapter) -> InverseHVPSolver:
        method = adapter.default_inverse_hvp if self.inverse_hvp == "auto" else self.inverse_hvp
        tol = AUTO_CG_TOL.get(method, 1e-5) if self.cg_tol == "auto" else float(self.cg_tol)
        if method == "lissa":
            return LissaSolver(
                depth=self.lissa_depth,
                repeats=self.lissa_repeats,
                scale=self.lissa_scale,
                tol=self.lissa_tol,
            )
        if method == "cg":
            return ConjugateGradientSolver(tol=tol, max_iter=self.cg_max_iter)
        if method == "pcg":
            return ConjugateGradientSolver(
                tol=tol,
                max_iter=self.cg_max_iter,
                preconditioner=KroneckerCurvature("kfac", max_samples=PRECONDITIONER_SAMPLES),
            )
        if method in ("kfac", "ekfac"):
            return KFACSolver(method)
        if method == "lanczos":
            return LanczosSolver(rank=self.lanczos_rank)
        if method == "exact":
            return ExactSolver()
        return IdentitySolver()

    def _unwrap(self, classifier: Any, X_labeled: Any, y_labeled: Any) -> tuple[Any, Any, Any]:
        """Estimator and labelled data: call-time > constructor > learner's training set.

        A learner is a modAL learner or any learner-like object: one with an
        ``estimator`` and ``X_training``/``y_training`` (:func:`_modal.is_learner_like`).
        """
        estimator = classifier.estimator if _modal.is_learner_like(classifier) else classifier
        if X_labeled is None and y_labeled is None:
            X_labeled, y_labeled = self.X_labeled, self.y_labeled
        if X_labeled is None and y_labeled is None:
            X_labeled = getattr(classifier, "X_training", None)
            y_labeled = getattr(classifier, "y_training", None)
        return estimator, X_labeled, y_labeled

    def _store(
        self,
        space: ParameterSpace,
        s_test: torch.Tensor,
        v: torch.Tensor,
        diagnostics: InfluenceDiagnostics,
    ) -> None:
        self.parameter_names_ = space.names
        self.s_test_ = {k: t.clone() for k, t in space.split(s_test).items()}
        self.reference_gradient_ = {k: t.clone() for k, t in space.split(v).items()}
        self.diagnostics_ = diagnostics


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


def _warn_if_all_equal(scores: np.ndarray) -> None:
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
