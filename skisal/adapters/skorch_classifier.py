"""Adapter for skorch classifiers (and a scikit-learn Pipeline ending in one)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from skorch import NeuralNet
from torch import nn

from .._validation import (
    check_constraints,
    is_positive_int,
    rows_as_array,
    take_rows,
    to_index_labels,
)
from ..engine.model import evaluation_mode
from ..exceptions import InvalidParameterError
from .base import ModelAdapter, split_pipeline

__all__ = ["SkorchClassifierAdapter"]

_CLASSIFICATION_CRITERIA = (nn.CrossEntropyLoss, nn.NLLLoss)

#: Rows of the reference and labelled sets whose outputs :meth:`check_targets` checks.
_CHECKED_ROWS = 4

#: name -> (check, what was expected); checked at query time, as scikit-learn does.
_CONSTRAINTS = {"top_k": (is_positive_int, "a positive integer")}


def _output_problems(kind: str, outputs: torch.Tensor) -> list[str]:
    """What keeps ``outputs`` from being probabilities or log-probabilities (empty: nothing)."""
    if not outputs.is_floating_point():
        return [f"values of dtype {outputs.dtype}"]
    tol = max(1e-3, 8 * torch.finfo(outputs.dtype).eps)
    values = outputs.to(torch.float64)
    if kind == "probabilities":
        if not bool(torch.isfinite(values).all()):
            return ["NaN or infinite values"]
        problems = []
        low, high = float(values.min()), float(values.max())
        if low < -tol or high > 1 + tol:
            problems.append(f"values outside [0, 1] (from {low:.3g} to {high:.3g})")
        sums = values.sum(dim=1)
        worst = float(sums[(sums - 1).abs().argmax()])
        if abs(worst - 1) > tol:
            problems.append(f"rows sum to {worst:.3g}, not 1")
        return problems
    # log-probabilities: -inf is log(0), but NaN and +inf are no log-probability
    if bool(torch.isnan(values).any() | torch.isposinf(values).any()):
        return ["NaN or +inf values"]
    problems = []
    high = float(values.max())
    if high > tol:
        problems.append(f"values above 0 (up to {high:.3g})")
    lse = torch.logsumexp(values, dim=1)
    worst = float(lse[lse.abs().argmax()])
    if abs(worst) > tol:
        problems.append(f"the exponentials of a row sum to {np.exp(worst):.3g}, not 1")
    return problems


class SkorchClassifierAdapter(ModelAdapter):
    """ISAL for skorch ``NeuralNetClassifier`` / ``NeuralNet`` classifiers.

    Supports the criteria skorch classifiers train with:
    ``NeuralNetClassifier``'s default ``NLLLoss`` on probabilities (skorch
    takes their log in ``get_loss``, and so does this adapter),
    ``CrossEntropyLoss`` on logits, and ``NLLLoss`` on log-probabilities in a
    plain ``NeuralNet``. A module whose outputs do not suit its ``NLLLoss``
    (logits: such a ``NeuralNetClassifier`` trains to a NaN loss) is refused
    with a ``ValueError`` naming the fix, ``criterion=torch.nn.CrossEntropyLoss``
    (see :meth:`check_outputs`). The criterion's options (class ``weight``,
    ``label_smoothing``, ``ignore_index``) are kept; only its reduction is
    changed, on a copy, to get per-sample losses, whose plain mean is the
    training objective (with a class ``weight``, torch's ``"mean"`` divides by
    the summed weights instead; the two differ by a factor per batch). A module
    returning a tuple is read as skorch reads it: its first element is the
    prediction. Inputs are arrays, pandas objects or tensors (not skorch's dict
    inputs). Arrays and pandas objects may have any memory layout: each batch
    reaches the network as a C-ordered array of its own, so a reversed,
    strided, read-only or Fortran-ordered pool (or a DataFrame over one)
    scores exactly like its C-ordered copy.

    Parameters
    ----------
    top_k : int, default=1
        Number of top predicted classes in the expected gradient of Eq. 3,
        ``G_z = sum_k w_k grad l(z, label_k)``, with ``w_k`` the posterior
        probabilities of those classes renormalised to sum to one. ``top_k=1``
        is the pseudo-label gradient of Algorithm 1, the paper's best setting.
        Must be smaller than the number of classes: over all of them the
        weighted gradient is exactly zero.

    Raises
    ------
    ValueError
        At query time, if ``top_k`` is not a positive integer below the number
        of classes, or the module's outputs do not suit its ``NLLLoss`` (see
        :meth:`check_estimator`, :meth:`check_targets` and :meth:`check_outputs`).

    Examples
    --------
    The strategy resolves this adapter by itself for skorch nets; pass one to
    change ``top_k``. It composes like any scikit-learn estimator:

    >>> from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter
    >>> strategy = InfluenceQueryStrategy(adapter=SkorchClassifierAdapter(top_k=2))
    >>> strategy.set_params(adapter__top_k=3).adapter
    SkorchClassifierAdapter(top_k=3)

    What the engine asks of it, on a fitted net with three classes:

    >>> net3 = make_net(module__out_features=3).fit(X_labeled, np.arange(20) % 3)
    >>> adapter = SkorchClassifierAdapter(top_k=2)
    >>> adapter.check_estimator(net3)  # fitted, with a supported criterion
    >>> inputs = adapter.get_inputs(net3, X_pool, np.arange(5), torch.device("cpu"))
    >>> outputs = adapter.forward(net3, net3.module_, inputs)  # logits
    >>> adapter.per_sample_loss(net3, outputs, torch.tensor([0, 1, 2, 0, 1])).shape
    torch.Size([5])
    >>> adapter.pseudo_label_loss(net3, outputs).shape  # against the top-2 classes
    torch.Size([5])

    Outputs that do not suit the criterion are refused, with the fix (here
    logits under ``NeuralNetClassifier``'s ``NLLLoss``):

    >>> nll_net = make_net(criterion=torch.nn.NLLLoss).initialize()
    >>> adapter.check_outputs(nll_net, torch.tensor([[-1.0, 3.7]]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the NeuralNetClassifier ... not probabilities: ... refit the net with criterion=...
    """

    def __init__(self, top_k: int = 1) -> None:
        self.top_k = top_k

    # -- estimator ---------------------------------------------------------
    def _net(self, estimator: Any) -> Any:
        return split_pipeline(estimator)[1]

    def check_estimator(self, estimator: Any) -> None:
        """Raise if ``estimator`` is not a fitted skorch classifier this adapter supports.

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            The estimator to score.

        Raises
        ------
        ValueError
            If ``top_k`` is not a positive integer.
        TypeError
            If the estimator is not a skorch net (or a Pipeline ending in one),
            or its criterion is not ``CrossEntropyLoss`` or ``NLLLoss``.
        sklearn.exceptions.NotFittedError
            If the net is not fitted (skorch's ``NotInitializedError``).
        """
        check_constraints(self, _CONSTRAINTS)
        net = self._net(estimator)
        if not isinstance(net, NeuralNet):
            raise TypeError(
                "classifier must be a skorch NeuralNet/NeuralNetClassifier, a scikit-learn "
                "Pipeline ending in one, or a modAL learner wrapping one; got "
                f"{type(net).__name__}. For another model family pass adapter=..."
            )
        net.check_is_fitted()
        criterion = net.criterion_
        if not isinstance(criterion, _CLASSIFICATION_CRITERIA):
            raise TypeError(
                f"the skorch net's criterion is {type(criterion).__name__}; "
                "SkorchClassifierAdapter supports CrossEntropyLoss (logits) and NLLLoss "
                "(probabilities in NeuralNetClassifier, log-probabilities in NeuralNet). "
                "Subclass SkorchClassifierAdapter for another loss."
            )
        if not hasattr(criterion, "reduction"):
            raise TypeError(f"criterion {type(criterion).__name__} has no 'reduction' option.")

    def get_module(self, estimator: Any) -> nn.Module:
        """The fitted net's ``module_`` (the user's; the engine never writes to it).

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            A fitted estimator.

        Returns
        -------
        torch.nn.Module
            The network, not a copy.
        """
        return self._net(estimator).module_

    # -- data --------------------------------------------------------------
    def get_inputs(
        self, estimator: Any, X: Any, indices: np.ndarray, device: torch.device
    ) -> torch.Tensor:
        """The network's input for ``X[indices]``, through a Pipeline's earlier steps.

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            The estimator.
        X : array-like, torch.Tensor or pandas object
            The samples, in any memory layout (reversed, strided, read-only,
            Fortran-ordered, a DataFrame over any of those); never modified.
        indices : ndarray
            Rows of ``X`` in the batch.
        device : torch.device
            Where the batch goes.

        Returns
        -------
        torch.Tensor
            The batch, floating point in the module's dtype. Array and pandas
            batches are C-ordered copies of the rows (copied once more only
            when taking the rows did not already give one), so every layout
            gives the module the same tensor.
        """
        preprocess, _ = split_pipeline(estimator)
        rows = take_rows(X, indices)
        if preprocess is not None:
            rows = preprocess.transform(rows)
        if not isinstance(rows, torch.Tensor):
            # the batch only, C-ordered and writable: any layout of the user's data
            # (reversed or strided frames, read-only or Fortran arrays) scores the same
            rows = torch.as_tensor(rows_as_array(rows))
        x = rows.to(device, non_blocking=True)
        dtype = next(self.get_module(estimator).parameters()).dtype
        if x.is_floating_point() and x.dtype != dtype:
            x = x.to(dtype)
        return x

    def get_targets(
        self, estimator: Any, y: Any, indices: np.ndarray, device: torch.device
    ) -> torch.Tensor:
        """Class indices ``y[indices]`` as a long tensor on ``device``.

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            The estimator (unused).
        y : array-like or torch.Tensor
            Labels, as :meth:`check_targets` returned them.
        indices : ndarray
            Rows in the batch.
        device : torch.device
            Where the batch goes.

        Returns
        -------
        torch.Tensor of int64
            The batch's labels.
        """
        labels = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        return torch.as_tensor(labels[indices], dtype=torch.long).to(device)

    def check_targets(
        self, estimator: Any, y: Any, argument: str, probe_outputs: Any, X: Any = None
    ) -> np.ndarray:
        """Class-index labels as an int64 array, checked against the network's outputs.

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            The estimator.
        y : array-like or torch.Tensor
            Labels in ``0..n_classes-1``.
        argument : str
            Name used in error messages (``"y_reference"``, ``"y_labeled"``).
        probe_outputs : torch.Tensor of shape (1, n_classes)
            The module's outputs on one sample; they give the number of
            classes and must suit the criterion (see :meth:`check_outputs`).
        X : array-like, optional
            The samples the labels belong to. With ``NLLLoss``, the module's
            outputs on its first few rows are checked too (one small forward
            pass in eval mode, without gradients).

        Returns
        -------
        ndarray of int64
            The labels.

        Raises
        ------
        ValueError
            If ``top_k`` is not below the number of classes, a label lies
            outside the classes or is not integral, or the module's outputs
            are not the probabilities (``NeuralNetClassifier``) or
            log-probabilities (``NeuralNet``) its ``NLLLoss`` expects.
        TypeError
            If the labels are not integer class indices.
        """
        n_classes = int(probe_outputs.shape[1])
        if self.top_k >= n_classes:
            raise InvalidParameterError(
                f"top_k={self.top_k} must be smaller than the number of classes ({n_classes}): "
                "weighted by the posterior over every class, the cross-entropy gradient is "
                "exactly zero, so every influence would be rounding noise."
            )
        self.check_outputs(estimator, probe_outputs, "one sample")
        labels = to_index_labels(y, argument, n_classes=n_classes)
        if X is not None and self._outputs_kind(estimator) != "logits":
            self._check_first_rows(estimator, X, argument)
        return labels

    def _check_first_rows(self, estimator: Any, X: Any, argument: str) -> None:
        """:meth:`check_outputs` on the module's outputs for the first rows of ``X``.

        One forward pass of a few samples, on the user's module in eval mode
        (its flags restored exactly), without gradients.
        """
        n = min(_CHECKED_ROWS, self.n_samples(X))
        module = self.get_module(estimator)
        with torch.no_grad(), evaluation_mode(module):
            inputs = self.get_inputs(estimator, X, np.arange(n), self.get_device(estimator))
            outputs = self.forward(estimator, module, inputs)
        name = "X" + argument[1:] if argument.startswith("y") else f"the samples of {argument}"
        self.check_outputs(estimator, outputs, f"the first {n} samples of {name}")

    def check_outputs(self, estimator: Any, outputs: torch.Tensor, where: str = "a batch") -> None:
        """Raise if the module's outputs are not what the net's criterion expects.

        ``NLLLoss`` takes log-probabilities. ``NeuralNetClassifier`` takes the
        log of the module's outputs first, so its module must return
        probabilities (finite, in ``[0, 1]``, rows summing to one); a plain
        ``NeuralNet`` (and scikit-activeml's wrapper) hands the outputs to the
        loss as they are, so they must be log-probabilities (at most zero,
        each row's ``logsumexp`` zero). A module returning logits violates
        both: under ``NeuralNetClassifier`` it trains to a NaN loss, and its
        influences would be garbage. Logits (``CrossEntropyLoss``) may be any
        values. The tolerance is ``max(1e-3, 8 eps)`` in the outputs' dtype.

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            Its criterion and class say what the outputs must be.
        outputs : torch.Tensor of shape (n, n_classes)
            The module's outputs (:meth:`forward`).
        where : str, default="a batch"
            Which samples they belong to, for the error message.

        Raises
        ------
        ValueError
            Naming the criterion, what is wrong with the outputs, and the fix
            (``criterion=torch.nn.CrossEntropyLoss`` for a module that returns
            logits).
        """
        kind = self._outputs_kind(estimator)
        if kind == "logits":
            return
        problems = _output_problems(kind, outputs.detach())
        if not problems:
            return
        last = split_pipeline(estimator)[1]
        criterion = type(self._net(estimator).criterion_).__name__
        found = "; ".join(problems)
        if kind == "probabilities":
            raise ValueError(
                f"the {type(last).__name__} trains with {criterion}, so its module must return "
                "probabilities (skorch's NeuralNetClassifier takes their log before the loss), "
                f"but its outputs on {where} are not probabilities: {found}. A module that "
                "returns logits trains to a NaN loss this way and its influences would be "
                "garbage: refit the net with criterion=torch.nn.CrossEntropyLoss (or end the "
                "module with a softmax)."
            )
        raise ValueError(
            f"the {type(last).__name__} trains with {criterion} on the module's outputs as they "
            f"are, so they must be log-probabilities, but its outputs on {where} are not: "
            f"{found}. For a module that returns logits, refit the net with "
            "criterion=torch.nn.CrossEntropyLoss (or end the module with log_softmax)."
        )

    # -- model -------------------------------------------------------------
    def forward(self, estimator: Any, module: nn.Module, inputs: Any) -> torch.Tensor:
        """Run ``module``; a tuple output is read as skorch reads it (its first element).

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            The estimator.
        module : torch.nn.Module
            The network (the engine swaps in its own parameters).
        inputs : torch.Tensor or dict
            A batch from :meth:`get_inputs` (a dict is passed as keywords).

        Returns
        -------
        torch.Tensor of shape (n, n_classes)
            Logits, probabilities or log-probabilities, as the net's criterion
            expects.

        Raises
        ------
        TypeError
            If the module does not return a two-dimensional tensor.
        """
        out = module(**inputs) if isinstance(inputs, dict) else module(inputs)
        out = self._scored_output(estimator, out) if isinstance(out, tuple | list) else out
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise TypeError(
                "the classifier's module must return a (n_samples, n_classes) tensor, got "
                f"{type(out).__name__} of shape {tuple(getattr(out, 'shape', ()))}."
            )
        return out

    def _scored_output(self, estimator: Any, outputs: tuple | list) -> Any:
        """The element of a module's tuple output the loss is computed on (skorch: the first)."""
        return outputs[0]

    def _outputs_kind(self, estimator: Any) -> str:
        """'logits', 'probabilities' or 'log_probabilities' (from skorch's conventions)."""
        from skorch import NeuralNetClassifier

        net = self._net(estimator)
        if isinstance(net.criterion_, nn.CrossEntropyLoss):
            return "logits"
        return "probabilities" if isinstance(net, NeuralNetClassifier) else "log_probabilities"

    def _log_input(self, estimator: Any, outputs: torch.Tensor) -> torch.Tensor:
        """What the criterion receives, exactly as skorch's ``get_loss`` builds it."""
        if self._outputs_kind(estimator) == "probabilities":
            return torch.log(outputs + torch.finfo(outputs.dtype).eps)
        return outputs

    def probabilities(self, estimator: Any, outputs: torch.Tensor) -> torch.Tensor:
        """Class posteriors from the module's outputs.

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            Its criterion and class tell logits from (log-)probabilities.
        outputs : torch.Tensor of shape (n, n_classes)
            The module's outputs.

        Returns
        -------
        torch.Tensor of shape (n, n_classes)
            Probabilities.
        """
        kind = self._outputs_kind(estimator)
        if kind == "logits":
            return outputs.softmax(dim=1)
        return outputs if kind == "probabilities" else outputs.exp()

    def _criterion(self, estimator: Any, like: torch.Tensor) -> nn.Module:
        """The net's criterion per sample, its class weights in ``like``'s dtype and device.

        A copy: the user's criterion and its weight buffer are never touched.
        The engine contracts scores in float64, and may compute on another
        device than the net's. Only a criterion with class weights is deep-copied
        and cast (this runs for every batch of every Hessian-vector product).
        """
        criterion = copy.copy(self._net(estimator).criterion_)
        criterion.reduction = "none"
        if isinstance(getattr(criterion, "weight", None), torch.Tensor):
            criterion = copy.deepcopy(criterion).to(device=like.device, dtype=like.dtype)
        return criterion

    def per_sample_loss(
        self, estimator: Any, outputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The net's criterion per sample (its options kept, ``reduction="none"``).

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            Its criterion is used (a copy; the user's is not touched).
        outputs : torch.Tensor of shape (n, n_classes)
            The module's outputs.
        targets : torch.Tensor of shape (n,)
            Class indices.

        Returns
        -------
        torch.Tensor of shape (n,)
            As skorch's ``get_loss`` computes it, before the reduction.
        """
        log_input = self._log_input(estimator, outputs)
        return self._criterion(estimator, log_input)(log_input, targets)

    def pseudo_label_loss(self, estimator: Any, outputs: torch.Tensor) -> torch.Tensor:
        """The loss against the model's own top-``top_k`` predictions (UUIC, Eq. 3).

        The classes and their weights (posteriors renormalised to sum to one)
        come from detached outputs, so the gradient of this loss is ``G_z`` at
        fixed pseudo-labels.

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            Its criterion is used.
        outputs : torch.Tensor of shape (n, n_classes)
            The module's outputs.

        Returns
        -------
        torch.Tensor of shape (n,)
            The weighted per-sample losses.
        """
        log_input = self._log_input(estimator, outputs)
        criterion = self._criterion(estimator, log_input)
        with torch.no_grad():
            weights, labels = self._top_k(self.probabilities(estimator, outputs.detach()))
        losses = [criterion(log_input, labels[:, j]) for j in range(labels.shape[1])]
        return sum(w * loss for w, loss in zip(weights.unbind(1), losses, strict=True))

    def _loss_class(self, criterion: nn.Module) -> type:
        """The loss whose closed-form derivative applies: the criterion's own class.

        A subclass may change the loss, so only the exact classes get the closed
        form; an adapter knowing a subclass that merely routes its input returns
        the base class.
        """
        return type(criterion)

    def _top_k(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pseudo-labels: the top-``top_k`` classes and their renormalised weights."""
        k = min(self.top_k, probs.shape[1])
        if k == 1:  # the default; argmax is several times cheaper than topk
            labels = probs.argmax(dim=1, keepdim=True)
            return torch.ones(labels.shape, dtype=probs.dtype, device=probs.device), labels
        weights, labels = probs.topk(k, dim=1)
        return weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-30), labels

    def pseudo_label_summary(
        self, estimator: Any, outputs: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Each sample's pseudo-label, the model's probability of it, and its margin.

        What :meth:`~skisal.InfluenceQueryStrategy.explain` shows next to the
        influences. The pseudo-label is the top-1 class (with ``top_k > 1`` the
        gradient also weighs the next classes; the label shown is the first).

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            Its criterion tells logits from (log-)probabilities.
        outputs : torch.Tensor of shape (n, n_classes)
            Detached outputs of :meth:`forward` on a batch.

        Returns
        -------
        dict of str to torch.Tensor
            ``"pseudo_label"``: the top class index (int64); ``"confidence"``:
            its probability; ``"margin"``: the top probability minus the
            second (the top one alone for a single class). Each of shape ``(n,)``.

        Examples
        --------
        >>> from skisal import SkorchClassifierAdapter
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
        >>> summary = SkorchClassifierAdapter().pseudo_label_summary(net, logits)
        >>> summary["pseudo_label"].tolist(), [round(m, 2) for m in summary["margin"].tolist()]
        ([0, 0], [0.76, 0.0])
        """
        probs = self.probabilities(estimator, outputs.float())
        top = probs.topk(min(2, probs.shape[1]), dim=1)
        second = top.values[:, 1] if probs.shape[1] > 1 else torch.zeros_like(top.values[:, 0])
        return {
            "pseudo_label": top.indices[:, 0],
            "confidence": top.values[:, 0],
            "margin": top.values[:, 0] - second,
        }

    def pseudo_label_correct(
        self, estimator: Any, outputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Whether the top-1 class is the target, per sample.

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            The estimator (unused: the top logit is the top probability).
        outputs : torch.Tensor of shape (n, n_classes)
            Detached outputs of :meth:`forward` on a batch.
        targets : torch.Tensor of int64, shape (n,)
            Class indices, from :meth:`get_targets`.

        Returns
        -------
        torch.Tensor of bool, shape (n,)

        Examples
        --------
        >>> from skisal import SkorchClassifierAdapter
        >>> outputs = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> SkorchClassifierAdapter().pseudo_label_correct(net, outputs, torch.tensor([0, 0]))
        tensor([ True, False])
        """
        return outputs.argmax(dim=1) == targets

    def pseudo_label_derivative(
        self, estimator: Any, outputs: torch.Tensor, tangents: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`pseudo_label_loss`'s derivative along ``tangents``, in closed form.

        For the criteria skorch classifiers use, without class weights or
        label smoothing, the loss's gradient with respect to the outputs has
        a closed form (``softmax(z) - sum_j w_j e_{c_j}`` for cross-entropy on
        logits), which skips autograd's backward pass. Any other criterion
        (a weighted or subclassed one) is differentiated by autograd.

        Parameters
        ----------
        estimator : skorch NeuralNet or Pipeline ending in one
            Its criterion and class tell which loss applies.
        outputs : torch.Tensor of shape (n, n_classes)
            The module's detached outputs.
        tangents : torch.Tensor of shape (n, n_classes)
            A direction in output space per sample.

        Returns
        -------
        torch.Tensor of shape (n,)
            ``<d l_uuic / d outputs, tangents>`` per sample.
        """
        criterion = self._net(estimator).criterion_
        plain = (
            self._loss_class(criterion) in (nn.CrossEntropyLoss, nn.NLLLoss)
            and criterion.weight is None
            and getattr(criterion, "label_smoothing", 0.0) == 0.0
            and criterion.ignore_index < 0  # pseudo-labels are never ignored
        )
        if not plain:
            return super().pseudo_label_derivative(estimator, outputs, tangents)
        kind = self._outputs_kind(estimator)
        if kind == "logits" and self.top_k == 1:
            # sum_k p_k (t_k - t_c) with p_k from exp(z_k - z_c): the label's term is exactly
            # zero, so a confident prediction's tiny derivative does not cancel against 1
            # (and this skips softmax and topk, the slowest steps over few classes on CPU)
            labels = outputs.argmax(dim=1, keepdim=True)
            shifted = (outputs - outputs.gather(1, labels)).exp()
            along = (shifted * (tangents - tangents.gather(1, labels))).sum(dim=1)
            return along / shifted.sum(dim=1)
        probs = self.probabilities(estimator, outputs)
        weights, labels = self._top_k(probs)
        along_labels = (weights * tangents.gather(1, labels)).sum(dim=1)
        if kind == "logits":  # cross-entropy: d/dz = softmax(z) - sum_j w_j e_{c_j}
            return (probs * tangents).sum(dim=1) - along_labels
        if kind == "log_probabilities":  # NLL on log-probabilities: d/do = -sum_j w_j e_{c_j}
            return -along_labels
        # NLL on log(p + eps), skorch's NeuralNetClassifier: d/dp = -sum_j w_j e_{c_j} / (p + eps)
        eps = torch.finfo(outputs.dtype).eps
        picked = outputs.gather(1, labels) + eps
        return -(weights * tangents.gather(1, labels) / picked).sum(dim=1)
