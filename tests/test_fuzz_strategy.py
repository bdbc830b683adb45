"""Fuzzing ``InfluenceQueryStrategy`` with pools of every shape, dtype, layout and value.

Whatever the pool, a query either raises a clear error that names ``X_pool`` or returns
finite scores and valid indices; the pool and the model are never changed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skorch import NeuralNetClassifier

from conftest import assert_module_unchanged, snapshot_module
from skisal import InfluenceQueryStrategy
from skisal.baselines import CoresetSampling

RNG = np.random.RandomState(0)
X = RNG.randn(60, 4).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)

torch.manual_seed(0)
NET = NeuralNetClassifier(
    lambda: torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)),
    criterion=torch.nn.CrossEntropyLoss,
    max_epochs=3,
    train_split=None,
    verbose=0,
).fit(X[:30], Y[:30])

DTYPES = [np.float16, np.float32, np.float64, np.int64, np.int8, np.uint8, np.bool_]
SPECIAL = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, 1e-40]


@st.composite
def pools(draw):
    """A pool: shape, dtype, special values, and the container and memory layout."""
    n = draw(st.integers(1, 12))
    width = draw(st.sampled_from([4, 4, 4, 3, 5]))
    shape = draw(st.sampled_from([(n, width), (n,), (n, width, 1), (n, 0)]))
    values = RNG.randn(*shape) * draw(st.sampled_from([1.0, 1e3]))
    for _ in range(draw(st.integers(0, 2))):
        if values.size:
            values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from(SPECIAL))
    dtype = draw(st.sampled_from(DTYPES))
    with np.errstate(invalid="ignore", over="ignore"):
        array = values.astype(dtype)
    layout = draw(st.sampled_from(["C", "F", "reversed", "strided", "readonly"]))
    if layout == "F":
        array = np.asfortranarray(array)
    elif layout == "reversed":
        array = array[::-1]
    elif layout == "strided":
        array = np.repeat(array, 2, axis=0)[::2]
    elif layout == "readonly":
        array.flags.writeable = False
    container = draw(st.sampled_from(["array", "tensor", "frame", "list"]))
    if container == "tensor" and array.dtype != np.float16:
        return torch.from_numpy(np.array(array))
    if container == "frame" and array.ndim == 2:
        return pd.DataFrame(array)
    if container == "list":
        return array.tolist()
    return array


def _copy(pool):
    if isinstance(pool, torch.Tensor):
        return pool.clone()
    if isinstance(pool, pd.DataFrame):
        return pool.copy(deep=True)
    if isinstance(pool, np.ndarray):
        return np.array(pool, copy=True)
    return [list(row) if isinstance(row, list) else row for row in pool]


def _assert_same(before, after):
    if isinstance(before, torch.Tensor):
        torch.testing.assert_close(after, before, rtol=0, atol=0, equal_nan=True)
    elif isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(before, after)
    else:
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def _query(strategy, pool):
    before = _copy(pool)
    module = snapshot_module(NET.module_)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. all scores equal
            result = strategy(NET, pool, n_instances=1)
    except (TypeError, ValueError, ArithmeticError) as exc:
        message = str(exc)
        assert "X_pool" in message, f"{type(exc).__name__} does not name X_pool: {message}"
    else:
        idx, scores = result
        assert idx.shape == (1,) and 0 <= idx[0] < len(pool)
        assert np.isfinite(scores).all()
    _assert_same(before, pool)
    assert_module_unchanged(module, NET.module_)


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(pool=pools(), scoring=st.sampled_from(["forward", "reverse"]))
def test_influence_query_on_any_pool_is_a_clear_error_or_finite_scores(pool, scoring):
    strategy = InfluenceQueryStrategy(
        X[30:40],
        Y[30:40],
        X_labeled=X[:30],
        y_labeled=Y[:30],
        inverse_hvp="cg",
        scoring=scoring,
        return_scores=True,
        random_state=0,
    )
    _query(strategy, pool)


@FUZZ
@given(pool=pools())
def test_coreset_query_on_any_pool_is_a_clear_error_or_finite_scores(pool):
    _query(CoresetSampling(X_labeled=X[:30], return_scores=True, random_state=0), pool)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e30])
def test_non_finite_reference_and_labelled_values_are_named(value):
    X_ref = X[30:40].copy()
    X_ref[2, 1] = value
    strategy = InfluenceQueryStrategy(
        X_ref, Y[30:40], X_labeled=X[:30], y_labeled=Y[:30], return_scores=True
    )
    try:
        strategy(NET, X[40:], n_instances=1)
    except (ValueError, ArithmeticError) as exc:
        assert "X_reference" in str(exc)
    else:
        assert np.isfinite(strategy.scores_).all()
