"""The adapter contract: how one model family computes its loss and pseudo-labels.

The influence engine never knows whether it scores a classifier or a detector.
It asks the adapter for five things, its abstract methods: the ``nn.Module`` to
differentiate, how to turn a slice of user data into a model input, the targets
of a slice of labels, the per-sample training loss against true targets, and the
per-sample loss against the model's own predictions (UUIC's pseudo-labels,
Algorithm 1 of the paper).
Subclass :class:`ModelAdapter` to support a new model family.

Optional hooks let a family do more without the engine knowing about it:
:meth:`ModelAdapter.encode` computes, once and without gradients, the part of
the network no tracked parameter touches (a detector's backbone), and may
be cached over the labelled set while ``s_test`` is solved;
:meth:`ModelAdapter.pseudo_label_summary` reports per-sample facts about the
pseudo-labels (a detector's predicted box count: its annotation cost);
:meth:`ModelAdapter.pseudo_label_derivative` may replace autograd with a closed
form in pool scoring's innermost step.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

from .._validation import check_data, check_same_sample_shape
from ..engine.trees import detached_leaf_copy, differentiable, tree_leaves

__all__ = ["ModelAdapter", "split_pipeline"]


class ModelAdapter(BaseEstimator, metaclass=ABCMeta):
    """Base class of the model-family adapters.

    Methods receive the user's ``estimator`` (never modified) so that one
    adapter instance can serve a learner whose estimator is refitted every
    round. Outputs may be a tensor or a tuple/list/dict of tensors whose first
    dimension is the batch.

    An adapter is a scikit-learn estimator without ``fit``: its ``__init__``
    stores each parameter under its own name and does nothing else (values are
    checked where they are used, in :meth:`check_estimator`), so
    ``get_params``, ``set_params``, :func:`sklearn.base.clone` and the repr
    work, and so does a strategy's ``set_params(adapter__<parameter>=...)``.
    Adapters keep no state between calls.

    Examples
    --------
    An adapter for a bare ``nn.Module`` classifier on arrays: the five
    abstract methods suffice (:class:`SkorchClassifierAdapter` adds the checks
    and skorch's conventions):

    >>> from torch import nn
    >>> from skisal import InfluenceQueryStrategy, ModelAdapter
    >>> class ModuleAdapter(ModelAdapter):
    ...     def get_module(self, estimator):
    ...         return estimator
    ...     def get_inputs(self, estimator, X, indices, device):
    ...         return torch.as_tensor(X[indices], device=device)
    ...     def get_targets(self, estimator, y, indices, device):
    ...         return torch.as_tensor(y[indices], device=device)
    ...     def per_sample_loss(self, estimator, outputs, targets):
    ...         return nn.functional.cross_entropy(outputs, targets, reduction="none")
    ...     def pseudo_label_loss(self, estimator, outputs):
    ...         labels = outputs.detach().argmax(dim=1)  # top-1 prediction, fixed
    ...         return self.per_sample_loss(estimator, outputs, labels)
    >>> strategy = InfluenceQueryStrategy(X_reference, y_reference, adapter=ModuleAdapter(),
    ...     X_labeled=X_labeled, y_labeled=y_labeled)
    >>> strategy.influence(net.module_, X_pool).shape  # the fitted net's bare module
    (30,)
    """

    #: Parameter selection used when the strategy's ``parameters`` is None.
    default_parameters: Any = "all"

    #: Curvature used when the strategy's ``curvature`` is "auto": Gauss-Newton
    #: is positive semi-definite for losses convex in the outputs (cross-entropy).
    default_curvature: str = "gauss_newton"

    #: Solver used when the strategy's ``inverse_hvp`` is "auto": K-FAC-preconditioned CG,
    #: whose Kronecker factors fit the dense and convolution layers of classifiers.
    default_inverse_hvp: str = "pcg"

    #: Bytes of :meth:`encode` results the engine may keep for reuse within one
    #: query (0: never cache). Only full passes over the labelled set reuse them.
    input_cache_bytes: int = 0

    def check_estimator(self, estimator: Any) -> None:
        """Raise if ``estimator`` cannot be scored (wrong type, not fitted).

        The strategy calls it first in every query: the place to check the
        adapter's own parameters too. The default accepts any estimator.

        Parameters
        ----------
        estimator : object
            The user's estimator.

        Raises
        ------
        ValueError
            If a parameter of the adapter is invalid.
        TypeError
            If the estimator is not of the family this adapter handles.
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        """
        return None

    @abstractmethod
    def get_module(self, estimator: Any) -> nn.Module:
        """Return the ``nn.Module`` whose parameters are differentiated.

        Parameters
        ----------
        estimator : object
            The user's estimator, fitted.

        Returns
        -------
        torch.nn.Module
            The user's module; the engine never writes to it.
        """

    def get_device(self, estimator: Any) -> torch.device:
        """Device the module lives on (that of its first parameter).

        Parameters
        ----------
        estimator : object
            The user's estimator, fitted.

        Returns
        -------
        torch.device
            Where the engine computes unless the strategy's ``device`` says otherwise.
        """
        return next(self.get_module(estimator).parameters()).device

    def n_samples(self, X: Any) -> int:
        """Number of samples in ``X``.

        Parameters
        ----------
        X : object
            Samples, as :meth:`check_inputs` returned them.

        Returns
        -------
        int
            ``len(X)`` by default.
        """
        return len(X)

    @abstractmethod
    def get_inputs(self, estimator: Any, X: Any, indices: np.ndarray, device: torch.device) -> Any:
        """Model input for the samples ``X[indices]``, on ``device``.

        Preprocessing the estimator applies before the network (a
        ``Pipeline``'s earlier steps) happens here, one batch at a time, so
        that memory does not grow with the pool.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        X : object
            Samples, as :meth:`check_inputs` returned them.
        indices : ndarray of int
            The samples in the batch.
        device : torch.device
            Where the batch goes.

        Returns
        -------
        object
            What :meth:`encode` and :meth:`forward` receive.
        """

    @abstractmethod
    def get_targets(self, estimator: Any, y: Any, indices: np.ndarray, device: torch.device) -> Any:
        """Training targets for the samples ``y[indices]``, on ``device``.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        y : object
            Targets, as :meth:`check_targets` returned them.
        indices : ndarray of int
            The samples in the batch.
        device : torch.device
            Where the batch goes.

        Returns
        -------
        object
            What :meth:`per_sample_loss` receives as ``targets``.
        """

    def encode(self, estimator: Any, module: nn.Module, inputs: Any) -> Any:
        """Work on ``inputs`` that no tracked parameter influences; default: none.

        Called without gradients, with ``module``'s own parameters, on the
        output of :meth:`get_inputs`; :meth:`forward` receives the result. A
        detector computes its backbone features here, once per batch, when
        only head layers are tracked (see :meth:`check_parameters`).

        Parameters
        ----------
        estimator : object
            The user's estimator.
        module : torch.nn.Module
            The module, with its own parameters.
        inputs : object
            A batch from :meth:`get_inputs`.

        Returns
        -------
        object
            What :meth:`forward` receives; ``inputs`` itself by default.
        """
        return inputs

    def encoded_nbytes(self, encoded: Any) -> int:
        """Memory held by one :meth:`encode` result (for the engine's cache budget).

        Parameters
        ----------
        encoded : object
            A result of :meth:`encode`.

        Returns
        -------
        int
            Bytes; 0 by default (with ``input_cache_bytes = 0`` nothing is cached).
        """
        return 0

    def check_parameters(self, estimator: Any, names: list[str]) -> None:
        """Raise ``ValueError`` if the tracked parameters ``names`` cannot be scored.

        An adapter whose :meth:`encode` runs part of the network without
        gradients refuses parameters of that part here. The default accepts
        any.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        names : list of str
            Names of the selected parameters (``module.named_parameters()`` names).

        Raises
        ------
        ValueError
            If a parameter cannot be differentiated through this adapter.
        """
        return None

    def check_inputs(self, estimator: Any, X: Any, argument: str) -> Any:
        """Validate a sample collection passed as ``argument``; return it (not a copy).

        The default accepts arrays, tensors and pandas objects of finite
        numbers (anything a Pipeline's first steps encode, for a Pipeline).

        Parameters
        ----------
        estimator : object
            The user's estimator.
        X : object
            The samples.
        argument : str
            Name used in error messages (``"X_pool"``, ``"X_reference"``).

        Returns
        -------
        object
            ``X``, or ``numpy.asarray(X)`` for a list.

        Raises
        ------
        TypeError, ValueError
            Naming ``argument``.
        """
        return check_data(X, argument, allow_non_numeric=hasattr(estimator, "steps"))

    def check_compatible(self, X: Any, argument: str, reference: Any, reference_name: str) -> None:
        """Raise ``ValueError`` if samples of ``X`` and ``reference`` need different networks.

        The default requires the same per-sample shape (when both have a shape).

        Parameters
        ----------
        X : object
            Samples, as :meth:`check_inputs` returned them.
        argument : str
            Name of ``X`` in error messages.
        reference : object
            Samples of the kind the network takes (the labelled or reference set).
        reference_name : str
            Name of ``reference`` in error messages.

        Raises
        ------
        ValueError
            If the samples are not compatible.
        """
        check_same_sample_shape(X, argument, reference, reference_name)

    def forward(self, estimator: Any, module: nn.Module, inputs: Any) -> Any:
        """Run ``module`` on ``inputs``; the engine swaps in its own parameters.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        module : torch.nn.Module
            The module (called through :func:`torch.func.functional_call`).
        inputs : object
            A result of :meth:`encode`.

        Returns
        -------
        object
            The outputs: a tensor, or a tuple/list/dict of tensors with the
            batch first; ``module(inputs)`` by default.
        """
        return module(inputs)

    @abstractmethod
    def per_sample_loss(self, estimator: Any, outputs: Any, targets: Any) -> torch.Tensor:
        """Training loss of every sample in the batch, shape ``(n,)``.

        Its mean over the labelled set is the training objective whose Hessian
        ISAL inverts, and its mean over the reference set is ``l(R)``.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        outputs : object
            Outputs of :meth:`forward` on a batch.
        targets : object
            The batch's targets from :meth:`get_targets`.

        Returns
        -------
        torch.Tensor of shape (n,)
            Differentiable with respect to ``outputs``.
        """

    @abstractmethod
    def pseudo_label_loss(self, estimator: Any, outputs: Any) -> torch.Tensor:
        """UUIC loss of every sample against the model's own prediction, shape ``(n,)``.

        Pseudo-labels must be computed from *detached* outputs, so that the
        gradient of this loss is the gradient ``G_z`` at fixed pseudo-labels.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        outputs : object
            Outputs of :meth:`forward` on a batch.

        Returns
        -------
        torch.Tensor of shape (n,)
            Differentiable with respect to ``outputs``.
        """

    def pseudo_label_derivative(self, estimator: Any, outputs: Any, tangents: Any) -> torch.Tensor:
        """Each sample's derivative of :meth:`pseudo_label_loss` along ``tangents``.

        ``<d l_uuic(z) / d outputs_z, tangents_z>`` for every sample ``z``.
        Forward-mode scoring passes the tangents of a dual-number pass,
        ``J_z s_test``, which makes this ``<G_z, s_test>``: the engine calls it
        once per pool batch, with ``outputs`` and ``tangents`` in float64. The
        default differentiates :meth:`pseudo_label_loss` with autograd;
        override it with a closed form when the loss has one (the classifier
        adapter does for cross-entropy), which saves a backward pass per batch.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        outputs : object
            Detached outputs of :meth:`forward` on a batch.
        tangents : object
            The same structure as ``outputs``: a tangent per floating tensor,
            None where an output does not depend on the parameters; other
            leaves are ignored.

        Returns
        -------
        torch.Tensor of shape (n,)
            In the dtype of ``outputs``.
        """
        with torch.enable_grad():
            leaves = detached_leaf_copy(outputs)
            loss = self.pseudo_label_loss(estimator, leaves)
            pairs = [
                (o, t)
                for o, t in zip(tree_leaves(leaves), tree_leaves(tangents), strict=True)
                if differentiable(o) and isinstance(t, torch.Tensor)
            ]
            grads = torch.autograd.grad(loss.sum(), [o for o, _ in pairs], allow_unused=True)
        n = loss.shape[0]
        total = torch.zeros(n, dtype=loss.dtype, device=loss.device)
        for g, (_, t) in zip(grads, pairs, strict=True):
            if g is not None:
                total += (g * t).reshape(n, -1).sum(dim=1)
        return total

    def pseudo_label_summary(self, estimator: Any, outputs: Any) -> dict[str, torch.Tensor]:
        """Per-sample facts about the pseudo-labels of detached ``outputs``.

        Recognised keys, each a tensor of shape ``(n,)``: ``"cost"``, the
        predicted annotation cost of a sample (a detector's pseudo-box
        count), which a query budget counts against (default: 1 per sample);
        ``"deferred"`` (bool), samples ranked after every other one whatever
        their influence (a detector's images without any prediction);
        ``"pseudo_label"`` (int64, -1 for none), ``"confidence"`` and
        ``"margin"`` (float, NaN where they do not apply), shown by
        :meth:`~skisal.InfluenceQueryStrategy.explain`.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        outputs : object
            Detached outputs of :meth:`forward` on a batch.

        Returns
        -------
        dict of str to torch.Tensor
            Empty by default.
        """
        return {}

    def pseudo_label_correct(
        self, estimator: Any, outputs: Any, targets: Any
    ) -> torch.Tensor | None:
        """Whether each sample's pseudo-label is its target, for the reference set's accuracy.

        ``InfluenceQueryStrategy(selection="auto")`` trusts the influence at the
        pseudo-label only once the model is right on at least
        ``min_reference_accuracy`` of the reference set; None (the default, a
        family without one label per sample, such as detectors) leaves the
        ranking by influence in charge.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        outputs : object
            Detached outputs of :meth:`forward` on a batch.
        targets : object
            The batch's targets, from :meth:`get_targets`.

        Returns
        -------
        torch.Tensor of bool, shape (n,), or None
        """
        return None

    def label_names(self, estimator: Any) -> Any:
        """The labels that ``pseudo_label`` indices of :meth:`pseudo_label_summary` stand for.

        Parameters
        ----------
        estimator : object
            The user's estimator.

        Returns
        -------
        array-like or None
            Label ``i`` of the summary is ``label_names(estimator)[i]``; None
            (the default) shows the indices themselves.
        """
        return None

    def check_targets(
        self, estimator: Any, y: Any, argument: str, probe_outputs: Any, X: Any = None
    ) -> Any:
        """Validate targets passed as ``argument``; return them as :meth:`get_targets` indexes them.

        The default returns ``y`` unchanged.

        Parameters
        ----------
        estimator : object
            The user's estimator.
        y : object
            The targets.
        argument : str
            Name used in error messages (``"y_reference"``, ``"y_labeled"``).
        probe_outputs : object
            The module's outputs on one sample, for checks that need the
            output size (e.g. the number of classes).
        X : object, optional
            The samples the targets belong to.

        Returns
        -------
        object
            The targets, in the form :meth:`get_targets` indexes.

        Raises
        ------
        ValueError, TypeError
            If the targets cannot be scored by this model.
        """
        return y


def split_pipeline(estimator: Any) -> tuple[Any, Any]:
    """Split a scikit-learn Pipeline into its preprocessing and its last step.

    Adapters score the last step of a Pipeline, and feed it what the steps
    before it produce; any other estimator is its own last step.

    Parameters
    ----------
    estimator : object
        An estimator, or a Pipeline ending in one.

    Returns
    -------
    preprocess : Pipeline or None
        The steps before the last, or None if there are none.
    last : object
        The last step (``estimator`` itself if it is not a Pipeline).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skisal.adapters.base import split_pipeline
    >>> preprocess, last = split_pipeline(make_pipeline(StandardScaler(), net))
    >>> type(preprocess).__name__, last is net
    ('Pipeline', True)
    >>> split_pipeline(net) == (None, net)
    True
    """
    steps = getattr(estimator, "steps", None)
    if steps is not None and hasattr(estimator, "__getitem__"):
        return (estimator[:-1] if len(steps) > 1 else None), estimator[-1]
    return None, estimator
