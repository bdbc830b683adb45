"""Which parameters influence is taken over, and the flat vector space they span.

Every solver works on one flat vector (``s_test``, the reference gradient); the
network wants a dict of named tensors. :class:`ParameterSpace` converts between
the two and hands out *detached* leaves, so that differentiating never touches
the user's parameters, their ``.grad`` or their ``requires_grad`` flags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..exceptions import InvalidParameterError

__all__ = ["ParameterSpace", "ParameterSpec", "select_parameters"]

ParameterSpec = str | Sequence[str] | Callable[[str, torch.Tensor], bool]
"""What :func:`select_parameters` accepts (the strategy's ``parameters``).

``"all"``, ``"weights"``, a module or parameter name, a sequence of them, or
a callable ``f(name, param) -> bool``.
"""


def _matches(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def select_parameters(module: nn.Module, spec: ParameterSpec = "all") -> dict[str, torch.Tensor]:
    """Resolve a parameter specification to named parameters of ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        The network.
    spec : {"all", "weights"}, str, sequence of str or callable, default="all"
        ``"all"``: every trainable parameter (``requires_grad=True``);
        ``"weights"``: trainable parameters with more than one dimension (the
        ISAL reference code's choice: no biases, no normalisation scales);
        a name or list of names: parameters whose full name equals a name or
        lies under a module of that name (``"fc2"`` selects ``fc2.weight``
        and ``fc2.bias``); a callable ``f(name, param) -> bool``.

    Returns
    -------
    dict of str to torch.Tensor
        The selected parameters in ``module.named_parameters()`` order.

    Raises
    ------
    ValueError
        If a name matches no parameter, or nothing is selected.
    TypeError
        If ``spec`` has an unsupported type.

    Examples
    --------
    >>> from torch import nn
    >>> from skisal.engine import select_parameters
    >>> module = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> list(select_parameters(module, "weights"))
    ['0.weight', '2.weight']
    >>> list(select_parameters(module, ["2"]))
    ['2.weight', '2.bias']
    """
    named = dict(module.named_parameters())
    if callable(spec) and not isinstance(spec, str):
        chosen = {n: p for n, p in named.items() if spec(n, p)}
    elif spec == "all":
        chosen = {n: p for n, p in named.items() if p.requires_grad}
    elif spec == "weights":
        chosen = {n: p for n, p in named.items() if p.requires_grad and p.ndim > 1}
    elif isinstance(spec, str) or (
        isinstance(spec, Sequence) and all(isinstance(s, str) for s in spec)
    ):
        names = [spec] if isinstance(spec, str) else list(spec)
        unknown = [s for s in names if not any(_matches(n, [s]) for n in named)]
        if unknown:
            modules = sorted({n.rsplit(".", 1)[0] for n in named if "." in n})
            raise InvalidParameterError(
                f"parameters={spec!r}: {unknown} match no parameter of the network. "
                f"Use 'all', 'weights', a callable, or names among modules {modules} "
                f"and parameters {list(named)}."
            )
        chosen = {n: p for n, p in named.items() if _matches(n, names)}
    else:
        raise InvalidParameterError(
            "parameters must be 'all', 'weights', a parameter/module name, a list of "
            f"names or a callable (name, param) -> bool; got {type(spec).__name__}."
        )
    if not chosen:
        raise InvalidParameterError(
            f"parameters={spec!r} selects no parameter (is every parameter frozen?)."
        )
    return chosen


@dataclass(frozen=True)
class ParameterSpace:
    """The flat vector space of the selected parameters.

    Solvers work on one flat vector (``s_test``, the reference gradient), the
    network on named tensors: :meth:`flatten` and :meth:`split` convert
    between the two, in ``parameters`` order. :meth:`leaves` and
    :meth:`constants` hand out detached tensors sharing the parameters'
    storage, so that differentiating never touches the user's parameters,
    their ``.grad`` or their ``requires_grad`` flags.

    Parameters
    ----------
    parameters : dict of str to torch.Tensor
        Named parameters (as returned by :func:`select_parameters`).

    Examples
    --------
    >>> from torch import nn
    >>> from skisal.engine import ParameterSpace, select_parameters
    >>> module = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> space = ParameterSpace(select_parameters(module, ["2"]))  # the last layer
    >>> space.names, space.dim, space.dtype
    (['2.weight', '2.bias'], 8, torch.float32)
    >>> flat = space.flatten([torch.ones(2, 3), None])  # None reads as zeros
    >>> flat
    tensor([1., 1., 1., 1., 1., 1., 0., 0.])
    >>> {name: tuple(t.shape) for name, t in space.split(flat).items()}
    {'2.weight': (2, 3), '2.bias': (2,)}

    The leaves share the parameters' storage but are new autograd leaves:

    >>> leaves = space.leaves()
    >>> leaves["2.weight"].data_ptr() == module[2].weight.data_ptr()
    True
    >>> _ = torch.autograd.grad(leaves["2.weight"].sum(), leaves["2.weight"])
    >>> module[2].weight.grad is None  # the module's own parameters are not touched
    True
    """

    parameters: dict[str, torch.Tensor]

    @property
    def names(self) -> list[str]:
        """Parameter names, in flattening order."""
        return list(self.parameters)

    @property
    def dim(self) -> int:
        """Total number of scalar parameters."""
        return sum(p.numel() for p in self.parameters.values())

    @property
    def device(self) -> torch.device:
        """Device of the (first) parameter."""
        return next(iter(self.parameters.values())).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the (first) parameter."""
        return next(iter(self.parameters.values())).dtype

    def leaves(self) -> dict[str, torch.Tensor]:
        """Detached copies-by-reference that require grad: safe to differentiate.

        Returns
        -------
        dict of str to torch.Tensor
            Tensors sharing the parameters' storage, new autograd leaves.
        """
        return {n: p.detach().requires_grad_(True) for n, p in self.parameters.items()}

    def constants(self) -> dict[str, torch.Tensor]:
        """Detached views that do not require grad.

        Returns
        -------
        dict of str to torch.Tensor
            Tensors sharing the parameters' storage, outside autograd.
        """
        return {n: p.detach() for n, p in self.parameters.items()}

    def flatten(self, tensors: Iterable[torch.Tensor | None]) -> torch.Tensor:
        """Concatenate per-parameter tensors (``None`` read as zeros) into one vector.

        Parameters
        ----------
        tensors : iterable of torch.Tensor or None
            One tensor per parameter, in :attr:`names` order, each with as
            many entries as its parameter (e.g. the output of
            :func:`torch.autograd.grad` with ``allow_unused=True``).

        Returns
        -------
        torch.Tensor of shape (dim,)
            The flat vector.
        """
        parts = [
            torch.zeros_like(p).reshape(-1) if t is None else t.reshape(-1)
            for t, p in zip(tensors, self.parameters.values(), strict=True)
        ]
        return torch.cat(parts)

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inverse of :meth:`flatten`: named views shaped like the parameters.

        Parameters
        ----------
        flat : torch.Tensor of shape (dim,)
            A flat vector, e.g. ``s_test``.

        Returns
        -------
        dict of str to torch.Tensor
            Views into ``flat``, one per parameter, shaped like it.

        Raises
        ------
        ValueError
            If ``flat`` does not have :attr:`dim` entries.
        """
        if flat.numel() != self.dim:
            raise ValueError(f"expected a vector of {self.dim} entries, got {flat.numel()}")
        sizes = [p.numel() for p in self.parameters.values()]
        return {
            n: chunk.view_as(p)
            for (n, p), chunk in zip(self.parameters.items(), flat.split(sizes), strict=True)
        }
