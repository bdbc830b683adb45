"""Bad input gets a clear ValueError/TypeError naming the argument and what was expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from conftest import make_net
from skisal import InfluenceQueryStrategy


@pytest.fixture
def call(digits, fitted_net):
    def _call(net=None, X_pool=None, n_instances=1, **options):
        strategy_kwargs = dict(
            X_reference=digits["X_reference"],
            y_reference=digits["y_reference"],
            X_labeled=digits["X_labeled"],
            y_labeled=digits["y_labeled"],
            return_scores=False,
        )
        strategy_kwargs.update(options)
        strategy = InfluenceQueryStrategy(**strategy_kwargs)
        pool = digits["X_pool"] if X_pool is None else X_pool
        return strategy(fitted_net if net is None else net, pool, n_instances=n_instances)

    return _call


def _with_nan(X: np.ndarray) -> np.ndarray:
    X = X.copy()
    X[3, 5] = np.nan
    return X


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (dict(X_pool=np.empty((0, 64), np.float32)), ValueError, "X_pool is empty"),
        (dict(n_instances=0), ValueError, "n_instances must be between 1 and the pool size"),
        (
            dict(n_instances=201),
            ValueError,
            r"n_instances must be between 1 and the pool size \(200\)",
        ),
        (dict(n_instances=2.5), TypeError, "n_instances must be an integer"),
        (dict(X_pool="not data"), TypeError, "X_pool must be a numpy array"),
        (dict(X_pool=np.full((4, 64), "a")), TypeError, "X_pool must hold numbers"),
        (
            dict(X_pool=np.zeros((5, 63), np.float32)),
            ValueError,
            r"X_pool has samples of shape \(63,\)",
        ),
        (dict(inverse_hvp="newton"), ValueError, "inverse_hvp must be 'auto' or one of"),
        (dict(damping=-1.0), ValueError, "damping must be a finite real >= 0"),
        (dict(damping=float("nan")), ValueError, "damping must be"),
        (dict(curvature="kfac"), ValueError, "curvature must be one of"),
        (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
        (dict(lissa_scale="big"), ValueError, "lissa_scale must be 'auto' or a real > 0"),
        (
            dict(parameters=["nope"]),
            ValueError,
            r"parameters=\['nope'\]: \['nope'\] match no parameter",
        ),
        (dict(parameters=42), TypeError, "parameters must be 'all', 'weights'"),
        (dict(adapter="skorch"), TypeError, "adapter must be a skisal ModelAdapter"),
        (
            dict(y_reference=np.arange(60) % 12),
            ValueError,
            r"y_reference holds labels \[10, 11\] outside",
        ),
        (dict(y_reference=np.array(["a"] * 60)), TypeError, "y_reference must hold integer class"),
        (
            dict(y_reference=np.zeros(59, int)),
            ValueError,
            "X_reference has 60 samples but y_reference",
        ),
        (dict(y_reference=None), ValueError, "y_reference is required when X_reference is given"),
        (dict(y_labeled=np.arange(120) + 5), ValueError, "y_labeled holds labels"),
        (dict(X_labeled=None, y_labeled=None), ValueError, "no labelled data for the Hessian"),
    ],
)
def test_bad_input(call, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        call(**kwargs)


@pytest.mark.parametrize("name", ["X_pool", "X_reference", "X_labeled"])
def test_nan_or_inf_is_rejected_naming_the_argument(call, digits, name):
    key = name if name != "X_pool" else None
    bad = _with_nan(digits["X_pool" if key is None else name])
    kwargs = {"X_pool": bad} if key is None else {name: bad}
    with pytest.raises(
        ValueError,
        match=rf"{name} holds NaN or infinite values in 1 sample\(s\) \(first rows: \[3\]\)",
    ):
        call(**kwargs)
    inf = digits["X_pool"].copy()
    inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="X_pool holds NaN or infinite"):
        call(X_pool=torch.as_tensor(inf))


def test_unfitted_estimator(call):
    with pytest.raises(NotFittedError, match="classifier is not fitted"):
        call(net=make_net())


def test_unsupported_estimator(call):
    with pytest.raises(
        TypeError, match=r"classifier must be a skorch NeuralNet.*got LogisticRegression"
    ):
        call(net=LogisticRegression())


def test_unsupported_criterion(call, digits):
    net = make_net(criterion=torch.nn.MSELoss).initialize()
    with pytest.raises(TypeError, match="criterion is MSELoss"):
        call(net=net)


def test_non_finite_model_output_never_becomes_a_score(call, digits):
    """A finite pool sample on which the network overflows is named, not scored NaN."""
    from skisal import NonFiniteScoreError

    X_pool = digits["X_pool"].copy()
    X_pool[7] = 3e38  # finite, but overflows the first layer to inf -> NaN logits
    with pytest.raises(
        NonFiniteScoreError, match=r"not finite for 1 sample\(s\) of X_pool \(first rows: \[7\]\)"
    ):
        call(X_pool=X_pool)
