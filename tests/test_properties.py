"""Property tests (hypothesis): permutation equivariance, valid selections, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_net
from skisal import InfluenceQueryStrategy

SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def setup():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    torch.manual_seed(0)
    net = make_net(max_epochs=5).fit(X[:80], y[:80])
    return net, X, y


def _strategy(X, y, **kwargs):
    return InfluenceQueryStrategy(
        X[80:110], y[80:110], X_labeled=X[:80], y_labeled=y[:80], return_scores=True, **kwargs
    )


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n_pool=st.integers(1, 60), batch_size=st.integers(1, 64))
def test_permuting_the_pool_permutes_the_scores(setup, seed, n_pool, batch_size):
    net, X, y = setup
    pool = X[200 : 200 + n_pool]
    perm = np.random.RandomState(seed).permutation(n_pool)
    strategy = _strategy(X, y, batch_size=batch_size, inverse_hvp="identity")
    scores = strategy.influence(net, pool)
    permuted = strategy.influence(net, pool[perm])
    # Batch composition changes float32 summation order only.
    np.testing.assert_allclose(permuted, scores[perm], rtol=1e-5, atol=1e-7 * np.abs(scores).max())


@SETTINGS
@given(n_pool=st.integers(1, 80), data=st.data())
def test_selected_indices_are_unique_in_range_and_n_instances_many(setup, n_pool, data):
    net, X, y = setup
    n_instances = data.draw(st.integers(1, n_pool))
    selection = data.draw(st.sampled_from(["top", "auto", "diverse"]))
    strategy = _strategy(X, y, inverse_hvp="cg", selection=selection)
    idx, scores = strategy(net, X[300 : 300 + n_pool], n_instances)
    assert idx.shape == (n_instances,) and idx.dtype.kind == "i"
    assert len(np.unique(idx)) == n_instances
    assert idx.min() >= 0 and idx.max() < n_pool
    np.testing.assert_array_equal(scores, strategy.scores_[idx])
    if selection == "top":
        assert np.all(np.diff(scores) >= 0)  # most negative influence first
    assert np.isfinite(scores).all()


@settings(max_examples=5, deadline=None)
@given(random_state=st.integers(0, 2**31 - 1))
def test_same_random_state_same_selection(setup, random_state):
    net, X, y = setup
    pool = X[400:600]
    picks = [
        _strategy(
            X,
            y,
            inverse_hvp="lissa",
            lissa_depth=30,
            hessian_batch_size=8,
            random_state=random_state,
        )(net, pool, 10)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(picks[0][0], picks[1][0])
    np.testing.assert_array_equal(picks[0][1], picks[1][1])


def test_different_random_state_changes_lissa_minibatches(setup):
    net, X, y = setup
    s_tests = []
    for seed in (0, 1):
        strategy = _strategy(
            X, y, inverse_hvp="lissa", lissa_depth=30, hessian_batch_size=8, random_state=seed
        )
        strategy.influence(net, X[400:450])
        s_tests.append(torch.cat([t.flatten() for t in strategy.s_test_.values()]))
    assert not torch.equal(*s_tests)


def _classifier(kind: str):
    from skorch import NeuralNet, NeuralNetClassifier

    nn = torch.nn
    layer = dict(module=nn.Linear, module__in_features=2, module__out_features=4)
    criteria = {
        "logits": (NeuralNetClassifier, nn.CrossEntropyLoss, {}),
        "probabilities": (NeuralNetClassifier, nn.NLLLoss, {}),
        "log_probabilities": (NeuralNet, nn.NLLLoss, {}),
        "weighted": (NeuralNetClassifier, nn.CrossEntropyLoss, {"weight": torch.rand(4) + 0.5}),
        "smoothed": (NeuralNetClassifier, nn.CrossEntropyLoss, {"label_smoothing": 0.1}),
    }
    cls, criterion, options = criteria[kind]
    params = {f"criterion__{k}": v for k, v in options.items()}
    return cls(**layer, criterion=criterion, **params).initialize()


@SETTINGS
@given(
    kind=st.sampled_from(["logits", "probabilities", "log_probabilities", "weighted", "smoothed"]),
    top_k=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_closed_form_pseudo_label_derivative_equals_autograd(kind, top_k, seed):
    from skisal import ModelAdapter, SkorchClassifierAdapter

    net, adapter = _classifier(kind), SkorchClassifierAdapter(top_k=top_k)
    gen = torch.Generator().manual_seed(seed)
    outputs = 3 * torch.randn(6, 4, generator=gen, dtype=torch.float64)
    if kind == "probabilities":
        outputs = outputs.softmax(dim=1)
    elif kind == "log_probabilities":
        outputs = outputs.log_softmax(dim=1)
    tangents = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    ours = adapter.pseudo_label_derivative(net, outputs, tangents)
    by_autograd = ModelAdapter.pseudo_label_derivative(adapter, net, outputs, tangents)
    torch.testing.assert_close(ours, by_autograd, rtol=1e-10, atol=1e-12)
