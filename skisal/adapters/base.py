"""The adapter contract: how one model family computes its loss and pseudo-labels.

The influence engine never knows whether it scores a classifier or a detector.
It asks the adapter for five things: the ``nn.Module`` to differentiate, how to
turn a slice of user data into a model input, how to run the module, the
per-sample training loss against true targets, and the per-sample loss against
the model's own predictions (UUIC's pseudo-labels, Algorithm 1 of the paper).
Subclass :class:`ModelAdapter` to support a new model family.

Optional hooks let a family do more without the engine knowing about it:
:meth:`ModelAdapter.encode` computes, once and without gradients, the part of
the network no tracked parameter touches (a detector's backbone), and may
be cached over the labelled set while ``s_test`` is solved;
:meth:`ModelAdapter.pseudo_label_summary` reports per-sample facts about the
pseudo-labels (a detector's predicted box count: its annotation cost).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_data, check_same_sample_shape

__all__ = ["ModelAdapter"]


class ModelAdapter(ABC):
    """Base class of the model-family adapters.

    Methods receive the user's ``estimator`` (never modified) so that one
    adapter instance can serve a learner whose estimator is refitted every
    round. Outputs may be a tensor or a tuple/list/dict of tensors whose first
    dimension is the batch.
    """

    #: Parameter selection used when the strategy's ``parameters`` is None.
    default_parameters: Any = "all"

    #: Curvature used when the strategy's ``curvature`` is "auto": Gauss-Newton
    #: is positive semi-definite for losses convex in the outputs (cross-entropy).
    default_curvature: str = "gauss_newton"

    #: Bytes of :meth:`encode` results the engine may keep for reuse within one
    #: query (0: never cache). Only full passes over the labelled set reuse them.
    input_cache_bytes: int = 0

    def check_estimator(self, estimator: Any) -> None:
        """Raise if ``estimator`` cannot be scored (wrong type, not fitted).

        Raises
        ------
        TypeError
            If the estimator is not of the family this adapter handles.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        """
        return None

    @abstractmethod
    def get_module(self, estimator: Any) -> nn.Module:
        """Return the ``nn.Module`` whose parameters are differentiated."""

    def get_device(self, estimator: Any) -> torch.device:
        """Device the module lives on (that of its first parameter)."""
        return next(self.get_module(estimator).parameters()).device

    def n_samples(self, X: Any) -> int:
        """Number of samples in ``X``."""
        return len(X)

    @abstractmethod
    def get_inputs(self, estimator: Any, X: Any, indices: np.ndarray, device: torch.device) -> Any:
        """Model input for the samples ``X[indices]``, on ``device``.

        Preprocessing the estimator applies before the network (a
        ``Pipeline``'s earlier steps) happens here, one batch at a time, so
        that memory does not grow with the pool.
        """

    @abstractmethod
    def get_targets(self, estimator: Any, y: Any, indices: np.ndarray, device: torch.device) -> Any:
        """Training targets for the samples ``y[indices]``, on ``device``."""

    def encode(self, estimator: Any, module: nn.Module, inputs: Any) -> Any:
        """Work on ``inputs`` that no tracked parameter influences; default: none.

        Called without gradients, with ``module``'s own parameters, on the
        output of :meth:`get_inputs`; :meth:`forward` receives the result. A
        detector computes its backbone features here, once per batch, when
        only head layers are tracked (see :meth:`check_parameters`).
        """
        return inputs

    def encoded_nbytes(self, encoded: Any) -> int:
        """Memory held by one :meth:`encode` result (for the engine's cache budget)."""
        return 0

    def check_parameters(self, estimator: Any, names: list[str]) -> None:
        """Raise ``ValueError`` if the tracked parameters ``names`` cannot be scored.

        An adapter whose :meth:`encode` runs part of the network without
        gradients refuses parameters of that part here.
        """
        return None

    def check_inputs(self, estimator: Any, X: Any, argument: str) -> Any:
        """Validate a sample collection passed as ``argument``; return it (not a copy).

        The default accepts arrays, tensors and pandas objects of finite
        numbers (anything a Pipeline's first steps encode, for a Pipeline).

        Raises
        ------
        TypeError, ValueError
            Naming ``argument``.
        """
        return check_data(X, argument, allow_non_numeric=hasattr(estimator, "steps"))

    def check_compatible(self, X: Any, argument: str, reference: Any, reference_name: str) -> None:
        """Raise ``ValueError`` if samples of ``X`` cannot go through the same network as
        those of ``reference`` (default: same per-sample shape)."""
        check_same_sample_shape(X, argument, reference, reference_name)

    def forward(self, estimator: Any, module: nn.Module, inputs: Any) -> Any:
        """Run ``module`` on ``inputs``; the engine swaps in its own parameters."""
        return module(inputs)

    @abstractmethod
    def per_sample_loss(self, estimator: Any, outputs: Any, targets: Any) -> torch.Tensor:
        """Training loss of every sample in the batch, shape ``(n,)``.

        Its mean over the labelled set is the training objective whose Hessian
        ISAL inverts, and its mean over the reference set is ``l(R)``.
        """

    @abstractmethod
    def pseudo_label_loss(self, estimator: Any, outputs: Any) -> torch.Tensor:
        """UUIC loss of every sample against the model's own prediction, shape ``(n,)``.

        Pseudo-labels must be computed from *detached* outputs, so that the
        gradient of this loss is the gradient ``G_z`` at fixed pseudo-labels.
        """

    def pseudo_label_summary(self, estimator: Any, outputs: Any) -> dict[str, torch.Tensor]:
        """Per-sample facts about the pseudo-labels of detached ``outputs``.

        Recognised keys, each a tensor of shape ``(n,)``: ``"cost"``, the
        predicted annotation cost of a sample (a detector's pseudo-box
        count), which a query budget counts against (default: 1 per sample);
        ``"deferred"`` (bool), samples ranked after every other one whatever
        their influence (a detector's images without any prediction).
        """
        return {}

    def check_targets(
        self, estimator: Any, y: Any, argument: str, probe_outputs: Any, X: Any = None
    ) -> Any:
        """Validate targets passed as ``argument`` and return them in the form
        :meth:`get_targets` indexes.

        ``probe_outputs`` are the module's outputs on one sample, for checks
        that need the output size (e.g. the number of classes); ``X`` are the
        samples the targets belong to.

        Raises
        ------
        ValueError, TypeError
            If the targets cannot be scored by this model.
        """
        return y

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"
