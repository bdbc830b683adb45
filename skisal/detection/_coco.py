"""COCO annotation files: checked before any image is read, and images decoded to tensors.

:func:`~skisal.detection.load_coco` builds its arrays from these.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Pillow, not torchvision.io: torchvision 0.29 deprecated its decoders, and Pillow is a
# dependency of torchvision anyway.
from PIL import Image

__all__ = ["CocoFile", "check_ids", "read_rgb"]


def check_ids(ids: Any, name: str, known: Iterable[int]) -> list[int]:
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
    """Whether ``value`` is an integer (a bool is not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (a bool is not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class CocoFile:
    """The parsed, checked content of a COCO annotation file.

    Every problem is reported as a ValueError that names the file, the entry
    (image or annotation id, and its index) and the fix, before any image is
    read.
    """

    def __init__(self, path: Path) -> None:
        """Read and check ``path``: its lists, then every image, category and annotation."""
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
        """A ValueError naming the file, the ``problem`` and the ``fix``."""
        return ValueError(f"annotation_file {str(self.path)!r} {problem}: {fix}.")

    def _list(self, data: dict[str, Any], key: str, *, required: bool) -> list[Any]:
        """``data[key]``, checked to be a list of objects (``[]`` if absent and optional)."""
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
        """Images by id, each checked (integer id, file name, positive sizes)."""
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
        """Categories by id, each checked (integer id, distinct)."""
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
        """Check annotation ``k``: integer ids that exist, a finite ``[x, y, w, h]`` box."""
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


def read_rgb(path: Path) -> torch.Tensor:
    """Decode an image file to a float32 (3, H, W) tensor in [0, 1]."""
    with Image.open(path) as pil:
        if pil.mode.startswith("I;16"):
            # 16-bit greyscale: Pillow's RGB conversion would clip it to 8 bits.
            grey = np.asarray(pil).astype(np.float32) / 65535.0
            array = np.repeat(grey[None], 3, axis=0)
        else:
            rgb = np.asarray(pil.convert("RGB"))  # greyscale, palette, RGBA, CMYK...
            array = rgb.transpose(2, 0, 1).astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(array))
