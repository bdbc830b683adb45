"""Baselines: random and core-set sampling, penultimate features, gradient similarity."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from modAL.models import ActiveLearner
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from skorch import NeuralNetClassifier

from conftest import (
    assert_module_unchanged,
    learner_on_labelled,
    make_net,
    requires_modal_041,
    run_with_modal_041,
    snapshot_module,
)
from skisal import InfluenceQueryStrategy
from skisal._modal import installed_modal_returns_scores
from skisal.baselines import (
    CoresetSampling,
    RandomSampling,
    gradient_similarity,
    k_center_greedy,
    penultimate_features,
)

# -- helpers -------------------------------------------------------------------------------


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances, the direct way (no |a|^2 + |b|^2 - 2ab shortcut)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))


def brute_k_center(pool, centers, n_instances, first=None):
    """Textbook greedy k-center: recompute every distance to every centre each step."""
    pool = np.asarray(pool, np.float64)
    chosen: list[int] = []
    dists: list[float] = []
    current = [] if centers is None else list(np.asarray(centers, np.float64))
    if not current:  # a random start, scored by its distance to the farthest pool point
        chosen.append(int(first))
        dists.append(float(_pairwise(pool, pool[first][None]).max()))
        current.append(pool[first])
    while len(chosen) < n_instances:
        nearest = _pairwise(pool, np.stack(current)).min(axis=1)
        nearest[chosen] = -np.inf
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        dists.append(float(nearest[pick]))
        current.append(pool[pick])
    return np.array(chosen), np.array(dists)


def _hand_penultimate(net, X) -> np.ndarray:
    """Input of conftest.MLP's last Linear (``out``), eval mode, written out by hand."""
    module = copy.deepcopy(net.module_).eval()
    with torch.no_grad():
        h = torch.tanh(module.norm(module.hidden(torch.as_tensor(X))))
    return h.numpy()


# -- k-center greedy -----------------------------------------------------------------------


def test_k_center_hand_computed_order_and_distances():
    pool = torch.tensor([[1.0], [5.0], [10.0], [-3.0]])
    idx, dist = k_center_greedy(pool, torch.tensor([[0.0]]), 4)
    # 10 is farthest from 0; then 5 (5 from 10 and 0), -3 (3 from 0), 1 (1 from 0).
    assert idx.tolist() == [2, 1, 3, 0]
    np.testing.assert_allclose(dist, [10.0, 5.0, 3.0, 1.0])
    assert idx.dtype == np.int64


def test_k_center_first_pick_is_farthest_from_centres():
    rng = np.random.RandomState(3)
    pool, centers = rng.randn(50, 4), rng.randn(7, 4)
    idx, dist = k_center_greedy(torch.as_tensor(pool), torch.as_tensor(centers), 1)
    nearest = _pairwise(pool, centers).min(axis=1)
    assert idx[0] == np.argmax(nearest)
    assert dist[0] == pytest.approx(nearest.max(), rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_pool=st.integers(1, 40),
    n_centers=st.integers(0, 8),
    dim=st.integers(1, 5),
    chunk_size=st.sampled_from([1, 3, 7, 4096]),
    data=st.data(),
)
def test_k_center_matches_brute_force(seed, n_pool, n_centers, dim, chunk_size, data):
    n_instances = data.draw(st.integers(1, n_pool))
    rng = np.random.RandomState(seed)
    pool = rng.randn(n_pool, dim)
    centers = rng.randn(n_centers, dim) if n_centers else None
    idx, dist = k_center_greedy(
        torch.as_tensor(pool),
        None if centers is None else torch.as_tensor(centers),
        n_instances,
        random_state=seed,
        chunk_size=chunk_size,
    )
    assert idx.shape == dist.shape == (n_instances,)
    assert len(np.unique(idx)) == n_instances
    assert idx.min() >= 0 and idx.max() < n_pool
    assert np.all(np.diff(dist) <= 1e-12)  # non-increasing
    expected_idx, expected_dist = brute_k_center(pool, centers, n_instances, first=idx[0])
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(dist, expected_dist, rtol=1e-6, atol=1e-9)


