"""Shared fixtures: small real data (scikit-learn's digits) and small skorch nets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier

from skisal import ModelAdapter, SkorchClassifierAdapter
from skisal.engine import BoundModel, ParameterSpace, select_parameters

# Scripts launched by tests (torchrun), not modules to import for doctests.
collect_ignore_glob = ["distributed/*.py"]

# Small nets: one thread is as fast, and immune to oversubscription on shared runners.
torch.set_num_threads(1)


class MLP(torch.nn.Module):
    """64 -> hidden -> 10 logits; a dropout and a BatchNorm make eval mode matter."""

    def __init__(self, hidden: int = 16, softmax: bool = False) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(64, hidden)
        self.norm = torch.nn.BatchNorm1d(hidden)
        self.dropout = torch.nn.Dropout(0.2)
        self.out = torch.nn.Linear(hidden, 10)
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.tanh(self.norm(self.hidden(x))))
        logits = self.out(h)
        return logits.softmax(dim=1) if self.softmax else logits


class NaNAbove(torch.nn.Module):
    """A linear classifier whose outputs are NaN for inputs with feature 0 above 3."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x):
        out = self.linear(x)
        return torch.where(x[:, :1] > 3.0, torch.full_like(out, float("nan")), out)


class LinearAdapter(ModelAdapter):
    """The five abstract methods, nothing else: a third-party adapter at its smallest."""

    def get_module(self, estimator):
        return estimator

    def get_inputs(self, estimator, X, indices, device):
        return torch.as_tensor(X[indices], device=device)

    def get_targets(self, estimator, y, indices, device):
        return torch.as_tensor(y[indices], device=device)

    def per_sample_loss(self, estimator, outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets, reduction="none")

    def pseudo_label_loss(self, estimator, outputs):
        return self.per_sample_loss(estimator, outputs, outputs.detach().argmax(dim=1))


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    """Digits split into labelled (120), reference (60) and pool (200) sets."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    order = np.random.RandomState(0).permutation(len(X))
    parts = {"labeled": order[:120], "reference": order[120:180], "pool": order[180:380]}
    data = {f"X_{k}": X[v] for k, v in parts.items()}
    data.update({f"y_{k}": y[v].astype(np.int64) for k, v in parts.items()})
    return data


def make_net(**kwargs) -> NeuralNetClassifier:
    params = dict(
        module=MLP,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=0.02,
        max_epochs=15,
        batch_size=32,
        train_split=None,
        verbose=0,
    )
    params.update(kwargs)
    return NeuralNetClassifier(**params)


@pytest.fixture
def fitted_net(digits) -> NeuralNetClassifier:
    torch.manual_seed(0)
    return make_net().fit(digits["X_labeled"], digits["y_labeled"])


@pytest.fixture
def tricky_net(fitted_net):
    """Mixed train/eval modes, a frozen parameter and a stale .grad: all must survive."""
    module = fitted_net.module_
    module.train()
    module.dropout.eval()
    module.hidden.bias.requires_grad_(False)
    module.out.weight.grad = torch.full_like(module.out.weight, 0.5)
    return fitted_net


def bound_model(net, parameters="all"):
    """The engine's view of a fitted skorch classifier: its module, ``parameters`` selected, CPU."""
    space = ParameterSpace(select_parameters(net.module_, parameters))
    return BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))


# -- the model is never mutated --------------------------------------------------------------
def learner_on_labelled(digits, estimator, strategy):
    """A modAL ``ActiveLearner`` over ``estimator`` with the digits labelled set as its training
    data (modAL fits the estimator on it)."""
    return ActiveLearner(
        estimator=estimator,
        query_strategy=strategy,
        X_training=digits["X_labeled"],
        y_training=digits["y_labeled"],
    )


def snapshot_module(module: torch.nn.Module) -> dict:
    """Everything a query must leave bit-identical: state, modes, flags and ``.grad``."""
    return {
        "state": {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()},
        "modes": {name: m.training for name, m in module.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in module.named_parameters()},
        "grads": {
            n: None if p.grad is None else p.grad.clone() for n, p in module.named_parameters()
        },
    }


def assert_module_unchanged(before: dict, module: torch.nn.Module) -> None:
    after = snapshot_module(module)
    assert before["modes"] == after["modes"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key  # bit-identical
    for name, grad in before["grads"].items():
        other = after["grads"][name]
        assert (grad is None and other is None) or torch.equal(grad, other), name


# -- modAL 0.4.1 beside the installed 0.4.2.x -----------------------------------------------
MODAL_041 = os.environ.get("SKISAL_MODAL_041_PATH")
requires_modal_041 = pytest.mark.skipif(
    not MODAL_041, reason="set SKISAL_MODAL_041_PATH (scripts/test.sh does)"
)


def run_with_modal_041(tmp_path: Path, body: str) -> str:
    """Run ``body`` in a fresh interpreter that imports modAL 0.4.1; return its stdout."""
    preamble = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import modAL
        assert modAL.__file__.startswith(sys.argv[1]), modAL.__file__
        """
    )
    path = tmp_path / "with_modal_041.py"
    path.write_text(preamble + textwrap.dedent(body))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, str(path), MODAL_041], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
