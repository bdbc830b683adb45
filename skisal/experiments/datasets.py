"""Datasets for active-learning experiments, each with the model it is learned by.

Built in, all shipped with scikit-learn (nothing is downloaded):

* ``digits``: 1,797 8x8 images of handwritten digits, a small CNN;
* ``breast_cancer``: 569 tumours, 30 measurements, binary; an MLP behind a
  ``StandardScaler`` (a scikit-learn ``Pipeline``);
* ``wine``: 178 wines, 13 measurements, 3 classes; the same MLP.

And one generated here (:func:`make_signals`), where the model starts weak:

* ``signals``: 4,000 noisy 1-D signals of 64 samples, 10 classes, 15% of the
  labels wrong; a small 1-D CNN (:class:`SignalCNN`) that starts near 21%
  test accuracy with 100 labels and reaches about 69% with 900.

Bring your own with a :class:`Dataset` returned by a function, named on the
command line as ``package.module:function``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn import datasets as sk_datasets
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn

from ._naming import resolve

__all__ = [
    "DATASETS",
    "Dataset",
    "DigitsCNN",
    "SignalCNN",
    "TabularMLP",
    "load_dataset",
    "make_signals",
]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Data, the estimator that learns it, and the run sizes that suit it.

    Parameters
    ----------
    name : str
        Short name, used in reports.
    X, y : array-like
        All samples and their labels; every seed splits them afresh.
    make_estimator : callable
        ``make_estimator(epochs)`` returns a new, unfitted scikit-learn
        compatible estimator (e.g. a skorch net) trained for ``epochs``.
        The runner seeds torch before every fit, so it needs no seed.
    epochs : int
        Default training epochs per fit.
    test_size, reference_size, initial_size, query_size, steps : int
        Default split and loop sizes (test set, ISAL's reference set, initial
        labelled set, labels per query, queries per run).
    description : str, default=""
        One line for reports.

    Examples
    --------
    A built-in one:

    >>> from skisal.experiments import load_dataset
    >>> wine = load_dataset("wine")
    >>> wine.X.shape, wine.query_size, wine.steps
    ((178, 13), 5, 10)

    Your own, returned by a function that ``skisal-experiment --dataset
    mypkg.data:load_mine`` can name (``X``, ``y`` and ``make_net`` are the
    shared set-up's, see :doc:`/api/index`):

    >>> from skisal.experiments import Dataset
    >>> def load_mine():
    ...     def make_estimator(epochs):  # `classes`: a small labelled set may miss one
    ...         return make_net(max_epochs=epochs, classes=[0, 1])
    ...     return Dataset("mine", X, y, make_estimator, epochs=20, test_size=20,
    ...                    reference_size=10, initial_size=10, query_size=5, steps=4)
    >>> load_mine().make_estimator(20).max_epochs
    20
    """

    name: str
    X: Any
    y: np.ndarray
    make_estimator: Callable[[int], Any]
    epochs: int
    test_size: int
    reference_size: int
    initial_size: int
    query_size: int
    steps: int
    description: str = ""


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions and a linear layer: 8x8 images to 10 logits.

    The network of the ``digits`` dataset (9,930 parameters): conv 16, ReLU,
    conv 32, ReLU, flatten, linear.

    Parameters
    ----------
    n_classes : int, default=10
        Number of output logits.

    Examples
    --------
    >>> from skisal.experiments.datasets import DigitsCNN
    >>> cnn = DigitsCNN()
    >>> cnn(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> sum(p.numel() for p in cnn.parameters())
    9930
    """

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(32 * 4 * 4, n_classes)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of images.

        Parameters
        ----------
        X : torch.Tensor of shape (n, 1, 8, 8)
            Images.

        Returns
        -------
        torch.Tensor of shape (n, n_classes)
            Logits.
        """
        return self.classifier(self.features(X))


class SignalCNN(nn.Module):
    """A deliberately small 1-D CNN: signals of any length to class logits.

    The network of the ``signals`` dataset (1,606 parameters): conv 12
    (kernel 9, circular padding), batch norm, ReLU, max-pool 4, conv 12
    (kernel 9), batch norm, ReLU, global average pooling, linear. Small, and
    it learns its filters from the labels alone, so it stays weak until it
    has many of them.

    Parameters
    ----------
    n_classes : int, default=10
        Number of output logits.
    channels : int, default=12
        Channels of both convolutions.

    Examples
    --------
    >>> from skisal.experiments.datasets import SignalCNN
    >>> cnn = SignalCNN()
    >>> cnn(torch.zeros(2, 1, 64)).shape
    torch.Size([2, 10])
    >>> sum(p.numel() for p in cnn.parameters())
    1606
    """

    def __init__(self, n_classes: int = 10, channels: int = 12) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size=9, padding=4, padding_mode="circular"),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.MaxPool1d(4),
            nn.Conv1d(channels, channels, kernel_size=9, padding=4, padding_mode="circular"),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(channels, n_classes)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of signals.

        Parameters
        ----------
        X : torch.Tensor of shape (n, 1, length)
            Signals.

        Returns
        -------
        torch.Tensor of shape (n, n_classes)
            Logits.
        """
        return self.classifier(self.features(X))


class TabularMLP(nn.Module):
    """One hidden ReLU layer of ``hidden`` units: features to class logits.

    The network of the ``breast_cancer`` and ``wine`` datasets.

    Parameters
    ----------
    n_features : int
        Input features.
    n_classes : int
        Output logits.
    hidden : int, default=32
        Hidden units.

    Examples
    --------
    >>> from skisal.experiments.datasets import TabularMLP
    >>> TabularMLP(n_features=13, n_classes=3)(torch.zeros(4, 13)).shape
    torch.Size([4, 3])
    """

    def __init__(self, n_features: int, n_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of samples.

        Parameters
        ----------
        X : torch.Tensor of shape (n, n_features)
            Samples.

        Returns
        -------
        torch.Tensor of shape (n, n_classes)
            Logits.
        """
        return self.classifier(self.hidden(X))


