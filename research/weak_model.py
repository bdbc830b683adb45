"""Candidate selection rules for a weak model (``research/influence_modes.md``, "signals").

Name them ``research.weak_model:<name>`` to ``python -m skisal.experiments --strategies``
(run from the repository's root). Every candidate here scores the pool with skisal's shipped
defaults (``InfluenceQueryStrategy``, PCG), not the study's CG to 1e-5.

``<score>_balanced``: the measured failure of ISAL on a weak model is that its batches pile onto
a few predicted classes (the largest class of a query's 100 picks: 27% on average, up to 63%).
These rules take a score (influence, margin, random, the sum of the influence's and the margin's
ranks, or the influence among each pseudo-label's smallest margins) and fill the batch
round-robin over the pseudo-labels (skisal's ``balanced_order``).

``gated_<rule>``: class-balanced margin while the model is wrong on most of the reference set,
then ``<rule>``. ``gated_diverse`` is what shipped as ``InfluenceQueryStrategy(selection="auto")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from research.probes import margins, outputs_and_features
from skisal import InfluenceQueryStrategy
from skisal.engine.balance import balanced_order
from skisal.experiments import StrategyContext


def _within_margin_candidates(influence, margin, pseudo_label, n, factor=3):
    """Influence, pushed behind every sample outside its class's ``factor * q`` smallest margins."""
    quota = factor * max(1, -(-n // len(np.unique(pseudo_label))))
    score = influence.astype(float).copy()
    offset = np.abs(influence).max() * 2 + 1.0
    for c in np.unique(pseudo_label):
        members = np.flatnonzero(pseudo_label == c)
        outside = members[np.argsort(margin[members], kind="stable")[quota:]]
        score[outside] += offset
    return score


class Balanced(BaseEstimator):
    """A score (``"influence"``, ``"margin"``, ``"random"``, ``"hybrid"``, ``"uncf"``), then
    class-balanced by pseudo-label."""

    def __init__(self, X_reference=None, y_reference=None, score="influence", random_state=None):
        self.X_reference = X_reference
        self.y_reference = y_reference
        self.score = score
        self.random_state = random_state

    def __call__(self, learner: Any, X_pool: Any, n_instances: int = 1):
        probs, _ = outputs_and_features(learner.estimator, X_pool)
        if self.score == "influence":
            isal = InfluenceQueryStrategy(
                self.X_reference, self.y_reference, random_state=self.random_state
            )
            score = isal.influence(learner, X_pool)
        elif self.score == "margin":
            score = margins(probs)
        elif self.score in ("hybrid", "uncf"):
            influence = InfluenceQueryStrategy(
                self.X_reference, self.y_reference, random_state=self.random_state
            ).influence(learner, X_pool)
            margin = margins(probs)
            if self.score == "hybrid":  # sum of the two ranks, both smallest first
                score = rankdata(influence) + rankdata(margin)
            else:  # per predicted class, the 3q smallest margins, then the most helpful
                score = _within_margin_candidates(influence, margin, probs.argmax(1), n_instances)
        elif self.score == "random":
            score = check_random_state(self.random_state).random_sample(len(probs))
        else:
            raise ValueError(f"score={self.score!r}: use 'influence', 'margin' or 'random'.")
        self.scores_ = score
        index = balanced_order(score, probs.argmax(1), int(n_instances))
        return index, score[index]


def _balanced(score: str):
    def factory(context: StrategyContext) -> Balanced:
        return Balanced(context.X_reference, context.y_reference, score, context.random_state)

    factory.__name__ = factory.__qualname__ = f"{score}_balanced"
    factory.__doc__ = f"{score} scores, class-balanced by pseudo-label."
    return factory


influence_balanced = _balanced("influence")
margin_balanced = _balanced("margin")
random_balanced = _balanced("random")
hybrid_balanced = _balanced("hybrid")
uncf_balanced = _balanced("uncf")


class Gated(BaseEstimator):
    """Class-balanced margin while the model is wrong on most of the reference set, then ``then``.

    ``then``: ``"diverse"`` (``InfluenceQueryStrategy(selection="diverse")``) or
    ``"uncf_balanced"``. The gate is the model's accuracy on the labelled reference set: below
    ``threshold``, most pseudo-labels are wrong and the UUIC gradient points the wrong way.
    """

    def __init__(
        self, X_reference=None, y_reference=None, then="diverse", threshold=0.5, random_state=None
    ):
        self.X_reference = X_reference
        self.y_reference = y_reference
        self.then = then
        self.threshold = threshold
        self.random_state = random_state

    def __call__(self, learner: Any, X_pool: Any, n_instances: int = 1):
        self.reference_accuracy_ = float(learner.score(self.X_reference, self.y_reference))
        if self.reference_accuracy_ < self.threshold:
            rule = Balanced(self.X_reference, self.y_reference, "margin", self.random_state)
        elif self.then == "diverse":
            rule = InfluenceQueryStrategy(
                self.X_reference,
                self.y_reference,
                selection="diverse",
                random_state=self.random_state,
                return_scores=True,
            )
        else:
            rule = Balanced(self.X_reference, self.y_reference, "uncf", self.random_state)
        return rule(learner, X_pool, n_instances=n_instances)


def gated_diverse(context: StrategyContext) -> Gated:
    """Balanced margin below 50% reference accuracy, then ``selection="diverse"``."""
    return Gated(context.X_reference, context.y_reference, "diverse", 0.5, context.random_state)


def gated_uncf(context: StrategyContext) -> Gated:
    """Balanced margin below 50% reference accuracy, then ``uncf_balanced``."""
    return Gated(context.X_reference, context.y_reference, "uncf", 0.5, context.random_state)
