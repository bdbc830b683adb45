"""Adapter for scikit-activeml's ``SkorchClassifier``.

scikit-activeml wraps a plain ``skorch.NeuralNet`` (``clf.neural_net_``, no
prediction nonlinearity) and encodes labels itself (``clf._le``: any label
type, missing labels as -1). This adapter scores that inner net with the
skorch adapter's rules and speaks the wrapper's label space, so that
``y_reference`` and the labelled set keep the user's own labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from torch import nn

from .base import split_pipeline
from .registry import _is_imported_instance
from .skorch_classifier import SkorchClassifierAdapter

__all__ = ["SkactivemlSkorchAdapter", "is_skactiveml_skorch"]


def is_skactiveml_skorch(estimator: Any) -> bool:
    """Whether ``estimator`` is scikit-activeml's ``SkorchClassifier``.

    Looked up in ``sys.modules`` only: an estimator of that class exists only
    once scikit-activeml is imported, so skisal never imports it itself.

    Parameters
    ----------
    estimator : object
        The estimator to test.

    Returns
    -------
    bool
        True for a ``skactiveml.classifier.SkorchClassifier`` (or subclass).

    Examples
    --------
    >>> from skactiveml.classifier import SkorchClassifier
    >>> is_skactiveml_skorch(SkorchClassifier(torch.nn.Linear(4, 2)))
    True
    >>> is_skactiveml_skorch(torch.nn.Linear(4, 2))
    False
    """
    return _is_imported_instance(estimator, "skactiveml.classifier.SkorchClassifier")


class SkactivemlSkorchAdapter(SkorchClassifierAdapter):
    """ISAL for scikit-activeml's ``SkorchClassifier``.

    The network is the wrapper's ``neural_net_.module_``; its outputs are
    read as scikit-activeml reads them for its criterion: the raw output that
    ``forward_outputs`` / ``criterion_output_keys`` route to the loss
    (the first one by default), logits for ``CrossEntropyLoss`` and
    log-probabilities for ``NLLLoss``. Labels (``y_reference``, the labelled
    set) are in the wrapper's own label space and are encoded with its
    fitted label encoder.

    Parameters
    ----------
    top_k : int, default=1
        As in :class:`~skisal.SkorchClassifierAdapter`.

    Examples
    --------
    :func:`~skisal.resolve_adapter` picks it for a ``SkorchClassifier``:

    >>> from skactiveml.classifier import SkorchClassifier
    >>> from skisal import resolve_adapter
    >>> clf = SkorchClassifier(torch.nn.Linear(4, 3), classes=["a", "b", "c"],
    ...     missing_label="", neural_net_param_dict=dict(max_epochs=2, train_split=None,
    ...     verbose=0))
    >>> clf = clf.fit(X[:9], np.array(list("abcabcabc")))
    >>> adapter = resolve_adapter(clf)
    >>> adapter
    SkactivemlSkorchAdapter()

    It speaks the classifier's own labels, and refuses its missing label:

    >>> probe = adapter.forward(clf, adapter.get_module(clf), torch.zeros(1, 4))
    >>> adapter.check_targets(clf, ["c", "a"], "y_reference", probe)
    array([2, 0])
    >>> adapter.check_targets(clf, ["c", ""], "y_reference", probe)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: y_reference holds the missing label '' in 1 sample(s) (first rows: [1]); ...
    """

    def _wrapper(self, estimator: Any) -> Any:
        return split_pipeline(estimator)[1]

    def _net(self, estimator: Any) -> Any:
        return self._wrapper(estimator).neural_net_

    def check_estimator(self, estimator: Any) -> None:
        """Raise unless ``estimator`` is a fitted ``SkorchClassifier`` with a supported loss.

        Parameters
        ----------
        estimator : skactiveml.classifier.SkorchClassifier
            The classifier to score.

        Raises
        ------
        TypeError
            If it is not a ``SkorchClassifier``, or its criterion is neither
            ``CrossEntropyLoss`` nor ``NLLLoss``, or several outputs feed it.
        sklearn.exceptions.NotFittedError
            If it has not been fitted.
        """
        wrapper = self._wrapper(estimator)
        if not is_skactiveml_skorch(wrapper):
            raise TypeError(
                "SkactivemlSkorchAdapter needs a skactiveml.classifier.SkorchClassifier, "
                f"got {type(wrapper).__name__}."
            )
        if not (hasattr(wrapper, "neural_net_") and hasattr(wrapper, "_le")):
            raise NotFittedError(
                "the SkorchClassifier is not fitted: call clf.fit(X, y) first, or let the "
                "query strategy fit it (fit_clf=True)."
            )
        self._output_index(wrapper)
        super().check_estimator(estimator)

    @staticmethod
    def _output_index(wrapper: Any) -> int:
        """Position, in the module's output tuple, of the tensor the criterion receives."""
        outputs = wrapper._effective_forward_outputs()
        keys = wrapper.criterion_output_keys
        if keys is None:
            keys = next(iter(outputs))
        if not isinstance(keys, str):
            keys = list(keys)
            if len(keys) != 1:
                raise TypeError(
                    f"the SkorchClassifier's criterion receives {len(keys)} outputs "
                    f"(criterion_output_keys={wrapper.criterion_output_keys!r}); "
                    "SkactivemlSkorchAdapter supports a criterion over one output."
                )
            keys = keys[0]
        return int(outputs[keys][0])

    def _scored_output(self, estimator: Any, outputs: tuple | list) -> Any:
        # the output that forward_outputs / criterion_output_keys route to the loss
        return outputs[self._output_index(self._wrapper(estimator))]

    def _loss_class(self, criterion: nn.Module) -> type:
        # scikit-activeml wraps the criterion in a subclass whose forward only picks the
        # scored element of a tuple output: our outputs are that element already, so the
        # base loss's closed-form derivative applies.
        cls = type(criterion)
        if "_criterion_output_selector" in vars(cls) and len(cls.__bases__) == 1:
            return cls.__bases__[0]
        return cls

    def label_names(self, estimator: Any) -> np.ndarray:
        """The wrapper's classes: output ``i`` is the label ``classes_[i]``.

        Parameters
        ----------
        estimator : skactiveml.classifier.SkorchClassifier
            The fitted wrapper.

        Returns
        -------
        ndarray
            The classes, as ``predict`` returns them.
        """
        return np.asarray(self._wrapper(estimator).classes_)

    def check_targets(
        self, estimator: Any, y: Any, argument: str, probe_outputs: Any, X: Any = None
    ) -> np.ndarray:
        """Encode labels of the wrapper's label space to class indices.

        Parameters
        ----------
        estimator : skactiveml.classifier.SkorchClassifier
            Its fitted label encoder maps labels to the network's outputs.
        y : array-like
            Labels as the user gives them to the ``SkorchClassifier``.
        argument : str
            Name used in error messages.
        probe_outputs : torch.Tensor of shape (1, n_classes)
            The module's outputs on one sample.
        X : array-like, optional
            Unused.

        Returns
        -------
        ndarray of int64
            Class indices.

        Raises
        ------
        ValueError
            If a label is missing (the wrapper's ``missing_label``) or unknown
            to the classifier.
        """
        wrapper = self._wrapper(estimator)
        labels = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
        try:
            encoded = np.asarray(wrapper._le.transform(labels))
        except ValueError as exc:
            raise ValueError(
                f"{argument} holds labels the SkorchClassifier does not know "
                f"(its classes: {list(wrapper.classes_)}): {exc}"
            ) from exc
        missing = np.flatnonzero(encoded < 0)
        if len(missing):
            raise ValueError(
                f"{argument} holds the missing label {wrapper.missing_label!r} in "
                f"{len(missing)} sample(s) (first rows: {missing[:5].tolist()}); "
                "pass labelled samples only."
            )
        return super().check_targets(estimator, encoded, argument, probe_outputs, X=X)