def test_k_center_without_centres_seeds_first_point_with_random_state():
    pool = torch.as_tensor(np.random.RandomState(0).randn(30, 3))
    firsts = []
    for seed in range(12):
        a, dist_a = k_center_greedy(pool, None, 5, random_state=seed)
        b, _ = k_center_greedy(pool, None, 5, random_state=seed)
        np.testing.assert_array_equal(a, b)
        assert np.isfinite(dist_a).all() and dist_a[0] == dist_a[1]
        firsts.append(int(a[0]))
    assert len(set(firsts)) > 3  # the seed, not the data, picks the first point
    # Empty centre set behaves as no centres.
    empty, _ = k_center_greedy(pool, torch.empty(0, 3, dtype=pool.dtype), 5, random_state=4)
    np.testing.assert_array_equal(empty, k_center_greedy(pool, None, 5, random_state=4)[0])


def test_k_center_duplicates_still_give_unique_indices():
    pool = torch.zeros(6, 2)
    idx, dist = k_center_greedy(pool, torch.zeros(1, 2), 6)
    assert sorted(idx.tolist()) == list(range(6))
    np.testing.assert_array_equal(dist, np.zeros(6))


@pytest.mark.parametrize("n_instances", [0, 5])
def test_k_center_rejects_bad_n_instances(n_instances):
    with pytest.raises(ValueError, match="n_instances"):
        k_center_greedy(torch.zeros(4, 2), None, n_instances)


# -- RandomSampling ------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_pool=st.integers(1, 300), data=st.data())
def test_random_sampling_reproducible_unique_in_range(seed, n_pool, data):
    n_instances = data.draw(st.integers(1, n_pool))
    strategy = RandomSampling(random_state=seed, return_scores=True)
    X = np.zeros((n_pool, 2))
    idx, scores = strategy(None, X, n_instances)
    again, _ = strategy(None, X, n_instances)
    np.testing.assert_array_equal(idx, again)
    assert idx.shape == scores.shape == (n_instances,) and idx.dtype.kind == "i"
    assert len(np.unique(idx)) == n_instances
    assert idx.min() >= 0 and idx.max() < n_pool
    assert np.all(np.diff(scores) <= 0) and np.all((scores >= 0) & (scores < 1))


def test_random_sampling_differs_across_seeds_and_is_uniform():
    X = np.zeros((100, 3))
    picks = {
        tuple(RandomSampling(random_state=s, return_scores=False)(None, X, 10)) for s in range(5)
    }
    assert len(picks) == 5
    # A RandomState instance advances: successive queries are independent draws.
    shared = RandomSampling(random_state=np.random.RandomState(0), return_scores=False)
    assert not np.array_equal(shared(None, X, 10), shared(None, X, 10))
    # One of four, over 2000 seeds: each index ~500 times (5 standard deviations: ±100).
    counts = np.bincount(
        [RandomSampling(random_state=s, return_scores=False)(None, X[:4])[0] for s in range(2000)],
        minlength=4,
    )
    assert counts.min() > 400 and counts.max() < 600, counts


def test_random_sampling_protocols_and_inputs():
    X = np.random.RandomState(0).randn(20, 3)
    with_scores = RandomSampling(random_state=1, return_scores=True)(None, X, 4)
    indices = RandomSampling(random_state=1, return_scores=False)(None, X, 4)
    assert isinstance(with_scores, tuple) and len(with_scores) == 2
    assert isinstance(indices, np.ndarray) and indices.shape == (4,)
    np.testing.assert_array_equal(with_scores[0], indices)
    auto = RandomSampling(random_state=1)(None, X, 4)
    assert isinstance(auto, tuple) is installed_modal_returns_scores()
    # Only the number of rows matters: tensors and lists select the same rows.
    for pool in (torch.as_tensor(X), X.tolist()):
        np.testing.assert_array_equal(
            RandomSampling(random_state=1, return_scores=False)(None, pool, 4), indices
        )
    # All of the pool: a permutation.
    everything = RandomSampling(random_state=2, return_scores=False)(None, X, 20)
    assert sorted(everything.tolist()) == list(range(20))


