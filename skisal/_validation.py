"""Input and parameter validation shared by the strategies, the baselines and the adapters.

Every check names the argument it rejects and what was expected, so that a
user reading the error knows which of their objects to fix.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from .exceptions import InvalidParameterError

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
    "rows_as_array",
    "take_rows",
    "to_index_labels",
    "within_budget",
]


def check_constraints(obj: Any, constraints: dict[str, tuple[Any, str]]) -> None:
    """Check an estimator's parameters at call time, as scikit-learn does.

    Parameters
    ----------
    obj : object
        The estimator; each parameter is read with ``getattr``.
    constraints : dict of str to (callable, str)
        Maps a parameter name to ``(check, what was expected)``; ``check(value)``
        returns whether the value is valid.

    Raises
    ------
    skisal.exceptions.InvalidParameterError
        Naming the first parameter whose ``check`` fails, and what was expected;
        it is a ``ValueError`` and a ``TypeError``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> constraints = {"depth": (is_positive_int, "an integer >= 1")}
    >>> check_constraints(SimpleNamespace(depth=3), constraints)  # valid: returns None
    >>> check_constraints(SimpleNamespace(depth=0), constraints)
    Traceback (most recent call last):
    ...
    skisal.exceptions.InvalidParameterError: depth must be an integer >= 1; got 0.
    """
    for name, (check, expected) in constraints.items():
        value = getattr(obj, name)
        if not check(value):
            raise InvalidParameterError(f"{name} must be {expected}; got {value!r}.")


def is_positive_int(value: Any) -> bool:
    """Whether ``value`` is an integer >= 1 (numpy integers too, not bools).

    Parameters
    ----------
    value : object
        The value to check.

    Returns
    -------
    bool
        True for an integer >= 1.

    Examples
    --------
    >>> import numpy as np
    >>> [bool(is_positive_int(v)) for v in (np.int64(2), 0, True, 1.0)]
    [True, False, False, False]
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def is_non_negative_real(value: Any) -> bool:
    """Whether ``value`` is a finite real >= 0 (not a bool).

    Parameters
    ----------
    value : object
        The value to check.

    Returns
    -------
    bool
        True for a finite real >= 0.

    Examples
    --------
    >>> [bool(is_non_negative_real(v)) for v in (0, 2.5, float("inf"), -1e-3, True)]
    [True, True, False, False, False]
    """
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and np.isfinite(value)
        and value >= 0
    )


def is_positive_real(value: Any) -> bool:
    """Whether ``value`` is a finite real > 0 (not a bool).

    Parameters
    ----------
    value : object
        The value to check.

    Returns
    -------
    bool
        True for a finite real > 0.

    Examples
    --------
    >>> [bool(is_positive_real(v)) for v in (0.5, 0, float("nan"), False)]
    [True, False, False, False]
    """
    return is_non_negative_real(value) and value > 0


def n_rows(X: Any) -> int:
    """Number of samples in ``X``: its first dimension, or its length.

    Parameters
    ----------
    X : array-like, torch.Tensor, pandas object or sequence
        The samples.

    Returns
    -------
    int
        ``X.shape[0]`` when ``X`` has a shape, else ``len(X)``.

    Examples
    --------
    >>> import numpy as np
    >>> n_rows(np.zeros((4, 2))), n_rows([[1, 2], [3, 4]])
    (4, 2)
    """
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


def take_rows(X: Any, indices: np.ndarray) -> Any:
    """``X[indices]`` for numpy arrays, tensors, pandas objects and lists.

    Parameters
    ----------
    X : ndarray, torch.Tensor, pandas object or sequence
        The samples.
    indices : ndarray of int
        Positions of the rows to take (pandas objects by position, ``iloc``).

    Returns
    -------
    ndarray, torch.Tensor, pandas object or list
        The rows, of the type of ``X`` (a list for any other sequence).

    Examples
    --------
    >>> import numpy as np, torch
    >>> take_rows(torch.arange(5), np.array([3, 0]))
    tensor([3, 0])
    >>> take_rows(["a", "b", "c"], np.array([2, 1]))
    ['c', 'b']
    """
    if isinstance(X, torch.Tensor):
        return X[torch.as_tensor(indices, device=X.device)]
    if hasattr(X, "iloc"):
        return X.iloc[indices]
    if isinstance(X, np.ndarray):
        return X[indices]
    return [X[int(i)] for i in indices]


