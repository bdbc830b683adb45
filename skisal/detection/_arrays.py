"""Images and target dicts: object arrays that modAL can stack, and tensors for the model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

__all__ = ["as_object_array", "target_to", "to_tensor"]


def as_object_array(items: Iterable[Any]) -> np.ndarray:
    """A 1-D numpy object array holding ``items`` unchanged, one per element.

    modAL stacks labelled data with ``numpy.concatenate`` and indexes the pool
    with integer arrays. A Python list of images of different sizes survives
    neither, and ``numpy.array(list_of_images, dtype=object)`` would turn
    same-size images into one multi-dimensional array. This keeps each image
    (or target dict) as one element.

    Parameters
    ----------
    items : iterable
        Images (tensors or arrays) or target dicts.

    Returns
    -------
    numpy.ndarray of shape (n_items,), dtype object
        The items themselves (not copies).

    Examples
    --------
    >>> import torch
    >>> images = as_object_array([torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)])
    >>> images.shape, images.dtype, tuple(images[0].shape)
    ((2,), dtype('O'), (3, 8, 8))
    """
    items = list(items)
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def to_tensor(image: Any, device: torch.device) -> torch.Tensor:
    """An image as a float32 tensor on ``device`` (not copied if it already is one)."""
    tensor = torch.as_tensor(image)
    if tensor.dtype != torch.float32:
        tensor = tensor.float()
    return tensor.to(device)


def target_to(target: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """``boxes`` as float32 ``(k, 4)`` and ``labels`` as int64 on ``device``."""
    boxes = torch.as_tensor(
        np.asarray(target["boxes"])
        if isinstance(target["boxes"], list | tuple)
        else target["boxes"]
    )
    labels = torch.as_tensor(
        np.asarray(target["labels"])
        if isinstance(target["labels"], list | tuple)
        else target["labels"]
    )
    return {
        "boxes": boxes.to(device=device, dtype=torch.float32).reshape(-1, 4),
        "labels": labels.to(device=device, dtype=torch.int64),
    }