@pytest.mark.parametrize(
    ("kwargs", "pool", "n_instances", "error", "match"),
    [
        ({}, np.zeros((5, 2)), 0, ValueError, "n_instances"),
        ({}, np.zeros((5, 2)), 6, ValueError, "n_instances"),
        ({}, np.zeros((5, 2)), 2.0, TypeError, "n_instances"),
        ({}, np.zeros((5, 2)), True, TypeError, "n_instances"),
        ({}, np.zeros((0, 2)), 1, ValueError, "X_pool"),
        ({}, None, 1, TypeError, "X_pool"),
        ({"return_scores": "x"}, np.zeros((5, 2)), 1, ValueError, "return_scores"),
    ],
)
def test_random_sampling_rejects_bad_input(kwargs, pool, n_instances, error, match):
    with pytest.raises(error, match=match):
        RandomSampling(random_state=0, **kwargs)(None, pool, n_instances)


@pytest.mark.parametrize("return_scores", ["auto", True])
def test_random_sampling_in_an_active_learner_loop(digits, return_scores):
    if return_scores is True and not installed_modal_returns_scores():
        pytest.skip("modAL 0.4.1 learners expect indices only")
    torch.manual_seed(0)
    strategy = RandomSampling(random_state=0, return_scores=return_scores)
    learner = learner_on_labelled(digits, make_net(max_epochs=2), strategy)
    X_pool, y_pool = digits["X_pool"].copy(), digits["y_pool"].copy()
    for _ in range(2):
        # Two instances: an indices-only answer would be unpacked as (index, "score").
        idx, X_selected = learner.query(X_pool, n_instances=2)
        assert idx.shape == (2,) and len(set(idx.tolist())) == 2
        np.testing.assert_array_equal(X_selected, X_pool[idx])
        expected = RandomSampling(random_state=0, return_scores=False)(None, X_pool, 2)
        np.testing.assert_array_equal(idx, expected)
        learner.teach(X_pool[idx], y_pool[idx])
        X_pool, y_pool = np.delete(X_pool, idx, axis=0), np.delete(y_pool, idx)
    assert len(learner.X_training) == len(digits["X_labeled"]) + 4
    if installed_modal_returns_scores():
        idx, _, metrics = learner.query(X_pool, n_instances=3, return_metrics=True)
        assert metrics is not None and np.all(np.diff(metrics) <= 0)


# -- penultimate_features ------------------------------------------------------------------


def test_penultimate_features_equal_input_of_last_linear(digits, fitted_net):
    module = fitted_net.module_
    module.train()  # BatchNorm and dropout in train mode: the features must still be eval's
    module.dropout.eval()
    before = snapshot_module(module)
    X = digits["X_pool"]
    features = penultimate_features(fitted_net, X, batch_size=7)
    assert isinstance(features, torch.Tensor) and features.dtype == torch.float32
    assert features.shape == (len(X), 16)
    np.testing.assert_allclose(
        features.numpy(), _hand_penultimate(fitted_net, X), rtol=1e-5, atol=1e-6
    )
    assert_module_unchanged(before, module)
    # A learner is unwrapped; a named layer gives that layer's input.
    learner = ActiveLearner(estimator=fitted_net, query_strategy=RandomSampling())
    torch.testing.assert_close(penultimate_features(learner, X), features)
    with torch.no_grad():
        hidden = module.hidden(torch.as_tensor(X)).numpy()
    by_name = penultimate_features(fitted_net, X, layer="norm").numpy()
    np.testing.assert_allclose(by_name, hidden, rtol=1e-5, atol=1e-6)


