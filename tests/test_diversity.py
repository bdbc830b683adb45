"""selection="diverse": last-layer UUIC gradient factors and influence-weighted k-means++."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner

from conftest import bound_model, make_net
from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter
from skisal.engine import evaluation_mode, score_pool
from skisal.engine.diversity import (
    LastLayerFactors,
    gradient_factors,
    influence_rank_weights,
    kmeans_pp_select,
)


def test_gradient_factors_are_per_sample_last_layer_gradients(digits, fitted_net):
    """a (x) [h, 1] equals autograd's per-sample gradient of the UUIC loss w.r.t. out.weight/bias."""
    model = bound_model(fitted_net)
    X = digits["X_pool"][:12]
    module = fitted_net.module_
    grad_before = module.out.weight.grad.clone()  # skorch leaves the last step's .grad
    with evaluation_mode(module), torch.no_grad():
        outer, inner = gradient_factors(model, X, batch_size=5)
    assert torch.equal(module.out.weight.grad, grad_before)  # nothing accumulated
    assert outer.shape == (12, 10) and inner.shape == (12, 17)
    adapter = SkorchClassifierAdapter()
    with evaluation_mode(module):
        for i in range(12):
            weight = module.out.weight.detach().clone().requires_grad_(True)
            bias = module.out.bias.detach().clone().requires_grad_(True)
            params = {"out.weight": weight, "out.bias": bias}
            logits = torch.func.functional_call(module, params, (torch.as_tensor(X[i : i + 1]),))
            loss = adapter.pseudo_label_loss(fitted_net, logits).sum()
            g_weight, g_bias = torch.autograd.grad(loss, [weight, bias])
            expected = torch.cat([g_weight, g_bias[:, None]], dim=1).double()
            torch.testing.assert_close(
                torch.outer(outer[i], inner[i]).double(), expected, atol=1e-6, rtol=1e-4
            )


def test_kmeans_pp_factored_distances_and_invariants():
    rng = np.random.RandomState(0)
    outer = torch.as_tensor(rng.randn(40, 3))
    inner = torch.as_tensor(rng.randn(40, 5))
    explicit = (outer[:, :, None] * inner[:, None, :]).reshape(40, -1)
    picks = kmeans_pp_select(outer, inner, 10, first=7, rng=np.random.RandomState(1))
    assert picks[0] == 7 and len(set(picks.tolist())) == 10
    assert picks.min() >= 0 and picks.max() < 40
    same = kmeans_pp_select(outer, inner, 10, first=7, rng=np.random.RandomState(1))
    np.testing.assert_array_equal(picks, same)  # seeded
    # Second pick: D^2 sampling. With one far point dominating, it must be chosen.
    outer2, inner2 = outer.clone(), inner.clone()
    outer2[3] *= 1e4
    assert kmeans_pp_select(outer2, inner2, 2, first=7, rng=np.random.RandomState(2))[1] == 3
    # The factored distance used inside equals the explicit one.
    sq = (outer**2).sum(1) * (inner**2).sum(1)
    factored = sq + sq[7] - 2 * (outer @ outer[7]) * (inner @ inner[7])
    torch.testing.assert_close(factored, ((explicit - explicit[7]) ** 2).sum(1))


def test_kmeans_pp_with_duplicates_and_whole_pool():
    outer = torch.ones(6, 2, dtype=torch.float64)
    inner = torch.ones(6, 3, dtype=torch.float64)  # every point identical
    picks = kmeans_pp_select(outer, inner, 6, first=2, rng=np.random.RandomState(0))
    assert sorted(picks.tolist()) == list(range(6)) and picks[0] == 2


def test_kmeans_pp_float32_products_pick_as_float64():
    """The default float32 products change no pick against float64 ones.

    Non-negative (ReLU-like) features with a bias column, as gradient_factors
    gives them, and influence-rank weights on the outer factors.
    """
    rng = np.random.RandomState(0)
    outer = torch.as_tensor(rng.randn(3000, 10))
    features = np.maximum(rng.randn(3000, 128) + 0.3 * rng.randn(3000, 1), 0)
    inner = torch.as_tensor(np.hstack([features, np.ones((3000, 1))]))
    outer = outer * influence_rank_weights(torch.as_tensor(rng.randn(3000))).sqrt()[:, None]
    for seed in range(5):
        fast = kmeans_pp_select(outer, inner, 40, first=seed, rng=np.random.RandomState(seed))
        exact = kmeans_pp_select(
            outer, inner, 40, first=seed, rng=np.random.RandomState(seed), dtype=torch.float64
        )
        np.testing.assert_array_equal(fast, exact)


