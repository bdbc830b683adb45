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


def _as_sequence(X: Any, name: str, what: str) -> list[Any]:
    """``X`` as a list of items: a sequence, a 1-D object array, or a stacked 4-D array."""
    if X is None:
        raise TypeError(f"{name} must be a sequence of {what}, got None.")
    if isinstance(X, torch.Tensor | np.ndarray) and X.dtype != object:
        if X.ndim != 4:
            raise ValueError(
                f"{name} must be a sequence of (C, H, W) images or one (N, C, H, W) array; "
                f"got an array of shape {tuple(X.shape)}."
            )
        return list(X)
    if isinstance(X, np.ndarray) and X.ndim != 1:
        # list() of a 0-d array fails, and of a 2-d one yields rows, not items.
        raise ValueError(
            f"{name} must be a 1-D object array (one item per element), got an object array "
            f"of shape {X.shape}: build it with skisal.detection.as_object_array."
        )
    if isinstance(X, str | bytes | dict | set | frozenset) or not hasattr(X, "__len__"):
        raise TypeError(
            f"{name} must be a list, tuple or 1-D object array of {what}, got {type(X).__name__}."
        )
    return list(X)


#: Floating dtypes that torchvision detectors (through ``float()``) can read.
_TORCH_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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
    images = _as_sequence(X, name, "images")
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
        if isinstance(image, torch.Tensor):
            floating = image.dtype in _TORCH_FLOATS
        else:
            # float128 and non-native byte orders are floats torch cannot read.
            floating = image.dtype.kind == "f" and image.dtype.itemsize <= 8
            floating = floating and image.dtype.isnative
        if not floating:
            raise TypeError(
                f"{name}[{i}] must hold floats in [0, 1] (float16, float32 or float64; "
                f"e.g. image.float() / 255), got dtype {image.dtype}."
            )
        finite = (
            torch.isfinite(image).all()
            if isinstance(image, torch.Tensor)
            else (np.isfinite(image).all())
        )
        if not bool(finite):
            raise ValueError(f"{name}[{i}] holds NaN or infinite values.")
    return X if isinstance(X, np.ndarray) and X.dtype == object else as_object_array(images)


