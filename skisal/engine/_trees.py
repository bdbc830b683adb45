"""Minimal structure helpers: model outputs may be tensors, tuples, lists or dicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["detached_leaf_copy", "tree_leaves", "tree_map"]


def tree_map(fn: Callable[[torch.Tensor], Any], tree: Any) -> Any:
    """Apply ``fn`` to every tensor of a tensor / tuple / list / dict structure."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(tree_map(fn, v) for v in tree)
    return tree


def tree_leaves(tree: Any) -> list[Any]:
    """Leaves of the structure in a fixed order (dicts by insertion)."""
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in tree_leaves(v)]
    if isinstance(tree, list | tuple):
        return [leaf for v in tree for leaf in tree_leaves(v)]
    return [tree]


def detached_leaf_copy(tree: Any, dtype: torch.dtype | None = None) -> Any:
    """Floating tensors detached (optionally cast) and requiring grad; others unchanged."""

    def leaf(t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            return t
        return t.detach().to(dtype or t.dtype).requires_grad_(True)

    return tree_map(leaf, tree)
