"""Adapters: how each model family computes its loss and pseudo-labels."""

from __future__ import annotations

from typing import Any

from .base import ModelAdapter
from .skactiveml_classifier import SkactivemlSkorchAdapter, is_skactiveml_skorch
from .skorch_classifier import SkorchClassifierAdapter, _split_pipeline

__all__ = [
    "ModelAdapter",
    "SkactivemlSkorchAdapter",
    "SkorchClassifierAdapter",
    "resolve_adapter",
]


def resolve_adapter(estimator: Any, adapter: ModelAdapter | None = None) -> ModelAdapter:
    """Return ``adapter`` if given, else the adapter for ``estimator``'s family.

    An estimator class may name its own adapter by defining a method
    ``_skisal_adapter(self) -> ModelAdapter`` (skisal's own detection
    estimator does); skorch nets, and Pipelines ending in one, get a
    :class:`SkorchClassifierAdapter`; scikit-activeml's ``SkorchClassifier``
    gets a :class:`SkactivemlSkorchAdapter`; a bare torchvision FCOS, RetinaNet or
    Faster R-CNN module gets a :class:`skisal.detection.DetectionAdapter`.

    Parameters
    ----------
    estimator : object
        The estimator to score (a modAL learner's ``estimator``), or a
        Pipeline ending in one.
    adapter : ModelAdapter, optional
        An explicit adapter, returned as it is.

    Returns
    -------
    ModelAdapter
        ``adapter``, or a new adapter for ``estimator``'s family.

    Raises
    ------
    TypeError
        If ``adapter`` is not a :class:`ModelAdapter`, or no adapter is known
        for ``estimator``.

    Examples
    --------
    >>> import torch
    >>> from skorch import NeuralNetClassifier
    >>> from skisal import SkorchClassifierAdapter, resolve_adapter
    >>> net = NeuralNetClassifier(torch.nn.Linear, module__in_features=4,
    ...     module__out_features=2)
    >>> resolve_adapter(net)
    SkorchClassifierAdapter(top_k=1)
    >>> resolve_adapter(net, SkorchClassifierAdapter(top_k=2))
    SkorchClassifierAdapter(top_k=2)
    >>> resolve_adapter(torch.nn.Linear(4, 2))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: classifier must be a skorch NeuralNet/NeuralNetClassifier, ... got Linear. ...
    """
    if adapter is not None:
        if not isinstance(adapter, ModelAdapter):
            raise TypeError(
                f"adapter must be a skisal ModelAdapter instance, got {type(adapter).__name__}."
            )
        return adapter
    last = _split_pipeline(estimator)[1]
    hook = getattr(last, "_skisal_adapter", None)
    if callable(hook):
        return hook()
    try:
        from skorch import NeuralNet
    except ImportError:  # pragma: no cover - skorch is a dependency
        NeuralNet = ()
    if isinstance(last, NeuralNet):
        return SkorchClassifierAdapter()
    if is_skactiveml_skorch(last):
        return SkactivemlSkorchAdapter()
    try:
        from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet

        detectors: tuple[type, ...] = (FCOS, RetinaNet, FasterRCNN)
    except ImportError:  # torchvision is only needed for detection
        detectors = ()
    if isinstance(last, detectors):  # a bare torchvision detector
        from ..detection import DetectionAdapter

        return DetectionAdapter()
    raise TypeError(
        "classifier must be a skorch NeuralNet/NeuralNetClassifier, a scikit-learn Pipeline "
        "ending in one, scikit-activeml's SkorchClassifier, or a modAL learner wrapping one; got "
        f"{type(last).__name__}. For another model family pass adapter=ModelAdapter subclass."
    )
