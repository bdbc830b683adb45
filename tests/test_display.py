"""``InfluenceDisplay``: what it draws, where, and the errors it gives for bad arguments."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
pd = pytest.importorskip("pandas")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from skisal import InfluenceQueryStrategy  # noqa: E402
from skisal.display import InfluenceDisplay  # noqa: E402

XLABEL = "influence I(z, R) (lower = more helpful)"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def explanation(n=40, picks=(7, 3, 12, 30), seed=0):
    """A frame with the schema of ``strategy.explain()``; ``picks`` in selection order."""
    rng = np.random.RandomState(seed)
    influence = rng.standard_t(3, n)
    picks = list(picks)
    selected = np.zeros(n, dtype=bool)
    selected[picks] = True
    order = pd.array([pd.NA] * n, dtype="Int64")
    order[picks] = np.arange(1, len(picks) + 1)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(influence, kind="stable")] = np.arange(1, n + 1)
    labels = np.array([f"class{i % 3}" for i in range(n)], dtype=object)
    frame = pd.DataFrame(
        {
            "influence": influence,
            "rank": rank,
            "selected": selected,
            "selection_order": order,
            "pseudo_label": labels,
            "confidence": np.linspace(0.3, 0.99, n),
            "margin": np.linspace(0.0, 0.9, n),
            "cost": np.ones(n),
            "reason": [f"pick {k}" if s else None for k, s in enumerate(selected)],
            "distance": np.nan,
        }
    )
    frame.index.name = "pool_index"
    return frame


# -- the histogram ---------------------------------------------------------------------------
def test_plot_sets_the_display_attributes_and_returns_itself():
    display = InfluenceDisplay(np.arange(10.0), selected=[0, 1])
    assert display.plot() is display
    assert display.ax_.get_xlabel() == XLABEL
    assert display.ax_.get_ylabel().startswith("pool samples")
    assert display.figure_ is display.ax_.figure
    heights = [bar.get_height() for bar in display.histogram_]
    assert sum(heights) == 10  # the whole pool is in the histogram
    assert sum(bar.get_height() for bar in display.selected_histogram_) == 2


def test_plot_draws_into_the_given_axes():
    figure = Figure()
    ax = figure.subplots()
    display = InfluenceDisplay(np.arange(10.0), selected=[3]).plot(ax=ax)
    assert display.ax_ is ax
    assert display.figure_ is figure
    assert len(ax.patches) > 0 and ax.get_xlabel() == XLABEL


def test_marked_points_are_exactly_the_selected_rows_in_selection_order():
    frame = explanation(picks=(7, 3, 12, 30))
    display = InfluenceDisplay.from_explanation(frame, ax=Figure().subplots())
    expected = frame["influence"].to_numpy()[[7, 3, 12, 30]]
    np.testing.assert_array_equal(display.selected, [7, 3, 12, 30])
    np.testing.assert_array_equal(display.selected_markers_.get_xdata(), expected)
    # the shaded band spans exactly the selected influences
    band = display.selected_range_
    if hasattr(band, "get_width"):  # a Rectangle (matplotlib >= 3.9)
        x_band = np.array([band.get_x(), band.get_x() + band.get_width()])
    else:  # a Polygon
        x_band = np.asarray(band.get_xy())[:, 0]
    assert x_band.min() == pytest.approx(expected.min())
    assert x_band.max() == pytest.approx(expected.max())
    assert sum(bar.get_height() for bar in display.selected_histogram_) == 4


def test_annotations_carry_the_pseudo_labels_of_the_first_picks():
    frame = explanation(picks=(7, 3, 12, 30))
    display = InfluenceDisplay.from_explanation(frame, n_annotate=3, ax=Figure().subplots())
    assert len(display.annotations_) == 3
    np.testing.assert_array_equal(display.annotated_, [7, 3, 12])
    for text, index in zip(display.annotations_, [7, 3, 12], strict=True):
        label, confidence = frame.pseudo_label[index], frame.confidence[index]
        assert text.get_text() == f"sample {index}: pseudo-label {label} (p={confidence:.2f})"
    # each annotated sample is numbered at its influence, first pick 1
    numbers = display.annotation_numbers_
    assert [n.get_text() for n in numbers] == ["1", "2", "3"]
    assert [n.xy[0] for n in numbers] == list(frame.influence[[7, 3, 12]])
    # and the numbers stay inside the axes: the top is above every numbered bar
    assert display.ax_.get_ylim()[1] > max(n.xy[1] for n in numbers)


def test_n_annotate_caps_at_the_selection_and_zero_annotates_nothing():
    frame = explanation(picks=(5, 6))
    display = InfluenceDisplay.from_explanation(frame, n_annotate=10, ax=Figure().subplots())
    assert len(display.annotations_) == 2
    display.plot(ax=Figure().subplots(), n_annotate=0)
    assert display.annotations_ == [] and display.annotation_numbers_ == []


def test_without_a_selection_the_most_helpful_are_annotated_by_rank():
    frame = explanation(picks=())
    display = InfluenceDisplay.from_explanation(frame, n_annotate=3, ax=Figure().subplots())
    assert display.selected.size == 0 and display.selected_markers_ is None
    best = np.argsort(frame.influence.to_numpy(), kind="stable")[:3]
    np.testing.assert_array_equal(display.annotated_, best)
    assert "none selected" in display.ax_.get_title()


def test_a_sample_without_prediction_says_so():
    influence = np.array([-2.0, -1.0, 0.0, 1.0])
    display = InfluenceDisplay(
        influence,
        selected=[0, 1],
        pseudo_label=np.array(["cat", None, "dog", "dog"], dtype=object),
        confidence=[0.9, np.nan, 0.5, 0.5],
    )
    display.plot(ax=Figure().subplots())
    texts = [t.get_text() for t in display.annotations_]
    assert texts == ["sample 0: pseudo-label cat (p=0.90)", "sample 1: no prediction"]


def test_log_scale_for_heavy_tails_linear_for_a_flat_pool():
    heavy = np.concatenate([np.zeros(500), [-30.0, -25.0, 20.0]])
    display = InfluenceDisplay(heavy, selected=[500, 501]).plot(ax=Figure().subplots())
    assert display.ax_.get_yscale() == "log"
    flat = InfluenceDisplay(np.linspace(-1, 1, 50), selected=[0, 1]).plot(ax=Figure().subplots())
    assert flat.ax_.get_yscale() == "linear"
    forced = InfluenceDisplay(heavy, selected=[500]).plot(ax=Figure().subplots(), log=False)
    assert forced.ax_.get_yscale() == "linear"


def test_inputs_are_not_modified():
    frame = explanation()
    before = frame.copy()
    influence = frame.influence.to_numpy().copy()
    display = InfluenceDisplay.from_explanation(frame, ax=Figure().subplots())
    pd.testing.assert_frame_equal(frame, before)
    display.influence[:] = 0.0  # the display holds its own copy
    np.testing.assert_array_equal(frame.influence.to_numpy(), influence)


# -- the image grid ---------------------------------------------------------------------------
def test_image_grid_has_one_axes_per_selected_image_titled_with_its_pseudo_label():
    frame = explanation(picks=(7, 3, 12, 30))
    X_pool = np.random.RandomState(0).rand(40, 64)  # digits-like: 64 values, 8x8
    display = InfluenceDisplay.from_explanation(frame, ax=Figure().subplots())
    display.plot_images(X_pool=X_pool, n_images=3)
    assert len(display.image_axes_) == 3
    for axis, index in zip(display.image_axes_, [7, 3, 12], strict=True):
        title = axis.get_title()
        assert f"sample {index}" in title and f"pseudo-label {frame.pseudo_label[index]}" in title
        (image,) = axis.get_images()
        np.testing.assert_array_equal(image.get_array(), X_pool[index].reshape(8, 8))
    display.plot_images(X_pool=X_pool, n_images=10)  # at most the selection
    assert len(display.image_axes_) == 4


def test_images_from_tensors_channels_first():
    display = InfluenceDisplay(np.arange(6.0), selected=[2, 0])
    grey = torch.rand(6, 1, 8, 8)
    display.plot_images(X_pool=grey)
    assert display.image_axes_[0].get_images()[0].get_array().shape == (8, 8)
    colour = torch.randn(6, 3, 5, 7) * 4  # outside [0, 1]: rescaled for imshow
    display.plot_images(X_pool=colour, figure=Figure())
    array = np.asarray(display.image_axes_[1].get_images()[0].get_array())
    assert array.shape == (5, 7, 3) and array.min() >= 0.0 and array.max() <= 1.0


def test_from_explanation_with_the_pool_draws_one_figure_with_both():
    frame = explanation(picks=(7, 3, 12, 30))
    display = InfluenceDisplay.from_explanation(frame, X_pool=np.zeros((40, 64)), n_images=2)
    assert len(display.image_axes_) == 2
    root = display.image_axes_[0].figure.figure
    assert display.figure_ is root and display.ax_.figure.figure is root


def test_plot_images_into_given_axes_hides_the_spare_ones():
    display = InfluenceDisplay(np.arange(5.0), selected=[4, 1], X_pool=np.zeros((5, 16)))
    axes = Figure().subplots(1, 3)
    display.plot_images(axes=axes)
    assert list(display.image_axes_) == list(axes[:2])
    assert not axes[2].get_visible()
    with pytest.raises(ValueError, match="axes holds 1 axes but 2 images"):
        display.plot_images(axes=axes[:1])


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"influence": [[1.0, 2.0]]}, ValueError, "influence must be a non-empty 1-D array"),
        ({"influence": [1.0, np.nan]}, ValueError, "influence must be finite"),
        ({"selected": [0, 9]}, ValueError, "selected holds indices outside the pool of 3"),
        ({"selected": [1, 1]}, ValueError, "selected holds a pool index twice"),
        ({"selected": [True, False, True]}, TypeError, "not a boolean mask"),
        ({"selected": [0.5]}, ValueError, "selected must be a 1-D array of int"),
        ({"pseudo_label": [1, 2]}, ValueError, r"pseudo_label must have one value .* \(3,\)"),
        ({"confidence": [0.1]}, ValueError, "confidence must have one value per pool sample"),
        ({"X_pool": np.zeros((5, 4))}, ValueError, "X_pool has 5 samples but the influences"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, error, match):
    arguments = {"influence": [0.0, 1.0, 2.0], **kwargs}
    with pytest.raises(error, match=match):
        InfluenceDisplay(arguments.pop("influence"), **arguments)


def test_plot_errors_name_the_argument():
    display = InfluenceDisplay([0.0, 1.0, 2.0], selected=[0])
    with pytest.raises(ValueError, match="n_annotate must be an int >= 0"):
        display.plot(n_annotate=-1)
    with pytest.raises(ValueError, match="log must be True, False or 'auto'"):
        display.plot(log="yes")
    with pytest.raises(ValueError, match="plot_images needs the pool: pass X_pool"):
        display.plot_images()
    with pytest.raises(ValueError, match="X_pool has 2 samples but the influences cover 3"):
        display.plot_images(X_pool=np.zeros((2, 64)))
    with pytest.raises(ValueError, match="n_images must be an int >= 0"):
        display.plot_images(X_pool=np.zeros((3, 64)), n_images=1.5)


def test_images_that_are_not_square_need_image_shape():
    display = InfluenceDisplay([0.0, 1.0, 2.0], selected=[0], X_pool=np.zeros((3, 60)))
    with pytest.raises(ValueError, match=r"60 values cannot be shown as a square.*image_shape"):
        display.plot_images()
    display.plot_images(image_shape=(6, 10))
    assert display.image_axes_[0].get_images()[0].get_array().shape == (6, 10)
    with pytest.raises(ValueError, match=r"image_shape=\(8, 8\) holds 64 values but each"):
        display.plot_images(image_shape=(8, 8))
    odd = InfluenceDisplay([0.0, 1.0], selected=[0], X_pool=np.zeros((2, 2, 5, 7)))
    with pytest.raises(ValueError, match=r"shape \(2, 5, 7\) cannot be shown as a 2-D image"):
        odd.plot_images()


def test_from_explanation_and_from_strategy_say_what_they_need():
    with pytest.raises(ValueError, match=r"strategy.explain\(\); it lacks .*'selected'"):
        InfluenceDisplay.from_explanation(pd.DataFrame({"influence": [1.0]}))
    with pytest.raises(TypeError, match=r"strategy must have an explain\(\) method"):
        InfluenceDisplay.from_strategy(object())
    with pytest.raises(NotFittedError, match="explain"):
        InfluenceDisplay.from_strategy(InfluenceQueryStrategy())


def test_missing_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails
    with pytest.raises(ImportError, match="pip install matplotlib"):
        InfluenceDisplay([0.0, 1.0], selected=[0]).plot()


# -- a real strategy ----------------------------------------------------------------------------
def test_from_strategy_after_a_real_query_on_digits(digits, fitted_net):
    strategy = InfluenceQueryStrategy(
        digits["X_reference"], digits["y_reference"], random_state=0, return_scores=False
    )
    X_pool = digits["X_pool"]
    idx = strategy(
        fitted_net,
        X_pool,
        n_instances=6,
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
    )
    table = strategy.explain()
    display = InfluenceDisplay.from_strategy(strategy, X_pool=X_pool, n_annotate=4, n_images=5)
    np.testing.assert_array_equal(display.selected, idx)
    np.testing.assert_array_equal(display.selected_markers_.get_xdata(), strategy.scores_[idx])
    for text, index in zip(display.annotations_, idx[:4], strict=True):
        assert f"sample {index}: pseudo-label {table.pseudo_label[index]} (p=" in text.get_text()
    assert len(display.image_axes_) == 5
    for axis, index in zip(display.image_axes_, idx, strict=False):
        assert f"pseudo-label {table.pseudo_label[index]}" in axis.get_title()
        assert axis.get_images()[0].get_array().shape == (8, 8)


def test_from_strategy_after_influence_marks_nothing(digits, fitted_net):
    strategy = InfluenceQueryStrategy(digits["X_reference"], digits["y_reference"], random_state=0)
    scores = strategy.influence(
        fitted_net, digits["X_pool"], X_labeled=digits["X_labeled"], y_labeled=digits["y_labeled"]
    )
    display = InfluenceDisplay.from_strategy(strategy, ax=Figure().subplots(), n_annotate=2)
    assert display.selected_markers_ is None
    np.testing.assert_array_equal(display.annotated_, np.argsort(scores, kind="stable")[:2])
