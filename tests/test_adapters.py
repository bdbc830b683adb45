"""Adapters compose like scikit-learn estimators, and check their parameters at use time."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone

from conftest import LinearAdapter
from skisal import InfluenceQueryStrategy, ModelAdapter, SkorchClassifierAdapter
from skisal.adapters import SkactivemlSkorchAdapter


def test_model_adapter_is_an_abstract_estimator():
    with pytest.raises(TypeError, match="abstract"):
        ModelAdapter()

    class Incomplete(LinearAdapter):
        pseudo_label_loss = ModelAdapter.pseudo_label_loss  # abstract again

    with pytest.raises(TypeError, match="pseudo_label_loss"):
        Incomplete()
    adapter = LinearAdapter()
    assert isinstance(adapter, BaseEstimator)
    assert adapter.get_params() == {}
    assert repr(adapter) == "LinearAdapter()"


@pytest.mark.parametrize("cls", [SkorchClassifierAdapter, SkactivemlSkorchAdapter])
def test_get_params_set_params_clone(cls):
    adapter = cls(top_k=2)
    assert adapter.get_params() == {"top_k": 2}
    assert adapter.set_params(top_k=3) is adapter
    assert adapter.top_k == 3
    cloned = clone(adapter)
    assert type(cloned) is cls and cloned is not adapter and cloned.top_k == 3


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (SkorchClassifierAdapter, "SkorchClassifierAdapter()"),  # scikit-learn: changed only
        (lambda: SkorchClassifierAdapter(top_k=2), "SkorchClassifierAdapter(top_k=2)"),
        (lambda: SkactivemlSkorchAdapter(top_k=3), "SkactivemlSkorchAdapter(top_k=3)"),
        (
            lambda: InfluenceQueryStrategy(adapter=SkorchClassifierAdapter(top_k=2)),
            "InfluenceQueryStrategy(adapter=SkorchClassifierAdapter(top_k=2))",
        ),
    ],
    ids=["default", "top_k", "skactiveml", "in-strategy"],
)
def test_repr_is_short(make, expected):
    assert repr(make()) == expected


def test_strategy_set_params_reaches_the_adapter():
    adapter = SkorchClassifierAdapter(top_k=1)
    strategy = InfluenceQueryStrategy(adapter=adapter)
    assert strategy.get_params(deep=True)["adapter__top_k"] == 1
    assert strategy.set_params(adapter__top_k=3) is strategy
    assert strategy.adapter is adapter and adapter.top_k == 3
    assert strategy.get_params(deep=True)["adapter__top_k"] == 3


def test_clone_strategy_clones_the_adapter():
    strategy = InfluenceQueryStrategy(damping=0.1, adapter=SkorchClassifierAdapter(top_k=2))
    cloned = clone(strategy)
    assert cloned.adapter is not strategy.adapter
    assert cloned.get_params(deep=True)["adapter__top_k"] == 2
    cloned.set_params(adapter__top_k=4)
    assert strategy.adapter.top_k == 2  # the original is not shared


def test_nested_top_k_changes_the_query(digits, fitted_net):
    def influence(strategy):
        return strategy.influence(fitted_net, digits["X_pool"][:20])

    options = dict(
        X_reference=digits["X_reference"],
        y_reference=digits["y_reference"],
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
        inverse_hvp="identity",
    )
    strategy = InfluenceQueryStrategy(**options, adapter=SkorchClassifierAdapter(top_k=1))
    top1 = influence(strategy)
    top3 = influence(strategy.set_params(adapter__top_k=3))
    explicit = influence(InfluenceQueryStrategy(**options, adapter=SkorchClassifierAdapter(3)))
    np.testing.assert_array_equal(top3, explicit)
    assert not np.allclose(top1, top3)


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True, "2", None])
def test_top_k_is_checked_at_use_time(fitted_net, top_k):
    adapter = SkorchClassifierAdapter(top_k=top_k)  # construction stores, never checks
    assert adapter.top_k is top_k
    with pytest.raises(ValueError, match=r"top_k must be a positive integer; got "):
        adapter.check_estimator(fitted_net)


def test_top_k_accepts_numpy_integers(fitted_net):
    SkorchClassifierAdapter(top_k=np.int64(2)).check_estimator(fitted_net)


def test_adapters_keep_no_state(digits, fitted_net):
    adapter = SkorchClassifierAdapter(top_k=2)
    strategy = InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"],
        adapter=adapter,
        inverse_hvp="identity",
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
    )
    strategy.influence(fitted_net, digits["X_pool"][:10])
    assert vars(adapter) == {"top_k": 2}
