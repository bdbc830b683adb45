"""The set-up every example in skisal's API documentation starts from.

pytest runs it afresh before each doctest (``conftest.py`` at the repository root), so
examples can use these names without repeating them, and one example's changes never
leak into another's.
"""

import numpy as np
import torch
from skorch import NeuralNetClassifier

torch.manual_seed(0)
rng = np.random.RandomState(0)
X = rng.randn(60, 4).astype(np.float32)  # 60 samples with 4 features
y = (X[:, 0] > 0).astype(np.int64)  # two classes
X_labeled, y_labeled = X[:20], y[:20]  # what the model was trained on
X_reference, y_reference = X[20:30], y[20:30]  # ISAL's reference set
X_pool = X[30:]  # 30 unlabelled samples to choose from


def make_net(**params):
    """A small skorch classifier (a linear layer on 4 features), not fitted yet."""
    defaults = dict(
        module=torch.nn.Linear,
        module__in_features=4,
        module__out_features=2,
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=5,
        train_split=None,
        verbose=0,
    )
    return NeuralNetClassifier(**{**defaults, **params})


net = make_net().fit(X_labeled, y_labeled)  # a fitted net
