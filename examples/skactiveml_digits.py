"""
ISAL in a scikit-activeml loop: digits
======================================

:class:`skisal.skactiveml.InfluenceSampling` is ISAL as a scikit-activeml pool query strategy.
This example runs scikit-activeml's own loop -- the whole data set ``X`` with unlabelled
entries of ``y`` set to ``MISSING_LABEL``, a ``SkorchClassifier`` refitted from scratch after
every query -- for ISAL and for scikit-activeml's ``UncertaintySampling`` (margin),
``CoreSet``, ``Badge`` and ``RandomSampling``, on scikit-learn's 8x8 digits: 20 initial labels,
then queries of 20. Every strategy starts from the same split and the same initial labels for a
given seed; the network's initialisation follows the seed too.

Run it from the repository root (``--quick`` is a short smoke run)::

    python examples/skactiveml_digits.py           # 5 seeds, 8 queries: a few minutes
    python examples/skactiveml_digits.py --quick   # 1 seed, 2 queries

``--save FILE`` also writes the figure to ``FILE``.

It prints the mean test accuracy per number of labels, the area under each learning curve and
each strategy's paired difference to random sampling (mean and standard deviation over seeds),
and plots the learning curves.
"""

from __future__ import annotations

import sys
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from skactiveml.classifier import SkorchClassifier
from skactiveml.pool import Badge, CoreSet, RandomSampling, UncertaintySampling
from skactiveml.utils import MISSING_LABEL
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skisal.skactiveml import InfluenceSampling

quick = "--quick" in sys.argv
torch.set_num_threads(1)  # a tiny network: threads cost more than they save
n_seeds, n_queries, batch, epochs = (1, 2, 20, 30) if quick else (5, 8, 20, 60)

# %%
# Data and network
# ----------------
# A pool of 1,000 digits, a reference set of 200 labelled digits for ISAL (the paper's
# validation set), and 597 test digits. The network is a small MLP trained with
# cross-entropy on logits, as scikit-activeml's ``SkorchClassifier`` expects by default.

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def make_classifier(seed: int) -> SkorchClassifier:
    return SkorchClassifier(
        MLP,
        classes=np.arange(10),
        missing_label=MISSING_LABEL,
        random_state=seed,
        neural_net_param_dict=dict(
            max_epochs=epochs,
            lr=0.01,
            optimizer=torch.optim.Adam,
            batch_size=32,
            train_split=None,
            verbose=0,
        ),
    )


# %%
# The loop
# --------
# scikit-activeml's protocol: each strategy gets the whole ``X`` and ``y`` and returns indices
# into ``X``. Here the loop refits the classifier itself (a seeded initialisation, so that every
# strategy's first model is the same) and passes ``fit_clf=False``.


def strategies(seed: int, X_ref: np.ndarray, y_ref: np.ndarray) -> dict:
    return {
        "ISAL (InfluenceSampling)": InfluenceSampling(X_ref, y_ref, random_state=seed),
        "margin (UncertaintySampling)": UncertaintySampling(
            method="margin_sampling", random_state=seed
        ),
        "Badge": Badge(random_state=seed),
        "CoreSet": CoreSet(random_state=seed),
        "random": RandomSampling(random_state=seed),
    }


def fit(clf: SkorchClassifier, X_all: np.ndarray, y_all: np.ndarray, seed: int):
    torch.manual_seed(seed)
    return clf.fit(X_all, y_all)


curves: dict[str, list[list[float]]] = {}
seconds: dict[str, list[float]] = {}
for seed in range(n_seeds):
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=597, stratify=y, random_state=seed
    )
    X_pool, X_ref, y_pool_true, y_ref = X_rest[:1000], X_rest[1000:], y_rest[:1000], y_rest[1000:]
    initial = np.random.RandomState(seed).choice(len(X_pool), size=batch, replace=False)
    for name, qs in strategies(seed, X_ref, y_ref).items():
        y_pool = np.full(len(X_pool), MISSING_LABEL)
        y_pool[initial] = y_pool_true[initial]
        clf = fit(make_classifier(seed), X_pool, y_pool, seed)
        accuracy = [clf.score(X_test, y_test)]
        for _ in range(n_queries):
            start = time.perf_counter()
            if isinstance(qs, CoreSet | RandomSampling):
                idx = qs.query(X_pool, y_pool, batch_size=batch)
            else:
                idx = qs.query(X_pool, y_pool, clf, fit_clf=False, batch_size=batch)
            seconds.setdefault(name, []).append(time.perf_counter() - start)
            y_pool[idx] = y_pool_true[idx]  # the annotator labels them
            clf = fit(make_classifier(seed), X_pool, y_pool, seed)
            accuracy.append(clf.score(X_test, y_test))
        curves.setdefault(name, []).append(accuracy)

# %%
# Results
# -------
# Mean test accuracy per number of labels; the area under the learning curve (AULC, mean
# accuracy over the steps, in %); each strategy's AULC minus random sampling's on the same
# seed, mean and standard deviation over seeds; and the mean seconds per query.

labels = batch * (1 + np.arange(n_queries + 1))
random_aulc = np.mean(curves["random"], axis=1) * 100
print(f"{'strategy':<29}{'AULC %':>8}{'vs random':>17}{'s/query':>9}  accuracy per step")
for name, runs in sorted(curves.items(), key=lambda kv: -np.mean(kv[1])):
    runs = np.asarray(runs)
    aulc = runs.mean(axis=1) * 100
    diff = aulc - random_aulc
    steps = " ".join(f"{a:.2f}" for a in runs.mean(axis=0))
    print(
        f"{name:<29}{aulc.mean():8.2f}{diff.mean():+9.2f} ± {diff.std():5.2f}"
        f"{np.mean(seconds[name]):9.3f}  {steps}"
    )

# %%
# Learning curves, mean over seeds (higher is better).

fig, ax = plt.subplots(figsize=(7.5, 4.5))
for name, runs in sorted(curves.items(), key=lambda kv: -np.mean(kv[1])):
    mean = np.mean(runs, axis=0) * 100
    style = dict(linewidth=2.5, zorder=3) if name.startswith("ISAL") else dict(alpha=0.8)
    ax.plot(labels, mean, marker="o", markersize=3, label=name, **style)
ax.set_xlabel("labelled samples")
ax.set_ylabel("test accuracy (%), higher is better")
ax.set_title(f"digits, MLP in scikit-activeml loops ({n_seeds} seed{'s' * (n_seeds > 1)})")
ax.grid(alpha=0.3)
ax.legend(title="sorted by AULC")
fig.tight_layout()
if "--save" in sys.argv:
    fig.savefig(sys.argv[sys.argv.index("--save") + 1], dpi=100)
plt.show()
