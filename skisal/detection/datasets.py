"""Detection datasets: a seeded synthetic one, and a loader for COCO-format annotations.

Both return what the detection estimator and modAL expect: a 1-D object array
of float32 ``(3, H, W)`` image tensors in [0, 1], and a 1-D object array of
torchvision-style target dicts (``"boxes"`` in absolute ``xyxy`` pixels,
``"labels"`` with 0 reserved for the background).
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._arrays import as_object_array
from ._coco import CocoFile, check_ids, read_rgb

__all__ = ["load_coco", "make_shapes"]

# Class label -> shape drawn by ``make_shapes`` (label 0 is the background).
SHAPE_NAMES = ("rectangle", "ellipse", "triangle", "hollow square", "plus", "diamond")

# Each channel of a background varies by at most this much across the image ...
_BACKGROUND_RANGE = 0.1
# ... and every object colour lies at least this far (Euclidean RGB) from every
# background colour, so objects stay visible (and separable) under mild noise.
_MIN_CONTRAST = 0.4
# Preferred (not guaranteed) colour distance between objects of one image.
_MIN_OBJECT_CONTRAST = 0.2
# A placement is rejected when it covers more than this fraction of the smaller
# of its box and an earlier box; this also bounds IoU, and keeps every object
# mostly visible when a later one is drawn over it.
_MAX_OVERLAP = 0.3
_PLACEMENT_TRIES = 20
_COLOUR_CANDIDATES = 16


# --------------------------------------------------------------------------- validation


def _check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, refused by ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_range(value: Any, name: str, minimum: int) -> tuple[int, int]:
    """A ``(lo, hi)`` pair of integers with ``minimum <= lo <= hi``."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair of integers (lo, hi), got {value!r}.") from None
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be a pair of integers (lo, hi), got {value!r}.")
    if not minimum <= lo <= hi:
        raise ValueError(f"{name} must satisfy {minimum} <= lo <= hi, got {tuple(value)!r}.")
    return int(lo), int(hi)


# ----------------------------------------------------------------------------- shapes