def rows_as_array(rows: Any) -> np.ndarray:
    """A batch of rows as a C-contiguous, writable numpy array, ready for ``torch.as_tensor``.

    Whatever the layout of the user's data -- a pandas object (whose
    ``to_numpy`` is a read-only view under copy-on-write, with negative strides
    when the frame was reversed), a Fortran-ordered, strided or reversed array,
    a read-only one -- the network receives the same C-ordered batch, so that
    every layout gives bit-identical outputs. A copy is made only when the
    batch is not already C-contiguous and writable: rows taken by integer
    indexing are a fresh array already. Never modifies ``rows``, and never
    returns a view of read-only memory (the module may write to its input).

    Parameters
    ----------
    rows : ndarray, pandas object, scipy sparse matrix or sequence
        One batch of samples (not the whole data set: this may copy it).

    Returns
    -------
    ndarray
        The batch, C-contiguous and writable.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(6.0).reshape(3, 2)
    >>> X.flags.writeable = False
    >>> batch = rows_as_array(X[::-1])  # reversed and read-only
    >>> batch, batch.flags.c_contiguous, batch.flags.writeable
    (array([[4., 5.],
           [2., 3.],
           [0., 1.]]), True, True)
    >>> fresh = np.ones((2, 2))
    >>> rows_as_array(fresh) is fresh  # already fine: no copy
    True
    """
    if hasattr(rows, "toarray"):  # scipy sparse, e.g. from a Pipeline's transformer
        rows = rows.toarray()
    if hasattr(rows, "to_numpy"):
        rows = rows.to_numpy()
    arr = np.asarray(rows)
    if arr.flags.c_contiguous and arr.flags.writeable:
        return arr
    return np.array(arr, order="C", copy=True)


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

    Examples
    --------
    >>> import numpy as np
    >>> check_data([[0.0, 1.0], [2.0, 3.0]], "X_pool").shape
    (2, 2)
    >>> check_data(np.array([[0.0], [np.nan]]), "X_pool")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X_pool holds NaN or infinite values in 1 sample(s) (first rows: [1]); ...
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


def _value_kinds(X: Any) -> set[str]:
    """numpy dtype kinds of the values of ``X`` ("f", "i", "b", ...); empty when unknown."""
    if isinstance(X, torch.Tensor):
        if X.is_floating_point():
            return {"f"}
        return {"c"} if X.is_complex() else ({"b"} if X.dtype == torch.bool else {"i"})
    dtypes = getattr(X, "dtypes", None)  # a DataFrame: one dtype per column
    if dtypes is not None and hasattr(dtypes, "__iter__"):
        return {getattr(d, "kind", "O") for d in dtypes}
    dtype = getattr(X, "dtype", None)
    return {getattr(dtype, "kind", "O")} if dtype is not None else set()


def check_same_sample_shape(X: Any, name: str, reference: Any, reference_name: str) -> None:
    """Raise if samples of ``X`` and ``reference`` differ in shape or in kind of number.

    Data without a ``shape`` (lists of images of different sizes) is not
    checked for shape. Integer or boolean ``X`` next to a floating-point
    ``reference`` is refused rather than cast: the network was trained on
    floats, and a silent cast would hide a missing scaling (e.g. ``uint8``
    pixels in 0..255 against training images in [0, 1]).

    Parameters
    ----------
    X : array-like or torch.Tensor
        The samples to check.
    name : str
        Name of ``X`` in the error message.
    reference : array-like or torch.Tensor
        Samples of the shape the network expects.
    reference_name : str
        Name of ``reference`` in the error message.

    Raises
    ------
    ValueError
        If both have a shape and their per-sample shapes differ.
    TypeError
        If ``X`` holds integers or booleans and ``reference`` floats.

    Examples
    --------
    >>> import numpy as np
    >>> check_same_sample_shape(np.zeros((5, 3)), "X_pool", np.zeros((2, 3)), "X_reference")
    >>> X_pool, X_reference = np.zeros((5, 4)), np.zeros((2, 3))
    >>> check_same_sample_shape(X_pool, "X_pool", X_reference, "X_reference")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X_pool has samples of shape (4,), but X_reference has samples of shape (3,): ...
    >>> check_same_sample_shape(np.zeros(5), "X", np.zeros((2, 1)), "R")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X has samples of shape (), but R has ... for one feature X.reshape(-1, 1).
    """
    shape, ref_shape = getattr(X, "shape", None), getattr(reference, "shape", None)
    if shape is not None and ref_shape is not None and tuple(shape[1:]) != tuple(ref_shape[1:]):
        hint = "the network expects the latter"
        if len(shape) == 1:
            hint += (
                f"; a 1-D {name} is read as one scalar per sample: for one sample use "
                f"{name}.reshape(1, -1), for one feature {name}.reshape(-1, 1)"
            )
        raise ValueError(
            f"{name} has samples of shape {tuple(shape[1:])}, but {reference_name} has samples "
            f"of shape {tuple(ref_shape[1:])}: {hint}."
        )
    kinds, ref_kinds = _value_kinds(X), _value_kinds(reference)
    if kinds and kinds <= set("iub") and ref_kinds == {"f"}:
        dtype = getattr(X, "dtype", None)
        found = f"{dtype}" if dtype is not None else "/".join(sorted(kinds))
        raise TypeError(
            f"{name} holds {found} values but {reference_name} holds floating-point ones: "
            f"convert {name} to floats the way the training data was (e.g. "
            f"{name}.astype(np.float32), scaled like the training data)."
        )


