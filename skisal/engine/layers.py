"""Watching one layer of a network during forward passes, without changing it.

Both the coreset baseline (penultimate features) and diverse influence
selection (last-layer UUIC gradients) need what enters a network's last
``nn.Linear``. "Last" means last *executed*: registration order says nothing
about the order a ``forward`` runs layers in, so the first forward pass with
every ``nn.Linear`` watched decides.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["LayerProbe"]


class LayerProbe:
    """Record a layer's input (and, optionally, its output as a fresh leaf).

    Use as a context manager around forward passes; call :meth:`take` after
    each pass. With ``output_leaf=True`` the layer's output is replaced by a
    detached copy that requires grad, so that the gradient of any later loss
    with respect to that output can be taken without touching the network's
    parameters.

    Parameters
    ----------
    module : nn.Module
        The network.
    layer : str, optional
        Name of the watched module; default the last ``nn.Linear`` executed.
    output_leaf : bool, default=False
        Replace the layer's output by a leaf that requires grad.

    Attributes
    ----------
    name : str or None
        The watched layer; with ``layer=None``, settled by the first
        :meth:`take`.

    Raises
    ------
    ValueError
        If ``layer`` names no module, or the network has no ``nn.Linear``.

    Examples
    --------
    >>> from torch import nn
    >>> from skisal.engine.layers import LayerProbe
    >>> module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> with LayerProbe(module) as probe:  # the last nn.Linear: "2"
    ...     logits = module(torch.randn(5, 4))
    ...     features, output = probe.take()
    >>> probe.name, tuple(features.shape), tuple(output.shape)
    ('2', (5, 8), (5, 3))
    >>> len(module[2]._forward_hooks)  # removed on leaving the block
    0

    With ``output_leaf=True``, gradients stop at the layer's output:

    >>> with LayerProbe(module, output_leaf=True) as probe:
    ...     logits = module(torch.randn(5, 4))
    ...     _, output = probe.take()
    ...     (grad,) = torch.autograd.grad(logits.logsumexp(dim=1).sum(), output)
    >>> tuple(grad.shape), module[2].weight.grad is None
    ((5, 3), True)
    """

    def __init__(self, module: nn.Module, layer: str | None = None, output_leaf: bool = False):
        modules = dict(module.named_modules())
        if layer is None:
            candidates = {n: m for n, m in modules.items() if isinstance(m, nn.Linear)}
            if not candidates:
                raise ValueError(
                    "the network has no nn.Linear layer to take features or gradients at: "
                    "pass layer='<module name>'."
                )
        elif layer in modules:
            candidates = {layer: modules[layer]}
        else:
            raise ValueError(f"layer={layer!r} names no module of the network.")
        self.output_leaf = output_leaf
        self.name: str | None = layer
        self._records: dict[str, list[tuple[torch.Tensor, Any]]] = {n: [] for n in candidates}
        self._executed: list[str] = []
        self._handles = {n: m.register_forward_hook(self._hook(n)) for n, m in candidates.items()}

    def _hook(self, name: str) -> Any:
        def hook(_module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            if self.output_leaf:
                output = output.detach().requires_grad_(True)
            self._records[name].append((args[0].detach(), output))
            self._executed.append(name)
            return output if self.output_leaf else None

        return hook

    def take(self) -> tuple[torch.Tensor, Any]:
        """Input and output of the watched layer in the last forward pass.

        The first call with ``layer=None`` settles on the last ``nn.Linear``
        that pass ran and stops watching the others.

        Returns
        -------
        inputs : torch.Tensor
            The layer's (first) input, detached.
        output : object
            The layer's output (a leaf that requires grad with
            ``output_leaf=True``).

        Raises
        ------
        RuntimeError
            If the last forward pass ran no watched layer.
        """
        if self.name is None:  # first pass: settle on the last layer it ran
            if not self._executed:
                raise RuntimeError("the forward pass ran no nn.Linear layer.")
            self.name = self._executed[-1]
            for name in list(self._handles):
                if name != self.name:
                    self._handles.pop(name).remove()
                    self._records.pop(name)
        records = self._records[self.name]
        if not records:
            raise RuntimeError(f"the forward pass did not run layer {self.name!r}.")
        self._records[self.name] = []
        return records[-1]

    def close(self) -> None:
        """Remove the hooks (done on leaving the ``with`` block); the network is as before."""
        for handle in self._handles.values():
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> LayerProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