def _classifier(
    module: Any, epochs: int, classes: int, *, anneal: bool = False, **module_params: Any
) -> Any:
    from skorch import NeuralNetClassifier
    from skorch.callbacks import LRScheduler

    callbacks = None
    if anneal:  # the learning rate to 0 over the epochs: the last batches do not decide the score
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR
        callbacks = [LRScheduler(policy=cosine, T_max=epochs)]
    return NeuralNetClassifier(
        module,
        callbacks=callbacks,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-2,
        max_epochs=epochs,
        batch_size=64,
        iterator_train__shuffle=True,
        train_split=None,  # labelled sets are small: no held-out split
        classes=np.arange(classes),  # a small labelled set may miss a class
        verbose=0,
        **{f"module__{k}": v for k, v in module_params.items()},
    )


def _to_float32(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float32)


def digits() -> Dataset:
    """scikit-learn's digits as (n, 1, 8, 8) float32 images in [0, 1]; a small CNN.

    Returns
    -------
    Dataset
        1,797 images, :class:`DigitsCNN` trained for 40 epochs; 500 test,
        100 reference, 50 initial labels, 10 queries of 50.

    Examples
    --------
    >>> from skisal.experiments.datasets import digits
    >>> digits().X.shape
    (1797, 1, 8, 8)
    """
    data = sk_datasets.load_digits()
    X = (data.images / 16.0).astype(np.float32)[:, None]
    return Dataset(
        name="digits",
        X=X,
        y=data.target.astype(np.int64),
        make_estimator=lambda epochs: _classifier(DigitsCNN, epochs, 10),
        epochs=40,
        test_size=500,
        reference_size=100,
        initial_size=50,
        query_size=50,
        steps=10,
        description="scikit-learn digits (1,797 8x8 images, 10 classes), small CNN",
    )


def _tabular(name: str, loader: Callable[..., Any], sizes: dict[str, int]) -> Dataset:
    data = loader()
    X = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    n_features, n_classes = X.shape[1], int(y.max()) + 1

    def make_estimator(epochs: int) -> Pipeline:
        # Standardised on each fit's labelled data only; float32 for the network.
        net = _classifier(TabularMLP, epochs, n_classes, n_features=n_features, n_classes=n_classes)
        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("float32", FunctionTransformer(_to_float32)),
                ("net", net),
            ]
        )

    return Dataset(
        name=name,
        X=X,
        y=y,
        make_estimator=make_estimator,
        epochs=100,
        description=f"scikit-learn {name} ({len(y)} samples, {n_features} features, "
        f"{n_classes} classes), MLP behind a StandardScaler",
        **sizes,
    )