def _as_tensor(value: Any, where: str, key: str) -> torch.Tensor:
    """``value`` as a tensor of numbers (user tensors as they are, arrays copied)."""
    example = "[[x1, y1, x2, y2], ...]" if key == "boxes" else "[1, 2, ...]"
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray | list | tuple):
        try:
            # An object array (e.g. of Python ints) is read element by element.
            array = np.asarray(value.tolist() if isinstance(value, np.ndarray) else value)
        except (TypeError, ValueError, RuntimeError) as exc:  # ragged, tensors needing grad
            raise TypeError(
                f"{where}[{key!r}] cannot be read as an array of numbers ({exc}): "
                f"give a tensor or a nested list of numbers, e.g. {example}."
            ) from None
        if array.size == 0:
            return torch.zeros(array.shape)  # its dtype does not matter: nothing in it
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"{where}[{key!r}] must hold numbers, got numpy dtype {array.dtype}: "
                f"give a tensor or a nested list of numbers, e.g. {example}."
            )
        if array.dtype.kind == "f" and array.dtype.itemsize > 8:
            array = array.astype(np.float64)  # float128: torch has no such dtype
        # A copy: torch warns on read-only arrays and fails on a foreign byte order.
        tensor = torch.tensor(array.astype(array.dtype.newbyteorder("=")))
    else:
        raise TypeError(
            f"{where}[{key!r}] must be a tensor, array or list, got {type(value).__name__}: "
            f"give a tensor or a nested list of numbers, e.g. {example}."
        )
    return tensor


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
        the background, as in torchvision). ``k`` may be 0: an image without
        objects may be written ``{"boxes": [], "labels": []}``. Tensors,
        arrays and (nested) lists are accepted. Other keys are kept.
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
        New dicts (``y`` and its dicts are left as they are) holding the other
        keys unchanged, ``"boxes"`` as a floating tensor ``(k, 4)`` (float32
        unless already floating) and ``"labels"`` as an int64 tensor ``(k,)``.
        Tensors may share memory with those of ``y``.

    Raises
    ------
    TypeError
        If ``y`` is not a sequence of dicts, or boxes/labels are not numbers
        (labels: not integers).
    ValueError
        If counts differ, a key is missing, a box is degenerate, not finite or
        outside its image, or a label is out of range.

    Examples
    --------
    >>> import torch
    >>> images = check_images([torch.zeros(3, 10, 10), torch.zeros(3, 8, 8)])
    >>> targets = [{"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]]), "labels": torch.tensor([1])},
    ...            {"boxes": [], "labels": []}]
    >>> checked = check_targets(targets, images, num_classes=3)
    >>> checked[1]["boxes"].shape, checked[1]["labels"].dtype
    (torch.Size([0, 4]), torch.int64)
    >>> check_targets([{"boxes": torch.zeros(0, 4)}], images[:1])
    Traceback (most recent call last):
    ...
    ValueError: y[0] has no 'labels': every target dict needs 'boxes' and 'labels'.
    """
    targets = _as_sequence_of_dicts(y, name)
    if images is not None and len(targets) != len(images):
        raise ValueError(
            f"{name} has {len(targets)} target dicts but there are {len(images)} images: "
            "give one dict per image (with empty 'boxes' for an image without objects)."
        )
    checked = []
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
        height, width = (None, None) if images is None else tuple(images[i].shape[1:])
        boxes, labels = _check_target(target, where, height, width, num_classes)
        checked.append({**target, "boxes": boxes, "labels": labels})
    return as_object_array(checked)


def _as_sequence_of_dicts(y: Any, name: str) -> list[Any]:
    """``y`` as a list: a sequence or a 1-D object array (of target dicts)."""
    what = "dicts with 'boxes' and 'labels'"
    if y is None or isinstance(y, str | bytes | dict | set | frozenset):
        raise TypeError(f"{name} must be a sequence of {what}, got {type(y).__name__}.")
    if isinstance(y, np.ndarray | torch.Tensor) and (y.ndim != 1 or y.dtype != object):
        raise TypeError(
            f"{name} must be a list or 1-D object array of {what}, got an array of dtype "
            f"{y.dtype} and shape {tuple(y.shape)}: build it with "
            "skisal.detection.as_object_array."
        )
    if not hasattr(y, "__len__"):
        raise TypeError(f"{name} must be a sequence of {what}, got {type(y).__name__}.")
    return list(y)


def _check_target(
    target: dict[str, Any],
    where: str,
    height: int | None,
    width: int | None,
    num_classes: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One target's boxes (floating, (k, 4)) and labels (int64, (k,)), checked."""
    boxes = _as_tensor(target["boxes"], where, "boxes")
    labels = _as_tensor(target["labels"], where, "labels")
    if boxes.numel() == 0:
        # An image without objects: any empty array will do (``[]`` reads as float).
        boxes = torch.zeros(0, 4, device=boxes.device)
    elif boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"{where}['boxes'] must have shape (k, 4), (x1, y1, x2, y2) per row, "
            f"got {tuple(boxes.shape)}."
        )
    if labels.numel() == 0:
        labels = torch.zeros(0, dtype=torch.int64, device=labels.device)
    if labels.ndim != 1 or len(labels) != len(boxes):
        raise ValueError(
            f"{where}['labels'] must have shape ({len(boxes)},) to match its boxes, "
            f"got {tuple(labels.shape)}."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(
            f"{where}['labels'] must hold integers, got dtype {labels.dtype}: "
            "convert them, e.g. labels.long() or numpy's labels.astype(int)."
        )
    if boxes.is_complex() or boxes.dtype == torch.bool:
        raise TypeError(f"{where}['boxes'] must hold real numbers, got dtype {boxes.dtype}.")
    if not boxes.is_floating_point():
        boxes = boxes.to(torch.float32)
    labels = labels.to(torch.int64)
    if len(boxes) == 0:
        return boxes, labels
    exact = boxes.double()
    if not bool(torch.isfinite(exact).all()):
        raise ValueError(f"{where}['boxes'] holds NaN or infinite values.")
    degenerate = (exact[:, 2] <= exact[:, 0]) | (exact[:, 3] <= exact[:, 1])
    if bool(degenerate.any()):
        j = int(torch.nonzero(degenerate)[0])
        raise ValueError(
            f"{where}['boxes'][{j}] = {exact[j].tolist()} is degenerate: boxes are "
            "(x1, y1, x2, y2) with x2 > x1 and y2 > y1 (convert xywh boxes first)."
        )
    if height is not None and width is not None:
        tol = _BOUNDS_TOLERANCE
        outside = (
            (exact[:, 0] < -tol)
            | (exact[:, 1] < -tol)
            | (exact[:, 2] > width + tol)
            | (exact[:, 3] > height + tol)
        )
        if bool(outside.any()):
            j = int(torch.nonzero(outside)[0])
            raise ValueError(
                f"{where}['boxes'][{j}] = {exact[j].tolist()} lies outside its "
                f"{width}x{height} image: boxes are in absolute pixels, (x1, y1, x2, y2)."
            )
    bad_mask = labels < 1 if num_classes is None else (labels < 1) | (labels >= num_classes)
    if bool(bad_mask.any()):
        bad = labels[bad_mask].unique()[:10].tolist()
        allowed = "1 or more" if num_classes is None else f"1..{num_classes - 1}"
        raise ValueError(
            f"{where}['labels'] holds {bad}, outside {allowed} "
            "(0 is the background class, which needs no box; num_classes counts it)."
        )
    return boxes, labels
