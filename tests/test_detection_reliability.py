"""Detection reliability (review issue 16): load_coco refuses what it cannot load faithfully,
background targets work end to end, and mAP is never reported for targets without boxes."""

from __future__ import annotations

import copy
import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from skisal import InfluenceQueryStrategy
from skisal.detection import TorchvisionDetector, as_object_array, check_targets, make_shapes
from skisal.detection.datasets import load_coco

# ----------------------------------------------------------------------------- load_coco


@pytest.fixture
def coco_dir(tmp_path):
    """image_dir = tmp_path / "data" with one 20 x 30 image; a secret image beside it."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    Image.new("RGB", (30, 20), (10, 20, 30)).save(data / "a.png")
    Image.new("RGB", (30, 20), (40, 50, 60)).save(data / "sub" / "b.png")
    Image.new("RGB", (30, 20), (255, 0, 0)).save(tmp_path / "secret.png")
    return data


def _ann(**image):
    return {
        "images": [{"id": 7, "file_name": "a.png", "width": 30, "height": 20, **image}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [2, 4, 10, 5]}],
        "categories": [{"id": 3, "name": "cat"}],
    }


def _write(coco_dir, ann, name="ann.json"):
    path = coco_dir / name
    path.write_text(ann if isinstance(ann, str) else json.dumps(ann))
    return path


def _refused(coco_dir, ann, *fragments, error=ValueError):
    path = _write(coco_dir, ann)
    with pytest.raises(error) as info:
        load_coco(path, coco_dir)
    message = str(info.value)
    assert "ann.json" in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.mark.parametrize(
    "file_name", ["../secret.png", "sub/../../secret.png", "ABSOLUTE"], ids=["dotdot", "sub", "abs"]
)
def test_load_coco_refuses_file_names_outside_image_dir(coco_dir, file_name):
    if file_name == "ABSOLUTE":
        file_name = str(coco_dir.parent / "secret.png")
    message = _refused(coco_dir, _ann(file_name=file_name), "image id 7", repr(file_name))
    assert "must lie under image_dir" in message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_load_coco_refuses_links_leading_out_of_image_dir(coco_dir):
    try:
        (coco_dir / "link.png").symlink_to(coco_dir.parent / "secret.png")
    except OSError:
        pytest.skip("cannot create symbolic links here")
    message = _refused(coco_dir, _ann(file_name="link.png"), "image id 7", "'link.png'")
    assert "must lie under image_dir" in message


def test_load_coco_reads_subfolders_and_dotdot_that_stay_inside(coco_dir):
    for name in ("sub/b.png", "sub/../a.png"):
        images, targets, _ = load_coco(_write(coco_dir, _ann(file_name=name)), coco_dir)
        expected = 40 / 255 if name == "sub/b.png" else 10 / 255
        assert images[0][0, 0, 0].item() == pytest.approx(expected)
        assert targets[0]["labels"].tolist() == [1]


def test_load_coco_refuses_annotations_without_categories(coco_dir):
    ann = _ann()
    del ann["categories"]
    _refused(coco_dir, ann, "'categories'")
    # Without annotations (an unlabelled pool), categories are not needed.
    del ann["annotations"]
    images, targets, names = load_coco(_write(coco_dir, ann), coco_dir)
    assert names == [] and targets[0]["boxes"].shape == (0, 4) and len(images) == 1


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"category_id": 4}, ["(id 1)", "category_id 4"]),
        ({"image_id": 8}, ["(id 1)", "image_id 8"]),
        ({"image_id": "7"}, ["(id 1)", "image_id '7'"]),
    ],
)
def test_load_coco_refuses_annotations_of_unknown_ids(coco_dir, change, fragments):
    ann = _ann()
    ann["annotations"][0].update(change)
    _refused(coco_dir, ann, *fragments)


def test_load_coco_still_drops_categories_left_out_by_the_user(coco_dir):
    ann = _ann()
    ann["categories"].append({"id": 5, "name": "dog"})
    ann["annotations"].append({"id": 2, "image_id": 7, "category_id": 5, "bbox": [0, 0, 3, 3]})
    _, targets, names = load_coco(_write(coco_dir, ann), coco_dir, category_ids=[5])
    assert names == ["dog"] and targets[0]["boxes"].tolist() == [[0, 0, 3, 3]]


def test_load_coco_refuses_a_repeated_image_id(coco_dir):
    ann = _ann()
    ann["images"].append({"id": 7, "file_name": "sub/b.png", "width": 30, "height": 20})
    _refused(coco_dir, ann, "image id 7 twice")


@pytest.mark.parametrize("key", ["id", "file_name"])
def test_load_coco_refuses_images_missing_a_key(coco_dir, key):
    ann = _ann()
    del ann["images"][0][key]
    _refused(coco_dir, ann, "images[0]", repr(key) if key == "id" else "file_name")


@pytest.mark.parametrize("key", ["id", "bbox", "image_id", "category_id"])
def test_load_coco_refuses_annotations_missing_a_key(coco_dir, key):
    ann = _ann()
    del ann["annotations"][0][key]
    message = _refused(coco_dir, ann, "annotations[0]")
    assert key in message


@pytest.mark.parametrize("bbox", [[2, 4, 10], "2 4 10 5", None, [2, 4, "10", 5], [2, 4, True, 5]])
def test_load_coco_refuses_malformed_bboxes(coco_dir, bbox):
    ann = _ann()
    ann["annotations"][0]["bbox"] = bbox
    _refused(coco_dir, ann, "annotations[0] (id 1)", "bbox", "[x, y, width, height]")


def test_load_coco_refuses_non_finite_bboxes_and_string_crowd_flags(coco_dir):
    ann = _ann()
    ann["annotations"][0]["bbox"] = [2, 4, float("nan"), 5]
    _refused(coco_dir, ann, "(id 1)", "non-finite")
    ann = _ann()
    ann["annotations"][0]["iscrowd"] = "0"
    _refused(coco_dir, ann, "(id 1)", "iscrowd")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"images": [', "not valid JSON (line 1"),
        ("[1, 2]", "not an object"),
        ('{"annotations": []}', "'images'"),
        ('{"images": {}}', "not a list"),
    ],
)
def test_load_coco_refuses_files_that_are_not_coco_json(coco_dir, text, fragment):
    _refused(coco_dir, text, fragment)


# ---------------------------------------------------------- background targets, score


def _background():
    return {"boxes": [], "labels": []}


def test_check_targets_accepts_background_written_as_empty_lists_and_copies():
    images = as_object_array([torch.zeros(3, 10, 10)] * 3)
    y = [
        _background(),
        {"boxes": np.zeros((0, 4), dtype=np.int32), "labels": np.array([], dtype=object)},
        {"boxes": [[1, 1, 5, 5]], "labels": np.array([2], dtype=np.uint8), "image_id": 9},
    ]
    before = copy.deepcopy(y)
    checked = check_targets(y, images, num_classes=3)
    for target in checked:
        assert target["labels"].dtype == torch.int64 and target["boxes"].dtype == torch.float32
        assert target["boxes"].ndim == 2 and target["boxes"].shape[1] == 4
    assert checked[0]["boxes"].shape == (0, 4) and checked[2]["labels"].tolist() == [2]
    assert checked[2]["image_id"] == 9
    # The user's dicts are left as they were, lists included.
    assert y[0] == before[0] and type(y[0]["boxes"]) is list
    assert y[1]["labels"].dtype == object and y[2]["labels"].dtype == np.uint8


@pytest.fixture(scope="module")
def tiny():
    X, y = make_shapes(6, image_size=(32, 40), random_state=0)
    y = list(y)
    y[1] = _background()
    y[4] = {"boxes": [], "labels": np.array([], dtype=np.float32)}
    detector = TorchvisionDetector(
        "fcos_small", num_classes=4, min_size=32, max_size=48, epochs=1, random_state=0
    )
    return X, y, detector.fit(X, y)


def test_background_targets_train_and_query_end_to_end(tiny):
    X, y, detector = tiny
    assert len(detector.history_) == 1 and np.isfinite(detector.history_[0]["loss"])
    strategy = InfluenceQueryStrategy(
        X[:2], y[:2], X_labeled=X[2:5], y_labeled=y[2:5], return_scores=True, random_state=0
    )
    idx, scores = strategy(detector, X[3:], n_instances=2)
    assert len(set(idx.tolist())) == 2 and np.isfinite(scores).all()
    assert y[1] == _background()  # untouched


def test_score_refuses_targets_without_any_box(tiny):
    X, _, detector = tiny
    with pytest.raises(ValueError, match=re.escape("y holds no ground-truth box")) as info:
        detector.score(X[:2], [_background(), _background()])
    assert "mAP is undefined" in str(info.value)
    with pytest.raises(ValueError, match="mAP is undefined"):
        detector.evaluate(X[1:2], [_background()])