def breast_cancer() -> Dataset:
    """scikit-learn's breast-cancer data; an MLP behind a StandardScaler.

    Returns
    -------
    Dataset
        569 samples, 30 features, 2 classes; a scikit-learn ``Pipeline``
        (``StandardScaler``, float32, :class:`TabularMLP`) trained for 100
        epochs; 169 test, 50 reference, 20 initial labels, 10 queries of 10.

    Examples
    --------
    >>> from skisal.experiments.datasets import breast_cancer
    >>> breast_cancer().X.shape
    (569, 30)
    """
    sizes = dict(test_size=169, reference_size=50, initial_size=20, query_size=10, steps=10)
    return _tabular("breast_cancer", sk_datasets.load_breast_cancer, sizes)


def wine() -> Dataset:
    """scikit-learn's wine data; an MLP behind a StandardScaler.

    Returns
    -------
    Dataset
        178 samples, 13 features, 3 classes; the same Pipeline as
        :func:`breast_cancer`; 58 test, 30 reference, 10 initial labels,
        10 queries of 5.

    Examples
    --------
    >>> from skisal.experiments.datasets import wine
    >>> wine().description
    'scikit-learn wine (178 samples, 13 features, 3 classes), MLP behind a StandardScaler'
    """
    sizes = dict(test_size=58, reference_size=30, initial_size=10, query_size=5, steps=10)
    return _tabular("wine", sk_datasets.load_wine, sizes)


#: Cycles per signal of the five base frequencies; each class is one pair.
SIGNAL_FREQUENCIES = (2, 3, 4, 5, 6)


