"""Tensor-tree helpers: model outputs may be tensors, tuples, lists or dicts.

Public because adapters (skisal's and third-party ones) walk such outputs too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["detached_leaf_copy", "differentiable", "tree_leaves", "tree_map"]


def tree_map(fn: Callable[[torch.Tensor], Any], tree: Any) -> Any:
    """Apply ``fn`` to every tensor of a tensor / tuple / list / dict structure.

    Parameters
    ----------
    fn : callable
        Applied to each tensor.
    tree : object
        A tensor, or a tuple, list or dict of them (nested); other leaves are
        kept as they are.

    Returns
    -------
    object
        The same structure with ``fn``'s results in place of the tensors.

    Examples
    --------
    >>> from skisal.engine.trees import tree_map
    >>> tree_map(lambda t: t * 2, {"boxes": torch.ones(1), "labels": [torch.ones(2)], "k": 3})
    {'boxes': tensor([2.]), 'labels': [tensor([2., 2.])], 'k': 3}
    """
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(tree_map(fn, v) for v in tree)
    return tree


def tree_leaves(tree: Any) -> list[Any]:
    """Leaves of the structure in a fixed order (dicts by insertion).

    Parameters
    ----------
    tree : object
        A tensor, or a tuple, list or dict of them (nested).

    Returns
    -------
    list
        Every leaf (tensor or other object), depth first.

    Examples
    --------
    >>> from skisal.engine.trees import tree_leaves
    >>> tree_leaves({"a": (1, 2), "b": [3]})
    [1, 2, 3]
    """
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in tree_leaves(v)]
    if isinstance(tree, list | tuple):
        return [leaf for v in tree for leaf in tree_leaves(v)]
    return [tree]


def differentiable(leaf: Any, requires_grad: bool = True) -> bool:
    """Whether a leaf is a floating tensor (requiring grad, unless told otherwise).

    Outputs may carry other leaves (integer tensors, an adapter's context
    object) that the engine passes along without differentiating.

    Parameters
    ----------
    leaf : object
        A leaf of an output structure.
    requires_grad : bool, default=True
        Also require ``leaf.requires_grad``.

    Returns
    -------
    bool

    Examples
    --------
    >>> from skisal.engine.trees import differentiable
    >>> differentiable(torch.ones(2, requires_grad=True)), differentiable(torch.ones(2))
    (True, False)
    >>> differentiable(torch.ones(2), requires_grad=False), differentiable(torch.arange(2))
    (True, False)
    """
    if not isinstance(leaf, torch.Tensor) or not leaf.is_floating_point():
        return False
    return leaf.requires_grad or not requires_grad


def detached_leaf_copy(tree: Any, dtype: torch.dtype | None = None) -> Any:
    """Floating tensors detached (optionally cast) and requiring grad; others unchanged.

    Parameters
    ----------
    tree : object
        A tensor, or a tuple, list or dict of them (nested).
    dtype : torch.dtype, optional
        Cast the floating tensors to this dtype (default: keep theirs).

    Returns
    -------
    object
        The same structure with new autograd leaves in place of its floating
        tensors.

    Examples
    --------
    >>> from skisal.engine.trees import detached_leaf_copy
    >>> out = detached_leaf_copy((torch.ones(2), torch.arange(2)), torch.float64)
    >>> out[0].requires_grad, out[0].dtype, out[1].requires_grad
    (True, torch.float64, False)
    """

    def leaf(t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            return t
        return t.detach().to(dtype or t.dtype).requires_grad_(True)

    return tree_map(leaf, tree)
