"""make_shapes (synthetic detection data) and load_coco (COCO-format annotations)."""

from __future__ import annotations

import json
import random
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision.ops import box_iou

from skisal.detection import datasets
from skisal.detection.datasets import load_coco, make_shapes

# --------------------------------------------------------------------------- make_shapes


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(60, n_classes=6, max_objects=5, random_state=0)


def _foreground(image: torch.Tensor) -> np.ndarray:
    """Pixels of a noise-free image that are not background.

    Every background channel spans at most _BACKGROUND_RANGE and holds most
    pixels, so the per-channel median lies within sqrt(3) * range of every
    background pixel, while every object colour lies at least _MIN_CONTRAST
    from every background colour; halfway separates the two.
    """
    pixels = image.numpy().reshape(3, -1)
    median = np.median(pixels, axis=1)
    assert np.sqrt(3) * datasets._BACKGROUND_RANGE < datasets._MIN_CONTRAST / 2
    distance = np.linalg.norm(pixels - median[:, None], axis=0)
    return (distance > datasets._MIN_CONTRAST / 2).reshape(image.shape[1:])


def _bbox(mask: np.ndarray) -> list[float]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_types_shapes_and_ranges(shapes):
    images, targets = shapes
    assert images.dtype == object and images.shape == (60,)
    assert targets.dtype == object and targets.shape == (60,)
    for image, target in zip(images, targets, strict=True):
        assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
        assert image.ndim == 3 and image.shape[0] == 3
        assert 64 <= image.shape[1] <= 128 and 64 <= image.shape[2] <= 128
        assert image.min() >= 0 and image.max() <= 1
        assert set(target) == {"boxes", "labels"}
        boxes, labels = target["boxes"], target["labels"]
        assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and labels.shape == (len(boxes),)
        assert 1 <= len(boxes) <= 5
        assert labels.min() >= 1 and labels.max() <= 6


def test_boxes_valid_and_inside_image(shapes):
    for image, target in zip(*shapes, strict=True):
        height, width = image.shape[1:]
        x1, y1, x2, y2 = target["boxes"].T
        assert torch.all(x2 > x1) and torch.all(y2 > y1)
        assert torch.all(x1 >= 0) and torch.all(y1 >= 0)
        assert torch.all(x2 <= width) and torch.all(y2 <= height)
        # Pixel-edge coordinates of drawn pixels are integers, and no side exceeds object_size.
        assert torch.equal(target["boxes"], target["boxes"].round())
        assert torch.all(x2 - x1 <= 40) and torch.all(y2 - y1 <= 40)


def test_variety(shapes):
    images, targets = shapes
    assert len({tuple(im.shape) for im in images}) > 30
    assert {len(t["labels"]) for t in targets} == {1, 2, 3, 4, 5}
    assert set(torch.cat([t["labels"] for t in targets]).tolist()) == {1, 2, 3, 4, 5, 6}
    sides = torch.cat([t["boxes"][:, 2:] - t["boxes"][:, :2] for t in targets])
    assert sides.min() <= 14 and sides.max() >= 36
    backgrounds = np.array([im[:, 0, 0].numpy() for im in images])
    assert backgrounds.std(axis=0).min() > 0.1


def test_single_object_box_is_tight():
    images, targets = make_shapes(40, n_classes=6, max_objects=1, noise=0.0, random_state=3)
    for image, target in zip(images, targets, strict=True):
        assert len(target["boxes"]) == 1
        assert _bbox(_foreground(image)) == target["boxes"][0].tolist()


def test_several_objects_boxes_cover_and_touch_foreground():
    images, targets = make_shapes(30, n_classes=6, max_objects=4, noise=0.0, random_state=4)
    for image, target in zip(images, targets, strict=True):
        fg = _foreground(image)
        covered = np.zeros_like(fg)
        for x1, y1, x2, y2 in target["boxes"].int().tolist():
            covered[y1:y2, x1:x2] = True
            inside = fg[y1:y2, x1:x2]
            # Every edge of a tight box touches a drawn pixel.
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
        assert not (fg & ~covered).any()


def test_each_box_is_the_tight_box_of_its_own_colour():
    # Noise-free objects are flat-coloured, and objects of one image get distinct colours.
    images, targets = make_shapes(40, n_classes=6, max_objects=5, noise=0.0, random_state=6)
    for image, target in zip(images, targets, strict=True):
        fg = _foreground(image)
        colours, group = np.unique(image.numpy()[:, fg].T, axis=0, return_inverse=True)
        rows, cols = np.nonzero(fg)
        boxes = []
        for k in range(len(colours)):
            mask = np.zeros_like(fg)
            mask[rows[group == k], cols[group == k]] = True
            boxes.append(_bbox(mask))
        assert sorted(boxes) == sorted(target["boxes"].tolist())


