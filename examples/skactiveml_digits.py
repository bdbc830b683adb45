"""
ISAL in a scikit-activeml loop: digits
======================================

:class:`skisal.skactiveml.InfluenceSampling` is ISAL as a scikit-activeml pool query strategy.
This example runs scikit-activeml's own loop -- the whole data set ``X`` with unlabelled
entries of ``y`` set to ``MISSING_LABEL``, a ``SkorchClassifier`` refitted from scratch after
every query -- for ISAL (skisal's default ``selection="auto"``, and the paper's ranking,
``selection="top"``) and for scikit-activeml's ``UncertaintySampling`` (margin), ``CoreSet``,
``Badge`` and ``RandomSampling``, on scikit-learn's 8x8 digits: 20 initial labels, then queries
of 20. Every strategy starts from the same split and the same initial labels for a
given seed; the network's initialisation follows the seed too.

Run it from the repository root (``--quick`` is a short smoke run)::

    python examples/skactiveml_digits.py           # 5 seeds, 8 queries: a few minutes
    python examples/skactiveml_digits.py --quick   # 1 seed, 2 queries

``--save FILE`` also writes the figure to ``FILE``.

It prints, per strategy and best first, the area under each learning curve (AULC), its paired
difference to random sampling's (mean and standard deviation over seeds), the final accuracy, the
labels needed to reach the best baseline's final accuracy and the seconds per query; and draws the
comparison with :class:`skisal.experiments.ComparisonDisplay`.
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

from skisal.experiments import ComparisonDisplay, StepRecord, format_summary, summarise
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
        "ISAL, the paper's ranking": InfluenceSampling(
            X_ref, y_ref, selection="top", random_state=seed
        ),
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


# Every step of every run, as the records ``skisal-experiment`` writes: strategy, seed, step,
# labels, test accuracy, seconds the query and the fit took, the indices it chose.
records: list[StepRecord] = []
for seed in range(n_seeds):
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=597, stratify=y, random_state=seed
    )
    X_pool, X_ref, y_pool_true, y_ref = X_rest[:1000], X_rest[1000:], y_rest[:1000], y_rest[1000:]
    initial = np.random.RandomState(seed).choice(len(X_pool), size=batch, replace=False)
    for name, qs in strategies(seed, X_ref, y_ref).items():
        y_pool = np.full(len(X_pool), MISSING_LABEL)
        y_pool[initial] = y_pool_true[initial]
        start = time.perf_counter()
        clf = fit(make_classifier(seed), X_pool, y_pool, seed)
        fit_seconds = time.perf_counter() - start
        records.append(
            StepRecord(name, seed, 0, batch, clf.score(X_test, y_test), None, fit_seconds, ())
        )
        for step in range(1, n_queries + 1):
            start = time.perf_counter()
            if isinstance(qs, CoreSet | RandomSampling):
                idx = qs.query(X_pool, y_pool, batch_size=batch)
            else:
                idx = qs.query(X_pool, y_pool, clf, fit_clf=False, batch_size=batch)
            query_seconds = time.perf_counter() - start
            y_pool[idx] = y_pool_true[idx]  # the annotator labels them
            start = time.perf_counter()
            clf = fit(make_classifier(seed), X_pool, y_pool, seed)
            records.append(
                StepRecord(
                    name,
                    seed,
                    step,
                    batch * (1 + step),
                    clf.score(X_test, y_test),
                    query_seconds,
                    time.perf_counter() - start,
                    tuple(int(i) for i in idx),
                )
            )

# %%
# Results
# -------
# Per strategy, best first: the area under the learning curve (AULC, divided by its width: the
# mean accuracy over the run, in %); its difference to random sampling's on the same seed, mean
# and standard deviation over seeds; the final accuracy; the labels needed to reach the final
# accuracy of the best baseline; and the mean seconds per query.

print(format_summary(summarise(records)))

# %%
# The comparison drawn by :class:`~skisal.experiments.ComparisonDisplay`: the learning curves
# (higher is better, the legend sorted by AULC, ISAL thick and solid, random grey), each strategy
# minus random sampling on the same seed step by step, and over the whole run.

display = ComparisonDisplay.from_records(
    records,
    title=f"digits, MLP in scikit-activeml loops, {batch} labels per query",
)
if "--save" in sys.argv:
    display.figure_.savefig(sys.argv[sys.argv.index("--save") + 1], dpi=100)
plt.show()