def test_penultimate_features_of_sequential_and_pipeline(digits):
    torch.manual_seed(0)
    sequential = torch.nn.Sequential(
        torch.nn.Linear(64, 12), torch.nn.ReLU(), torch.nn.Linear(12, 10)
    )
    net = NeuralNetClassifier(
        sequential, criterion=torch.nn.CrossEntropyLoss, max_epochs=2, train_split=None, verbose=0
    )
    scale = FunctionTransformer(lambda X: (X * 16.0 - 3.0).astype(np.float32))
    pipe = make_pipeline(scale, StandardScaler(), FunctionTransformer(np.float32), net)
    pipe.fit(digits["X_labeled"], digits["y_labeled"])
    X = digits["X_pool"][:50]
    Z = pipe[:-1].transform(X)
    with torch.no_grad():
        expected = torch.relu(sequential[0](torch.as_tensor(Z))).numpy()
    np.testing.assert_allclose(
        penultimate_features(pipe, X).numpy(), expected, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        penultimate_features(pipe[-1], Z, layer="2").numpy(), expected, rtol=1e-5, atol=1e-6
    )


class NoLinear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(64, 10))

    def forward(self, x):
        return x @ self.weight


class _OutputRegisteredFirst(torch.nn.Module):
    """The output layer is registered before the hidden one: order of execution counts."""

    def __init__(self) -> None:
        super().__init__()
        self.out = torch.nn.Linear(6, 3)
        self.hidden = torch.nn.Linear(4, 6)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(X)))


def test_penultimate_features_follow_execution_order_not_registration():
    rng = np.random.RandomState(0)
    X = rng.randn(30, 4).astype(np.float32)
    net = NeuralNetClassifier(
        _OutputRegisteredFirst,
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=2,
        train_split=None,
        verbose=0,
    ).fit(X, rng.randint(0, 3, 30).astype(np.int64))
    module = net.module_
    with torch.no_grad():
        expected = torch.relu(module.hidden(torch.as_tensor(X)))
    features = penultimate_features(net, X, batch_size=7)  # several batches
    torch.testing.assert_close(features, expected)


def test_penultimate_features_errors_and_root_layer(digits):
    net = NeuralNetClassifier(
        NoLinear, criterion=torch.nn.CrossEntropyLoss, max_epochs=1, train_split=None, verbose=0
    ).fit(digits["X_labeled"], digits["y_labeled"])
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        penultimate_features(net, digits["X_pool"])
    with pytest.raises(ValueError, match="layer='missing'"):
        penultimate_features(net, digits["X_pool"], layer="missing")
    # "" names the root module, whose input is the data itself.
    np.testing.assert_array_equal(
        penultimate_features(net, digits["X_pool"], layer="").numpy(), digits["X_pool"]
    )


# -- CoresetSampling -----------------------------------------------------------------------


def test_coreset_in_active_learner_uses_training_set_as_centres(digits, tricky_net):
    module = tricky_net.module_
    before = snapshot_module(module)
    X_pool = digits["X_pool"].copy()
    strategy = CoresetSampling(random_state=0)
    learner = ActiveLearner(estimator=tricky_net, query_strategy=strategy)
    learner.X_training, learner.y_training = digits["X_labeled"], digits["y_labeled"]
    result = learner.query(X_pool, n_instances=6, return_metrics=True)
    idx = result[0]
    assert_module_unchanged(before, module)
    np.testing.assert_array_equal(X_pool, digits["X_pool"])

    pool_features = penultimate_features(tricky_net, X_pool).numpy()
    labelled_features = penultimate_features(tricky_net, digits["X_labeled"]).numpy()
    np.testing.assert_allclose(pool_features, _hand_penultimate(tricky_net, X_pool), atol=1e-6)
    nearest = _pairwise(pool_features, labelled_features).min(axis=1)
    assert idx[0] == np.argmax(nearest)
    assert len(set(idx.tolist())) == 6
    expected_idx, expected_dist = brute_k_center(pool_features, labelled_features, 6)
    np.testing.assert_array_equal(idx, expected_idx)
    metrics = result[2]
    np.testing.assert_allclose(metrics, expected_dist, rtol=1e-5)
    assert metrics[0] == pytest.approx(nearest.max(), rel=1e-5)