def _shape_mask(label: int, h: int, w: int) -> np.ndarray:
    """Boolean ``(h, w)`` mask of the shape of class ``label`` filling an h x w box."""
    yy, xx = np.ogrid[:h, :w]
    # Pixel centres, so that shapes are symmetric within their box.
    y, x = yy + 0.5, xx + 0.5
    if label == 1:  # filled rectangle
        return np.ones((h, w), dtype=bool)
    if label == 2:  # filled ellipse
        return ((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2 <= 1.0
    if label == 3:  # filled triangle, apex up
        return np.abs(x - w / 2) <= (w / 2) * (y / h)
    if label == 4:  # hollow square (a frame)
        t = max(1, min(h, w) // 5)
        return ~((yy >= t) & (yy < h - t) & (xx >= t) & (xx < w - t))
    if label == 5:  # plus
        th, tw = max(1, h // 3), max(1, w // 3)
        rows = (yy >= (h - th) // 2) & (yy < (h - th) // 2 + th)
        cols = (xx >= (w - tw) // 2) & (xx < (w - tw) // 2 + tw)
        return rows | cols
    # label 6: diamond
    return np.abs(x - w / 2) / (w / 2) + np.abs(y - h / 2) / (h / 2) <= 1.0


def _background(
    rng: np.random.RandomState, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat or gently graded background, and the segment of colours it spans."""
    delta = rng.uniform(-_BACKGROUND_RANGE, _BACKGROUND_RANGE, size=3)
    if rng.rand() < 0.5:
        delta[:] = 0.0  # flat
    # Keep both ends of the gradient inside [0, 1] so that no clipping bends it.
    base = np.clip(rng.rand(3), np.maximum(0.0, -delta), np.minimum(1.0, 1.0 - delta))
    angle = rng.uniform(0.0, 2.0 * np.pi)
    yy, xx = np.ogrid[:height, :width]
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-12)
    image = base[:, None, None] + delta[:, None, None] * ramp[None]
    return image, base, delta


def _pick_colour(
    rng: np.random.RandomState, base: np.ndarray, delta: np.ndarray, others: list[np.ndarray]
) -> np.ndarray:
    """A colour far from every background colour and, if possible, from ``others``."""
    candidates = rng.rand(_COLOUR_CANDIDATES, 3)
    # Distance to the segment [base, base + delta] of background colours.
    denom = float(delta @ delta)
    t = np.clip((candidates - base) @ delta / denom, 0.0, 1.0) if denom > 0 else 0.0
    nearest = base + np.multiply.outer(t, delta) if denom > 0 else base
    ok = np.linalg.norm(candidates - nearest, axis=-1) >= _MIN_CONTRAST
    if others:
        apart = np.linalg.norm(candidates[:, None] - np.array(others)[None], axis=-1)
        better = ok & (apart.min(axis=1) >= _MIN_OBJECT_CONTRAST)
        if better.any():
            ok = better
    if ok.any():
        return candidates[np.argmax(ok)]
    # The cube corner farthest from the background is >= sqrt(3)/2 - 0.09 away.
    corners = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=float)
    return corners[np.argmax(np.linalg.norm(corners - (base + delta / 2), axis=1))]


def _too_close(box: np.ndarray, placed: list[np.ndarray]) -> bool:
    """Whether ``box`` (y0, x0, y1, x1) overlaps any placed box by over _MAX_OVERLAP."""
    if not placed:
        return False
    others = np.array(placed)
    ih = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iw = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    other_area = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return bool(np.any(ih * iw > _MAX_OVERLAP * np.minimum(area, other_area)))


def _make_one(
    rng: np.random.RandomState,
    image_size: tuple[int, int],
    n_classes: int,
    max_objects: int,
    object_size: tuple[int, int],
    noise: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One image with 1 to ``max_objects`` shapes and its target dict."""
    height = rng.randint(image_size[0], image_size[1] + 1)
    width = rng.randint(image_size[0], image_size[1] + 1)
    image, base, delta = _background(rng, height, width)
    owner = np.zeros((height, width), dtype=np.int32)  # 1 + index of the visible object
    placed: list[np.ndarray] = []
    labels: list[int] = []
    colours: list[np.ndarray] = []
    for _ in range(rng.randint(1, max_objects + 1)):
        label = rng.randint(1, n_classes + 1)
        for _ in range(_PLACEMENT_TRIES):
            h = min(rng.randint(object_size[0], object_size[1] + 1), height)
            w = min(rng.randint(object_size[0], object_size[1] + 1), width)
            y0 = rng.randint(0, height - h + 1)
            x0 = rng.randint(0, width - w + 1)
            box = np.array([y0, x0, y0 + h, x0 + w])
            if not _too_close(box, placed):
                break
        else:
            continue  # no room left: fewer objects (the first one always fits)
        mask = _shape_mask(label, h, w)
        owner[y0 : y0 + h, x0 : x0 + w][mask] = len(placed) + 1
        placed.append(box)
        labels.append(label)
        colours.append(_pick_colour(rng, base, delta, colours))

    boxes, kept = [], []
    for k, (y0, x0, y1, x1) in enumerate(placed):
        # Boxes are computed from the pixels left visible once all objects are drawn.
        visible = owner[y0:y1, x0:x1] == k + 1
        rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
        if rows.size == 0:
            continue
        image[:, owner == k + 1] = colours[k][:, None]
        boxes.append([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1])
        kept.append(labels[k])
    if noise > 0:
        image = image + noise * rng.standard_normal(image.shape)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    target = {
        "boxes": torch.tensor(np.array(boxes, dtype=np.float32).reshape(-1, 4)),
        "labels": torch.tensor(np.array(kept, dtype=np.int64)),
    }
    return torch.from_numpy(image), target


def make_shapes(
    n_images: int,
    *,
    image_size: tuple[int, int] = (64, 128),
    n_classes: int = 3,
    max_objects: int = 4,
    object_size: tuple[int, int] = (10, 40),
    noise: float = 0.05,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded synthetic object-detection dataset of coloured shapes.

    Each image has a flat or gently graded random background, Gaussian pixel
    noise, and 1 to ``max_objects`` filled shapes whose class decides the
    shape: 1 rectangle, 2 ellipse, 3 triangle, 4 hollow square, 5 plus,
    6 diamond. Object colours contrast with the background; placements that
    overlap an earlier object much are re-drawn, and an object that finds no
    room is left out (every image keeps at least one). Meant for tests, docs
    and examples: 500 images take well under a second.

    Parameters
    ----------
    n_images : int
        Number of images, at least 1.
    image_size : (int, int), default=(64, 128)
        Inclusive range of image heights and widths, each drawn independently
        and uniformly; ``16 <= lo <= hi``.
    n_classes : int, default=3
        Number of object classes (1 to 6); labels are 1..n_classes, 0 being
        the background as in torchvision.
    max_objects : int, default=4
        Most objects per image; the count is uniform in 1..max_objects (fewer
        when the image has no room left).
    object_size : (int, int), default=(10, 40)
        Inclusive range of object heights and widths, drawn independently and
        clipped to the image; ``2 <= lo <= hi``.
    noise : float, default=0.05
        Standard deviation of the Gaussian pixel noise (before clipping to
        [0, 1]); 0 gives noise-free images.
    random_state : int, numpy.random.RandomState or None, default=None
        Source of all randomness (no global generator is touched); the same
        int gives bit-identical output.

    Returns
    -------
    images : numpy.ndarray of shape (n_images,), dtype object
        float32 tensors of shape (3, H, W) with values in [0, 1].
    targets : numpy.ndarray of shape (n_images,), dtype object
        Dicts with ``"boxes"``, a float32 tensor (k, 4) of ``x1, y1, x2, y2``
        absolute pixel coordinates (pixel ``(row, col)`` spans
        ``[col, col + 1] x [row, row + 1]``, so a box is the tight box of the
        object's visible pixels and lies in ``[0, W] x [0, H]``), and
        ``"labels"``, an int64 tensor (k,).

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> images, targets = make_shapes(4, n_classes=5, random_state=0)
    >>> images.shape, images[0].dtype, images[0].shape[0]
    ((4,), torch.float32, 3)
    >>> sorted(targets[0]), targets[0]["boxes"].shape[1]
    (['boxes', 'labels'], 4)
    """
    n_images = _check_int(n_images, "n_images", 1)
    image_size = _check_range(image_size, "image_size", 16)
    n_classes = _check_int(n_classes, "n_classes", 1)
    if n_classes > len(SHAPE_NAMES):
        raise ValueError(
            f"n_classes must be at most {len(SHAPE_NAMES)} (one shape per class: "
            f"{', '.join(SHAPE_NAMES)}), got {n_classes}."
        )
    max_objects = _check_int(max_objects, "max_objects", 1)
    object_size = _check_range(object_size, "object_size", 2)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a real number, got {noise!r}.")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}.")
    rng = check_random_state(random_state)

    pairs = [
        _make_one(rng, image_size, n_classes, max_objects, object_size, float(noise))
        for _ in range(n_images)
    ]
    return as_object_array(p[0] for p in pairs), as_object_array(p[1] for p in pairs)


def load_coco(
    annotation_file: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    *,
    category_ids: Iterable[int] | None = None,
    include_crowd: bool = False,
    image_ids: Iterable[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load a COCO-format detection dataset into memory.

    Every image is decoded and held in memory as a float32 tensor, so a large
    dataset needs a lot of RAM (a 640 x 480 image takes 3.7 MB); subset it
    with ``image_ids`` (e.g. a random sample of the ids in the file).

    Parameters
    ----------
    annotation_file : str or path-like
        The COCO annotation JSON (``images``, ``annotations``, ``categories``).
    image_dir : str or path-like
        Directory holding the images; each image is ``image_dir / file_name``,
        and must lie under it (no file outside it is read).
    category_ids : iterable of int, optional
        Categories to keep, in the order of their labels 1..K. Annotations of
        other categories are dropped. By default all, sorted by id.
    include_crowd : bool, default=False
        Keep crowd annotations (``iscrowd=1``), which COCO evaluation ignores.
    image_ids : iterable of int, optional
        Images to load, in this order. By default all, in file order.

    Returns
    -------
    images : numpy.ndarray of shape (n_images,), dtype object
        float32 tensors of shape (3, H, W) with values in [0, 1]; greyscale
        and RGBA images are converted to RGB.
    targets : numpy.ndarray of shape (n_images,), dtype object
        Dicts with ``"boxes"`` (float32 (k, 4), COCO's ``x, y, w, h``
        converted to ``x1, y1, x2, y2`` and clipped to the image),
        ``"labels"`` (int64 (k,), contiguous 1..K) and ``"image_id"`` (int64
        scalar tensor, the COCO id). Images without annotations are kept,
        with boxes of shape (0, 4).
    class_names : list of str
        ``class_names[label - 1]`` is the category name of ``label``.

    Raises
    ------
    FileNotFoundError
        If the annotation file, the image directory or an image is missing.
    TypeError
        If ``category_ids`` or ``image_ids`` are not integer ids.
    ValueError
        If ``category_ids`` or ``image_ids`` name ids the file lacks, or an
        image's decoded size differs from its annotated width/height. Also,
        naming the file and the image or annotation, if the file is not valid
        JSON; lacks ``images``, or ``categories`` while it has annotations; an
        image lacks an integer ``id`` or a ``file_name``, or repeats an id; a
        ``file_name`` leads outside ``image_dir`` (an absolute path, ``..`` or
        a link); an annotation lacks an integer ``id``, names an ``image_id``
        or ``category_id`` the file lacks, or has a ``bbox`` other than four
        finite numbers.

    Warns
    -----
    UserWarning
        Once, counting the boxes dropped for having zero width or height
        after clipping.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> from PIL import Image
    >>> coco = {
    ...     "images": [{"id": 7, "file_name": "a.png", "width": 30, "height": 20}],
    ...     "annotations": [{"id": 1, "image_id": 7, "category_id": 3,
    ...                      "bbox": [2, 4, 10, 5], "area": 50, "iscrowd": 0}],
    ...     "categories": [{"id": 3, "name": "cat"}],
    ... }
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = pathlib.Path(tmp)
    ...     Image.new("RGB", (30, 20)).save(root / "a.png")
    ...     _ = (root / "ann.json").write_text(json.dumps(coco))
    ...     images, targets, names = load_coco(root / "ann.json", root)
    >>> tuple(images[0].shape), targets[0]["boxes"], targets[0]["labels"], names
    ((3, 20, 30), tensor([[ 2.,  4., 12.,  9.]]), tensor([1]), ['cat'])
    """
    annotation_file, image_dir = Path(annotation_file), Path(image_dir)
    if not annotation_file.is_file():
        raise FileNotFoundError(f"annotation_file {str(annotation_file)!r} does not exist.")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image_dir {str(image_dir)!r} is not a directory.")
    # Read and checked here rather than by pycocotools, which fails on a missing
    # key with a bare KeyError and keeps the last of two images with one id.
    coco = CocoFile(annotation_file)
    root = image_dir.resolve()

    cats = (
        sorted(coco.cats)
        if category_ids is None
        else check_ids(category_ids, "category_ids", coco.cats)
    )
    label_of = {cat: label for label, cat in enumerate(cats, start=1)}
    class_names = [str(coco.cats[cat].get("name", cat)) for cat in cats]
    file_order = list(coco.imgs)
    ids = file_order if image_ids is None else check_ids(image_ids, "image_ids", file_order)

    images, targets = [], []
    n_degenerate, degenerate_images = 0, 0
    for img_id in ids:
        info = coco.imgs[img_id]
        path = coco.image_path(img_id, image_dir, root)
        if not path.is_file():
            raise FileNotFoundError(f"image file {str(path)!r} (image id {img_id}) does not exist.")
        image = read_rgb(path)
        height, width = int(image.shape[1]), int(image.shape[2])
        expected = (info.get("height", height), info.get("width", width))
        if (height, width) != tuple(expected):
            raise ValueError(
                f"image {info['file_name']!r} (id {img_id}) decodes to height x width "
                f"{height} x {width}, but the annotation file says {expected[0]} x {expected[1]}."
            )

        boxes, labels, dropped = [], [], 0
        for ann in coco.img_to_anns[img_id]:
            if ann["category_id"] not in label_of:
                continue  # a category left out by category_ids
            if ann.get("iscrowd", 0) and not include_crowd:
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            x1, x2 = min(max(x, 0.0), width), min(max(x + w, 0.0), width)
            y1, y2 = min(max(y, 0.0), height), min(max(y + h, 0.0), height)
            if x2 <= x1 or y2 <= y1:
                dropped += 1
                continue
            boxes.append([x1, y1, x2, y2])
            labels.append(label_of[ann["category_id"]])
        n_degenerate += dropped
        degenerate_images += dropped > 0

        images.append(image)
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor(labels, dtype=torch.int64),
                "image_id": torch.tensor(img_id, dtype=torch.int64),
            }
        )
    if n_degenerate:
        warnings.warn(
            f"load_coco dropped {n_degenerate} box(es) in {degenerate_images} image(s) "
            "with zero width or height after clipping to the image.",
            UserWarning,
            stacklevel=2,
        )
    return as_object_array(images), as_object_array(targets), class_names
