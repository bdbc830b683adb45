"""Pool scoring: ``I(z, R) = -<s_test, G_z>`` for every pool sample.

Forward mode (default): one dual-number forward pass per batch gives the
directional derivative ``J_z s_test`` of the network's *outputs* along
``s_test``; contracting it with each sample's gradient of the UUIC loss with
respect to those outputs gives ``<G_z, s_test>`` for the whole batch, a few
forward passes' worth of work (see :doc:`/performance`) and no per-sample
gradients.
Contracting at the outputs (in float64) instead of differentiating the loss
itself matters: once the training loss is near zero, the float32 directional
derivative of the loss rounds to exactly 0 for many samples. In the dual pass,
linear layers and eval-mode batch norm use skisal's own forward-mode rules
(``_layer_jvp``), which skip PyTorch's products with absent tangents.

Per-sample reverse mode is the fallback for networks with an operation that
lacks a forward-mode derivative; the diagnostics say when it was used.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
from tqdm.auto import tqdm

from ..exceptions import NonFiniteScoreError
from ._layer_jvp import SkipAbsentTangents
from .model import BoundModel, batches, dual_level, non_finite_outputs
from .trees import tree_map

__all__ = ["score_pool"]


def _contraction_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _output_gradient_dot(model: BoundModel, primal: Any, tangent: Any) -> torch.Tensor:
    """Per-sample ``<d l_uuic / d outputs, tangent>`` in the contraction dtype, shape ``(n,)``."""
    dtype = _contraction_dtype(model.device)
    outputs = tree_map(lambda t: t.detach().to(dtype) if t.is_floating_point() else t, primal)
    tangents = tree_map(lambda t: t.to(dtype), tangent)
    return model.adapter.pseudo_label_derivative(model.estimator, outputs, tangents)


def _summary(model: BoundModel, outputs: Any) -> dict[str, torch.Tensor]:
    """The adapter's per-sample pseudo-label facts, from detached outputs."""
    detached = tree_map(lambda t: t.detach(), outputs)
    return model.adapter.pseudo_label_summary(model.estimator, detached)