def test_coreset_labelled_set_sources_agree(digits, fitted_net):
    X_pool, X_labeled = digits["X_pool"], digits["X_labeled"]
    learner = ActiveLearner(estimator=fitted_net, query_strategy=CoresetSampling())
    learner.X_training, learner.y_training = X_labeled, digits["y_labeled"]
    from_learner, _ = learner.query(X_pool, n_instances=5)
    from_param = CoresetSampling(X_labeled=X_labeled, return_scores=False)(fitted_net, X_pool, 5)
    from_call = CoresetSampling(return_scores=False)(fitted_net, X_pool, 5, X_labeled=X_labeled)
    np.testing.assert_array_equal(from_param, from_learner)
    np.testing.assert_array_equal(from_call, from_learner)
    # A per-call labelled set overrides the learner's.
    other, _ = learner.query(X_pool, n_instances=5, X_labeled=X_pool[:3])
    assert not set(other.tolist()) & {0, 1, 2}  # distance 0 to a centre: picked last
    assert not np.array_equal(other, from_learner)


def test_coreset_without_labelled_data_is_seeded(digits, fitted_net):
    X_pool = digits["X_pool"]
    a, dist = CoresetSampling(random_state=3, return_scores=True)(fitted_net, X_pool, 4)
    b, _ = CoresetSampling(random_state=3, return_scores=True)(fitted_net, X_pool, 4)
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(dist).all() and dist[0] == dist[1]
    features = penultimate_features(fitted_net, X_pool).numpy()
    np.testing.assert_array_equal(a, brute_k_center(features, None, 4, first=a[0])[0])
    firsts = {
        int(CoresetSampling(random_state=s, return_scores=False)(fitted_net, X_pool)[0])
        for s in range(8)
    }
    assert len(firsts) > 2


def test_coreset_custom_layer(digits, fitted_net):
    X_pool, X_labeled = digits["X_pool"], digits["X_labeled"]
    idx = CoresetSampling(layer="norm", return_scores=False)(
        fitted_net, X_pool, 4, X_labeled=X_labeled
    )
    hidden = fitted_net.module_.hidden
    with torch.no_grad():
        pool_f = hidden(torch.as_tensor(X_pool)).numpy()
        lab_f = hidden(torch.as_tensor(X_labeled)).numpy()
    np.testing.assert_array_equal(idx, brute_k_center(pool_f, lab_f, 4)[0])


@pytest.mark.parametrize(
    ("kwargs", "n_instances", "error", "match"),
    [
        ({}, 0, ValueError, "n_instances"),
        ({}, 201, ValueError, "n_instances"),
        ({}, "3", TypeError, "n_instances"),
        ({"layer": "no_such_layer"}, 3, ValueError, "layer='no_such_layer'"),
        ({"return_scores": "x"}, 3, ValueError, "return_scores"),
        ({"batch_size": 0}, 3, ValueError, "batch_size"),
    ],
)
def test_coreset_rejects_bad_input_naming_the_argument(
    digits, tricky_net, kwargs, n_instances, error, match
):
    before = snapshot_module(tricky_net.module_)
    learner = ActiveLearner(estimator=tricky_net, query_strategy=CoresetSampling(**kwargs))
    learner.X_training, learner.y_training = digits["X_labeled"], digits["y_labeled"]
    with pytest.raises(error, match=match):
        learner.query(digits["X_pool"], n_instances=n_instances)
    with pytest.raises(error, match=match):
        CoresetSampling(**kwargs)(tricky_net, digits["X_pool"], n_instances)
    assert_module_unchanged(before, tricky_net.module_)


