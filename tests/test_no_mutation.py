"""A query never changes what the user gave us, even when it fails or is interrupted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner

from conftest import assert_module_unchanged, snapshot_module
from skisal import InfluenceQueryStrategy, SolverDivergenceError


@pytest.mark.parametrize(
    "options",
    [
        dict(inverse_hvp="cg"),
        dict(inverse_hvp="lissa", lissa_depth=50),
        dict(inverse_hvp="exact", parameters=["out"]),
        dict(inverse_hvp="cg", curvature="hessian", damping=5.0, scoring="reverse"),
        dict(inverse_hvp="identity", parameters="weights"),
        dict(inverse_hvp="cg", selection="diverse"),
    ],
)
def test_query_leaves_model_and_pool_bit_identical(digits, tricky_net, options):
    module = tricky_net.module_
    before = snapshot_module(module)
    X_pool = digits["X_pool"].copy()
    strategy = InfluenceQueryStrategy(
        digits["X_reference"], digits["y_reference"], random_state=0, **options
    )
    learner = ActiveLearner(estimator=tricky_net, query_strategy=strategy)
    learner.X_training, learner.y_training = digits["X_labeled"], digits["y_labeled"]
    learner.query(X_pool, n_instances=3)
    assert_module_unchanged(before, module)
    np.testing.assert_array_equal(X_pool, digits["X_pool"])
    assert "hidden.bias" not in strategy.parameter_names_  # frozen: not differentiated


def test_torch_pool_is_not_modified(digits, fitted_net):
    X_pool = torch.as_tensor(digits["X_pool"]).clone()
    original = X_pool.clone()
    InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"],
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
    ).influence(fitted_net, X_pool)
    assert torch.equal(X_pool, original)
    assert not X_pool.requires_grad


def test_state_restored_when_solver_raises(digits, tricky_net):
    module = tricky_net.module_
    before = snapshot_module(module)
    strategy = InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"],
        inverse_hvp="lissa",
        lissa_scale=1e-6,
        damping=0.01,
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
    )
    with pytest.raises(SolverDivergenceError, match="diverged"):
        strategy.influence(tricky_net, digits["X_pool"])
    assert_module_unchanged(before, module)


class _Interrupt(torch.nn.Module):
    """Raises KeyboardInterrupt on its n-th call: a user pressing Ctrl-C mid-scoring."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.calls = 0
        self.after = after

    def forward(self, x):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return x


@pytest.mark.parametrize("after", [1, 3, 40])
def test_state_restored_when_interrupted(digits, tricky_net, after):
    module = tricky_net.module_
    module.dropout.register_forward_hook(lambda m, i, o: hook(o))
    hook = _Interrupt(after)
    before = snapshot_module(module)
    strategy = InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"],
        batch_size=8,
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
    )
    with pytest.raises(KeyboardInterrupt):
        strategy.influence(tricky_net, digits["X_pool"])
    assert_module_unchanged(before, module)


def test_device_argument_works_on_a_copy(digits, fitted_net):
    before = snapshot_module(fitted_net.module_)
    scores = InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"],
        device="cpu",
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
    ).influence(fitted_net, digits["X_pool"])
    assert np.isfinite(scores).all()
    assert_module_unchanged(before, fitted_net.module_)


def test_modal_retry_does_not_repeat_expensive_work(digits, fitted_net, monkeypatch):
    """modAL 0.4.2.x calls a strategy again after any exception: we re-raise at once."""
    from skisal._modal import installed_modal_returns_scores

    if not installed_modal_returns_scores():
        pytest.skip("only modAL 0.4.2.x retries")
    import skisal.engine.influence as influence_module

    calls = []
    original = influence_module.InfluenceEngine.s_test

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(influence_module.InfluenceEngine, "s_test", counting)
    strategy = InfluenceQueryStrategy(
        digits["X_reference"], digits["y_reference"], inverse_hvp="lissa", lissa_scale=1e-6
    )
    learner = ActiveLearner(estimator=fitted_net, query_strategy=strategy)
    learner.X_training, learner.y_training = digits["X_labeled"], digits["y_labeled"]
    with pytest.raises(SolverDivergenceError, match="lissa_scale='auto'"):
        learner.query(digits["X_pool"], n_instances=2)
    assert len(calls) == 1
    # The next, genuine query computes again (the cached failure is used once).
    strategy.set_params(lissa_scale="auto", lissa_depth=20)
    learner.query(digits["X_pool"], n_instances=2)
    assert len(calls) == 2
