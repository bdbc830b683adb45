"""Class imbalance: where the paper's claims might favour influence (``influence_modes.md``).

``python -m skisal.experiments --dataset research.imbalance:rare_digits ...``: scikit-learn's
digits with classes 5 to 9 kept at a quarter of their samples (a random quarter, fixed), so that
an uncertainty strategy that ignores the reference set may under-sample the rare classes. The
test, reference, initial and pool sets are drawn from it at random, as for every dataset of
``skisal.experiments``; the network and training are the built-in ``digits``'.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from skisal.experiments import Dataset, load_dataset

#: The rare classes and the share of their samples kept.
RARE_CLASSES, KEPT = (5, 6, 7, 8, 9), 0.25


def rare_digits() -> Dataset:
    """Digits with classes 5 to 9 at a quarter of their samples (1,132 images)."""
    digits = load_dataset("digits")
    rng = np.random.default_rng(0)
    rare = np.isin(digits.y, RARE_CLASSES)
    keep = ~rare | (rng.random(len(digits.y)) < KEPT)
    return dataclasses.replace(
        digits,
        name="rare_digits",
        X=digits.X[keep],
        y=digits.y[keep],
        test_size=300,
        reference_size=100,
        initial_size=50,
        query_size=40,
        steps=8,
        description="digits, classes 5-9 at a quarter of their samples; small CNN",
    )
