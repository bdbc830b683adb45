"""``InfluenceQueryStrategy.explain()``: each column checked against what it claims to be."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

from conftest import learner_on_labelled
from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter
from skisal._explain import EXPLANATION_COLUMNS
from skisal.engine import BoundModel, ParameterSpace, evaluation_mode, select_parameters
from skisal.engine.diversity import gradient_factors, influence_rank_weights, pick_distances


def _strategy(digits, **kw) -> InfluenceQueryStrategy:
    return InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"],
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
        random_state=0,
        **kw,
    )


def test_explain_before_any_query_says_what_to_do(digits):
    with pytest.raises(NotFittedError, match=r"learner.query\(X_pool\).*influence"):
        _strategy(digits).explain()


def test_every_column_after_a_top_query_matches_the_model_and_the_selection(digits, fitted_net):
    X_pool = digits["X_pool"]
    strategy = _strategy(digits, selection="top")
    idx = strategy(fitted_net, X_pool, n_instances=7)[0]
    table = strategy.explain()

    assert list(table.columns) == list(EXPLANATION_COLUMNS)
    assert table.index.name == "pool_index"
    np.testing.assert_array_equal(table.index, np.arange(len(X_pool)))
    np.testing.assert_array_equal(table["influence"], strategy.scores_)
    # rank 1 is the most negative influence; ranks are a permutation
    np.testing.assert_array_equal(
        table["rank"].to_numpy(), np.argsort(np.argsort(strategy.scores_, kind="stable")) + 1
    )
    picked = table[table["selected"]].sort_values("selection_order")
    np.testing.assert_array_equal(picked.index, idx)
    assert picked["selection_order"].tolist() == list(range(1, 8))
    assert table.loc[~table["selected"], "selection_order"].isna().all()
    assert picked["reason"].tolist() == [f"rank {r} by influence" for r in range(1, 8)]
    assert table.loc[~table["selected"], "reason"].isna().all()
    assert table["distance"].isna().all()

    # the model's own predictions and probabilities
    proba = fitted_net.predict_proba(X_pool)
    top2 = np.sort(proba, axis=1)[:, ::-1][:, :2]
    np.testing.assert_array_equal(table["pseudo_label"].to_numpy(int), fitted_net.predict(X_pool))
    np.testing.assert_allclose(table["confidence"], top2[:, 0], rtol=1e-5)
    np.testing.assert_allclose(table["margin"], top2[:, 0] - top2[:, 1], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(table["cost"], np.ones(len(X_pool)))


def test_after_influence_nothing_is_selected_and_the_ranking_remains(digits, fitted_net):
    strategy = _strategy(digits)
    strategy(fitted_net, digits["X_pool"], n_instances=3)
    scores = strategy.influence(fitted_net, digits["X_pool"][:50])
    table = strategy.explain()  # the last call's pool, not the earlier query's
    assert len(table) == 50 and not table["selected"].any()
    assert table["reason"].isna().all()
    assert table.loc[table["rank"] == 1].index[0] == int(np.argmin(scores))


def test_diverse_picks_say_how_far_they_were_from_the_earlier_ones(digits, fitted_net):
    X_pool = digits["X_pool"]
    strategy = _strategy(digits, selection="diverse")
    idx = strategy(fitted_net, X_pool, n_instances=6)[0]
    picked = strategy.explain().sort_values("selection_order").dropna(subset=["selection_order"])
    np.testing.assert_array_equal(picked.index, idx)
    assert picked["reason"].iloc[0] == "most helpful sample (first pick)"
    assert picked["rank"].iloc[0] == 1
    assert all(
        r.startswith(f"k-means++ pick {k}:") for k, r in enumerate(picked["reason"], 1) if k > 1
    )

    # the distances, recomputed from the explicit (weighted) last-layer gradients
    space = ParameterSpace(select_parameters(fitted_net.module_))
    model = BoundModel(
        SkorchClassifierAdapter(), fitted_net, fitted_net.module_, space, torch.device("cpu")
    )
    with evaluation_mode(fitted_net.module_):
        outer, inner = gradient_factors(model, X_pool, 64)
    weights = influence_rank_weights(torch.as_tensor(strategy.scores_)).sqrt()
    grads = torch.einsum("np,nq->npq", outer * weights[:, None], inner).flatten(1)[idx]
    expected = [np.nan] + [
        float(torch.cdist(grads[k : k + 1], grads[:k]).min()) for k in range(1, len(idx))
    ]
    np.testing.assert_allclose(picked["distance"], expected, rtol=1e-6)
    assert picked["distance"].iloc[1:].gt(0).all()


def test_pick_distances_against_brute_force():
    rng = np.random.RandomState(0)
    outer, inner = torch.as_tensor(rng.randn(9, 3)), torch.as_tensor(rng.randn(9, 4))
    order = np.array([4, 0, 7, 2])
    points = torch.einsum("np,nq->npq", outer, inner).flatten(1)[order].numpy()
    expected = [np.nan] + [
        min(np.linalg.norm(points[k] - points[j]) for j in range(k)) for k in range(1, 4)
    ]
    np.testing.assert_allclose(pick_distances(outer, inner, order), expected, rtol=1e-10)


def test_the_table_is_a_copy_and_survives_pickling(digits, fitted_net):
    strategy = _strategy(digits)
    learner = learner_on_labelled(digits, fitted_net, strategy)
    learner.query(digits["X_pool"], n_instances=2)
    table = strategy.explain()
    table.loc[:, "influence"] = 0.0  # the user's edits do not reach the strategy
    np.testing.assert_array_equal(strategy.explain()["influence"], strategy.scores_)
    pd.testing.assert_frame_equal(
        pickle.loads(pickle.dumps(strategy)).explain(), strategy.explain()
    )