def test_objects_do_not_overlap_much(shapes):
    for target in shapes[1]:
        boxes = target["boxes"]
        iou = box_iou(boxes, boxes).fill_diagonal_(0)
        assert iou.max() < 0.3


def test_class_decides_the_shape():
    images, targets = make_shapes(
        80, n_classes=6, max_objects=1, object_size=(16, 30), noise=0.0, random_state=5
    )
    fill = {label: [] for label in range(1, 7)}
    for image, target in zip(images, targets, strict=True):
        x1, y1, x2, y2 = target["boxes"][0].int().tolist()
        fill[int(target["labels"][0])].append(_foreground(image)[y1:y2, x1:x2].mean())
    assert all(fill.values())
    assert np.allclose(fill[1], 1.0)  # filled rectangle
    assert np.allclose(fill[2], np.pi / 4, atol=0.06)  # ellipse
    for label in (3, 4, 5, 6):
        assert max(fill[label]) < 0.8


def test_noise_is_added():
    clean, _ = make_shapes(3, noise=0.0, random_state=1)
    noisy, _ = make_shapes(3, noise=0.1, random_state=1)
    # Same seed draws the same scenes; only the noise differs.
    residual = noisy[0] - clean[0]
    assert 0.05 < residual.std() < 0.11
    flat_values = [len(torch.unique(im.reshape(3, -1), dim=1)) for im in clean]
    assert min(flat_values) < 300  # noise-free images hold few distinct colours


def test_same_seed_is_bit_identical_and_seeds_differ():
    a_images, a_targets = make_shapes(5, random_state=7)
    b_images, b_targets = make_shapes(5, random_state=np.random.RandomState(7))
    for a, b in zip(a_images, b_images, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(a_targets, b_targets, strict=True):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
    c_images, _ = make_shapes(5, random_state=8)
    assert not all(
        a.shape == c.shape and torch.equal(a, c) for a, c in zip(a_images, c_images, strict=True)
    )


def test_global_random_state_untouched():
    np_state = np.random.get_state()  # noqa: NPY002 (the global state is what is checked)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    make_shapes(3, random_state=0)
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"n_images": 0}, ValueError, r"n_images must be >= 1, got 0"),
        ({"n_images": 2.0}, TypeError, r"n_images must be an integer"),
        ({"n_images": True}, TypeError, r"n_images must be an integer"),
        ({"image_size": (8, 32)}, ValueError, r"image_size must satisfy 16 <= lo <= hi"),
        ({"image_size": (64, 32)}, ValueError, r"image_size must satisfy 16 <= lo <= hi"),
        ({"image_size": 64}, TypeError, r"image_size must be a pair of integers"),
        ({"image_size": (64,)}, TypeError, r"image_size must be a pair of integers"),
        ({"image_size": (16.0, 32)}, TypeError, r"image_size must be a pair of integers"),
        ({"object_size": (1, 5)}, ValueError, r"object_size must satisfy 2 <= lo <= hi"),
        ({"object_size": (6, 5)}, ValueError, r"object_size must satisfy 2 <= lo <= hi"),
        ({"n_classes": 0}, ValueError, r"n_classes must be >= 1"),
        ({"n_classes": 7}, ValueError, r"n_classes must be at most 6 .*diamond"),
        ({"n_classes": "3"}, TypeError, r"n_classes must be an integer"),
        ({"max_objects": 0}, ValueError, r"max_objects must be >= 1"),
        ({"noise": -0.1}, ValueError, r"noise must be a finite number >= 0"),
        ({"noise": float("nan")}, ValueError, r"noise must be a finite number >= 0"),
        ({"noise": float("inf")}, ValueError, r"noise must be a finite number >= 0"),
        ({"noise": "0.1"}, TypeError, r"noise must be a real number"),
        ({"random_state": "seed"}, ValueError, r"seed"),
    ],
)
def test_make_shapes_validation(kwargs, error, pattern):
    kwargs = {"n_images": 2, **kwargs}
    with pytest.raises(error, match=pattern):
        make_shapes(**kwargs)


