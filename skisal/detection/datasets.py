"""Detection datasets: a seeded synthetic one, and a loader for COCO-format annotations.

Both return what the detection estimator and modAL expect: a 1-D object array
of float32 ``(3, H, W)`` image tensors in [0, 1], and a 1-D object array of
torchvision-style target dicts (``"boxes"`` in absolute ``xyxy`` pixels,
``"labels"`` with 0 reserved for the background).
"""

from __future__ import annotations

import json
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

from skisal.detection._arrays import as_object_array

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


# ------------------------------------------------------------------------------- COCO


def _check_ids(ids: Any, name: str, known: Iterable[int]) -> list[int]:
    """A list of distinct, known integer ids."""
    if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
        raise TypeError(f"{name} must be a sequence of integer ids, got {ids!r}.")
    ids = list(ids)
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"{name} must hold integer ids, got {i!r}.")
    ids = [int(i) for i in ids]
    if not ids:
        raise ValueError(f"{name} is empty: give at least one id, or None for all.")
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{name} repeats ids {repeated[:10]}.")
    unknown = sorted(set(ids) - set(known))
    if unknown:
        raise ValueError(f"{name} holds ids {unknown[:10]} that the annotation file lacks.")
    return ids


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class _CocoFile:
    """The parsed, checked content of a COCO annotation file.

    Every problem is reported as a ValueError that names the file, the entry
    (image or annotation id, and its index) and the fix, before any image is
    read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as exc:
            raise self.error(
                f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                "fix or re-export the file",
            ) from None
        except UnicodeDecodeError as exc:
            raise self.error(f"is not UTF-8 text ({exc.reason})", "give a COCO JSON file") from None
        if not isinstance(data, dict):
            raise self.error(
                f"holds a JSON {type(data).__name__}, not an object",
                "give a COCO file: an object with 'images', 'annotations' and 'categories'",
            )
        self.images = self._list(data, "images", required=True)
        if not self.images:
            raise self.error("lists no images", "give a file whose 'images' lists some")
        self.annotations = self._list(data, "annotations", required=False)
        # Without categories every annotation would be dropped: refuse rather than
        # return images that look like background.
        self.categories = self._list(data, "categories", required=bool(self.annotations))
        self.imgs = self._index_images()
        self.cats = self._index_categories()
        self.img_to_anns: dict[int, list[dict[str, Any]]] = {i: [] for i in self.imgs}
        for k, ann in enumerate(self.annotations):
            self._check_annotation(k, ann)
            self.img_to_anns[ann["image_id"]].append(ann)

    def error(self, problem: str, fix: str) -> ValueError:
        return ValueError(f"annotation_file {str(self.path)!r} {problem}: {fix}.")

    def _list(self, data: dict[str, Any], key: str, *, required: bool) -> list[Any]:
        if key not in data:
            if required:
                what = "annotations need" if key == "categories" else "a COCO file needs"
                raise self.error(f"has no {key!r} key", f"add it ({what} a list of {key})")
            return []
        value = data[key]
        if not isinstance(value, list):
            raise self.error(
                f"has a {key!r} that is a {type(value).__name__}, not a list",
                f"give a list of {key}",
            )
        for k, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.error(
                    f"has {key}[{k}] = {item!r}, not an object", f"give each of {key} as one"
                )
        return value

    def _index_images(self) -> dict[int, dict[str, Any]]:
        imgs: dict[int, dict[str, Any]] = {}
        for k, img in enumerate(self.images):
            img_id = img.get("id")
            where = f"image images[{k}]" + (f" (id {img_id!r})" if "id" in img else "")
            if not _is_int(img_id):
                raise self.error(
                    f"has {where} without an integer 'id'", "give every image a unique integer id"
                )
            if img_id in imgs:
                raise self.error(
                    f"has the image id {img_id} twice (images[{k}] and an earlier one)",
                    "give every image a unique id",
                )
            name = img.get("file_name")
            if not isinstance(name, str) or not name or "\x00" in name:
                raise self.error(
                    f"has {where} with file_name {name!r}",
                    "give every image its file name (a path relative to image_dir)",
                )
            for key in ("height", "width"):
                if key in img and not (_is_real(img[key]) and img[key] > 0):
                    raise self.error(
                        f"has {where} with {key} {img[key]!r}",
                        f"give its {key} in pixels, or leave the key out",
                    )
            imgs[img_id] = img
        return imgs

    def _index_categories(self) -> dict[int, dict[str, Any]]:
        cats: dict[int, dict[str, Any]] = {}
        for k, cat in enumerate(self.categories):
            cat_id = cat.get("id")
            if not _is_int(cat_id):
                raise self.error(
                    f"has categories[{k}] without an integer 'id' (got {cat_id!r})",
                    "give every category a unique integer id",
                )
            if cat_id in cats:
                raise self.error(
                    f"has the category id {cat_id} twice", "give every category a unique id"
                )
            cats[cat_id] = cat
        return cats

    def _check_annotation(self, k: int, ann: dict[str, Any]) -> None:
        ann_id = ann.get("id")
        where = f"annotation annotations[{k}]" + (f" (id {ann_id!r})" if "id" in ann else "")
        if not _is_int(ann_id):
            raise self.error(
                f"has {where} without an integer 'id'",
                "give every annotation an integer id, as COCO does",
            )
        for key, known, section in (
            ("image_id", self.imgs, "images"),
            ("category_id", self.cats, "categories"),
        ):
            fix = f"one of the ids in the file's {section!r}"
            if key not in ann:
                raise self.error(f"has {where} without {key!r}", f"give its {key}, {fix}")
            if not _is_int(ann[key]) or ann[key] not in known:
                problem = (
                    "is not an integer id" if not _is_int(ann[key]) else f"is not in {section}"
                )
                raise self.error(
                    f"has {where} whose {key} {ann[key]!r} {problem}",
                    f"give {fix}, or remove the annotation",
                )
        bbox = ann.get("bbox")
        if not (
            isinstance(bbox, list | tuple) and len(bbox) == 4 and all(_is_real(v) for v in bbox)
        ):
            raise self.error(
                f"has {where} with bbox {bbox!r}",
                "give [x, y, width, height], four numbers in pixels",
            )
        if not all(math.isfinite(v) for v in bbox):
            raise self.error(
                f"has {where} with a non-finite bbox {bbox!r}",
                "give [x, y, width, height], four finite numbers",
            )
        if ann.get("iscrowd", 0) not in (0, 1):  # a string "0" would read as crowd
            raise self.error(
                f"has {where} with iscrowd {ann['iscrowd']!r}", "give 0 or 1, or leave it out"
            )

    def image_path(self, img_id: int, image_dir: Path, root: Path) -> Path:
        """The image's path, refused unless it lies under ``image_dir``."""
        name = self.imgs[img_id]["file_name"]
        path = image_dir / name
        # resolve() follows '..' and symbolic links, so neither can leave image_dir.
        if Path(name).is_absolute() or not path.resolve().is_relative_to(root):
            raise self.error(
                f"gives image id {img_id} the file_name {name!r}, which lies outside image_dir "
                f"{str(image_dir)!r}",
                "images must lie under image_dir: give file names relative to it, without "
                "'..', absolute paths or links that lead out of it (or pick another image_dir)",
            )
        return path


