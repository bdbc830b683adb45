"""Forward-mode derivatives of linear layers and eval-mode batch norm, without wasted work.

Pool scoring's dual pass spends nearly all its time in a few layer types, where
PyTorch's general forward-mode rules do more than the derivative needs:

* a convolution or ``linear`` is ``f(x_t, W) + f(x, W_t)``, with an absent
  tangent materialised as zeros, so it runs three products wherever one input
  has no tangent: at the network's first layer (the input never has one), and
  at a frozen layer downstream of a tracked one (its weight has none);
* batch norm's rule is written for training mode: about ten elementwise
  passes over the activations, where in eval mode the layer is a per-channel
  affine map whose tangent is two more fused batch-norm kernels.

:class:`SkipAbsentTangents` computes these layers' tangents directly; every
other operation, and every case not listed, keeps PyTorch's own rule.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["SkipAbsentTangents"]

#: Functions ``f(input, weight, bias=None, *options)`` linear in input and in weight.
_LINEAR_LAYERS = (F.linear, F.conv1d, F.conv2d, F.conv3d)


class SkipAbsentTangents(TorchFunctionMode):
    """Inside a forward-AD dual level: linear layers and eval-mode batch norm, lean.

    The results equal PyTorch's rules up to float rounding (the same sums, in
    another order, without the terms that are exactly zero).

    Examples
    --------
    >>> import torch.autograd.forward_ad as fwAD
    >>> from skisal.engine._layer_jvp import SkipAbsentTangents
    >>> x, w, w_t = torch.randn(4, 3), torch.randn(2, 3), torch.randn(2, 3)
    >>> with fwAD.dual_level(), SkipAbsentTangents():
    ...     out = torch.nn.functional.linear(x, fwAD.make_dual(w, w_t))
    ...     tangent = fwAD.unpack_dual(out).tangent
    >>> torch.equal(tangent, x @ w_t.T)  # one product; PyTorch adds a zero tangent's
    True
    """

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        result = None
        if func in _LINEAR_LAYERS:
            result = _linear_layer_jvp(func, args, kwargs)
        elif func is F.batch_norm:
            result = _eval_batch_norm_jvp(args, kwargs)
        return func(*args, **kwargs) if result is None else result


def _unpack(t: Any) -> tuple[Any, Any]:
    """(primal, tangent) of a tensor, (t, None) for anything else."""
    return tuple(fwAD.unpack_dual(t)) if isinstance(t, torch.Tensor) else (t, None)


def _linear_layer_jvp(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``func``'s dual output when exactly one of input and weight has a tangent, else None."""
    if len(args) < 2:
        return None
    x, weight, *options = args
    bias = options.pop(0) if options else kwargs.get("bias")
    keywords = {k: v for k, v in kwargs.items() if k != "bias"}
    (x_p, x_t), (w_p, w_t), (b_p, b_t) = _unpack(x), _unpack(weight), _unpack(bias)
    if x_t is not None and w_t is None and b_t is None:  # frozen layer on a dual input
        tangent = func(x_t, w_p, None, *options, **keywords)
    elif x_t is None and w_t is not None:  # tracked layer on a plain input
        tangent = func(x_p, w_t, b_t, *options, **keywords)
    else:
        return None
    return fwAD.make_dual(func(x_p, w_p, b_p, *options, **keywords), tangent)


#: ``F.batch_norm``'s parameters, in order.
_BATCH_NORM_ARGS = (
    "input",
    "running_mean",
    "running_var",
    "weight",
    "bias",
    "training",
    "momentum",
    "eps",
)


def _eval_batch_norm_jvp(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Eval-mode ``F.batch_norm``'s dual output, or None (training mode, dual statistics).

    ``y = (x - mean) / sqrt(var + eps) * w + b``, with fixed running statistics:
    ``y_t = x_t / sqrt(var + eps) * w + [(x - mean) / sqrt(var + eps) * w_t + b_t]``,
    each term one batch-norm kernel.
    """
    bound = dict(zip(_BATCH_NORM_ARGS, args, strict=False)) | kwargs
    mean, var = bound.get("running_mean"), bound.get("running_var")
    eps = bound.get("eps", 1e-5)
    if bound.get("training", False) or mean is None or var is None:
        return None
    if _unpack(mean)[1] is not None or _unpack(var)[1] is not None:
        return None
    (x_p, x_t), (w_p, w_t), (b_p, b_t) = (
        _unpack(bound.get(k)) for k in ("input", "weight", "bias")
    )
    if w_t is None and b_t is not None:  # a tracked bias alone: left to PyTorch
        return None
    if x_t is None and w_t is None:
        return None
    terms = []
    if x_t is not None:
        terms.append(F.batch_norm(x_t, torch.zeros_like(mean), var, w_p, None, False, 0.0, eps))
    if w_t is not None:
        terms.append(F.batch_norm(x_p, mean, var, w_t, b_t, False, 0.0, eps))
    tangent = terms[0] if len(terms) == 1 else terms[0].add_(terms[1])
    primal = F.batch_norm(x_p, mean, var, w_p, b_p, False, 0.0, eps)
    return fwAD.make_dual(primal, tangent)