@settings(max_examples=25, deadline=None)
@given(
    n_images=st.integers(1, 3),
    size_lo=st.integers(16, 40),
    size_extra=st.integers(0, 24),
    object_lo=st.integers(2, 30),
    object_extra=st.integers(0, 40),
    n_classes=st.integers(1, 6),
    max_objects=st.integers(1, 6),
    noise=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**31 - 1),
)
def test_boxes_valid_for_random_arguments(
    n_images, size_lo, size_extra, object_lo, object_extra, n_classes, max_objects, noise, seed
):
    image_size = (size_lo, size_lo + size_extra)
    object_size = (object_lo, object_lo + object_extra)
    images, targets = make_shapes(
        n_images,
        image_size=image_size,
        n_classes=n_classes,
        max_objects=max_objects,
        object_size=object_size,
        noise=noise,
        random_state=seed,
    )
    assert len(images) == len(targets) == n_images
    for image, target in zip(images, targets, strict=True):
        _, height, width = image.shape
        assert image_size[0] <= height <= image_size[1]
        assert image_size[0] <= width <= image_size[1]
        assert 0 <= image.min() and image.max() <= 1
        boxes, labels = target["boxes"], target["labels"]
        assert 1 <= len(boxes) <= max_objects and labels.shape == (len(boxes),)
        assert torch.all((labels >= 1) & (labels <= n_classes))
        x1, y1, x2, y2 = boxes.T
        assert torch.all((0 <= x1) & (x1 < x2) & (x2 <= width))
        assert torch.all((0 <= y1) & (y1 < y2) & (y2 <= height))
        assert torch.all(x2 - x1 <= object_size[1]) and torch.all(y2 - y1 <= object_size[1])


# ----------------------------------------------------------------------------- load_coco


def _rgba(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, size=(height, width, 4), dtype=np.uint8)


