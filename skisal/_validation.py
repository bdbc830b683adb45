"""Input validation shared by the strategy and the adapters.

Every check names the argument it rejects and what was expected, so that a
user reading the error knows which of their objects to fix.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

__all__ = [
    "check_constraints",
    "check_data",
    "check_n_instances",
    "check_query_size",
    "check_same_sample_shape",
    "is_non_negative_real",
    "is_positive_int",
    "is_positive_real",
    "n_rows",
    "take_rows",
    "to_index_labels",
    "within_budget",
]


def check_constraints(obj: Any, constraints: dict[str, tuple[Any, str]]) -> None:
    """Check an estimator's parameters at call time, as scikit-learn does.

    ``constraints`` maps a parameter name to ``(check, what was expected)``.

    Raises
    ------
    ValueError
        Naming the first parameter whose ``check`` fails, and what was expected.
    """
    for name, (check, expected) in constraints.items():
        value = getattr(obj, name)
        if not check(value):
            raise ValueError(f"{name} must be {expected}; got {value!r}.")


def is_positive_int(value: Any) -> bool:
    """An integer >= 1 (numpy integers too, not bools)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def is_non_negative_real(value: Any) -> bool:
    """A finite real >= 0 (not a bool)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and np.isfinite(value)
        and value >= 0
    )


def is_positive_real(value: Any) -> bool:
    """A finite real > 0 (not a bool)."""
    return is_non_negative_real(value) and value > 0


def n_rows(X: Any) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


def take_rows(X: Any, indices: np.ndarray) -> Any:
    """``X[indices]`` for numpy arrays, tensors, pandas objects and lists."""
    if isinstance(X, torch.Tensor):
        return X[torch.as_tensor(indices, device=X.device)]
    if hasattr(X, "iloc"):
        return X.iloc[indices]
    if isinstance(X, np.ndarray):
        return X[indices]
    return [X[int(i)] for i in indices]


def _non_finite_rows(X: Any) -> np.ndarray | None:
    """Indices of rows holding NaN/inf, or None when X is not numeric."""
    if isinstance(X, torch.Tensor):
        if not (X.is_floating_point() or X.is_complex()):
            return np.empty(0, dtype=np.int64)
        bad = ~torch.isfinite(X).reshape(X.shape[0], -1).all(dim=1)
        return torch.nonzero(bad).flatten().cpu().numpy()
    values = X.to_numpy() if hasattr(X, "to_numpy") else X
    arr = np.asarray(values)
    if arr.dtype.kind not in "fc":
        return np.empty(0, dtype=np.int64) if arr.dtype.kind in "iub" else None
    return np.flatnonzero(~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1))


def check_data(X: Any, name: str, *, allow_non_numeric: bool = False) -> Any:
    """Validate a sample collection: supported type, non-empty, finite.

    Parameters
    ----------
    X : array-like or torch.Tensor
        The data.
    name : str
        Argument name used in error messages.
    allow_non_numeric : bool, default=False
        Accept data whose values are not numbers (for a ``Pipeline`` whose
        first steps encode them); the finiteness check then happens on the
        network's input.

    Returns
    -------
    numpy.ndarray, torch.Tensor or pandas object
        ``X`` itself when it is an ndarray, a tensor or a pandas object;
        otherwise ``numpy.asarray(X)``. Never a modified copy.

    Raises
    ------
    TypeError
        If ``X`` is not array-like.
    ValueError
        If ``X`` is empty, scalar, or holds NaN/inf.
    """
    if X is None:
        raise TypeError(f"{name} must be an array-like or torch.Tensor, got None.")
    if not (isinstance(X, np.ndarray | torch.Tensor) or hasattr(X, "iloc")):
        if isinstance(X, str | bytes | dict) or not hasattr(X, "__len__"):
            raise TypeError(
                f"{name} must be a numpy array, torch.Tensor or array-like of samples, "
                f"got {type(X).__name__}."
            )
        X = np.asarray(X)
    if getattr(X, "ndim", 1) < 1 or n_rows(X) == 0:
        raise ValueError(f"{name} is empty: it must hold at least one sample.")
    bad = _non_finite_rows(X)
    if bad is None and not allow_non_numeric:
        raise TypeError(f"{name} must hold numbers, got values of dtype {np.asarray(X).dtype}.")
    if bad is not None and len(bad):
        raise ValueError(
            f"{name} holds NaN or infinite values in {len(bad)} sample(s) "
            f"(first rows: {bad[:5].tolist()}); impute or drop them first."
        )
    return X


def check_same_sample_shape(X: Any, name: str, reference: Any, reference_name: str) -> None:
    """Raise if samples of ``X`` and ``reference`` have different shapes."""
    shape = tuple(getattr(X, "shape", ())[1:])
    ref_shape = tuple(getattr(reference, "shape", ())[1:])
    if shape and ref_shape and shape != ref_shape:
        raise ValueError(
            f"{name} has samples of shape {shape}, but {reference_name} has samples of "
            f"shape {ref_shape}: the network expects the latter."
        )


def check_n_instances(n_instances: Any, n_pool: int) -> int:
    """Validate ``n_instances`` against the pool size."""
    if isinstance(n_instances, bool) or not isinstance(n_instances, numbers.Integral):
        raise TypeError(f"n_instances must be an integer, got {n_instances!r}.")
    if not 1 <= n_instances <= n_pool:
        raise ValueError(
            f"n_instances must be between 1 and the pool size ({n_pool}), got {n_instances}."
        )
    return int(n_instances)


def check_query_size(n_instances: Any, budget: Any, n_pool: int) -> int | None:
    """A query's size: ``n_instances`` (1 by default), or None when a valid ``budget``
    replaces it.

    Raises
    ------
    TypeError, ValueError
        For an invalid ``n_instances`` or ``budget``, or both given.
    """
    if budget is None:
        return check_n_instances(1 if n_instances is None else n_instances, n_pool)
    if n_instances is not None:
        raise ValueError(
            "give n_instances or budget, not both: a budget selects as many samples as fit in it."
        )
    if not is_positive_real(budget):
        raise ValueError(f"budget must be a finite real > 0, got {budget!r}.")
    return None


def within_budget(ranking: np.ndarray, costs: np.ndarray, budget: float) -> np.ndarray:
    """The longest prefix of ``ranking`` whose summed ``costs`` stays within ``budget``
    (at least one sample)."""
    spent = np.cumsum(costs[ranking])
    return ranking[: max(1, int(np.searchsorted(spent, budget, side="right")))]


def to_index_labels(y: Any, name: str, n_classes: int | None = None) -> np.ndarray:
    """Class-index labels as an int64 array; raise naming ``name`` otherwise."""
    if y is None:
        raise TypeError(f"{name} must be an array of class indices, got None.")
    arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    arr = arr.reshape(-1) if arr.ndim == 2 and arr.shape[1] == 1 else arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}.")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices; got non-integral values.")
    elif arr.dtype.kind not in "iub":
        raise TypeError(
            f"{name} must hold integer class indices 0..n_classes-1 (as the network's "
            f"criterion expects), got dtype {arr.dtype}. Encode labels first, e.g. with "
            "sklearn.preprocessing.LabelEncoder."
        )
    arr = arr.astype(np.int64)
    if n_classes is not None and len(arr) and (arr.min() < 0 or arr.max() >= n_classes):
        outside = np.unique(arr[(arr < 0) | (arr >= n_classes)])
        raise ValueError(
            f"{name} holds labels {outside[:10].tolist()} outside the classifier's "
            f"classes 0..{n_classes - 1}."
        )
    return arr
