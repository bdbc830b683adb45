"""Shared pieces of the influence-mode study: datasets, splits, networks, the AL loop.

Two tasks:

* ``digits``: scikit-learn's 8x8 digits, the CNN of ``examples/digits_active_learning.py``
  (40 epochs, Adam 1e-2, batch 64), test 500, a reference *bank* of 300 held out for every
  strategy (ISAL's reference set is its first 100 rows unless a variant says otherwise),
  initial 50, 10 queries of 50 (550 labels at the end), pool = the remaining 947.
* ``breast_cancer``: ``load_breast_cancer`` (569 x 30, 2 classes), MLP 30-32-2 (ReLU,
  Adam 1e-2, 100 epochs, batch 32), StandardScaler fitted on the initial labelled set, test 169,
  reference bank 100 (first 50 used by default), initial 20, 10 queries of 10 (120 labels),
  pool = the remaining 280.

Every strategy sees the same split and the same initial network (``torch.manual_seed(seed)``
before the learner is built) for a given seed, so per-seed differences are paired.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from modAL.models import ActiveLearner
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

torch.set_num_threads(1)
warnings.filterwarnings("ignore", "'force_all_finite' was renamed", FutureWarning)
warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
warnings.filterwarnings("ignore", "Number of distinct clusters", module="sklearn")
warnings.filterwarnings("ignore", message="Number of distinct clusters")

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    name: str
    test_size: int
    reference_bank: int
    reference_size: int  # default ISAL reference = first rows of the bank
    initial: int
    query_size: int
    steps: int
    n_classes: int


TASKS = {
    "digits": TaskConfig("digits", 500, 300, 100, 50, 50, 10, 10),
    "breast_cancer": TaskConfig("breast_cancer", 169, 100, 50, 20, 10, 10, 2),
}


@dataclasses.dataclass(frozen=True)
class Split:
    X_test: np.ndarray
    y_test: np.ndarray
    X_bank: np.ndarray  # reference bank (labelled, never trained on)
    y_bank: np.ndarray
    X_initial: np.ndarray
    y_initial: np.ndarray
    X_pool: np.ndarray
    y_pool: np.ndarray
    task: TaskConfig

    def reference(self, size: int | None = None, stratified: bool = False):
        """The ISAL reference set: the first ``size`` rows of the bank, or class-balanced."""
        size = self.task.reference_size if size is None else size
        if not stratified:
            return self.X_bank[:size], self.y_bank[:size]
        classes = np.unique(self.y_bank)
        per = size // len(classes)
        idx = []
        for c in classes:  # first `per` rows of each class (bank is already shuffled)
            idx.extend(np.flatnonzero(self.y_bank == c)[:per].tolist())
        rest = [i for i in range(len(self.y_bank)) if i not in set(idx)]
        idx += rest[: size - len(idx)]
        idx = np.array(sorted(idx))
        return self.X_bank[idx], self.y_bank[idx]


def load_task(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        d = load_digits()
        return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)
    d = load_breast_cancer()
    return d.data.astype(np.float64), d.target.astype(np.int64)


def split_data(name: str, seed: int) -> Split:
    task = TASKS[name]
    X, y = load_task(name)
    order = np.random.default_rng(seed).permutation(len(y))
    test, bank, initial, pool = np.split(
        order, np.cumsum([task.test_size, task.reference_bank, task.initial])
    )
    if name == "breast_cancer":  # StandardScaler fitted on the initial labelled set only
        scaler = StandardScaler().fit(X[initial])
        X = scaler.transform(X).astype(np.float32)
    return Split(X[test], y[test], X[bank], y[bank], X[initial], y[initial], X[pool], y[pool],
                 task)


class DigitsCNN(nn.Module):
    """Same network as examples/digits_active_learning.py."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3), nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
        )

    def forward(self, X):
        return self.layers(X)


class TabularMLP(nn.Module):
    def __init__(self, n_features: int = 30, hidden: int = 32, n_classes: int = 2) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )

    def forward(self, X):
        return self.layers(X)


def make_net(name: str) -> NeuralNetClassifier:
    if name == "digits":
        return NeuralNetClassifier(
            DigitsCNN, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=1e-2,
            max_epochs=40, batch_size=64, iterator_train__shuffle=True, train_split=None,
            classes=np.arange(10), verbose=0,
        )
    return NeuralNetClassifier(
        TabularMLP, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=1e-2,
        max_epochs=100, batch_size=32, iterator_train__shuffle=True, train_split=None,
        classes=np.arange(2), verbose=0,
    )


def run_active_learning(task_name: str, strategy_name: str, seed: int) -> dict[str, Any]:
    """One modAL loop; returns the accuracy curve plus per-query logs of the strategy."""
    from variants import make_strategy  # local import: variants imports this module

    split = split_data(task_name, seed)
    task = split.task
    strategy = make_strategy(strategy_name, split, seed)
    torch.manual_seed(seed)  # same initial network for every strategy
    learner = ActiveLearner(
        estimator=make_net(task_name), query_strategy=strategy,
        X_training=split.X_initial, y_training=split.y_initial,
    )
    X_pool, y_pool = split.X_pool, split.y_pool
    acc = [float(learner.score(split.X_test, split.y_test))]
    n_lab = [len(learner.y_training)]
    qsec, logs = [], []
    for _ in range(task.steps):
        t0 = time.perf_counter()
        idx, _ = learner.query(X_pool, n_instances=task.query_size)
        qsec.append(time.perf_counter() - t0)
        logs.append(getattr(strategy, "last_log", None))
        learner.teach(X_pool[idx], y_pool[idx])
        X_pool, y_pool = np.delete(X_pool, idx, axis=0), np.delete(y_pool, idx)
        acc.append(float(learner.score(split.X_test, split.y_test)))
        n_lab.append(len(learner.y_training))
    return {"task": task_name, "strategy": strategy_name, "seed": seed, "n_labeled": n_lab,
            "accuracy": acc, "query_seconds": qsec, "logs": logs}


def result_path(task: str, strategy: str, seed: int) -> Path:
    return RESULTS / task / f"{strategy}__seed{seed}.json"


def save(result: dict[str, Any]) -> None:
    path = result_path(result["task"], result["strategy"], result["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, default=float) + "\n")