def make_signals(
    n_samples: int = 4000,
    *,
    noise: float = 0.7,
    label_noise: float = 0.15,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 1-D signals of 10 classes, some of them labelled wrongly.

    Class ``k`` is the ``k``-th pair of the five frequencies
    :data:`SIGNAL_FREQUENCIES` (2 to 6 cycles in 64 samples), so every
    frequency is shared by four classes: a sum of two sinusoids of those
    frequencies, with phases fixed for the class. Each sample draws a random
    time shift, a frequency stretch of up to 10%, an amplitude between 0.5
    and 1.5, a distracting Gaussian bump (anywhere, 2 to 6 samples wide,
    height 0.5 to 1.5 of either sign) and Gaussian noise of standard
    deviation ``noise``. Then ``round(label_noise * n_samples)`` labels, drawn
    at random, are replaced by another class, drawn uniformly; the signals do
    not depend on ``label_noise``, so ``label_noise=0`` gives the true classes.

    Parameters
    ----------
    n_samples : int, default=4000
        Number of signals; the classes are balanced (up to one sample).
    noise : float, default=0.7
        Standard deviation of the additive noise.
    label_noise : float, default=0.15
        Fraction of the labels, in ``[0, 1)``, replaced by a wrong class.
    random_state : int, default=0
        Seed; the same arguments give the same data.

    Returns
    -------
    X : ndarray of shape (n_samples, 1, 64), float32
        Signals, one channel, for a ``Conv1d`` network.
    y : ndarray of shape (n_samples,), int64
        Labels in ``0..9``, a fraction ``label_noise`` of them wrong.

    Examples
    --------
    >>> from skisal.experiments.datasets import make_signals
    >>> X, y = make_signals(1000)
    >>> X.shape, X.dtype, np.bincount(y).size
    ((1000, 1, 64), dtype('float32'), 10)
    >>> _, y_true = make_signals(1000, label_noise=0.0)
    >>> float(np.mean(y != y_true))  # labels that are wrong
    0.15
    """
    if not 0 <= label_noise < 1:
        raise ValueError(f"label_noise must be in [0, 1), got {label_noise}; e.g. 0.15.")
    if not noise >= 0:
        raise ValueError(f"noise must be a standard deviation >= 0, got {noise}; e.g. 0.7.")
    if n_samples < 1:
        raise ValueError(f"n_samples must be a positive number of signals, got {n_samples}.")
    length, n_classes = 64, 10
    pairs = np.array(list(itertools.combinations(SIGNAL_FREQUENCIES, 2)), dtype=float)
    # Three independent streams: the class phases, the signals, the label flips.
    phases = np.random.default_rng([random_state, 0]).uniform(0, 2 * np.pi, size=pairs.shape)
    rng = np.random.default_rng([random_state, 1])
    y = rng.permutation(np.arange(n_samples) % n_classes)
    t = np.arange(length)

    def column(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, size=(n_samples, 1))

    shift, stretch, amplitude = column(0, length), column(0.9, 1.1), column(0.5, 1.5)
    X = sum(
        np.sin(2 * np.pi * pairs[y, j, None] * stretch * (t - shift) / length + phases[y, j, None])
        for j in range(2)
    )
    X = amplitude * X
    centre, width, height = column(0, length), column(2, 6), column(0.5, 1.5)
    height *= rng.choice([-1.0, 1.0], size=(n_samples, 1))
    distance = (t - centre + length / 2) % length - length / 2  # circular
    X += height * np.exp(-0.5 * (distance / width) ** 2)
    X += noise * rng.standard_normal((n_samples, length))

    flips = np.random.default_rng([random_state, 2])
    wrong = flips.permutation(n_samples)[: round(label_noise * n_samples)]
    y[wrong] = (y[wrong] + flips.integers(1, n_classes, size=len(wrong))) % n_classes
    return X[:, None].astype(np.float32), y.astype(np.int64)


def signals() -> Dataset:
    """Generated 1-D signals (:func:`make_signals`) and a small 1-D CNN: a weak model at first.

    Ten classes, 15% of the labels wrong, noisy and shifted inputs, and a
    small network (:class:`SignalCNN`) retrained from scratch for 20 epochs,
    its learning rate annealed to 0: with random sampling, test accuracy is
    about 21% with the 100 initial labels and 69% after 8 queries of 100
    (means over 3 seeds), so the model's predictions, and the pseudo-labels
    and uncertainties drawn from them, are mostly wrong at the start.
    Nothing is downloaded; the data are the same on every call.

    Returns
    -------
    Dataset
        4,000 signals of shape (1, 64); 1,000 test, 200 reference, 100
        initial labels, 8 queries of 100.

    Examples
    --------
    >>> from skisal.experiments.datasets import signals
    >>> data = signals()
    >>> data.X.shape, data.initial_size, data.query_size, data.steps
    ((4000, 1, 64), 100, 100, 8)
    """
    X, y = make_signals()
    return Dataset(
        name="signals",
        X=X,
        y=y,
        make_estimator=lambda epochs: _classifier(SignalCNN, epochs, 10, anneal=True),
        epochs=20,
        test_size=1000,
        reference_size=200,
        initial_size=100,
        query_size=100,
        steps=8,
        description="generated 1-D signals (4,000 of length 64, 10 classes, 15% wrong labels), "
        "small 1-D CNN",
    )


#: Built-in datasets by name.
DATASETS: dict[str, Callable[[], Dataset]] = {
    "digits": digits,
    "breast_cancer": breast_cancer,
    "wine": wine,
    "signals": signals,
}


def load_dataset(name: str) -> Dataset:
    """A built-in dataset by name, or ``"package.module:function"`` returning a :class:`Dataset`.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (``"digits"``, ``"breast_cancer"``,
        ``"wine"``, ``"signals"``), or ``"package.module:function"``: the
        function is imported and called without arguments.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        If the name is neither built in nor an importable ``module:function``.
    TypeError
        If the function does not return a :class:`Dataset`.

    Examples
    --------
    >>> load_dataset("wine").X.shape
    (178, 13)
    """
    factory = resolve(name, DATASETS, "dataset", "returning a skisal.experiments.Dataset")
    dataset = factory()
    if not isinstance(dataset, Dataset):
        raise TypeError(f"{name} returned {type(dataset).__name__}, not a Dataset.")
    return dataset