def _read_rgb(path: Path) -> torch.Tensor:
    """Decode an image file to a float32 (3, H, W) tensor in [0, 1]."""
    # Pillow, not torchvision.io: torchvision 0.29 deprecated its decoders, and
    # Pillow is a dependency of torchvision anyway.
    from PIL import Image

    with Image.open(path) as pil:
        if pil.mode.startswith("I;16"):
            # 16-bit greyscale: Pillow's RGB conversion would clip it to 8 bits.
            grey = np.asarray(pil).astype(np.float32) / 65535.0
            array = np.repeat(grey[None], 3, axis=0)
        else:
            rgb = np.asarray(pil.convert("RGB"))  # greyscale, palette, RGBA, CMYK...
            array = rgb.transpose(2, 0, 1).astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(array))


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
    coco = _CocoFile(annotation_file)
    root = image_dir.resolve()

    cats = (
        sorted(coco.cats)
        if category_ids is None
        else _check_ids(category_ids, "category_ids", coco.cats)
    )
    label_of = {cat: label for label, cat in enumerate(cats, start=1)}
    class_names = [str(coco.cats[cat].get("name", cat)) for cat in cats]
    file_order = list(coco.imgs)
    ids = file_order if image_ids is None else _check_ids(image_ids, "image_ids", file_order)

    images, targets = [], []
    n_degenerate, degenerate_images = 0, 0
    for img_id in ids:
        info = coco.imgs[img_id]
        path = coco.image_path(img_id, image_dir, root)
        if not path.is_file():
            raise FileNotFoundError(f"image file {str(path)!r} (image id {img_id}) does not exist.")
        image = _read_rgb(path)
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
