"""Which pool samples a query takes, once the pool is scored.

:class:`~skisal.InfluenceQueryStrategy` ranks the pool by influence; its ``selection``
parameter decides what it takes from that ranking: the top n (the paper's), influence-weighted
k-means++ over last-layer gradients ("diverse"), or, with "auto", the smallest margins
class-balanced while the model is wrong on most of the reference set and "diverse" after that.
A budget takes by influence within it. As in :mod:`skisal._query`, the functions read the
strategy's parameters (the ``strategy`` argument) and never set its attributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._query import Query, Scored
from ._validation import take_rows, within_budget
from .engine.balance import balanced_order
from .engine.distributed import ProcessGroup
from .engine.diversity import (
    LastLayerFactors,
    gradient_factors,
    influence_rank_weights,
    kmeans_pp_select,
    pick_distances,
)

__all__ = ["factor_recorder", "reference_accuracy", "select_from", "selection_rule"]


def reference_accuracy(strategy: Any, query: Query) -> float | None:
    """The model's pseudo-label accuracy on the reference set, where ``selection="auto"``
    needs it (None otherwise, and for adapters that give none)."""
    if strategy.selection != "auto":
        return None
    return query.model.pseudo_label_accuracy(query.X_ref, query.y_ref, strategy.batch_size)


def factor_recorder(
    strategy: Any,
    query: Query,
    accuracy: float | None,
    select: bool,
    budget: float | None,
    group: ProcessGroup | None,
) -> LastLayerFactors | None:
    """What records a diverse selection's gradient factors during the pool scoring.

    None where the selection will not be diverse (as far as it can be told before
    scoring), or across a process group (each rank computes its shard's there).
    """
    if not select or budget is not None or group is not None or query.n_instances == 1:
        return None
    diverse = strategy.selection == "diverse" or (
        strategy.selection == "auto"
        and accuracy is not None
        and accuracy >= strategy.min_reference_accuracy
    )
    return LastLayerFactors(query.model, query.n_pool) if diverse else None


def select_from(
    strategy: Any,
    query: Query,
    scored: Scored,
    ranking: np.ndarray,
    budget: float | None,
    rng: np.random.RandomState,
    group: ProcessGroup | None,
    accuracy: float | None,
    factors: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The pool indices to label, best first: by rank, within a budget, or diverse.

    ``accuracy`` is :func:`reference_accuracy`'s; ``factors``, those recorded during the
    scoring (None: computed here). Also returns, for a diverse selection, each pick's
    gradient distance to the nearest earlier pick (why k-means++ took it); None otherwise.
    Sets the diagnostics' ``selection`` and ``selection_reason``.
    """
    diagnostics = scored.diagnostics
    if budget is not None:
        diagnostics.selection = "top"
        diagnostics.selection_reason = "by influence, within the annotation budget"
        return within_budget(ranking, scored.annotation_costs, budget), None
    rule = diagnostics.selection = selection_rule(strategy, query, scored, accuracy)
    if rule == "margin":
        labels = scored.summary["pseudo_label"].cpu().numpy()
        margins = scored.summary["margin"].cpu().numpy()
        return balanced_order(margins, labels, query.n_instances), None
    if rule == "top" or query.n_instances == 1:
        return ranking[: query.n_instances], None
    model, X_pool = query.model, query.X_pool
    if factors is not None:
        outer, inner = factors
    elif group is None:
        outer, inner = gradient_factors(model, X_pool, strategy.batch_size)
    else:
        shard, sizes = group.shard(query.n_pool)
        local = gradient_factors(model, take_rows(X_pool, shard), strategy.batch_size)
        outer, inner = (group.gather_rows(t, sizes) for t in local)
    outer = outer * influence_rank_weights(scored.scores).sqrt()[:, None]
    order = kmeans_pp_select(outer, inner, query.n_instances, int(ranking[0]), rng)
    return order, pick_distances(outer, inner, order)


def selection_rule(strategy: Any, query: Query, scored: Scored, accuracy: float | None) -> str:
    """The rule of this selection: "top", "diverse" or (from "auto") "margin".

    ``accuracy``: :func:`reference_accuracy`'s. Sets ``diagnostics.reference_accuracy`` and
    ``selection_reason``.
    """
    diagnostics = scored.diagnostics
    if strategy.selection != "auto":
        diagnostics.selection_reason = {
            "top": "by influence (selection='top', the paper's)",
            "diverse": "k-means++ over influence-weighted gradients (selection='diverse')",
        }[strategy.selection]
        return strategy.selection
    diagnostics.reference_accuracy = accuracy
    if accuracy is None or not {"margin", "pseudo_label"} <= set(scored.summary):
        diagnostics.selection_reason = (
            "by influence: the adapter gives no pseudo-label accuracy or margins, so "
            "selection='auto' ranks as 'top' does"
        )
        return "top"
    threshold = strategy.min_reference_accuracy
    measured = f"the model is right on {accuracy:.0%} of the reference set"
    if query.ref_name == "y_labeled":
        measured += " (the labelled set, which it was trained on: pass X_reference)"
    if accuracy < threshold:
        diagnostics.selection_reason = (
            f"by margin, class-balanced: {measured}, below min_reference_accuracy="
            f"{threshold:g}, so the influence at its pseudo-labels is not trusted"
        )
        return "margin"
    diagnostics.selection_reason = (
        "k-means++ over influence-weighted gradients, as selection='diverse': "
        f"{measured} (min_reference_accuracy={threshold:g})"
    )
    return "diverse"