@pytest.fixture
def coco(tmp_path):
    """Three images (RGBA PNG, greyscale PNG, JPEG without annotations), two categories."""
    rgba = _rgba(30, 40, 0)
    grey = np.random.RandomState(1).randint(0, 256, size=(25, 20), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "empty.jpg")
    ann = {
        "images": [
            {"id": 30, "file_name": "rgba.png", "width": 40, "height": 30},
            {"id": 10, "file_name": "grey.png", "width": 20, "height": 25},
            {"id": 20, "file_name": "empty.jpg", "width": 16, "height": 16},
        ],
        "categories": [{"id": 5, "name": "dog"}, {"id": 2, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 30, "category_id": 5, "bbox": [1.5, 2, 10, 7.25], "iscrowd": 0},
            {"id": 2, "image_id": 30, "category_id": 2, "bbox": [30, 20, 15, 20], "iscrowd": 0},
            {"id": 3, "image_id": 30, "category_id": 2, "bbox": [0, 0, 5, 5], "iscrowd": 1},
            {"id": 4, "image_id": 10, "category_id": 5, "bbox": [3, 4, 0, 6], "iscrowd": 0},
            {"id": 5, "image_id": 10, "category_id": 2, "bbox": [-2, -3, 6, 8], "iscrowd": 0},
            {"id": 6, "image_id": 10, "category_id": 5, "bbox": [25, 5, 4, 4], "iscrowd": 0},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(ann))
    return {"file": path, "dir": tmp_path, "ann": ann, "rgba": rgba, "grey": grey}


def _load(coco, **kwargs):
    with pytest.warns(UserWarning, match=r"dropped 2 box\(es\) in 1 image\(s\) with zero width"):
        return load_coco(coco["file"], coco["dir"], **kwargs)


def test_load_coco_images(coco, capsys):
    images, _, _ = _load(coco)
    assert capsys.readouterr().out == ""  # pycocotools' progress prints are silenced
    assert images.dtype == object and images.shape == (3,)
    assert [tuple(im.shape) for im in images] == [(3, 30, 40), (3, 25, 20), (3, 16, 16)]
    assert all(im.dtype == torch.float32 for im in images)
    # RGBA loses its alpha channel, greyscale is repeated over three channels.
    expected_rgb = torch.from_numpy(coco["rgba"][..., :3].transpose(2, 0, 1) / 255.0).float()
    assert torch.equal(images[0], expected_rgb)
    expected_grey = torch.from_numpy(coco["grey"] / 255.0).float().expand(3, -1, -1)
    assert torch.equal(images[1], expected_grey)
    assert 0 <= images[2].min() and images[2].max() <= 1


def test_load_coco_targets(coco):
    _, targets, class_names = _load(coco)
    assert class_names == ["cat", "dog"]  # sorted by category id: cat (2), dog (5)
    assert targets.dtype == object and targets.shape == (3,)
    assert [int(t["image_id"]) for t in targets] == [30, 10, 20]
    assert all(t["image_id"].dtype == torch.int64 and t["image_id"].ndim == 0 for t in targets)
    first, second, empty = targets
    # xywh -> xyxy, the second box clipped to the 40 x 30 image; the crowd box dropped.
    assert torch.equal(first["boxes"], torch.tensor([[1.5, 2, 11.5, 9.25], [30, 20, 40, 30]]))
    assert torch.equal(first["labels"], torch.tensor([2, 1]))
    # Zero-width and fully outside boxes dropped; the partly outside one clipped.
    assert torch.equal(second["boxes"], torch.tensor([[0.0, 0, 4, 5]]))
    assert torch.equal(second["labels"], torch.tensor([1]))
    assert empty["boxes"].shape == (0, 4) and empty["boxes"].dtype == torch.float32
    assert empty["labels"].shape == (0,) and empty["labels"].dtype == torch.int64


def test_load_coco_include_crowd(coco):
    _, targets, _ = _load(coco, include_crowd=True)
    assert torch.equal(targets[0]["boxes"][2], torch.tensor([0.0, 0, 5, 5]))
    assert targets[0]["labels"].tolist() == [2, 1, 1]


def test_load_coco_category_ids(coco):
    _, targets, class_names = _load(coco, category_ids=[5])
    assert class_names == ["dog"]
    assert targets[0]["labels"].tolist() == [1]
    assert torch.equal(targets[0]["boxes"], torch.tensor([[1.5, 2, 11.5, 9.25]]))
    assert targets[1]["boxes"].shape == (0, 4)  # its cat box is filtered out

    _, targets, class_names = _load(coco, category_ids=[5, 2])
    assert class_names == ["dog", "cat"]
    assert targets[0]["labels"].tolist() == [1, 2]


def test_load_coco_image_ids_order(coco):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # grey.png, with the degenerate boxes, is not loaded
        images, targets, _ = load_coco(coco["file"], coco["dir"], image_ids=[20, 30])
    assert [int(t["image_id"]) for t in targets] == [20, 30]
    assert [tuple(im.shape) for im in images] == [(3, 16, 16), (3, 30, 40)]
    assert targets[1]["labels"].tolist() == [2, 1]


def test_load_coco_16_bit_greyscale(tmp_path):
    grey = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16).repeat(8, 0).repeat(8, 1)
    Image.fromarray(grey).save(tmp_path / "deep.png")
    ann = {"images": [{"id": 1, "file_name": "deep.png", "width": 16, "height": 16}],
           "annotations": [], "categories": [{"id": 1, "name": "thing"}]}  # fmt: skip
    (tmp_path / "a.json").write_text(json.dumps(ann))
    images, targets, names = load_coco(tmp_path / "a.json", tmp_path)
    assert torch.equal(images[0], torch.from_numpy(grey / 65535.0).float().expand(3, -1, -1))
    assert names == ["thing"] and targets[0]["boxes"].shape == (0, 4)


def test_load_coco_missing_files(coco, tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match=r"annotation_file .*nope\.json"):
        load_coco(missing, coco["dir"])
    with pytest.raises(FileNotFoundError, match=r"image_dir .*no_dir"):
        load_coco(coco["file"], tmp_path / "no_dir")
    (tmp_path / "grey.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"grey\.png.*image id 10"):
        load_coco(coco["file"], coco["dir"])


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (
            {"category_ids": [2, 3]},
            ValueError,
            r"category_ids holds ids \[3\] that the annotation file lacks",
        ),
        ({"category_ids": []}, ValueError, r"category_ids is empty"),
        ({"category_ids": [2, 2]}, ValueError, r"category_ids repeats ids \[2\]"),
        ({"category_ids": 2}, TypeError, r"category_ids must be a sequence of integer ids"),
        ({"category_ids": ["2"]}, TypeError, r"category_ids must hold integer ids"),
        (
            {"image_ids": [30, 99]},
            ValueError,
            r"image_ids holds ids \[99\] that the annotation file lacks",
        ),
    ],
)
def test_load_coco_bad_ids(coco, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        load_coco(coco["file"], coco["dir"], **kwargs)


def test_load_coco_size_mismatch(coco):
    coco["ann"]["images"][0]["width"] = 41
    coco["file"].write_text(json.dumps(coco["ann"]))
    with pytest.raises(
        ValueError, match=r"image 'rgba\.png' \(id 30\) decodes to .* 30 x 40.* 30 x 41"
    ):
        load_coco(coco["file"], coco["dir"])
