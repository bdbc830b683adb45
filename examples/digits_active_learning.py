"""
Does ISAL save labels on digits?
================================

A resumable comparison of query strategies in modAL loops. A small CNN (a skorch
``NeuralNetClassifier``) learns scikit-learn's 8x8 digits from 50 labels, then from 50 more per
query, retrained from scratch each time. Every strategy runs its own modAL ``ActiveLearner`` loop
from the same split and initial network, for several seeds: ISAL
(:class:`skisal.InfluenceQueryStrategy`, as in the paper and with ``selection="diverse"``),
gradient similarity, k-center coreset, modAL's uncertainty, margin and entropy sampling, and
random.

This script is the Python version of the command line::

    skisal-experiment --dataset digits --out results/digits

Run it from the repository root (``--quick`` is a seconds-long smoke run; ``--out DIR`` writes
elsewhere)::

    python examples/digits_active_learning.py --quick

It prints a table that fits a terminal: per strategy, best first, the area under the learning
curve (AULC), its difference to random sampling's on the same seed, the final accuracy, the labels
it needs to reach the best baseline's final accuracy, and the seconds per query. It writes
``results.csv``, ``summary.json``, ``summary.md`` and ``learning_curves.png``, and draws the
comparison with :class:`~skisal.experiments.ComparisonDisplay`. Interrupt it and run it again:
finished steps are kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from skisal.experiments import (
    ComparisonDisplay,
    ExperimentConfig,
    format_summary,
    run_experiment,
    write_report,
)

quick = "--quick" in sys.argv
torch.set_num_threads(1)  # a tiny network: threads cost more than they save

# %%
# The comparison: eight strategies, each on the same seeds, splits and initial networks.
# ``--quick`` runs 1 seed of 2 queries with 10 training epochs per fit.

config = ExperimentConfig.for_dataset(
    "digits",
    strategies=[
        "isal",
        "isal_diverse",
        "gradient_similarity",
        "coreset",
        "uncertainty",
        "margin",
        "entropy",
        "random",
    ],
    seeds=range(1 if quick else 5),
    steps=2 if quick else None,  # None: the dataset's default (10 queries of 50)
    epochs=10 if quick else None,
)
if "--out" in sys.argv:
    out = Path(sys.argv[sys.argv.index("--out") + 1])
else:
    out = Path("results/digits-example-quick" if quick else "results/digits-example")

# %%
# Run every loop (finished steps in ``out`` are kept), then summarise: per strategy, best first,
# the area under the learning curve (AULC) and its difference to random sampling's on the same
# seed, the final accuracy, the labels needed to reach the best baseline's final accuracy, and the
# seconds per query. :func:`~skisal.experiments.write_report` also writes the table as
# ``summary.md`` and the figure below as ``learning_curves.png``.

records = run_experiment(config, out, progress=sys.stderr.isatty())  # a bar in a terminal
title = "digits: small CNN, 50 labels per query"
summary = write_report(records, out, title=title)
print(format_summary(summary))
print(f"\nwrote {out / 'summary.md'} and {out / 'learning_curves.png'}")

# %%
# The comparison, drawn by :class:`~skisal.experiments.ComparisonDisplay`. Top left: the mean
# test accuracy against the labelled samples, the legend sorted by AULC; ISAL's modes are the
# thick solid lines with markers, random sampling the grey one. Bottom left: each strategy minus
# random sampling on the same seed, step by step, where differences too small to see above show.
# Right: the same over the whole run (AULC minus random's), mean ± std over seeds, best on top.

display = ComparisonDisplay.from_records(records, title=title)
plt.show()
