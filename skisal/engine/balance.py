"""Class-balanced selection: a batch filled round-robin over the pseudo-labels.

``InfluenceQueryStrategy(selection="auto")`` selects this way, by margin, while the model is
wrong on most of the reference set: there the influence at the model's own pseudo-label points
the wrong way (on the weak-model benchmark of :doc:`/guide/results` the paper's ISAL is below
random sampling at every query). Filling the batch round-robin over the predicted classes keeps
it from piling onto the few classes a weak model predicts most.
"""

from __future__ import annotations

import numpy as np

__all__ = ["balanced_order"]


def balanced_order(scores: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` picks of a round-robin over ``labels``, lowest score first within each.

    Round ``r`` takes the ``r``-th lowest-scored sample of every label that has one; the
    picks of a round are in score order, and the last round is cut at ``n``. Ties in score
    keep index order, so equal inputs give equal picks.

    Parameters
    ----------
    scores : ndarray of shape (n_samples,)
        Lower is picked first (a margin, an influence).
    labels : ndarray of shape (n_samples,)
        The group of each sample (its pseudo-label).
    n : int
        Number of picks, at most ``n_samples``.

    Returns
    -------
    ndarray of int64, shape (n,)
        Indices into ``scores``, in selection order.

    Examples
    --------
    >>> from skisal.engine.balance import balanced_order
    >>> scores = np.array([0.1, 0.2, 0.3, 0.9, 0.5])
    >>> labels = np.array([0, 0, 0, 1, 2])
    >>> balanced_order(scores, labels, 4).tolist()  # one of each class, then class 0 again
    [0, 4, 3, 1]
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    by_score = np.argsort(scores, kind="stable")
    sorted_labels = labels[by_score]
    # each sample's round: how many of its class come before it in score order
    rounds = np.empty(len(by_score), dtype=np.int64)
    for label in np.unique(sorted_labels):
        members = sorted_labels == label
        rounds[members] = np.arange(int(members.sum()))
    return by_score[np.lexsort((np.arange(len(by_score)), rounds))][:n].astype(np.int64)
