"""``InfluenceSampling``: ISAL as a scikit-activeml pool query strategy.

scikit-activeml's pool strategies take the whole data set ``X`` with the
unlabelled entries of ``y`` set to ``missing_label``, fit the classifier
themselves (``fit_clf=True``), and return the indices of the samples to
label, optionally with utilities (higher = more useful). This module gives
ISAL that shape over scikit-activeml's ``SkorchClassifier``; the influence
itself is computed by :class:`~skisal.InfluenceQueryStrategy`.

Importing this module imports scikit-activeml (the ``skactiveml`` extra:
``pip install "skisal[skactiveml]"``, which needs scikit-learn >= 1.6).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import clone

try:
    from skactiveml.base import SingleAnnotatorPoolQueryStrategy
    from skactiveml.classifier import SkorchClassifier
    from skactiveml.utils import (
        MISSING_LABEL,
        check_equal_missing_label,
        check_type,
        is_labeled,
        simple_batch,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "skisal.skactiveml needs scikit-activeml: pip install 'skisal[skactiveml]' "
        "(scikit-activeml needs scikit-learn >= 1.6)."
    ) from exc

from ._repr import SummarisedArraysRepr
from ._validation import check_constraints, is_positive_int
from .strategy import InfluenceQueryStrategy

__all__ = ["InfluenceSampling"]

#: InfluenceSampling's own parameter (the forwarded ones are InfluenceQueryStrategy's to check).
_CONSTRAINTS = {"scoring_batch_size": (is_positive_int, "an integer >= 1")}

#: InfluenceQueryStrategy options InfluenceSampling forwards under the same name.
_FORWARDED = (
    "inverse_hvp",
    "damping",
    "curvature",
    "lissa_depth",
    "lissa_repeats",
    "lissa_scale",
    "lissa_tol",
    "hessian_batch_size",
    "cg_max_iter",
    "cg_tol",
    "lanczos_rank",
    "hessian_subsample",
    "parameters",
    "adapter",
    "selection",
    "min_reference_accuracy",
    "device",
    "scoring",
    "progress",
    "autocast",
)


class InfluenceSampling(SummarisedArraysRepr, SingleAnnotatorPoolQueryStrategy):
    """Influence Selection for Active Learning (ISAL) for scikit-activeml.

    Utilities are negated influences, ``-I(z, R)`` with
    ``I(z, R) = -grad l(R)^T (H + damping I)^-1 G_z`` (Liu et al., ICCV 2021):
    the sample whose labelling is predicted to lower the loss on the
    reference set ``R`` most has the highest utility. ``H`` is the curvature
    of the training loss over the labelled samples of ``(X, y)``; ``G_z`` the
    loss gradient at the model's own top-1 prediction. See
    :class:`~skisal.InfluenceQueryStrategy` for the method and its options,
    which this class forwards unchanged.

    Parameters
    ----------
    X_reference, y_reference : array-like, optional
        The reference set ``R``, labels in the classifier's label space (the
        paper uses a validation set). When omitted, the labelled samples of
        ``(X, y)`` are used (the paper's ISAL_v3 ablation).
    inverse_hvp, damping, curvature, lissa_depth, lissa_repeats, lissa_scale, \
lissa_tol, hessian_batch_size, cg_max_iter, cg_tol, lanczos_rank, hessian_subsample, \
parameters, adapter, selection, min_reference_accuracy, device, scoring, progress, autocast
        As in :class:`~skisal.InfluenceQueryStrategy`, with the same
        defaults. With ``selection="auto"`` (class-balanced margin on a model
        wrong on most of the reference set, else as "diverse") or
        ``"diverse"`` (influence-weighted k-means++), the
        batch is the strategy's own picks: ``utilities[b]`` are the same
        influences with the first ``b`` picks masked, not a ranking that
        explains pick ``b``. ``"top"`` takes the highest utilities.
    scoring_batch_size : int, default=256
        Samples per forward pass (``batch_size`` of
        :class:`~skisal.InfluenceQueryStrategy`; renamed because ``query``'s
        ``batch_size`` is the number of samples to select).
    missing_label : scalar, str, np.nan or None, default=np.nan
        Value marking unlabelled entries of ``y``.
    random_state : int, RandomState instance or None, default=None
        Seeds the network's initialisation when ``query`` fits the
        classifier (``fit_clf=True``; torch's global generator is left as it
        was), the solver's sampling (the K-FAC sketch of the default "pcg",
        LiSSA, ``hessian_subsample``) and the tie-breaking between equal
        utilities: the same value gives the same result.

    Attributes
    ----------
    influence_strategy_ : InfluenceQueryStrategy
        The strategy that scored the last query: its ``scores_``,
        ``s_test_`` and ``diagnostics_`` describe it. Absent when the last
        query had no labelled sample and no reference set.

    Notes
    -----
    With no labelled sample, ``H`` is zero: ``s_test = grad l(R) / damping``
    when ``X_reference`` is given (gradient similarity, scaled), and without a
    reference set every influence is zero and the query is random (a
    ``UserWarning`` says so). ``sample_weight`` is checked and must be uniform
    over the labelled samples: ``SkorchClassifier`` does not train with
    weights, and ISAL's curvature is the plain mean over the labelled set.

    Examples
    --------
    One query over ``X``, of which the first 20 samples are labelled:

    >>> from skactiveml.classifier import SkorchClassifier
    >>> from skactiveml.utils import MISSING_LABEL
    >>> from skisal.skactiveml import InfluenceSampling
    >>> y_partial = np.full(60, MISSING_LABEL)
    >>> y_partial[:20] = y[:20]
    >>> clf = SkorchClassifier(torch.nn.Linear(4, 2), classes=[0.0, 1.0], random_state=0,
    ...     neural_net_param_dict=dict(max_epochs=5, train_split=None, verbose=0))
    >>> qs = InfluenceSampling(random_state=0)
    >>> idx, utilities = qs.query(X, y_partial, clf, batch_size=3, return_utilities=True)
    >>> idx.shape, utilities.shape, bool(np.isnan(utilities[0, :20]).all())
    ((3,), (3, 60), True)
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
        adapter: Any = None,
        selection: str = "auto",
        min_reference_accuracy: float = 0.5,
        scoring_batch_size: int = 256,
        device: Any = None,
        scoring: str = "auto",
        progress: bool = False,
        autocast: Any = False,
        missing_label: Any = MISSING_LABEL,
        random_state: Any = None,
    ) -> None:
        super().__init__(missing_label=missing_label, random_state=random_state)
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
        self.scoring_batch_size = scoring_batch_size
        self.device = device
        self.scoring = scoring
        self.progress = progress
        self.autocast = autocast

    def query(
        self,
        X: Any,
        y: Any,
        clf: Any,
        fit_clf: bool = True,
        sample_weight: Any = None,
        candidates: Any = None,
        batch_size: int = 1,
        return_utilities: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Select the samples whose labels would lower the reference loss most.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The data set: labelled and unlabelled samples.
        y : array-like of shape (n_samples,)
            Labels, ``missing_label`` for unlabelled samples.
        clf : skactiveml.classifier.SkorchClassifier
            The network (criterion ``CrossEntropyLoss`` on logits, or
            ``NLLLoss`` on log-probabilities). Never modified: with
            ``fit_clf=True`` a clone is fitted on ``(X, y)``.
        fit_clf : bool, default=True
            Fit a clone of ``clf`` on ``(X, y)`` first; with False, ``clf``
            must be fitted.
        sample_weight : array-like of shape (n_samples,), optional
            Must be None or uniform over the labelled samples (see Notes of
            the class).
        candidates : None, array-like of int or array-like of samples, optional
            None: the unlabelled samples of ``X``; indices: those samples of
            ``X``; samples of shape (n_candidates, ...): these samples.
        batch_size : int, default=1
            Number of samples to select.
        return_utilities : bool, default=False
            Also return the utilities.

        Returns
        -------
        query_indices : ndarray of shape (batch_size,)
            Indices into ``X``, or into ``candidates`` when it holds samples.
        utilities : ndarray of shape (batch_size, n_samples or n_candidates)
            With ``return_utilities``: row ``b`` holds ``-I(z, R)`` of every
            candidate, NaN for samples that are not candidates (the labelled
            ones, by default) and for the ``b`` samples picked before.

        Raises
        ------
        TypeError
            If ``clf`` is not a ``SkorchClassifier`` or ``fit_clf`` is not a bool.
        skisal.exceptions.InvalidParameterError
            For an invalid option, naming it (a ``ValueError`` and a ``TypeError``).
        ValueError
            For invalid data or ``sample_weight``, naming it.
        """
        X, y, candidates, batch_size, return_utilities = self._validate_data(
            X, y, candidates, batch_size, return_utilities, reset=True
        )
        X_cand, mapping = self._transform_candidates(candidates, X, y)
        check_type(clf, "clf", SkorchClassifier)
        check_equal_missing_label(clf.missing_label, self.missing_label_)
        check_type(fit_clf, "fit_clf", bool)
        labeled = is_labeled(y, self.missing_label_)
        self._check_sample_weight(sample_weight, len(X), labeled)
        check_constraints(self, _CONSTRAINTS)
        fit_seed, solver_seed = self.random_state_.randint(2**31 - 1, size=2)
        influence = self._influence_strategy(int(solver_seed))
        influence._validate_params()  # invalid options fail even when nothing is scored
        self.__dict__.pop("influence_strategy_", None)  # a query's own, or none

        if fit_clf:
            # skorch initialises the network from torch's global generator: seed a fork of
            # it, so that the same random_state gives the same network and the caller's
            # generator is left as it was.
            with torch.random.fork_rng():
                torch.manual_seed(int(fit_seed))
                clf = clone(clf).fit(X, y)
        utilities_cand = np.full(len(X_cand), np.nan)
        order = None
        if len(X_cand):
            scores, order = self._scores(influence, clf, X[labeled], y[labeled], X_cand, batch_size)
            utilities_cand = -scores
        if mapping is None:
            utilities = utilities_cand
        else:
            utilities = np.full(len(X), np.nan)
            utilities[mapping] = utilities_cand
        if order is None:
            return simple_batch(
                utilities,
                self.random_state_,
                batch_size=batch_size,
                return_utilities=return_utilities,
            )
        return self._ordered_batch(utilities, order, mapping, return_utilities)

    # -- steps of a query ------------------------------------------------------
    def _influence_strategy(self, seed: int) -> InfluenceQueryStrategy:
        options = {name: getattr(self, name) for name in _FORWARDED}
        return InfluenceQueryStrategy(
            self.X_reference,
            self.y_reference,
            batch_size=self.scoring_batch_size,
            random_state=seed,
            return_scores=True,
            **options,
        )

    @staticmethod
    def _check_sample_weight(sample_weight: Any, n_samples: int, labeled: np.ndarray) -> None:
        if sample_weight is None:
            return
        weights = np.asarray(sample_weight)
        if weights.dtype.kind not in "iuf" or weights.ndim != 1:
            raise TypeError(
                "sample_weight must be a 1-D array of numbers, got "
                f"{type(sample_weight).__name__} of dtype {weights.dtype}."
            )
        if len(weights) != n_samples:
            raise ValueError(
                f"sample_weight has {len(weights)} entries but X has {n_samples} samples."
            )
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("sample_weight must hold finite weights >= 0.")
        on_labeled = weights[labeled]
        if len(on_labeled) and not np.all(on_labeled == on_labeled[0]):
            raise ValueError(
                "InfluenceSampling supports only uniform sample_weight over the labelled "
                "samples: SkorchClassifier does not train with weights and ISAL's curvature is "
                "the plain mean over the labelled set. Pass sample_weight=None."
            )

    def _scores(
        self,
        influence: InfluenceQueryStrategy,
        clf: Any,
        X_lab: np.ndarray,
        y_lab: np.ndarray,
        X_cand: np.ndarray,
        batch_size: int,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Influence of every candidate and, unless ``selection="top"``, the picks."""
        if len(X_lab) == 0:
            if self.X_reference is None:
                warnings.warn(
                    "InfluenceSampling: no labelled sample and no X_reference, so every "
                    "influence is 0 and this query is random. Pass X_reference/y_reference "
                    "to select by influence from the first query.",
                    UserWarning,
                    stacklevel=3,
                )
                return np.zeros(len(X_cand)), None
            # H is the zero matrix: s_test = grad l(R) / damping.
            if self.damping == 0:
                raise ValueError(
                    "damping=0 with no labelled sample leaves (H + damping I) = 0 singular: "
                    "use damping > 0, or label some samples first."
                )
            influence.set_params(inverse_hvp="identity")
            self.influence_strategy_ = influence
            return influence.influence(clf, X_cand) / float(self.damping), None
        self.influence_strategy_ = influence
        if self.selection == "top" or (self.selection == "diverse" and batch_size == 1):
            return influence.influence(clf, X_cand, X_labeled=X_lab, y_labeled=y_lab), None
        if batch_size > len(X_cand):  # as scikit-activeml's simple_batch says it
            warnings.warn(
                f"'batch_size={batch_size}' is larger than number of candidate samples in "
                f"'utilities'. Instead, 'batch_size={len(X_cand)}' was set.",
                UserWarning,
                stacklevel=3,
            )
        order, _ = influence(
            clf, X_cand, min(batch_size, len(X_cand)), X_labeled=X_lab, y_labeled=y_lab
        )
        return influence.scores_.copy(), np.asarray(order)

    @staticmethod
    def _ordered_batch(
        utilities: np.ndarray,
        order: np.ndarray,
        mapping: np.ndarray | None,
        return_utilities: bool,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The strategy's picks in scikit-activeml's format (indices into X or candidates)."""
        picks = order if mapping is None else np.asarray(mapping)[order]
        if not return_utilities:
            return picks
        rows = np.repeat(utilities[None, :], len(picks), axis=0)
        for b in range(1, len(picks)):
            rows[b, picks[:b]] = np.nan
        return picks, rows
