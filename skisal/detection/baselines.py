"""An uncertainty baseline for detection that needs no special architecture.

Random sampling is :class:`skisal.RandomSampling` (it works on any pool).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _modal
from .._validation import check_query_size, within_budget
from ._validation import check_images

__all__ = ["AGGREGATES", "detection_entropy", "detection_uncertainty"]

#: How :func:`detection_entropy` combines an image's detection entropies.
AGGREGATES = ("max", "mean", "sum")


def detection_entropy(scores: torch.Tensor, aggregate: str = "max") -> float:
    """One image's uncertainty from its detection scores: aggregated binary entropy.

    Each detection's score ``p`` is read as the probability that it is a true
    object of its class, with entropy ``-p log p - (1 - p) log(1 - p)`` (in
    nats). An image without detections has uncertainty 0.

    Parameters
    ----------
    scores : torch.Tensor of shape (k,)
        Detection scores in [0, 1].
    aggregate : {"max", "mean", "sum"}, default="max"
        "max": the image's most uncertain detection (the paper's "Entropy"
        baseline for detection); "sum" favours images with many detections
        (box-hungry: see the per-box comparison in the user guide).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``aggregate`` is unknown.

    Examples
    --------
    >>> import torch
    >>> round(detection_entropy(torch.tensor([0.5, 0.9])), 4)
    0.6931
    >>> detection_entropy(torch.tensor([]))
    0.0
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}.")
    if scores.numel() == 0:
        return 0.0
    p = scores.double().clamp(1e-12, 1 - 1e-12)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log())
    return float(getattr(entropy, aggregate)())


def detection_uncertainty(
    classifier: Any,
    X_pool: Any,
    n_instances: int | None = None,
    *,
    budget: float | None = None,
    aggregate: str = "max",
    return_scores: str | bool = "auto",
) -> Any:
    """modAL query strategy: the pool images whose detections are most uncertain.

    Parameters
    ----------
    classifier : modAL learner or TorchvisionDetector
        Anything with ``predict(X) -> list of dicts`` holding ``"scores"``.
    X_pool : sequence of images
        Float ``(3, H, W)`` images.
    n_instances : int, optional
        Images to select (1 when neither it nor ``budget`` is given).
    budget : float, optional
        Select, most uncertain first, while the summed number of predicted
        boxes stays within ``budget`` (at least one image), as
        :class:`skisal.InfluenceQueryStrategy` does.
    aggregate : {"max", "mean", "sum"}, default="max"
        How an image's detection entropies combine (see
        :func:`detection_entropy`).
    return_scores : "auto" or bool, default="auto"
        ``(indices, uncertainties)`` (modAL 0.4.2.x) or indices (0.4.1).

    Returns
    -------
    indices : ndarray
        Selected pool indices, most uncertain first.
    uncertainties : ndarray
        Their uncertainty (only with the modAL 0.4.2.x protocol).

    Raises
    ------
    ValueError, TypeError
        For an invalid pool, size or ``aggregate``.

    Examples
    --------
    >>> from skisal.detection import TorchvisionDetector, make_shapes
    >>> X, y = make_shapes(6, random_state=0)
    >>> detector = TorchvisionDetector("fcos_small", num_classes=4, min_size=64,
    ...     max_size=64, epochs=1, random_state=0).fit(X[:3], y[:3])
    >>> detection_uncertainty(detector, X[3:], n_instances=2, return_scores=False).shape
    (2,)
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}.")
    images = check_images(X_pool, "X_pool")
    n_instances = check_query_size(n_instances, budget, len(images))
    predictions = classifier.predict(images)
    uncertainty = np.array([detection_entropy(p["scores"], aggregate) for p in predictions])
    order = np.argsort(-uncertainty, kind="stable")
    if budget is None:
        order = order[:n_instances]
    else:
        costs = np.array([len(p["boxes"]) for p in predictions], dtype=np.float64)
        order = within_budget(order, costs, budget)
    with_scores = _modal.returns_scores(return_scores, classifier)
    return _modal.format_result(order, uncertainty[order], with_scores)