def _classifier_like_factors(n: int, n_classes: int, seed: int):
    """Last-layer factors shaped like a classifier's: ``a = p - e_y``, ReLU features by class."""
    rng = np.random.RandomState(seed)
    y = rng.randint(n_classes, size=n)
    logits = rng.randn(n, n_classes) + 4 * np.eye(n_classes)[y] * rng.rand(n, 1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    outer = torch.as_tensor(p - np.eye(n_classes)[p.argmax(1)])
    centres = rng.randn(n_classes, 64)
    features = np.maximum(centres[y] + 0.7 * rng.randn(n, 64), 0)
    inner = torch.as_tensor(np.hstack([features, np.ones((n, 1))]), dtype=torch.float32)
    return outer * influence_rank_weights(torch.as_tensor(rng.randn(n))).sqrt()[:, None], inner


def test_kmeans_pp_pruning_picks_as_every_distance(monkeypatch):
    """The lower bound skips most points of a classifier's factors and changes no pick.

    A spy on the gathered inner factors checks that the pruned path ran (the test
    means something only if it did); the picks equal those of ``prune=False``.
    """
    gathered = []
    index = torch.Tensor.__getitem__

    def spy(self, key):
        if isinstance(key, torch.Tensor) and self.shape == (4000, 65):  # the inner factors
            gathered.append(len(key) / 4000)
        return index(self, key)

    for seed in range(4):
        outer, inner = _classifier_like_factors(4000, 10, seed)
        every = kmeans_pp_select(outer, inner, 40, 0, np.random.RandomState(seed), prune=False)
        monkeypatch.setattr(torch.Tensor, "__getitem__", spy)
        pruned = kmeans_pp_select(outer, inner, 40, 0, np.random.RandomState(seed))
        monkeypatch.undo()
        np.testing.assert_array_equal(pruned, every)
    assert gathered and np.median(gathered) < 0.3  # most points were skipped


def test_kmeans_pp_float32_rounding_counts_as_coincident():
    """Points equal up to float32 rounding are duplicates, as exactly equal ones are.

    Without the rounding allowance, float32 products leave such points a
    spurious positive distance, and D^2 sampling would draw them before the
    index-order fallback.
    """
    for seed in range(5):  # the float32 residue is positive for some of these, negative for others
        rng = np.random.RandomState(seed)
        base_outer, base_inner = torch.as_tensor(rng.randn(1, 4)), torch.as_tensor(rng.rand(1, 30))
        outer = torch.cat([base_outer.repeat(8, 1), 5 * base_outer])  # the last point far away
        inner = base_inner.repeat(9, 1)
        picks = kmeans_pp_select(outer, inner, 9, first=0, rng=np.random.RandomState(seed))
        assert picks[1] == 8  # the far point, by D^2 sampling
        assert picks[2:].tolist() == list(range(1, 8))  # then the duplicates, in index order


def test_influence_rank_weights():
    weights = influence_rank_weights(torch.tensor([3.0, -1.0, 0.5, -7.0, 2.0]))
    torch.testing.assert_close(
        weights, torch.tensor([0.5, 0.875, 0.75, 1.0, 0.625], dtype=torch.float64)
    )


def _learner(digits, net, **options):
    strategy = InfluenceQueryStrategy(
        digits["X_reference"], digits["y_reference"], random_state=0, **options
    )
    learner = ActiveLearner(estimator=net, query_strategy=strategy)
    learner.X_training, learner.y_training = digits["X_labeled"], digits["y_labeled"]
    return learner, strategy


def test_diverse_query_starts_at_the_most_helpful_and_is_reproducible(digits, fitted_net):
    learner, strategy = _learner(digits, fitted_net, selection="diverse")
    idx, X_sel = learner.query(digits["X_pool"], n_instances=15)
    assert len(set(np.asarray(idx).tolist())) == 15
    assert idx[0] == int(np.argmin(strategy.scores_))
    np.testing.assert_array_equal(X_sel, digits["X_pool"][idx])
    again, _ = learner.query(digits["X_pool"], n_instances=15)
    np.testing.assert_array_equal(idx, again)
    top, _ = _learner(digits, fitted_net, selection="top")[0].query(
        digits["X_pool"], n_instances=15
    )
    assert set(np.asarray(top).tolist()) != set(np.asarray(idx).tolist())  # it does differ


def _counting_gradient_factors(monkeypatch):
    """Patch the strategy's gradient_factors to count its calls; returns the counter."""
    import skisal._selection

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return gradient_factors(*args, **kwargs)

    monkeypatch.setattr(skisal._selection, "gradient_factors", counted)
    return calls


@pytest.mark.parametrize("selection", ["diverse", "auto"])
def test_the_factors_come_from_the_scoring_pass(digits, fitted_net, monkeypatch, selection):
    """Where the last nn.Linear gives the outputs, the scoring's forward pass records the
    factors (no pass of gradient_factors), and the picks are those of the separate pass."""
    calls = _counting_gradient_factors(monkeypatch)
    recorded, _ = _learner(digits, fitted_net, selection=selection)[0].query(
        digits["X_pool"], n_instances=15
    )
    assert calls == []
    monkeypatch.setattr(LastLayerFactors, "result", lambda self: None)  # nothing recorded
    separate, strategy = _learner(digits, fitted_net, selection=selection)
    separate_idx, _ = separate.query(digits["X_pool"], n_instances=15)
    assert calls == [1] and strategy.diagnostics_.selection == "diverse"
    np.testing.assert_array_equal(recorded, separate_idx)


def test_outputs_transformed_after_the_last_linear_get_their_own_pass(digits, monkeypatch):
    """A softmax after the last nn.Linear: its output is not the network's, so the factors
    cannot be read off the scoring pass; gradient_factors runs and the picks are its."""
    torch.manual_seed(0)
    net = make_net(module__softmax=True, criterion=torch.nn.NLLLoss)
    net.fit(digits["X_labeled"], digits["y_labeled"])
    recorder = LastLayerFactors(bound_model(net), len(digits["X_pool"]))
    with evaluation_mode(net.module_):
        score_pool(
            recorder.model,
            torch.randn(recorder.model.space.dim),
            digits["X_pool"],
            64,
            observer=recorder,
        )
    assert recorder.result() is None and "transforms layer 'out'" in recorder.reason
    calls = _counting_gradient_factors(monkeypatch)
    idx, _ = _learner(digits, net, selection="diverse")[0].query(digits["X_pool"], n_instances=5)
    assert calls == [1] and len(set(np.asarray(idx).tolist())) == 5


def test_diverse_single_instance_equals_top(digits, fitted_net):
    diverse = _learner(digits, fitted_net, selection="diverse")[0].query(digits["X_pool"])[0]
    top = _learner(digits, fitted_net)[0].query(digits["X_pool"])[0]
    np.testing.assert_array_equal(diverse, top)


def test_a_recorder_without_a_linear_layer_records_nothing_and_says_why(digits):
    """The scoring pass goes on (a rule other than "diverse" may follow); the reason is kept."""
    net = make_net(
        module=torch.nn.Conv1d,
        module__in_channels=1,
        module__out_channels=10,
        module__kernel_size=1,
    ).initialize()
    model = bound_model(net)
    recorder = LastLayerFactors(model, 4)
    with recorder:
        recorder.record(np.arange(4), torch.zeros(4, 64))
    assert recorder.result() is None and "no nn.Linear" in recorder.reason


class _PerPosition(torch.nn.Module):
    """The last nn.Linear applied at two positions: outputs ``(n, 2, 10)``."""

    def __init__(self):
        super().__init__()
        self.out = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.out(x.reshape(len(x), 2, 32))


def test_a_recorder_refuses_outputs_of_more_than_one_row_per_sample(digits):
    """Their losses need the outputs' shape, which the factor rows drop: no factors, a reason."""
    net = make_net(module=_PerPosition).initialize()
    recorder = LastLayerFactors(bound_model(net), 4)
    with recorder, torch.no_grad():
        outputs = net.module_(torch.as_tensor(digits["X_pool"][:4]))
        recorder.record(np.arange(4), outputs)
    assert recorder.result() is None and "not one row per sample" in recorder.reason


def test_bad_selection_and_network_without_linear(digits, fitted_net):
    learner, _ = _learner(digits, fitted_net, selection="spread")
    with pytest.raises(ValueError, match="selection must be one of"):
        learner.query(digits["X_pool"], n_instances=2)

    class Conv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 10, kernel_size=64)

        def forward(self, x):
            return self.conv(x[:, None, :]).flatten(1)

    torch.manual_seed(0)
    net = make_net(module=Conv, max_epochs=2).fit(digits["X_labeled"], digits["y_labeled"])
    learner, _ = _learner(digits, net, selection="diverse")
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        learner.query(digits["X_pool"], n_instances=2)