def test_coreset_rejects_bad_pool_and_labelled_data(fitted_net, digits):
    with pytest.raises(TypeError, match="X_pool"):
        CoresetSampling()(fitted_net, None, 1)
    bad = digits["X_pool"].copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="X_pool"):
        CoresetSampling()(fitted_net, bad, 1)
    with pytest.raises(ValueError, match="X_labeled"):
        CoresetSampling(X_labeled=bad)(fitted_net, digits["X_pool"], 1)


# -- gradient similarity -------------------------------------------------------------------


def test_gradient_similarity_ranks_like_identity_inverse_hvp(digits, fitted_net):
    strategy = gradient_similarity(
        digits["X_reference"], digits["y_reference"], random_state=0, batch_size=50
    )
    assert isinstance(strategy, InfluenceQueryStrategy)
    assert strategy.inverse_hvp == "identity" and strategy.batch_size == 50
    data = dict(X_labeled=digits["X_labeled"], y_labeled=digits["y_labeled"])
    scores = strategy.influence(fitted_net, digits["X_pool"], **data)
    identity = InfluenceQueryStrategy(
        digits["X_reference"], digits["y_reference"], inverse_hvp="identity", random_state=0
    ).influence(fitted_net, digits["X_pool"], **data)
    np.testing.assert_allclose(scores, identity, rtol=1e-5, atol=1e-7 * np.abs(identity).max())
    np.testing.assert_array_equal(
        np.argsort(scores, kind="stable"), np.argsort(identity, kind="stable")
    )
    cg = InfluenceQueryStrategy(digits["X_reference"], digits["y_reference"]).influence(
        fitted_net, digits["X_pool"], **data
    )
    assert not np.array_equal(np.argsort(cg), np.argsort(identity))  # the comparison can tell
    # The same selection inside a learner.
    learner = ActiveLearner(estimator=fitted_net, query_strategy=strategy)
    learner.X_training, learner.y_training = digits["X_labeled"], digits["y_labeled"]
    idx, _ = learner.query(digits["X_pool"], n_instances=5)
    np.testing.assert_array_equal(idx, np.argsort(identity, kind="stable")[:5])


# -- modAL 0.4.1 ---------------------------------------------------------------------------


@requires_modal_041
def test_baselines_in_a_modal_041_loop(tmp_path: Path):
    """modAL 0.4.1 expects indices only: "auto" and False must give them."""
    stdout = run_with_modal_041(
        tmp_path,
        """
        import warnings
        import numpy as np, torch
        from modAL.models import ActiveLearner
        from sklearn.datasets import load_digits
        from skorch import NeuralNetClassifier
        from skisal.baselines import CoresetSampling, RandomSampling
        X, y = load_digits(return_X_y=True); X = (X / 16).astype(np.float32)
        for make in (lambda: RandomSampling(random_state=0),
                     lambda: RandomSampling(random_state=0, return_scores=False),
                     lambda: CoresetSampling(),
                     lambda: CoresetSampling(return_scores=False)):
            torch.manual_seed(0)
            module = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(),
                                         torch.nn.Linear(16, 10))
            net = NeuralNetClassifier(module, criterion=torch.nn.CrossEntropyLoss,
                                      max_epochs=3, train_split=None, verbose=0)
            learner = ActiveLearner(net, query_strategy=make(),
                                    X_training=X[:100], y_training=y[:100])
            pool, labels = X[150:400], y[150:400]
            for _ in range(2):
                with warnings.catch_warnings():
                    warnings.simplefilter("error", DeprecationWarning)  # tuple from strategy
                    idx, X_sel = learner.query(pool, n_instances=2)
                assert isinstance(idx, np.ndarray) and idx.shape == (2,), idx
                assert len(set(idx.tolist())) == 2
                assert np.array_equal(X_sel, pool[idx])
                learner.teach(pool[idx], labels[idx])
                pool, labels = np.delete(pool, idx, axis=0), np.delete(labels, idx)
            assert len(learner.X_training) == 104
        print("OK")
        """,
    )
    assert "OK" in stdout
