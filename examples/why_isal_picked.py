"""
Why did ISAL pick these?
========================

One ISAL query on scikit-learn's 8x8 digits, taken apart. A small CNN (a skorch
``NeuralNetClassifier``) is trained on 50 labelled images; :class:`skisal.InfluenceQueryStrategy`
then picks 20 of about 1,100 unlabelled ones in a modAL ``ActiveLearner``, first by the paper's
ranking (``selection="top"``), then by skisal's default. Then we ask why:

- :meth:`~skisal.InfluenceQueryStrategy.explain` gives one row per pool image: its influence,
  rank, the pseudo-label the influence was computed for, the model's confidence in it, and why a
  picked image was picked;
- :class:`skisal.InfluenceDisplay` draws the distribution of influences with the picks marked,
  and the picked images themselves.

Run it from the repository root (a few seconds on one CPU thread)::

    python examples/why_isal_picked.py

``--save-figures DIR`` also writes the two figures as PNG files (the README shows one).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from modAL.models import ActiveLearner
from modAL.uncertainty import margin_sampling

from skisal import InfluenceDisplay, InfluenceQueryStrategy
from skisal.experiments import load_dataset

torch.set_num_threads(1)  # a tiny network: threads cost more than they save
pd.set_option("display.width", 100)
pd.set_option("display.max_columns", 12)

# %%
# Data and a weak model
# ---------------------
# 500 test images, a reference set of 100 (ISAL's :math:`R`: the loss whose decrease it
# predicts), 50 initial labels, and the rest as the unlabelled pool.
digits = load_dataset("digits")
order = np.random.RandomState(0).permutation(len(digits.y))
test, reference, initial, pool = np.split(order, [500, 600, 650])
X, y = digits.X, digits.y

torch.manual_seed(0)
# The paper's ranking; skisal's default, selection="auto", comes at the end.
strategy = InfluenceQueryStrategy(X[reference], y[reference], selection="top", random_state=0)
learner = ActiveLearner(
    estimator=digits.make_estimator(digits.epochs),
    query_strategy=strategy,
    X_training=X[initial],
    y_training=y[initial],
)
print(f"test accuracy after {len(initial)} labels: {learner.score(X[test], y[test]):.3f}")

# %%
# One query, explained
# --------------------
# ``explain()`` describes the query's whole pool, in pool order. Lower influence is better: it is
# the predicted change of the reference loss if the image were labelled with its pseudo-label.
idx, _ = learner.query(X[pool], n_instances=20)
table = strategy.explain()
table["true_label"] = y[pool]  # the annotator's answer, which the strategy never saw
picked = table[table.selected].sort_values("selection_order")
print(picked[["influence", "rank", "pseudo_label", "true_label", "confidence", "margin"]].head(10))

# %%
# What the picks have in common, against the whole pool. A sample's influence is large where
# the gradient of its pseudo-label loss is large, which is where the model is unsure, so the
# picks' confidence and margin are lower than the pool's. But ISAL is not uncertainty sampling:
# it also asks whether that gradient points the way that lowers the reference loss. The
# overlap with margin sampling's 20 picks, from the same model and pool, shows how far the two
# rankings differ; the share of correct pseudo-labels shows how often the gradient was taken
# for the right class.
correct = table.pseudo_label.to_numpy(int) == table.true_label.to_numpy()
margin_idx, _ = margin_sampling(learner, X[pool], n_instances=20)
summary = pd.DataFrame(
    {
        "whole pool": [table.confidence.mean(), table.margin.mean(), correct.mean()],
        "ISAL's 20 picks": [
            picked.confidence.mean(),
            picked.margin.mean(),
            correct[picked.index].mean(),
        ],
    },
    index=["mean confidence", "mean margin", "pseudo-label correct"],
)
print(summary.round(3))
print(f"picked by both ISAL and margin sampling: {len(set(idx) & set(margin_idx))} of 20")

# %%
# The distribution of influences
# ------------------------------
# Most of the pool has an influence near zero: labelling it would barely change the reference
# loss. The picks are the far left tail; the annotations give the pseudo-label and the model's
# confidence in it.
display = InfluenceDisplay.from_strategy(strategy, n_annotate=5)

# %%
# The picked images, first pick first, with their influence and pseudo-label:
display.plot_images(X_pool=X[pool], n_images=10)

# %%
# skisal's default: a check, then a diverse batch
# -----------------------------------------------
# By default (``selection="auto"``) a query first measures the model on the reference set.
# Where it is wrong on most of it, the influence at its pseudo-labels points the wrong way and
# the query takes the smallest margins, class-balanced, instead. This model is right on most of
# it, so the query selects as ``selection="diverse"``: picks after the first are drawn by
# k-means++ over the images' last-layer gradients, favouring those far from the picks before
# them. ``diagnostics_.selection_reason`` says which rule ran and why; ``reason`` and
# ``distance`` say why each image was picked.
strategy.set_params(selection="auto")
learner.query(X[pool], n_instances=20)
print(strategy.diagnostics_.selection_reason)
default = strategy.explain().sort_values("selection_order").dropna(subset=["selection_order"])
for pool_index, reason in default["reason"].head(6).items():
    print(f"sample {pool_index:4d}: {reason}")

if "--save-figures" in sys.argv:
    out = Path(sys.argv[sys.argv.index("--save-figures") + 1])
    out.mkdir(parents=True, exist_ok=True)
    display.figure_.savefig(out / "why_isal_picked_influences.png", dpi=110)
    display.image_figure_.savefig(out / "why_isal_picked_images.png", dpi=110)
    print(f"figures written to {out}/")
plt.show()
