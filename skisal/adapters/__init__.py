"""Adapters: how each model family computes its loss and pseudo-labels.

:func:`~skisal.resolve_adapter` picks an estimator's adapter from the families
registered with :func:`~skisal.adapters.register_adapter`; this package registers skorch's
nets and scikit-activeml's ``SkorchClassifier``. Other families register
themselves (:mod:`skisal.detection`) or are registered by their users.
"""

from __future__ import annotations

from skorch import NeuralNet

from .base import ModelAdapter
from .registry import register_adapter, resolve_adapter
from .skactiveml_classifier import SkactivemlSkorchAdapter
from .skorch_classifier import SkorchClassifierAdapter

__all__ = [
    "ModelAdapter",
    "SkactivemlSkorchAdapter",
    "SkorchClassifierAdapter",
    "register_adapter",
    "resolve_adapter",
]

register_adapter(NeuralNet, SkorchClassifierAdapter, default=True)
# A string: skisal never imports scikit-activeml itself (the skactiveml extra).
register_adapter("skactiveml.classifier.SkorchClassifier", SkactivemlSkorchAdapter, default=True)
