"""A model bound to its adapter: forward passes with swapped-in parameters, losses.

The engine differentiates with respect to *detached* leaves passed through
:func:`torch.func.functional_call`, so it never writes to the user's
parameters, their ``.grad`` or their ``requires_grad`` flags, and leaves the
module's mode to :func:`evaluation_mode`, which restores it exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.func import functional_call

from ..adapters.base import ModelAdapter
from .parameters import ParameterSpace

__all__ = ["BoundModel", "batches", "evaluation_mode"]


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, restoring each one's own flag on exit.

    BatchNorm must use its running statistics and dropout must be off for
    per-sample quantities; restoring flag by flag (not ``module.train()``)
    keeps a user's mixed train/eval setting bit-identical, also on error.
    """
    modes = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        yield module
    finally:
        for m, training in modes:
            m.training = training


@contextmanager
def dual_level() -> Iterator[None]:
    """``forward_ad.dual_level`` without torch's own internal deprecation notice.

    The first forward-mode pass in a process loads torch's JVP decompositions,
    which call ``torch.jit.script`` and warn about it: nothing a user can act on.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
        )
        with fwAD.dual_level():
            yield


def batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive index batches covering ``range(n)``."""
    for start in range(0, n, batch_size):
        yield np.arange(start, min(start + batch_size, n))


class _AdapterForward(nn.Module):
    """Lets ``functional_call`` reparametrise whatever the adapter's forward touches."""

    def __init__(self, adapter: ModelAdapter, estimator: Any, module: nn.Module) -> None:
        super().__init__()
        self.adapter = adapter
        self.estimator = estimator
        self.net = module

    def forward(self, inputs: Any) -> Any:
        return self.adapter.forward(self.estimator, self.net, inputs)


@dataclass
class BoundModel:
    """An adapter, the user's estimator, its module and the selected parameters."""

    adapter: ModelAdapter
    estimator: Any
    module: nn.Module
    space: ParameterSpace
    device: torch.device

    def __post_init__(self) -> None:
        self._wrapper = _AdapterForward(self.adapter, self.estimator, self.module)
        # Encoded inputs kept for reuse; lives as long as this query's BoundModel,
        # so the ids of the caller's data in its keys stay valid.
        self._cache: dict[tuple[int, bytes], Any] = {}
        self._cache_bytes = 0

    def forward(self, params: dict[str, torch.Tensor] | None, inputs: Any) -> Any:
        """Outputs of the module on ``inputs`` with ``params`` swapped in."""
        if params is None:
            return self._wrapper(inputs)
        prefixed = {f"net.{name}": value for name, value in params.items()}
        return functional_call(self._wrapper, prefixed, (inputs,))

    def inputs(self, X: Any, indices: np.ndarray, reuse: bool = False) -> Any:
        """Model input for ``X[indices]``, encoded (see :meth:`ModelAdapter.encode`).

        With ``reuse``, the encoded batch is kept (within the adapter's
        ``input_cache_bytes``) for the next request of the same batch: the
        solvers' full passes over the labelled set repeat the same batches.
        """
        key = (id(X), np.asarray(indices).tobytes())
        if reuse and key in self._cache:
            return self._cache[key]
        raw = self.adapter.get_inputs(self.estimator, X, indices, self.device)
        with torch.no_grad():
            encoded = self.adapter.encode(self.estimator, self.module, raw)
        if reuse and self.adapter.input_cache_bytes > 0:
            size = self.adapter.encoded_nbytes(encoded)
            if self._cache_bytes + size <= self.adapter.input_cache_bytes:
                self._cache[key] = encoded
                self._cache_bytes += size
        return encoded

    def targets(self, y: Any, indices: np.ndarray) -> Any:
        return self.adapter.get_targets(self.estimator, y, indices, self.device)

    def mean_loss(
        self,
        params: dict[str, torch.Tensor],
        X: Any,
        y: Any,
        indices: np.ndarray,
        reuse: bool = False,
    ) -> torch.Tensor:
        """Mean training loss over ``X[indices]`` (``reuse``: see :meth:`inputs`)."""
        outputs = self.forward(params, self.inputs(X, indices, reuse))
        return self.adapter.per_sample_loss(
            self.estimator, outputs, self.targets(y, indices)
        ).mean()

    def loss_gradient(self, X: Any, y: Any, batch_size: int) -> torch.Tensor:
        """Gradient of the mean loss over all of ``X``, as a flat vector."""
        n = self.adapter.n_samples(X)
        total = torch.zeros(self.space.dim, device=self.device, dtype=self.space.dtype)
        with torch.enable_grad():
            for idx in batches(n, batch_size):
                leaves = self.space.leaves()
                loss = self.mean_loss(leaves, X, y, idx) * (len(idx) / n)
                grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
                total += self.space.flatten(grads)
        return total
