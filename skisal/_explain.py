"""What the last query saw of each pool sample, and the table ``explain()`` makes of it.

The strategy keeps a :class:`QueryRecord` of its last query (the influences, the ranking, the
selection and the adapter's per-sample facts: pseudo-label, confidence, margin, cost), and
:func:`explanation_frame` turns it into one pandas row per pool sample. pandas is needed
only here, and only when a user asks for the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EXPLANATION_COLUMNS", "QueryRecord", "explanation_frame"]

#: The columns of ``InfluenceQueryStrategy.explain()``, in order.
EXPLANATION_COLUMNS = (
    "influence",
    "rank",
    "selected",
    "selection_order",
    "pseudo_label",
    "confidence",
    "margin",
    "cost",
    "reason",
    "distance",
)


@dataclass
class QueryRecord:
    """The last query's per-sample results, as numpy arrays over the pool."""

    scores: np.ndarray  # I(z, R)
    ranking: np.ndarray  # pool indices, most helpful first (deferred ones last)
    order: np.ndarray | None  # the selection, in selection order; None after influence()
    summary: dict[str, np.ndarray]  # the adapter's: pseudo_label, confidence, margin, cost
    classes: np.ndarray | None  # the estimator's classes_, to name pseudo-labels
    # A diverse selection's picks: distance to the nearest earlier one; None for the others
    distances: np.ndarray | None = None
    rule: str | None = None  # the selection's rule (diagnostics.selection)

    @classmethod
    def from_query(
        cls,
        scores: np.ndarray,
        ranking: np.ndarray,
        order: np.ndarray | None,
        summary: dict[str, Any],
        classes: Any,
        distances: np.ndarray | None = None,
        rule: str | None = None,
    ) -> QueryRecord:
        """A record with the adapter's tensors moved to numpy."""
        arrays = {k: v.detach().cpu().numpy() for k, v in summary.items()}
        classes = None if classes is None else np.asarray(classes)
        return cls(scores, ranking, order, arrays, classes, distances, rule)


def _pseudo_labels(record: QueryRecord, n: int) -> np.ndarray:
    """Pseudo-labels as the user's labels (``classes_``) where known; None where absent."""
    index = record.summary.get("pseudo_label")
    labels = np.full(n, None, dtype=object)
    if index is None:
        return labels
    present = index >= 0
    if record.classes is not None and len(record.classes) > int(index.max(initial=-1)):
        labels[present] = record.classes[index[present]]
    else:
        labels[present] = index[present]
    return labels


def _reasons(record: QueryRecord, rank: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Why each selected sample was picked; None for the others."""
    reasons = np.full(len(rank), None, dtype=object)
    if record.order is None:
        return reasons
    margin = record.summary.get("margin")
    for position, i in enumerate(record.order):
        if record.rule == "margin":
            reasons[i] = (
                f"smallest margin ({margin[i]:.3g}) left among pseudo-label {labels[i]}; "
                "influence not used: reference accuracy below min_reference_accuracy"
            )
        elif record.distances is None:  # by rank, or within a budget
            reasons[i] = f"rank {rank[i]} by influence"
        elif position == 0:
            reasons[i] = "most helpful sample (first pick)"
        else:
            reasons[i] = (
                f"k-means++ pick {position + 1}: gradient distance "
                f"{record.distances[position]:.3g} to earlier picks; rank {rank[i]} by influence"
            )
    return reasons


def explanation_frame(record: QueryRecord) -> Any:
    """One row per pool sample, in pool order: the table of ``explain()``.

    Parameters
    ----------
    record : QueryRecord
        The last query's results.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`EXPLANATION_COLUMNS`, index ``pool_index``.
    """
    try:
        import pandas as pd
    except ImportError as exc:  # pandas comes with the modal extra
        raise ImportError(
            "explain() returns a pandas DataFrame: install pandas (pip install pandas, or "
            "pip install 'skisal[modal]')."
        ) from exc
    n = len(record.scores)
    rank = np.empty(n, dtype=np.int64)
    rank[record.ranking] = np.arange(1, n + 1)
    selected = np.zeros(n, dtype=bool)
    selection_order = pd.array([pd.NA] * n, dtype="Int64")
    distance = np.full(n, np.nan)
    if record.order is not None:
        selected[record.order] = True
        selection_order[record.order] = np.arange(1, len(record.order) + 1)
        if record.distances is not None:
            distance[record.order] = record.distances

    def column(key: str, default: float) -> np.ndarray:
        values = record.summary.get(key)
        return np.full(n, default) if values is None else values.astype(np.float64)

    labels = _pseudo_labels(record, n)
    frame = pd.DataFrame(
        {
            "influence": record.scores.astype(np.float64),
            "rank": rank,
            "selected": selected,
            "selection_order": selection_order,
            "pseudo_label": labels,
            "confidence": column("confidence", np.nan),
            "margin": column("margin", np.nan),
            "cost": column("cost", 1.0),
            "reason": _reasons(record, rank, labels),
            "distance": distance,
        },
        columns=list(EXPLANATION_COLUMNS),
    )
    frame.index.name = "pool_index"
    return frame