def check_n_instances(n_instances: Any, n_pool: int) -> int:
    """Validate ``n_instances`` against the pool size.

    Parameters
    ----------
    n_instances : object
        The requested number of samples.
    n_pool : int
        Number of pool samples.

    Returns
    -------
    int
        ``n_instances`` as a Python int.

    Raises
    ------
    TypeError
        If ``n_instances`` is not an integer (bools are refused).
    ValueError
        If it is not between 1 and ``n_pool``.

    Examples
    --------
    >>> import numpy as np
    >>> check_n_instances(np.int64(3), n_pool=10)
    3
    >>> check_n_instances(11, n_pool=10)
    Traceback (most recent call last):
    ...
    ValueError: n_instances must be between 1 and the pool size (10), got 11.
    """
    if isinstance(n_instances, bool) or not isinstance(n_instances, numbers.Integral):
        raise TypeError(f"n_instances must be an integer, got {n_instances!r}.")
    if not 1 <= n_instances <= n_pool:
        raise ValueError(
            f"n_instances must be between 1 and the pool size ({n_pool}), got {n_instances}."
        )
    return int(n_instances)


def check_query_size(n_instances: Any, budget: Any, n_pool: int) -> int | None:
    """A query's size: ``n_instances`` (1 by default), or None when a valid ``budget`` replaces it.

    Parameters
    ----------
    n_instances : int or None
        The requested number of samples.
    budget : float or None
        The requested annotation budget.
    n_pool : int
        Number of pool samples.

    Returns
    -------
    int or None
        The checked ``n_instances`` (1 when neither is given), or None with a
        ``budget``.

    Raises
    ------
    TypeError, ValueError
        For an invalid ``n_instances`` or ``budget``, or both given.

    Examples
    --------
    >>> check_query_size(None, None, n_pool=10), check_query_size(None, 2.5, n_pool=10)
    (1, None)
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
    """The longest prefix of ``ranking`` whose summed ``costs`` stays within ``budget``.

    At least one sample is selected, even if it alone costs more.

    Parameters
    ----------
    ranking : ndarray of int
        Pool indices, best first.
    costs : ndarray of float
        Annotation cost of every pool sample (indexed by pool index).
    budget : float
        The total cost allowed.

    Returns
    -------
    ndarray of int
        The selected prefix of ``ranking``.

    Examples
    --------
    >>> import numpy as np
    >>> costs = np.array([1.0, 3.0, 2.0, 1.0])
    >>> within_budget(np.array([2, 0, 1, 3]), costs, budget=3.5)
    array([2, 0])
    >>> within_budget(np.array([1, 0]), costs, budget=2.0)  # at least one sample
    array([1])
    """
    spent = np.cumsum(costs[ranking])
    return ranking[: max(1, int(np.searchsorted(spent, budget, side="right")))]


def to_index_labels(y: Any, name: str, n_classes: int | None = None) -> np.ndarray:
    """Class-index labels as an int64 array; raise naming ``name`` otherwise.

    Parameters
    ----------
    y : array-like or torch.Tensor
        Labels, of shape ``(n,)`` or ``(n, 1)``; integral floats are accepted.
    name : str
        Argument name used in error messages.
    n_classes : int, optional
        When given, every label must lie in ``0 .. n_classes - 1``.

    Returns
    -------
    ndarray of int64 of shape (n,)
        The labels.

    Raises
    ------
    TypeError
        If ``y`` is None or does not hold numbers.
    ValueError
        If ``y`` is not one-dimensional, holds non-integral values, or labels
        outside the classes.

    Examples
    --------
    >>> to_index_labels([[0.0], [2.0]], "y_labeled", n_classes=3)
    array([0, 2])
    >>> to_index_labels([0, 3], "y_labeled", n_classes=3)
    Traceback (most recent call last):
    ...
    ValueError: y_labeled holds labels [3] outside the classifier's classes 0..2.
    """
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
