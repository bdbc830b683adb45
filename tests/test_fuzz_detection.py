"""Fuzz check_images / check_targets: a clear, named error or a valid result, inputs untouched."""

from __future__ import annotations

import copy

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skisal.detection import as_object_array
from skisal.detection._validation import check_images, check_targets

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IMAGE_NAME, TARGET_NAME = "X_fuzz", "y_fuzz"
NUM_CLASSES, SIZE = 4, 10  # targets are checked against SIZE x SIZE images

NUMPY_DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_]
TORCH_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64]
TORCH_DTYPES += [torch.uint8, torch.bool]
SPECIALS = [float("nan"), float("inf"), -float("inf")]


def _same(a, b) -> bool:
    """Whether ``b`` (a deep copy taken before the call) still equals ``a``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape or a.stride() != b.stride():
            return False
        if a.is_floating_point():
            return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype == object:
            return all(_same(u, v) for u, v in zip(a.ravel(), b.ravel(), strict=True))
        return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def _array(draw, shape, values, layout):
    """``values`` (a flat list) as a numpy array, tensor, strided tensor or nested list."""
    if layout == "list":
        return np.asarray(values, dtype=np.float64).reshape(shape).tolist()
    if layout == "numpy":
        dtype = draw(st.sampled_from(NUMPY_DTYPES))
        with np.errstate(invalid="ignore", over="ignore"):
            return np.asarray(values, dtype=np.float64).reshape(shape).astype(dtype)
    dtype = draw(st.sampled_from(TORCH_DTYPES))
    base = torch.tensor(values, dtype=torch.float64).reshape(shape)
    if not dtype.is_floating_point:
        base = base.nan_to_num(0.0, 0.0, 0.0)  # int casts of NaN are undefined
    tensor = base.to(dtype)
    if layout == "strided" and len(shape) >= 2:
        # Same values, non-contiguous: the last two axes swapped in memory.
        tensor = tensor.transpose(-1, -2).contiguous().transpose(-1, -2)
    return tensor


@st.composite
def images(draw):
    shape = draw(
        st.sampled_from([(3, 5, 4), (3, 5, 4), (3, 2, 7), (1, 5, 4), (3, 0, 4), (5, 4), (3,)])
    )
    n = int(np.prod(shape))
    values = draw(st.lists(st.floats(0, 1) | st.sampled_from(SPECIALS), min_size=n, max_size=n))
    layout = draw(st.sampled_from(["numpy", "tensor", "strided", "list"]))
    return _array(draw, shape, values, layout)


@st.composite
def image_collections(draw):
    items = draw(st.lists(images(), max_size=3))
    kind = draw(st.sampled_from(["list", "tuple", "object", "stacked", "odd"]))
    if kind == "tuple":
        return tuple(items)
    if kind == "object":
        return as_object_array(items)
    if kind == "stacked":
        n = draw(st.integers(0, 2))
        stacked = torch.rand(n, 3, 4, 5)
        return stacked.numpy() if draw(st.booleans()) else stacked.transpose(-1, -2)
    if kind == "odd":
        return draw(
            st.sampled_from(
                [None, "X", {"a": 1}, np.empty((), dtype=object), np.empty((2, 2), dtype=object)]
            )
        )
    return items


def _assert_named(exc: Exception, name: str) -> None:
    assert isinstance(exc, TypeError | ValueError), repr(exc)
    assert name in str(exc), str(exc)


@FUZZ
@given(image_collections())
def test_check_images_names_the_argument_or_returns_usable_images(X):
    before = copy.deepcopy(X)
    try:
        out = check_images(X, IMAGE_NAME)
    except Exception as exc:  # the kind of error is what is tested
        _assert_named(exc, IMAGE_NAME)
    else:
        assert isinstance(out, np.ndarray) and out.dtype == object and out.ndim == 1
        assert len(out) == len(X) > 0
        for image in out:
            tensor = torch.as_tensor(image).float()  # what the detector does with it
            assert tensor.shape[0] == 3 and tensor.shape[1] > 0 and tensor.shape[2] > 0
            assert bool(torch.isfinite(tensor).all())
        if isinstance(X, list | tuple):
            assert all(a is b for a, b in zip(out, X, strict=True))  # no copies
    assert _same(X, before)


def _box_values(draw, k):
    """k boxes: mostly valid inside the image, sometimes degenerate, outside or not finite."""
    boxes = []
    for _ in range(k):
        x1, y1 = draw(st.integers(0, SIZE - 2)), draw(st.integers(0, SIZE - 2))
        x2, y2 = draw(st.integers(x1 + 1, SIZE)), draw(st.integers(y1 + 1, SIZE))
        box = [float(x1), float(y1), float(x2), float(y2)]
        if draw(st.integers(0, 5)) == 0:
            box[draw(st.integers(0, 3))] = draw(st.sampled_from([*SPECIALS, -5.0, 40.0, 0.0]))
        boxes.extend(box)
    return boxes


@st.composite
def fields(draw, key, k):
    """A 'boxes' or 'labels' value for k objects, in one of many layouts."""
    odd = draw(st.integers(0, 9))
    if odd == 0:  # empty, written in every way
        return draw(
            st.sampled_from(
                [
                    [],
                    (),
                    [[]],
                    np.array([]),
                    np.zeros((0, 4), dtype=np.int32),
                    np.array([], dtype=object),
                    np.array([], dtype="<U1"),
                    torch.zeros(0),
                    torch.zeros(0, 4, dtype=torch.float16),
                    torch.zeros(0, dtype=torch.bool),
                ]
            )
        )
    if odd == 1:  # not numbers, or ragged
        return draw(
            st.sampled_from(
                [None, "1", 3, {"a": 1}, ["a", "b"], [[1, 2], [3]], [None], [torch.ones(1)]]
            )
        )
    if odd == 2:  # an object array of Python numbers
        values = list(range(1, k + 1)) if key == "labels" else _box_values(draw, k)
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(-1, 4) if key == "boxes" and k else array
    if key == "boxes":
        shape = draw(st.sampled_from([(k, 4), (k, 4), (k, 4), (4 * k,), (k, 2, 2)]))
        values = _box_values(draw, k)
    else:
        shape = draw(st.sampled_from([(k,), (k,), (k,), (k, 1), ()])) if k == 1 else (k,)
        values = [float(draw(st.integers(-1, NUM_CLASSES))) for _ in range(k)]
    layout = draw(st.sampled_from(["numpy", "tensor", "strided", "list", "tuple"]))
    if layout == "tuple":
        return tuple(np.asarray(values).reshape(shape).tolist()) if shape else values[0]
    return _array(draw, shape, values, layout)


@st.composite
def targets(draw):
    k = draw(st.integers(0, 3))
    target = {"boxes": draw(fields("boxes", k)), "labels": draw(fields("labels", k))}
    if draw(st.integers(0, 9)) == 0:
        del target[draw(st.sampled_from(["boxes", "labels"]))]
    if draw(st.booleans()):
        target["image_id"] = draw(st.integers(0, 100))
    return target


@st.composite
def target_collections(draw):
    items = draw(st.lists(targets() | st.sampled_from([None, [1, 2]]), min_size=1, max_size=3))
    kind = draw(st.sampled_from(["list", "list", "tuple", "object", "odd"]))
    if kind == "tuple":
        return tuple(items)
    if kind == "object":
        return as_object_array(items)
    if kind == "odd":
        return draw(
            st.sampled_from([None, "y", items[0], np.zeros(3), np.empty((1, 1), dtype=object)])
        )
    return items


@FUZZ
@given(target_collections(), st.sampled_from(["images", "none", "short"]))
def test_check_targets_names_the_argument_or_returns_usable_targets(y, against):
    n = len(y) if isinstance(y, list | tuple) or getattr(y, "ndim", 0) == 1 else 1
    images = None
    if against != "none":
        n_images = n if against == "images" else n + 1
        images = check_images([torch.zeros(3, SIZE, SIZE)] * n_images)
    before = copy.deepcopy(y)
    try:
        out = check_targets(y, images, TARGET_NAME, NUM_CLASSES)
    except Exception as exc:  # the kind of error is what is tested
        _assert_named(exc, TARGET_NAME)
    else:
        assert isinstance(out, np.ndarray) and out.dtype == object and out.shape == (len(y),)
        for checked, original in zip(out, y, strict=True):
            assert checked is not original and checked.keys() == original.keys()
            boxes, labels = checked["boxes"], checked["labels"]
            assert boxes.is_floating_point() and boxes.ndim == 2 and boxes.shape[1] == 4
            assert labels.dtype == torch.int64 and labels.shape == (len(boxes),)
            assert bool(((labels >= 1) & (labels < NUM_CLASSES)).all())
            exact = boxes.double()
            assert bool(torch.isfinite(exact).all())
            assert bool(((exact[:, 2] > exact[:, 0]) & (exact[:, 3] > exact[:, 1])).all())
    assert _same(y, before)
