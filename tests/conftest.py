"""Shared fixtures: small real data (scikit-learn's digits) and small skorch nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier

# Small nets: one thread is as fast, and immune to oversubscription on shared runners.
torch.set_num_threads(1)


class MLP(torch.nn.Module):
    """64 -> hidden -> 10 logits; a dropout and a BatchNorm make eval mode matter."""

    def __init__(self, hidden: int = 16, softmax: bool = False) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(64, hidden)
        self.norm = torch.nn.BatchNorm1d(hidden)
        self.dropout = torch.nn.Dropout(0.2)
        self.out = torch.nn.Linear(hidden, 10)
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.tanh(self.norm(self.hidden(x))))
        logits = self.out(h)
        return logits.softmax(dim=1) if self.softmax else logits


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    """Digits split into labelled (120), reference (60) and pool (200) sets."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    order = np.random.RandomState(0).permutation(len(X))
    parts = {"labeled": order[:120], "reference": order[120:180], "pool": order[180:380]}
    data = {f"X_{k}": X[v] for k, v in parts.items()}
    data.update({f"y_{k}": y[v].astype(np.int64) for k, v in parts.items()})
    return data


def make_net(**kwargs) -> NeuralNetClassifier:
    params = dict(
        module=MLP,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=0.02,
        max_epochs=15,
        batch_size=32,
        train_split=None,
        verbose=0,
    )
    params.update(kwargs)
    return NeuralNetClassifier(**params)


@pytest.fixture
def fitted_net(digits) -> NeuralNetClassifier:
    torch.manual_seed(0)
    return make_net().fit(digits["X_labeled"], digits["y_labeled"])
