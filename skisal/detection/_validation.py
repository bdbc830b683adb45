"""Validation of detection images and target dicts.

Every check names the argument and, where it applies, the image index, so that
a user with thousands of annotations can find the bad one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._arrays import as_object_array

__all__ = ["check_images", "check_targets"]

#: Boxes may poke out of the image by this many pixels (annotation tools round).
_BOUNDS_TOLERANCE = 1.0


def _as_sequence(X: Any, name: str) -> list[Any]:
    if X is None:
        raise TypeError(f"{name} must be a sequence of images, got None.")
    if isinstance(X, torch.Tensor | np.ndarray) and X.dtype != object:
        if X.ndim != 4:
            raise ValueError(
                f"{name} must be a sequence of (C, H, W) images or one (N, C, H, W) array; "
                f"got an array of shape {tuple(X.shape)}."
            )
        return list(X)
    if isinstance(X, str | bytes | dict) or not hasattr(X, "__len__"):
        raise TypeError(
            f"{name} must be a list, tuple or 1-D object array of images, got {type(X).__name__}."
        )
    return list(X)


def check_images(X: Any, name: str = "X") -> np.ndarray:
    """Validate a collection of CHW float images; return them as a 1-D object array.

    Parameters
    ----------
    X : sequence of torch.Tensor or numpy.ndarray, or (N, C, H, W) array
        Images, each of shape ``(3, H, W)`` with floating values (torchvision
        detectors expect values in [0, 1]); sizes may differ.
    name : str, default="X"
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray of shape (n_images,), dtype object
        The same images (not copies), one per element.

    Raises
    ------
    TypeError
        If ``X`` is not a sequence of tensors/arrays, or an image is not
        floating point.
    ValueError
        If ``X`` is empty, or an image has the wrong shape or holds NaN/inf.

    Examples
    --------
    >>> import torch
    >>> check_images([torch.zeros(3, 4, 5), torch.ones(3, 6, 2)]).shape
    (2,)
    >>> check_images([])
    Traceback (most recent call last):
    ...
    ValueError: X is empty: it must hold at least one image.
    """
    images = _as_sequence(X, name)
    if not images:
        raise ValueError(f"{name} is empty: it must hold at least one image.")
    for i, image in enumerate(images):
        if not isinstance(image, torch.Tensor | np.ndarray):
            raise TypeError(
                f"{name}[{i}] must be a torch.Tensor or numpy array (C, H, W), "
                f"got {type(image).__name__}."
            )
        shape = tuple(image.shape)
        if len(shape) != 3 or shape[0] != 3 or shape[1] < 1 or shape[2] < 1:
            raise ValueError(
                f"{name}[{i}] must have shape (3, H, W) (channels first, RGB), got {shape}."
            )
        floating = (
            image.is_floating_point()
            if isinstance(image, torch.Tensor)
            else (image.dtype.kind == "f")
        )
        if not floating:
            raise TypeError(
                f"{name}[{i}] must hold floats in [0, 1] (e.g. image.float() / 255), "
                f"got dtype {image.dtype}."
            )
        finite = (
            torch.isfinite(image).all()
            if isinstance(image, torch.Tensor)
            else (np.isfinite(image).all())
        )
        if not bool(finite):
            raise ValueError(f"{name}[{i}] holds NaN or infinite values.")
    return X if isinstance(X, np.ndarray) and X.dtype == object else as_object_array(images)


def _as_tensor(value: Any, name: str, key: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor | np.ndarray | list | tuple):
        raise TypeError(f"{name}[{key!r}] must be a tensor or array, got {type(value).__name__}.")
    return torch.as_tensor(np.asarray(value) if isinstance(value, list | tuple) else value)


def check_targets(
    y: Any, images: np.ndarray | None, name: str = "y", num_classes: int | None = None
) -> np.ndarray:
    """Validate detection targets against their images; return a 1-D object array.

    Parameters
    ----------
    y : sequence of dict
        One dict per image with ``"boxes"``, shape ``(k, 4)``, ``(x1, y1, x2,
        y2)`` in absolute pixels with ``x2 > x1`` and ``y2 > y1``, and
        ``"labels"``, shape ``(k,)``, integers ``1 .. num_classes - 1`` (0 is
        the background, as in torchvision). ``k`` may be 0. Other keys are
        kept.
    images : numpy.ndarray of images, optional
        The images, as returned by :func:`check_images`, for the count and
        the bounds checks.
    name : str, default="y"
        Argument name used in error messages.
    num_classes : int, optional
        Classes including the background; labels are checked against it.

    Returns
    -------
    numpy.ndarray of shape (n_images,), dtype object
        The same dicts (not copies).

    Raises
    ------
    TypeError
        If ``y`` is not a sequence of dicts, or boxes/labels have the wrong type.
    ValueError
        If counts differ, a key is missing, a box is degenerate, not finite or
        outside its image, or a label is out of range.

    Examples
    --------
    >>> import torch
    >>> images = check_images([torch.zeros(3, 10, 10)])
    >>> targets = [{"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]]), "labels": torch.tensor([1])}]
    >>> len(check_targets(targets, images, num_classes=3))
    1
    >>> check_targets([{"boxes": torch.zeros(0, 4)}], images)
    Traceback (most recent call last):
    ...
    ValueError: y[0] has no 'labels': every target dict needs 'boxes' and 'labels'.
    """
    if y is None or isinstance(y, str | bytes | dict) or not hasattr(y, "__len__"):
        raise TypeError(
            f"{name} must be a sequence of dicts with 'boxes' and 'labels', got {type(y).__name__}."
        )
    targets = list(y)
    if images is not None and len(targets) != len(images):
        raise ValueError(
            f"{name} has {len(targets)} target dicts but there are {len(images)} images: "
            "give one dict per image (with empty 'boxes' for an image without objects)."
        )
    for i, target in enumerate(targets):
        where = f"{name}[{i}]"
        if not isinstance(target, dict):
            raise TypeError(
                f"{where} must be a dict with 'boxes' and 'labels', got {type(target).__name__}."
            )
        for key in ("boxes", "labels"):
            if key not in target:
                raise ValueError(
                    f"{where} has no {key!r}: every target dict needs 'boxes' and 'labels'."
                )
        boxes = _as_tensor(target["boxes"], where, "boxes")
        labels = _as_tensor(target["labels"], where, "labels")
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            if not (boxes.numel() == 0):
                raise ValueError(
                    f"{where}['boxes'] must have shape (k, 4), got {tuple(boxes.shape)}."
                )
            boxes = boxes.reshape(0, 4)
        if labels.ndim != 1 or len(labels) != len(boxes):
            raise ValueError(
                f"{where}['labels'] must have shape ({len(boxes)},) to match its boxes, "
                f"got {tuple(labels.shape)}."
            )
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"{where}['labels'] must hold integers, got dtype {labels.dtype}.")
        if not boxes.is_floating_point() and boxes.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{where}['boxes'] must hold numbers, got dtype {boxes.dtype}.")
        if len(boxes) == 0:
            continue
        boxes = boxes.double()
        if not bool(torch.isfinite(boxes).all()):
            raise ValueError(f"{where}['boxes'] holds NaN or infinite values.")
        degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if bool(degenerate.any()):
            j = int(torch.nonzero(degenerate)[0])
            raise ValueError(
                f"{where}['boxes'][{j}] = {boxes[j].tolist()} is degenerate: boxes are "
                "(x1, y1, x2, y2) with x2 > x1 and y2 > y1 (convert xywh boxes first)."
            )
        if images is not None:
            _, height, width = images[i].shape
            tol = _BOUNDS_TOLERANCE
            outside = (
                (boxes[:, 0] < -tol)
                | (boxes[:, 1] < -tol)
                | (boxes[:, 2] > width + tol)
                | (boxes[:, 3] > height + tol)
            )
            if bool(outside.any()):
                j = int(torch.nonzero(outside)[0])
                raise ValueError(
                    f"{where}['boxes'][{j}] = {boxes[j].tolist()} lies outside its "
                    f"{width}x{height} image: boxes are in absolute pixels, (x1, y1, x2, y2)."
                )
        if num_classes is not None and (labels.min() < 1 or labels.max() >= num_classes):
            bad = labels[(labels < 1) | (labels >= num_classes)].unique()[:10].tolist()
            raise ValueError(
                f"{where}['labels'] holds {bad}, outside 1..{num_classes - 1} "
                "(0 is the background class; num_classes counts it)."
            )
    return y if isinstance(y, np.ndarray) and y.dtype == object else as_object_array(targets)
