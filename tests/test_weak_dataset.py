"""The ``signals`` dataset: a generated task on which the model starts weak (issue 17)."""

import numpy as np
import pytest
import torch
from skorch.callbacks import LRScheduler

from skisal.experiments import DATASETS, ExperimentConfig, load_dataset
from skisal.experiments.datasets import SIGNAL_FREQUENCIES, SignalCNN, make_signals


@pytest.fixture(scope="module")
def signals():
    return load_dataset("signals")


def test_generator_shape_dtype_and_classes():
    X, y = make_signals(500)
    assert X.shape == (500, 1, 64) and X.dtype == np.float32
    assert y.shape == (500,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(10))
    assert np.isfinite(X).all()
    _, y_true = make_signals(500, label_noise=0.0)
    assert np.bincount(y_true).tolist() == [50] * 10  # balanced true classes
    assert len(SIGNAL_FREQUENCIES) == 5  # 10 classes: the 10 pairs of 5 frequencies


def test_generator_is_deterministic_and_seeded():
    X1, y1 = make_signals(300)
    X2, y2 = make_signals(300)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, y3 = make_signals(300, random_state=1)
    assert not np.allclose(X1, X3)
    assert not np.array_equal(y1, y3)


@pytest.mark.parametrize("label_noise", [0.0, 0.1, 0.15, 0.3])
def test_label_noise_fraction_is_exact_and_leaves_signals_alone(label_noise):
    X_true, y_true = make_signals(1000, label_noise=0.0)
    X, y = make_signals(1000, label_noise=label_noise)
    np.testing.assert_array_equal(X, X_true)  # the signals do not depend on label_noise
    wrong = y != y_true
    assert wrong.sum() == round(label_noise * 1000)  # every flipped label is another class


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="label_noise must be in"):
        make_signals(100, label_noise=1.0)
    with pytest.raises(ValueError, match="label_noise must be in"):
        make_signals(100, label_noise=-0.1)
    with pytest.raises(ValueError, match="noise must be"):
        make_signals(100, noise=-1.0)
    with pytest.raises(ValueError, match="n_samples must be"):
        make_signals(0)


def test_noise_makes_the_signals_noisier():
    X_quiet, _ = make_signals(200, noise=0.0)
    X_loud, _ = make_signals(200, noise=2.0)
    residual = np.diff(X_loud, axis=-1).std() - np.diff(X_quiet, axis=-1).std()
    assert residual > 1.0


def test_cnn_output_shape_and_size():
    cnn = SignalCNN()
    assert cnn(torch.zeros(3, 1, 64)).shape == (3, 10)
    assert cnn(torch.zeros(2, 1, 128)).shape == (2, 10)  # global pooling: any length
    assert sum(p.numel() for p in cnn.parameters()) == 1606
    assert SignalCNN(n_classes=4, channels=4)(torch.zeros(2, 1, 64)).shape == (2, 4)


def test_dataset_defaults(signals):
    assert "signals" in DATASETS
    assert signals.name == "signals"
    assert signals.X.shape == (4000, 1, 64) and signals.X.dtype == np.float32
    X, y = make_signals()
    np.testing.assert_array_equal(signals.X, X)
    np.testing.assert_array_equal(signals.y, y)
    sizes = (signals.test_size, signals.reference_size, signals.initial_size)
    assert sizes == (1000, 200, 100)
    assert (signals.query_size, signals.steps, signals.epochs) == (100, 8, 20)
    # The pool keeps far more candidates than the loop takes: 2,700 for 800 queried labels.
    config = ExperimentConfig.for_dataset("signals", ["random"], [0])
    config.validate(n_samples=len(signals.y))
    assert len(signals.y) - sum(sizes) >= 3 * signals.steps * signals.query_size
    net = signals.make_estimator(7)
    assert net.max_epochs == 7
    assert any(isinstance(callback, LRScheduler) for callback in net.callbacks)
    np.testing.assert_array_equal(net.classes, np.arange(10))


def test_model_is_weak_at_first_and_learns_with_more_labels(signals):
    """Fixed split and seeds: 100 labels leave the CNN weak, 900 make it clearly better."""
    order = np.random.default_rng(0).permutation(len(signals.y))
    test, labelled = order[:1000], order[1200:]
    X_test, y_test = signals.X[test], signals.y[test]
    scores = {}
    for n in (100, 900):
        torch.manual_seed(0)
        net = signals.make_estimator(signals.epochs)
        net.fit(signals.X[labelled[:n]], signals.y[labelled[:n]])
        scores[n] = net.score(X_test, y_test)
    assert 0.15 < scores[100] < 0.45, scores  # above chance (0.1), far from good
    assert scores[900] >= scores[100] + 0.15, scores
