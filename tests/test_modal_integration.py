"""skisal in real modAL loops, with every estimator form the issue names."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner, DeepActiveLearner
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from skorch import NeuralNet

from conftest import MLP, learner_on_labelled, make_net, requires_modal_041, run_with_modal_041
from skisal import InfluenceQueryStrategy
from skisal._modal import installed_modal_returns_scores


def _strategy(digits, **kwargs) -> InfluenceQueryStrategy:
    return InfluenceQueryStrategy(
        digits["X_reference"], digits["y_reference"], random_state=0, **kwargs
    )


def test_installed_modal_protocol_is_recognised():
    from importlib.metadata import version

    release = tuple(int(p) for p in version("modAL-python").split(".")[:3])
    assert installed_modal_returns_scores() is (release >= (0, 4, 2))


@pytest.mark.parametrize("inverse_hvp", ["cg", "lissa", "identity"])
def test_active_learner_query_teach_loop(digits, inverse_hvp):
    torch.manual_seed(0)
    strategy = _strategy(digits, inverse_hvp=inverse_hvp, lissa_depth=100, selection="top")
    learner = learner_on_labelled(digits, make_net(), strategy)
    X_pool, y_pool = digits["X_pool"].copy(), digits["y_pool"].copy()
    for _ in range(2):
        idx, X_selected = learner.query(X_pool, n_instances=10)
        assert len(idx) == 10 == len(np.unique(idx))
        np.testing.assert_array_equal(X_selected, X_pool[idx])
        # The selection is the 10 most negative influences, most negative first.
        np.testing.assert_array_equal(idx, np.argsort(strategy.scores_, kind="stable")[:10])
        learner.teach(X_pool[idx], y_pool[idx])
        X_pool, y_pool = np.delete(X_pool, idx, axis=0), np.delete(y_pool, idx)
    assert len(learner.X_training) == len(digits["X_labeled"]) + 20
    assert strategy.diagnostics_.n_labeled == len(digits["X_labeled"]) + 10
    assert strategy.diagnostics_.scoring_method == "forward"


def test_query_returns_metrics_with_modal_042(digits, fitted_net):
    if not installed_modal_returns_scores():
        pytest.skip("the installed modAL is 0.4.1 (covered by the subprocess test)")
    strategy = _strategy(digits, selection="top")
    learner = ActiveLearner(estimator=fitted_net, query_strategy=strategy)
    learner.X_training, learner.y_training = digits["X_labeled"], digits["y_labeled"]
    idx, _, metrics = learner.query(digits["X_pool"], n_instances=5, return_metrics=True)
    np.testing.assert_allclose(metrics, strategy.scores_[idx])
    assert np.all(np.diff(metrics) >= 0)


def test_deep_active_learner_takes_labelled_data_from_the_strategy(digits):
    torch.manual_seed(0)
    strategy = _strategy(digits)
    learner = DeepActiveLearner(estimator=make_net(), query_strategy=strategy)
    learner.teach(digits["X_labeled"], digits["y_labeled"])
    with pytest.raises(ValueError, match="no labelled data for the Hessian"):
        learner.query(digits["X_pool"], n_instances=3)
    idx, _ = learner.query(
        digits["X_pool"],
        n_instances=3,
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
    )
    assert len(set(idx.tolist())) == 3
    strategy.set_params(X_labeled=digits["X_labeled"], y_labeled=digits["y_labeled"])
    idx2, _ = learner.query(digits["X_pool"], n_instances=3)
    np.testing.assert_array_equal(idx, idx2)


def test_bare_net_and_reference_set_defaults_to_labelled_set(digits, fitted_net):
    strategy = InfluenceQueryStrategy(
        X_labeled=digits["X_labeled"], y_labeled=digits["y_labeled"], return_scores=False
    )
    idx = strategy(fitted_net, digits["X_pool"], n_instances=4)
    assert idx.shape == (4,)
    assert strategy.diagnostics_.n_reference == len(digits["X_labeled"])  # ISAL_v3


class CustomLearner:
    """Not modAL: an object with an ``estimator`` and its training data, and no ``query``."""

    def __init__(self, estimator, X_training, y_training):
        self.estimator, self.X_training, self.y_training = estimator, X_training, y_training


def test_learner_like_object_gives_estimator_and_labelled_data(digits, fitted_net):
    explicit = _strategy(digits).influence(
        fitted_net, digits["X_pool"], X_labeled=digits["X_labeled"], y_labeled=digits["y_labeled"]
    )
    custom = CustomLearner(fitted_net, digits["X_labeled"], digits["y_labeled"])
    strategy = _strategy(digits, selection="top")
    np.testing.assert_array_equal(strategy.influence(custom, digits["X_pool"]), explicit)
    assert strategy.diagnostics_.n_labeled == len(digits["X_labeled"])
    # No ``query`` to read a protocol from: the installed modAL's decides.
    result = strategy(custom, digits["X_pool"], n_instances=5)
    idx = result[0] if installed_modal_returns_scores() else result
    assert isinstance(result, tuple) is installed_modal_returns_scores()
    np.testing.assert_array_equal(idx, np.argsort(explicit, kind="stable")[:5])


def test_meta_estimator_with_an_estimator_attribute_is_not_a_learner():
    from sklearn.calibration import CalibratedClassifierCV

    from skisal._modal import is_learner_like

    assert not is_learner_like(CalibratedClassifierCV(make_net()))
    assert is_learner_like(SimpleNamespace(estimator=None, y_training=np.zeros(3)))


def test_torch_tensor_inputs_match_numpy(digits, fitted_net):
    kwargs = dict(X_labeled=digits["X_labeled"], y_labeled=digits["y_labeled"])
    numpy_scores = _strategy(digits).influence(fitted_net, digits["X_pool"], **kwargs)
    strategy = InfluenceQueryStrategy(
        torch.as_tensor(digits["X_reference"]),
        torch.as_tensor(digits["y_reference"]),
        X_labeled=torch.as_tensor(digits["X_labeled"]),
        y_labeled=torch.as_tensor(digits["y_labeled"]),
        random_state=0,
    )
    tensor_scores = strategy.influence(fitted_net, torch.as_tensor(digits["X_pool"]))
    np.testing.assert_allclose(tensor_scores, numpy_scores, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("inverse_hvp", ["identity", "exact"])
def test_default_classifier_nll_on_probabilities(digits, inverse_hvp):
    """NeuralNetClassifier's default NLLLoss on a softmax module (skorch takes the log).

    The same network read as logits with CrossEntropyLoss has the same loss,
    gradients and exact Hessian, so the same influences. (The Gauss-Newton
    matrix differs: it depends on where the network's output is taken.)
    """
    torch.manual_seed(0)
    net = make_net(module__softmax=True, module__hidden=8, criterion=torch.nn.NLLLoss)
    net.fit(digits["X_labeled"], digits["y_labeled"])
    logits_net = make_net(module__hidden=8).initialize()
    logits_net.module_.load_state_dict(net.module_.state_dict())
    kwargs = dict(inverse_hvp=inverse_hvp, curvature="hessian", damping=1.0)
    data = dict(X_labeled=digits["X_labeled"], y_labeled=digits["y_labeled"])
    scores = _strategy(digits, **kwargs).influence(net, digits["X_pool"], **data)
    expected = _strategy(digits, **kwargs).influence(logits_net, digits["X_pool"], **data)
    assert not np.allclose(scores, 0)
    np.testing.assert_allclose(scores, expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())


class LogSoftmaxMLP(MLP):
    def forward(self, x):
        return super().forward(x).log_softmax(dim=1)


def test_neural_net_with_nll_on_log_probabilities(digits):
    torch.manual_seed(0)
    net = NeuralNet(
        LogSoftmaxMLP, criterion=torch.nn.NLLLoss, max_epochs=5, train_split=None, verbose=0
    ).fit(digits["X_labeled"], digits["y_labeled"])
    idx = InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"],
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
        return_scores=False,
    )(net, digits["X_pool"], n_instances=5)
    assert len(set(idx.tolist())) == 5


def test_pipeline_sends_x_through_earlier_steps(digits):
    torch.manual_seed(0)
    shift = FunctionTransformer(lambda X: (X * 16.0 - 3.0).astype(np.float32))
    pipe = make_pipeline(shift, StandardScaler(), FunctionTransformer(np.float32), make_net())
    pipe.fit(digits["X_labeled"], digits["y_labeled"])
    learner = learner_on_labelled(digits, pipe, _strategy(digits, selection="top"))
    idx, _ = learner.query(digits["X_pool"], n_instances=5)
    # Equivalent bare net on pre-transformed data gives the same scores.
    pre = pipe[:-1]
    bare = InfluenceQueryStrategy(
        pre.transform(digits["X_reference"]), digits["y_reference"], random_state=0
    ).influence(
        pipe[-1],
        pre.transform(digits["X_pool"]),
        X_labeled=pre.transform(digits["X_labeled"]),
        y_labeled=digits["y_labeled"],
    )
    np.testing.assert_array_equal(idx, np.argsort(bare, kind="stable")[:5])


@requires_modal_041
def test_modal_041_protocol_in_a_real_loop(tmp_path: Path):
    """modAL 0.4.1 (what pip resolves by default) expects indices only."""
    stdout = run_with_modal_041(
        tmp_path,
        """
        import warnings
        import numpy as np, torch
        from modAL.models import ActiveLearner
        from sklearn.datasets import load_digits
        from skorch import NeuralNetClassifier
        from skisal import InfluenceQueryStrategy
        X, y = load_digits(return_X_y=True); X = (X / 16).astype(np.float32)
        torch.manual_seed(0)
        net = NeuralNetClassifier(torch.nn.Linear, module__in_features=64, module__out_features=10,
            criterion=torch.nn.CrossEntropyLoss, max_epochs=5, train_split=None, verbose=0)
        learner = ActiveLearner(net, query_strategy=InfluenceQueryStrategy(X[100:150], y[100:150]),
            X_training=X[:100], y_training=y[:100])
        pool, labels = X[150:400], y[150:400]
        for _ in range(2):
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)  # tuple from strategy warns
                idx, X_sel = learner.query(pool, n_instances=5)
            assert isinstance(idx, np.ndarray) and idx.shape == (5,), idx
            learner.teach(pool[idx], labels[idx])
            pool, labels = np.delete(pool, idx, axis=0), np.delete(labels, idx)
        print("OK", len(learner.X_training))
        """,
    )
    assert "OK 110" in stdout
