"""``selection="auto"``, the default: class-balanced margin on a model wrong on most of the
reference set, else ``selection="diverse"``; each rule checked against picks rebuilt
independently (``predict_proba``, the "diverse" strategy)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from conftest import learner_on_labelled
from skisal import InfluenceQueryStrategy
from skisal.engine.balance import balanced_order


def _strategy(digits, y_reference=None, **kw) -> InfluenceQueryStrategy:
    return InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"] if y_reference is None else y_reference,
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
        random_state=0,
        **kw,
    )


def _margins_and_labels(net, X):
    proba = net.predict_proba(X)
    top2 = np.sort(proba, axis=1)[:, ::-1]
    return top2[:, 0] - top2[:, 1], proba.argmax(axis=1)


def _round_robin(scores, labels, n):
    """Round-robin written out: per label a queue by score; each round in score order."""
    queues = {
        c: sorted(np.flatnonzero(labels == c), key=lambda i: (scores[i], i))
        for c in np.unique(labels)
    }
    picks = []
    for r in itertools.count():
        batch = [q[r] for q in queues.values() if r < len(q)]
        if not batch:
            return np.array(picks[:n])
        picks += sorted(batch, key=lambda i: (scores[i], i))


# -- the selection rules ----------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_balanced_order_is_the_round_robin(seed):
    rng = np.random.RandomState(seed)
    size = rng.randint(1, 60)
    scores = rng.randint(0, 8, size).astype(float)  # ties too
    labels = rng.randint(0, rng.randint(1, 6), size)
    for n in (1, size // 2 or 1, size):
        np.testing.assert_array_equal(
            balanced_order(scores, labels, n), _round_robin(scores, labels, n)
        )


# -- the gate, on a real query ----------------------------------------------------------
def test_accurate_model_selects_as_diverse(digits, fitted_net):
    X_pool = digits["X_pool"]
    # labels the net predicts: it is right on all of the reference set
    y_reference = fitted_net.predict(digits["X_reference"])
    strategy = _strategy(digits, y_reference)
    idx = strategy(fitted_net, X_pool, n_instances=12)[0]
    d = strategy.diagnostics_
    assert (d.selection, d.reference_accuracy) == ("diverse", 1.0)
    diverse = _strategy(digits, y_reference, selection="diverse")
    np.testing.assert_array_equal(idx, diverse(fitted_net, X_pool, n_instances=12)[0])
    assert "right on 100% of the reference set" in d.selection_reason
    assert "selection: k-means++ over influence-weighted gradients" in str(d)
    reasons = strategy.explain().dropna(subset=["reason"])["reason"]
    assert reasons.str.contains("k-means\\+\\+ pick|first pick").all()


def test_weak_model_selects_by_margin_class_balanced(digits, fitted_net):
    X_pool = digits["X_pool"]
    y_reference = (fitted_net.predict(digits["X_reference"]) + 1) % 10  # all wrong
    strategy = _strategy(digits, y_reference)
    idx = strategy(fitted_net, X_pool, n_instances=12)[0]
    d = strategy.diagnostics_
    assert (d.selection, d.reference_accuracy) == ("margin", 0.0)
    margins, labels = _margins_and_labels(fitted_net, X_pool)
    np.testing.assert_array_equal(idx, _round_robin(margins, labels, 12))
    assert "below min_reference_accuracy=0.5" in d.selection_reason
    table = strategy.explain()
    picked = table[table["selected"]].sort_values("selection_order")
    assert picked["reason"].str.startswith("smallest margin").all()
    assert picked["reason"].str.contains("influence not used").all()


def test_the_gate_reads_the_reference_accuracy_at_its_threshold(digits, fitted_net):
    X_ref, X_pool = digits["X_reference"], digits["X_pool"]
    predicted = fitted_net.predict(X_ref)
    y_half = predicted.copy()
    y_half[::2] = (predicted[::2] + 1) % 10  # 30 of 60 right: accuracy 0.5 exactly
    assert accuracy_score(y_half, predicted) == 0.5
    rules = {}
    for threshold in (0.5, 0.51, 0.0, 1.0):
        strategy = _strategy(digits, y_half, min_reference_accuracy=threshold)
        strategy(fitted_net, X_pool, n_instances=5)
        rules[threshold] = strategy.diagnostics_.selection
        assert strategy.diagnostics_.reference_accuracy == 0.5
    assert rules == {
        0.5: "diverse",  # at the threshold, influence is used
        0.51: "margin",
        0.0: "diverse",
        1.0: "margin",
    }


def test_the_true_labels_give_sklearns_accuracy(digits, fitted_net):
    strategy = _strategy(digits)
    strategy(fitted_net, digits["X_pool"], n_instances=3)
    expected = accuracy_score(digits["y_reference"], fitted_net.predict(digits["X_reference"]))
    assert strategy.diagnostics_.reference_accuracy == pytest.approx(expected)


def test_without_a_reference_set_the_reason_says_it_read_the_training_accuracy(digits, fitted_net):
    strategy = InfluenceQueryStrategy(random_state=0)
    learner = learner_on_labelled(digits, fitted_net, strategy)
    learner.query(digits["X_pool"], n_instances=3)
    reason = strategy.diagnostics_.selection_reason
    assert "the labelled set, which it was trained on: pass X_reference" in reason


def test_one_sample_and_a_budget(digits, fitted_net):
    X_pool = digits["X_pool"]
    y_wrong = (fitted_net.predict(digits["X_reference"]) + 1) % 10
    strategy = _strategy(digits, y_wrong)
    idx = strategy(fitted_net, X_pool, n_instances=1)[0]
    margins, _ = _margins_and_labels(fitted_net, X_pool)
    assert idx.tolist() == [int(np.argmin(margins))]
    # a budget takes samples by influence, as "top" does
    idx = strategy(fitted_net, X_pool, budget=4)[0]
    np.testing.assert_array_equal(idx, np.argsort(strategy.scores_, kind="stable")[:4])
    assert strategy.diagnostics_.selection == "top"
    with pytest.raises(ValueError, match=r"selection=.diverse.*use selection=.top. or .auto."):
        _strategy(digits, selection="diverse")(fitted_net, X_pool, budget=4)


def test_influence_alone_selects_nothing_and_names_no_rule(digits, fitted_net):
    strategy = _strategy(digits)
    strategy.influence(fitted_net, digits["X_pool"])
    d = strategy.diagnostics_
    assert d.selection is None and d.selection_reason is None
    assert "selection:" not in str(d)


@pytest.mark.parametrize("value", [-0.1, 1.5, "half", None])
def test_min_reference_accuracy_is_checked_at_call_time(digits, fitted_net, value):
    strategy = _strategy(digits, min_reference_accuracy=value)  # __init__ stores it as given
    assert strategy.min_reference_accuracy is value
    with pytest.raises(ValueError, match=r"min_reference_accuracy.*\[0, 1\]"):
        strategy(fitted_net, digits["X_pool"], n_instances=2)


def test_the_default_is_auto_and_the_papers_rule_stays_available(digits, fitted_net):
    assert InfluenceQueryStrategy().selection == "auto"
    strategy = _strategy(digits, selection="top")
    idx = strategy(fitted_net, digits["X_pool"], n_instances=6)[0]
    np.testing.assert_array_equal(idx, np.argsort(strategy.scores_, kind="stable")[:6])
    assert strategy.diagnostics_.reference_accuracy is None  # "top" measures nothing
