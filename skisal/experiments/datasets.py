"""Datasets for active-learning experiments, each with the model it is learned by.

Built in, all shipped with scikit-learn (nothing is downloaded):

* ``digits``: 1,797 8x8 images of handwritten digits, a small CNN;
* ``breast_cancer``: 569 tumours, 30 measurements, binary; an MLP behind a
  ``StandardScaler`` (a scikit-learn ``Pipeline``);
* ``wine``: 178 wines, 13 measurements, 3 classes; the same MLP.

Bring your own with a :class:`Dataset` returned by a function, named on the
command line as ``package.module:function``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn import datasets as sk_datasets
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn

from ._naming import resolve

__all__ = ["DATASETS", "Dataset", "DigitsCNN", "TabularMLP", "load_dataset"]


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


def _classifier(module: Any, epochs: int, classes: int, **module_params: Any) -> Any:
    from skorch import NeuralNetClassifier

    return NeuralNetClassifier(
        module,
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


#: Built-in datasets by name.
DATASETS: dict[str, Callable[[], Dataset]] = {
    "digits": digits,
    "breast_cancer": breast_cancer,
    "wine": wine,
}


def load_dataset(name: str) -> Dataset:
    """A built-in dataset by name, or ``"package.module:function"`` returning a :class:`Dataset`.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (``"digits"``, ``"breast_cancer"``,
        ``"wine"``), or ``"package.module:function"``: the function is
        imported and called without arguments.

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
