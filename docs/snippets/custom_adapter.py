"""Your own model family in skisal: a plain PyTorch classifier without skorch.

The user guide's page "Your own model family" (docs/guide/adapters.md) shows this file,
and tests/test_adapter_registry.py runs it.
"""

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.utils.validation import check_is_fitted
from torch import nn

from skisal import InfluenceQueryStrategy
from skisal.adapters import ModelAdapter, register_adapter


# [start-family]
# 1. The model family: a scikit-learn classifier that trains a small torch network.
class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """A one-hidden-layer network trained full-batch with Adam."""

    def __init__(self, hidden=16, epochs=200, lr=0.05, random_state=0):
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.random_state = random_state

    def fit(self, X, y):
        self.classes_, codes = np.unique(y, return_inverse=True)
        torch.manual_seed(self.random_state)
        self.module_ = nn.Sequential(
            nn.Linear(X.shape[1], self.hidden),
            nn.Tanh(),
            nn.Linear(self.hidden, len(self.classes_)),
        )
        optimizer = torch.optim.Adam(self.module_.parameters(), lr=self.lr)
        inputs = torch.as_tensor(X, dtype=torch.float32)
        targets = torch.as_tensor(codes)
        for _ in range(self.epochs):
            optimizer.zero_grad()
            nn.functional.cross_entropy(self.module_(inputs), targets).backward()
            optimizer.step()
        return self

    def predict(self, X):
        with torch.no_grad():
            logits = self.module_(torch.as_tensor(X, dtype=torch.float32))
        return self.classes_[logits.argmax(dim=1).numpy()]


# [end-family]


# [start-adapter]
# 2. Its adapter: the network to differentiate, its inputs and targets, and its losses.
class TorchMLPAdapter(ModelAdapter):
    """ISAL for TorchMLPClassifier: cross-entropy on logits, top-1 pseudo-labels."""

    def check_estimator(self, estimator):
        if not isinstance(estimator, TorchMLPClassifier):
            raise TypeError(f"expected a TorchMLPClassifier, got {type(estimator).__name__}.")
        check_is_fitted(estimator, "module_")

    def get_module(self, estimator):
        return estimator.module_

    def get_inputs(self, estimator, X, indices, device):
        return torch.as_tensor(np.asarray(X)[indices], dtype=torch.float32, device=device)

    def get_targets(self, estimator, y, indices, device):
        codes = np.searchsorted(estimator.classes_, np.asarray(y)[indices])
        return torch.as_tensor(codes, device=device)

    def per_sample_loss(self, estimator, outputs, targets):
        return nn.functional.cross_entropy(outputs, targets, reduction="none")

    def pseudo_label_loss(self, estimator, outputs):
        pseudo_labels = outputs.detach().argmax(dim=1)  # the model's own prediction, fixed
        return self.per_sample_loss(estimator, outputs, pseudo_labels)


# [end-adapter]

# [start-register]
# 3. Register it once: from now on skisal resolves the adapter by itself.
register_adapter(TorchMLPClassifier, TorchMLPAdapter)

# 4. Query as with any other model (or pass the strategy to a modAL ActiveLearner).
X, y = make_classification(n_samples=200, n_features=8, random_state=0)
X = X.astype(np.float32)
X_labeled, y_labeled = X[:40], y[:40]
X_reference, y_reference = X[40:80], y[40:80]
X_pool = X[80:]

clf = TorchMLPClassifier().fit(X_labeled, y_labeled)
strategy = InfluenceQueryStrategy(
    X_reference, y_reference, X_labeled=X_labeled, y_labeled=y_labeled, random_state=0
)
idx, _ = strategy(clf, X_pool, n_instances=5)
print("pool samples to label next:", idx)
# [end-register]
