"""Baseline query strategies for comparing with ISAL in the same modAL loop.

* :class:`RandomSampling`: seeded uniform selection;
* :class:`CoresetSampling`: k-center greedy on the network's penultimate
  features (Sener & Savarese, ICLR 2018), the paper's strongest comparison;
* :func:`gradient_similarity`: ISAL with ``s_test = grad l(R)`` (the paper's
  ablation of the inverse Hessian).

modAL's own ``uncertainty_sampling``, ``margin_sampling`` and
``entropy_sampling`` need no wrapper. Every strategy here speaks both modAL
protocols, like :class:`~skisal.InfluenceQueryStrategy` (``return_scores``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from . import _modal
from ._device import module_for
from ._repr import SummarisedArraysRepr
from ._validation import (
    check_constraints,
    check_data,
    check_n_instances,
    check_same_sample_shape,
    is_positive_int,
    n_rows,
)
from .adapters import ModelAdapter, resolve_adapter
from .engine.layers import LayerProbe
from .engine.model import batches, evaluation_mode
from .exceptions import NonFiniteScoreError
from .strategy import InfluenceQueryStrategy

__all__ = [
    "CoresetSampling",
    "RandomSampling",
    "gradient_similarity",
    "k_center_greedy",
    "penultimate_features",
]


#: Each baseline's parameters: name -> (check, what was expected), checked at call time.
_RANDOM_CONSTRAINTS = {"return_scores": _modal.RETURN_SCORES}
_CORESET_CONSTRAINTS = {
    "return_scores": _modal.RETURN_SCORES,
    "batch_size": (is_positive_int, "an integer >= 1"),
}


class RandomSampling(BaseEstimator):
    """Uniformly random selection, reproducible under ``random_state``.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        An integer gives the same draw on every call with the same pool size
        (scikit-learn's convention); reseed between queries, e.g. with
        ``set_params(random_state=...)``, for independent draws.
    return_scores : "auto" or bool, default="auto"
        Return ``(indices, scores)`` (modAL 0.4.2.x) or indices only (0.4.1);
        "auto" follows the calling learner, else the installed modAL.

    Examples
    --------
    >>> from skisal.baselines import RandomSampling
    >>> strategy = RandomSampling(random_state=0, return_scores=False)
    >>> idx = strategy(None, X_pool, n_instances=3)
    >>> idx.shape, len(set(idx.tolist()))
    ((3,), 3)

    The same integer ``random_state`` gives the same draw:

    >>> bool(np.array_equal(idx, strategy(None, X_pool, n_instances=3)))
    True
    """

    def __init__(self, random_state: Any = None, return_scores: str | bool = "auto") -> None:
        self.random_state = random_state
        self.return_scores = return_scores

    def __call__(self, classifier: Any, X_pool: Any, n_instances: int = 1) -> Any:
        """Select ``n_instances`` pool indices uniformly without replacement.

        Parameters
        ----------
        classifier : any
            The learner or estimator (unused; part of modAL's protocol).
        X_pool : array-like or torch.Tensor
            Unlabelled samples; only their number is read.
        n_instances : int, default=1
            Number of samples to select.

        Returns
        -------
        indices : ndarray of shape (n_instances,)
            Selected pool indices, distinct.
        scores : ndarray of shape (n_instances,)
            The uniform draws that ranked them (modAL 0.4.2.x protocol only).

        Raises
        ------
        skisal.exceptions.InvalidParameterError
            For an invalid ``return_scores`` (a ``ValueError`` and a ``TypeError``).
        ValueError, TypeError
            For an empty pool or an ``n_instances`` outside ``1..len(X_pool)``.
        """
        check_constraints(self, _RANDOM_CONSTRAINTS)
        if X_pool is None or not hasattr(X_pool, "__len__"):
            raise TypeError(f"X_pool must be a sequence of samples, got {type(X_pool).__name__}.")
        n_pool = n_rows(X_pool)
        if n_pool == 0:
            raise ValueError("X_pool is empty: it must hold at least one sample.")
        n_instances = check_n_instances(n_instances, n_pool)
        utility = check_random_state(self.random_state).random_sample(n_pool)
        order = np.argsort(-utility, kind="stable")[:n_instances]
        with_scores = _modal.returns_scores(self.return_scores, classifier)
        return _modal.format_result(order, utility[order], with_scores)


def penultimate_features(
    estimator: Any,
    X: Any,
    *,
    layer: str | None = None,
    adapter: ModelAdapter | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """The input of one layer of the network, for every sample of ``X``.

    Parameters
    ----------
    estimator : skorch net, Pipeline ending in one, or modAL learner
        A fitted model; its mode and parameters are left unchanged.
    X : array-like or torch.Tensor
        Samples.
    layer : str, optional
        Name of the module (as in ``named_modules()``) whose *input* is
        returned, flattened per sample. Default: the last ``nn.Linear`` the forward pass runs, whose
        input is the penultimate representation of most classifiers.
    adapter : ModelAdapter, optional
        Resolved from the estimator when None.
    batch_size : int, default=256
        Samples per forward pass.
    device : str or torch.device, optional
        Where to compute (default: the module's device).

    Returns
    -------
    torch.Tensor of shape (n_samples, n_features)
        float32 features on ``device``.

    Raises
    ------
    ValueError
        If ``layer`` names no module, or the network has no ``nn.Linear``.

    Examples
    --------
    >>> from skisal.baselines import penultimate_features
    >>> penultimate_features(net, X_pool).shape  # the input of the net's one nn.Linear
    torch.Size([30, 4])
    """
    estimator = estimator.estimator if _modal.is_learner_like(estimator) else estimator
    adapter = resolve_adapter(estimator, adapter)
    adapter.check_estimator(estimator)
    module, device = module_for(adapter, estimator, device)
    features = []
    with LayerProbe(module, layer) as probe, evaluation_mode(module), torch.no_grad():
        for idx in batches(adapter.n_samples(X), batch_size):
            adapter.forward(estimator, module, adapter.get_inputs(estimator, X, idx, device))
            features.append(probe.take()[0].flatten(1).float())
    return torch.cat(features)


def k_center_greedy(
    pool: torch.Tensor,
    centers: torch.Tensor | None,
    n_instances: int,
    *,
    random_state: Any = None,
    chunk_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center selection: repeatedly take the pool point farthest from
    the labelled set and the points already taken.

    Parameters
    ----------
    pool : torch.Tensor of shape (n_pool, d)
        Features of the candidates.
    centers : torch.Tensor of shape (n_centers, d) or None
        Features of the labelled set. With none, the first point is drawn at
        random (``random_state``).
    n_instances : int
        Points to select, at most ``n_pool``.
    random_state : int, RandomState instance or None, default=None
        Seeds the first point when there are no centres.
    chunk_size : int, default=4096
        Pool rows per distance computation (bounds memory).

    Returns
    -------
    indices : ndarray of shape (n_instances,)
        Selected pool rows, in selection order.
    distances : ndarray of shape (n_instances,)
        Each one's distance to the nearest centre when it was selected
        (non-increasing); without centres, the first (random) point's is its
        distance to the farthest pool point.

    Raises
    ------
    ValueError, TypeError
        If ``n_instances`` is not an integer between 1 and ``n_pool``.

    Examples
    --------
    >>> import torch
    >>> pool = torch.tensor([[0.0], [1.0], [5.0], [10.0]])
    >>> k_center_greedy(pool, torch.tensor([[0.0]]), 2)[0].tolist()
    [3, 2]
    """
    n_pool = pool.shape[0]
    n_instances = check_n_instances(n_instances, n_pool)
    nearest = torch.full((n_pool,), float("inf"), dtype=torch.float64, device=pool.device)

    def update(new_centers: torch.Tensor) -> None:
        for start in range(0, n_pool, chunk_size):
            block = torch.cdist(pool[start : start + chunk_size].double(), new_centers.double())
            nearest[start : start + chunk_size] = torch.minimum(
                nearest[start : start + chunk_size], block.min(dim=1).values
            )

    if centers is not None and centers.shape[0]:
        for start in range(0, centers.shape[0], chunk_size):
            update(centers[start : start + chunk_size])
    indices, distances = [], []
    for _ in range(n_instances):
        if torch.isinf(nearest).all():  # no centre yet: a random start
            choice = int(check_random_state(random_state).randint(n_pool))
            update(pool[choice : choice + 1])
            # Its score is its distance to the farthest pool point (the next
            # pick's), not an infinite distance to no centre.
            distances.append(float(nearest.max()))
        else:
            choice = int(torch.argmax(nearest))
            distances.append(float(nearest[choice]))
            update(pool[choice : choice + 1])
        indices.append(choice)
        nearest[choice] = -1.0  # never again
    return np.asarray(indices, dtype=np.int64), np.asarray(distances)


class CoresetSampling(SummarisedArraysRepr, BaseEstimator):
    """Core-set selection: k-center greedy on penultimate features.

    The labelled set (the learner's ``X_training``, or ``X_labeled``) gives the
    initial centres; each selected sample is the pool sample farthest from
    every centre so far (Sener & Savarese, ICLR 2018; the comparison the ISAL
    paper reports annotation savings against).

    Parameters
    ----------
    layer : str, optional
        Module whose input gives the features (see
        :func:`penultimate_features`); default the last ``nn.Linear``.
    adapter : ModelAdapter, optional
        Resolved from the estimator when None.
    batch_size : int, default=256
        Samples per forward pass.
    device : str or torch.device, optional
        Where to compute (default: the module's device).
    random_state : int, RandomState instance or None, default=None
        Seeds the first point when there is no labelled data.
    X_labeled : array-like, optional
        Labelled samples when the learner keeps none (``DeepActiveLearner``
        or a bare estimator).
    return_scores : "auto" or bool, default="auto"
        As :class:`RandomSampling`; the scores are the distances at selection.

    Examples
    --------
    In a modAL loop the learner's ``X_training`` gives the initial centres:

    >>> from modAL.models import ActiveLearner
    >>> from skisal.baselines import CoresetSampling
    >>> learner = ActiveLearner(estimator=make_net(), query_strategy=CoresetSampling(),
    ...                         X_training=X_labeled, y_training=y_labeled)
    >>> idx, X_selected = learner.query(X_pool, n_instances=3)
    >>> X_selected.shape
    (3, 4)

    Called directly, with the distance of each pick to its nearest centre:

    >>> strategy = CoresetSampling(X_labeled=X_labeled, return_scores=True)
    >>> idx, distances = strategy(net, X_pool, n_instances=3)
    >>> bool(np.all(np.diff(distances) <= 0))  # farthest first
    True
    """

    def __init__(
        self,
        *,
        layer: str | None = None,
        adapter: ModelAdapter | None = None,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        random_state: Any = None,
        X_labeled: Any = None,
        return_scores: str | bool = "auto",
    ) -> None:
        self.layer = layer
        self.adapter = adapter
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.X_labeled = X_labeled
        self.return_scores = return_scores

    def __call__(
        self, classifier: Any, X_pool: Any, n_instances: int = 1, *, X_labeled: Any = None
    ) -> Any:
        """Select ``n_instances`` pool samples by k-center greedy.

        Parameters
        ----------
        classifier : modAL learner, skorch net or Pipeline ending in one
            A fitted model.
        X_pool : array-like or torch.Tensor
            Unlabelled samples; never modified.
        n_instances : int, default=1
            Number of samples to select.
        X_labeled : array-like, optional
            Labelled samples (overrides the constructor's and the learner's).

        Returns
        -------
        indices : ndarray of shape (n_instances,)
            Selected pool indices, in selection order.
        scores : ndarray of shape (n_instances,)
            Distance of each to its nearest centre when selected (modAL
            0.4.2.x protocol only).

        Raises
        ------
        skisal.exceptions.InvalidParameterError
            For an invalid parameter, naming it (a ``ValueError`` and a ``TypeError``).
        ValueError, TypeError
            For invalid input, naming the argument.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        """
        _modal.reraise_on_retry(self)
        try:
            indices, distances = self._select(classifier, X_pool, n_instances, X_labeled)
        except BaseException as exc:  # Ctrl-C too: modAL's bare except would retry it
            _modal.note_failure(exc, self)
            raise
        with_scores = _modal.returns_scores(self.return_scores, classifier)
        return _modal.format_result(indices, distances, with_scores)

    def _select(
        self, classifier: Any, X_pool: Any, n_instances: int, X_labeled: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        check_constraints(self, _CORESET_CONSTRAINTS)
        X_pool = check_data(X_pool, "X_pool", allow_non_numeric=True)
        n_instances = check_n_instances(n_instances, n_rows(X_pool))
        if X_labeled is None:
            X_labeled = self.X_labeled
        if X_labeled is None:
            X_labeled = getattr(classifier, "X_training", None)
        if X_labeled is not None and n_rows(X_labeled):
            X_labeled = check_data(X_labeled, "X_labeled", allow_non_numeric=True)
            check_same_sample_shape(X_pool, "X_pool", X_labeled, "X_labeled")
        else:
            X_labeled = None
        options = {"layer": self.layer, "adapter": self.adapter, "batch_size": self.batch_size}
        pool = _features(classifier, X_pool, "X_pool", device=self.device, **options)
        centers = None
        if X_labeled is not None:
            centers = _features(classifier, X_labeled, "X_labeled", device=pool.device, **options)
        return k_center_greedy(pool, centers, n_instances, random_state=self.random_state)


def _features(estimator: Any, X: Any, name: str, **options: Any) -> torch.Tensor:
    """:func:`penultimate_features`, with failures and non-finite features naming ``name``."""
    try:
        features = penultimate_features(estimator, X, **options)
    except torch.cuda.OutOfMemoryError:
        raise
    except RuntimeError as exc:  # raised inside torch or the network
        raise ValueError(
            f"the network cannot take the samples of {name}: {exc}. Give {name} samples of "
            "the shape and dtype the network was trained on."
        ) from exc
    bad = torch.nonzero(~torch.isfinite(features).all(dim=1)).flatten()
    if len(bad):
        raise NonFiniteScoreError(
            f"the network's features are NaN or infinite on {len(bad)} sample(s) of {name} "
            f"(first rows: {bad[:10].tolist()}): check those rows (scaling, extreme values) "
            "or drop them."
        )
    return features


def gradient_similarity(
    X_reference: Any = None, y_reference: Any = None, **kwargs: Any
) -> InfluenceQueryStrategy:
    """ISAL without the inverse Hessian: ``I(z, R) = -grad l(R)^T G_z``.

    The paper's "gradient similarity" ablation (Table 2): the same pseudo-label
    gradients, scored against the reference gradient itself.

    Parameters
    ----------
    X_reference, y_reference : array-like, optional
        The reference set (default: the labelled set).
    **kwargs
        Other :class:`~skisal.InfluenceQueryStrategy` options (``random_state``,
        ``parameters``, ``batch_size``, ``device``, ...).

    Returns
    -------
    InfluenceQueryStrategy
        With ``inverse_hvp="identity"`` and, unless given, ``selection="top"``.

    Examples
    --------
    >>> from skisal.baselines import gradient_similarity
    >>> gradient_similarity(random_state=0).inverse_hvp
    'identity'
    """
    kwargs.setdefault("selection", "top")  # the paper's ablation ranks by the score
    return InfluenceQueryStrategy(X_reference, y_reference, inverse_hvp="identity", **kwargs)