def _forward_mode_batch(
    model: BoundModel, X: Any, idx: np.ndarray, observer: Any = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Scores of one batch; the dual parameters are already swapped in (``run_with``)."""
    inputs = model.inputs(X, idx)
    with SkipAbsentTangents():  # only around the network: the mode costs every torch call
        outputs = model.forward(None, inputs)
    if observer is not None:
        observer.record(idx, outputs)
    primal = tree_map(lambda t: fwAD.unpack_dual(t).primal, outputs)
    tangent = tree_map(lambda t: fwAD.unpack_dual(t).tangent, outputs)
    scores = -_output_gradient_dot(model, primal, tangent)
    # A NaN output can still give a finite contraction (a zero tangent, a masked
    # class): such a sample has no meaningful score, so it is marked NaN.
    bad = non_finite_outputs(primal, len(idx)).to(scores.device)
    return scores.masked_fill(bad, float("nan")), _summary(model, primal)


def _reverse_mode_batch(
    model: BoundModel, s_test: torch.Tensor, X: Any, idx: np.ndarray
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    space = model.space
    scores, summaries = [], []
    with torch.enable_grad():
        for i in idx:
            leaves = space.leaves()
            outputs = model.forward(leaves, model.inputs(X, np.array([i])))
            loss = model.adapter.pseudo_label_loss(model.estimator, outputs).sum()
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            score = -torch.dot(space.flatten(grads).to(s_test.dtype), s_test)
            # NaN outputs can give a zero gradient (the pseudo-label's argmax
            # ignores NaN): mark the sample NaN, as forward mode does.
            bad = non_finite_outputs(outputs, 1, loss.reshape(1)).to(score.device)
            scores.append(score.masked_fill(bad[0], float("nan")))
            summaries.append(_summary(model, outputs))
    return torch.stack(scores), _concat(summaries)


def _concat(summaries: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Batch summaries joined key by key."""
    if not summaries or not summaries[0]:
        return {}
    return {k: torch.cat([s[k].reshape(-1) for s in summaries]) for k in summaries[0]}


def score_pool(
    model: BoundModel,
    s_test: torch.Tensor,
    X: Any,
    batch_size: int,
    method: str = "auto",
    progress: bool = False,
    autocast: torch.dtype | None = None,
    observer: Any = None,
) -> tuple[torch.Tensor, str, str | None, dict[str, torch.Tensor]]:
    """Influence of every sample of ``X``, streamed in batches.

    Parameters
    ----------
    model : BoundModel
        The model (already in eval mode).
    s_test : torch.Tensor
        Flat ``(H + damping I)^-1 grad l(R)``.
    X : array-like
        The pool.
    batch_size : int
        Pool samples per forward pass.
    method : {"auto", "forward", "reverse"}, default="auto"
        "auto" uses forward mode and falls back to per-sample reverse mode
        if an operation of the network has no forward-mode derivative.
    progress : bool, default=False
        Show a tqdm bar.
    autocast : torch.dtype, optional
        Run the forward-mode passes under :func:`torch.autocast` with this
        dtype (float16 or bfloat16); the contraction with the loss gradient
        stays in float64. Where forward mode fails under autocast (an
        operation whose rule returns a float32 tangent for a reduced-precision
        primal), the pool is scored in full precision and the reason says so.
        None: the model's own precision.
    observer : object, optional
        A context manager entered around the forward-mode passes (at full
        precision), whose ``record(idx, outputs)`` sees each batch's dual
        outputs right after the network ran: what else the pass can give
        (:class:`~skisal.engine.diversity.LastLayerFactors`). Not called in
        reverse mode, nor under ``autocast``.

    Returns
    -------
    scores : torch.Tensor
        Shape ``(n,)``, on the model's device, float64 (float32 on MPS).
    method : str
        "forward" or "reverse", the method used.
    fallback_reason : str or None
        Why forward mode or autocast was abandoned, when it was.
    summary : dict of str to torch.Tensor
        The adapter's per-sample pseudo-label facts
        (:meth:`~skisal.adapters.ModelAdapter.pseudo_label_summary`), each of
        shape ``(n,)``; empty for adapters that report none.

    Raises
    ------
    skisal.NonFiniteScoreError
        If a score is NaN or infinite (the model's output is, for that sample).

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, ParameterSpace, evaluation_mode, score_pool,
    ...     select_parameters)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> s_test = torch.randn(space.dim)
    >>> with evaluation_mode(net.module_):
    ...     scores, method, reason, summary = score_pool(model, s_test, X_pool, batch_size=8)
    ...     reverse, *_ = score_pool(model, s_test, X_pool, batch_size=8, method="reverse")
    >>> scores.shape, scores.dtype, method, reason, sorted(summary)
    (torch.Size([30]), torch.float64, 'forward', None, ['confidence', 'margin', 'pseudo_label'])
    >>> bool(torch.allclose(scores, reverse, atol=1e-5))  # the same influences
    True
    """
    if autocast is not None and method != "reverse":
        try:
            return _score_pool(model, s_test, X, batch_size, "forward", progress, autocast)
        except (RuntimeError, NonFiniteScoreError) as exc:  # unsupported op, or overflow
            scores, used, reason, summary = _score_pool(
                model, s_test, X, batch_size, method, progress
            )
            note = f"autocast to {autocast} failed in forward mode, scored in full precision"
            first_line = f"{type(exc).__name__}: {exc}".splitlines()[0]
            reason = f"{note} ({first_line})" + (f"; {reason}" if reason else "")
            return scores, used, reason, summary
    return _score_pool(model, s_test, X, batch_size, method, progress, observer=observer)


def _score_pool(
    model: BoundModel,
    s_test: torch.Tensor,
    X: Any,
    batch_size: int,
    method: str = "auto",
    progress: bool = False,
    autocast: torch.dtype | None = None,
    observer: Any = None,
) -> tuple[torch.Tensor, str, str | None, dict[str, torch.Tensor]]:
    """:func:`score_pool` at one precision."""
    n = model.adapter.n_samples(X)
    dtype = _contraction_dtype(model.device)
    scores = torch.empty(n, dtype=dtype, device=model.device)
    s_flat = s_test.to(model.space.dtype)
    reason = None
    summaries: list[dict[str, torch.Tensor]] = []
    bar = tqdm(total=n, desc="scoring pool", disable=not progress, leave=False)

    def score_batches() -> None:  # run with the dual parameters swapped in
        for idx in batches(n, batch_size):
            with _autocast(model.device, autocast):
                batch_scores, summary = _forward_mode_batch(model, X, idx, observer)
            scores[idx[0] : idx[-1] + 1] = batch_scores
            summaries.append(summary)
            bar.update(len(idx))

    with torch.no_grad():
        if method in ("auto", "forward"):
            try:
                with dual_level():
                    duals = {
                        name: fwAD.make_dual(p, t)
                        for (name, p), t in zip(
                            model.space.constants().items(),
                            model.space.split(s_flat).values(),
                            strict=True,
                        )
                    }
                    with observer if observer is not None else contextlib.nullcontext():
                        model.run_with(duals, score_batches)
            except (NotImplementedError, RuntimeError) as exc:
                if method == "forward" or "forward" not in str(exc).lower():
                    bar.close()
                    raise
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                summaries = []
                bar.reset()
        if method == "reverse" or reason is not None:
            for idx in batches(n, batch_size):
                batch_scores, summary = _reverse_mode_batch(model, s_flat, X, idx)
                scores[idx[0] : idx[-1] + 1] = batch_scores.to(dtype)
                summaries.append(summary)
                bar.update(len(idx))
    bar.close()
    finite = torch.isfinite(scores)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()[:10].cpu().tolist()
        raise NonFiniteScoreError(
            f"influence is not finite for {int((~finite).sum())} sample(s) of X_pool (first "
            f"rows: {bad}): the model's outputs there are NaN or infinite, or its loss overflows; "
            "check those rows (scaling, extreme values) or drop them from the pool."
        )
    used = "reverse" if (method == "reverse" or reason is not None) else "forward"
    return scores, used, reason, _concat(summaries)
