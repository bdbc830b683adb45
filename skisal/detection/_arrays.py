"""Collections of variable-size images and target dicts that modAL can stack."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["as_object_array"]


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
