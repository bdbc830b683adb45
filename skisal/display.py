"""``InfluenceDisplay``: the last query's influences, with the selected samples marked.

A scikit-learn style Display (``from_strategy``/``from_explanation`` classmethods,
``plot`` returning the display, the drawing in ``ax_`` and ``figure_``). matplotlib is
optional (the ``examples`` extra) and imported only when something is drawn.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

import numpy as np

from ._validation import n_rows, take_rows

__all__ = ["InfluenceDisplay"]

_POOL_COLOR = "#9aa5b1"  # the whole pool: a quiet grey-blue
_SELECTED_COLOR = "#d95f02"  # the selected samples: orange, readable on grey and in print
_XLABEL = "influence I(z, R) (lower = more helpful)"
_YLABEL = "pool samples"


def _pyplot(what: str) -> Any:
    """matplotlib.pyplot, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised by a test that hides matplotlib
        raise ImportError(
            f"{what} needs matplotlib, which is not installed: pip install matplotlib "
            "(or pip install 'skisal[examples]')."
        ) from exc
    return plt


def _root_figure(artist: Any) -> Any:
    """The top-level Figure of an Axes or SubFigure (``Figure.figure`` is itself)."""
    figure = artist.figure
    return getattr(figure, "figure", figure)


def _check_count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")
    return int(value)


def _format_influence(value: float) -> str:
    """Whole numbers from 1,000 to 1e9 (-17,412, not -1.74e+04), else 3 significant digits."""
    return f"{value:,.0f}" if 1e3 <= abs(value) < 1e9 else f"{value:.3g}"


def _as_image(row: Any, image_shape: tuple[int, ...] | None) -> np.ndarray:
    """One pool sample as an array ``imshow`` accepts: (H, W) or (H, W, 3 or 4)."""
    if hasattr(row, "detach"):  # a torch tensor
        row = row.detach().cpu().numpy()
    if hasattr(row, "to_numpy"):  # a pandas row
        row = row.to_numpy()
    arr = np.asarray(row)
    example = "image_shape=(8, 8) for rows of 64 values, or (3, 32, 32) for a colour image"
    if image_shape is not None:
        if arr.size != math.prod(image_shape):
            raise ValueError(
                f"image_shape={tuple(image_shape)} holds {math.prod(image_shape)} values but "
                f"each X_pool sample has {arr.size} (shape {arr.shape}); pass the shape of one "
                f"image, e.g. {example}."
            )
        arr = arr.reshape(image_shape)
    if arr.ndim == 1:
        side = math.isqrt(arr.size)
        if side < 2 or side * side != arr.size:
            raise ValueError(
                f"X_pool samples of {arr.size} values cannot be shown as a square 2-D image; "
                f"pass image_shape, e.g. {example}."
            )
        arr = arr.reshape(side, side)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channels first (torch) to channels last
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 and not (arr.ndim == 3 and arr.shape[-1] in (3, 4)):
        raise ValueError(
            f"X_pool samples of shape {arr.shape} cannot be shown as a 2-D image (grey, or "
            f"with 1, 3 or 4 channels first or last); pass image_shape, e.g. {example}."
        )
    if arr.ndim == 3:  # colour: imshow wants floats in [0, 1] or integers in [0, 255]
        arr = arr.astype(np.float64)
        low, high = float(arr.min()), float(arr.max())
        if low < 0.0 or high > 1.0:
            arr = (arr - low) / (high - low) if high > low else np.zeros_like(arr)
    return arr


class InfluenceDisplay:
    """The influences of a query's pool, with the selected samples marked.

    A histogram of ``I(z, R)`` over the pool (lower = more helpful); the
    selected samples are drawn on top in a contrasting colour, as a rug of
    ticks at their exact influences and a shaded band over their range, and
    the first ``n_annotate`` picks are numbered over their bars, with a key
    beside the axes giving each one's pseudo-label and the model's confidence
    in it. For image pools, :meth:`plot_images` shows the selected images
    with their influence and pseudo-label.

    Build it with :meth:`from_strategy` (after a query) or
    :meth:`from_explanation` (from ``strategy.explain()``'s frame); the
    constructor takes the arrays themselves, e.g. ``strategy.scores_`` and
    the query's returned indices. All attributes are set by ``plot``.

    Parameters
    ----------
    influence : array-like of shape (n_pool,)
        ``I(z, R)`` of every pool sample, in pool order (finite).
    selected : array-like of int, optional
        Pool indices of the selected samples, first pick first (a query's
        returned indices). None or empty: nothing was selected (after
        ``strategy.influence()``); the most helpful samples are annotated
        and shown instead.
    pseudo_label : array-like of shape (n_pool,), optional
        The model's predicted label of each pool sample (None for a
        detector's image without a prediction).
    confidence : array-like of shape (n_pool,), optional
        The model's probability of ``pseudo_label`` (NaN where unknown).
    X_pool : array-like, torch.Tensor or sequence, optional
        The pool itself, for :meth:`plot_images`: one sample per row, in the
        order of ``influence``.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The axes of the histogram.
    figure_ : matplotlib Figure
        The figure that holds ``ax_``.
    histogram_ : BarContainer
        The bars of the whole pool.
    selected_histogram_ : BarContainer or None
        The bars of the selected samples (drawn over the pool's).
    selected_markers_ : matplotlib Line2D or None
        The rug of the selected samples: x data ``influence[selected]``.
    selected_range_ : matplotlib Patch or None
        The shaded band from the lowest to the highest selected influence.
    annotated_ : ndarray of int
        Pool indices of the annotated samples, first pick first.
    annotations_ : list of matplotlib Text
        The key's entry of each annotated sample, e.g. ``"sample 17:
        pseudo-label 0 (p=0.56)"``.
    annotation_numbers_ : list of matplotlib Annotation
        The number over each annotated sample's bar (``xy``: its influence).
    image_axes_ : ndarray of matplotlib Axes
        Set by :meth:`plot_images`: one axes per shown image, first pick first.
    image_figure_ : matplotlib Figure or SubFigure
        Set by :meth:`plot_images`: where the images are.

    See Also
    --------
    InfluenceQueryStrategy.explain : The per-sample table this display draws.

    Examples
    --------
    After a query (here on a fitted net, without modAL), draw it on your own
    axes; ``display.figure_`` can then be saved:

    >>> from matplotlib.figure import Figure
    >>> from skisal import InfluenceDisplay, InfluenceQueryStrategy
    >>> strategy = InfluenceQueryStrategy(X_reference, y_reference, random_state=0,
    ...                                   return_scores=False)
    >>> idx = strategy(net, X_pool, n_instances=3, X_labeled=X_labeled, y_labeled=y_labeled)
    >>> display = InfluenceDisplay.from_strategy(strategy, ax=Figure().subplots(), n_annotate=2)
    >>> display.ax_.get_xlabel()
    'influence I(z, R) (lower = more helpful)'
    >>> bool(np.all(display.selected_markers_.get_xdata() == strategy.scores_[idx]))
    True
    >>> [text.get_text() for text in display.annotations_]
    ['sample 17: pseudo-label 0 (p=0.56)', 'sample 7: pseudo-label 1 (p=0.84)']

    For an image pool, the picked images too (the set-up's samples have 4
    features: shown as 2x2 images), in a grid of their own:

    >>> _ = display.plot_images(X_pool=X_pool, image_shape=(2, 2), figure=Figure())
    >>> len(display.image_axes_), display.image_axes_[0].get_title().splitlines()
    (3, ['pick 1: sample 17', 'I = -1.36', 'pseudo-label 0 (p=0.56)'])

    ``from_strategy(strategy, X_pool=X_pool)`` draws both in one figure;
    ``InfluenceDisplay(strategy.scores_, selected=idx)`` works from the
    arrays alone.
    """

    def __init__(
        self,
        influence: Any,
        selected: Any = None,
        *,
        pseudo_label: Any = None,
        confidence: Any = None,
        X_pool: Any = None,
    ) -> None:
        influence = np.array(influence, dtype=np.float64)  # a copy: never the caller's array
        if influence.ndim != 1 or influence.size == 0:
            raise ValueError(
                f"influence must be a non-empty 1-D array (one value per pool sample, "
                f"e.g. strategy.scores_); got shape {influence.shape}."
            )
        if not np.all(np.isfinite(influence)):
            raise ValueError("influence must be finite; pass strategy.scores_ of a query.")
        n_pool = influence.size
        self.influence = influence
        self.selected = self._check_selected(selected, n_pool)
        self.pseudo_label = self._check_column(pseudo_label, "pseudo_label", n_pool, object)
        self.confidence = self._check_column(confidence, "confidence", n_pool, np.float64)
        self.X_pool = self._check_pool(X_pool, n_pool)

    # -- validation ----------------------------------------------------------------
    @staticmethod
    def _check_selected(selected: Any, n_pool: int) -> np.ndarray:
        if selected is None:
            return np.empty(0, dtype=np.intp)
        arr = np.asarray(selected)
        if arr.dtype == bool:
            raise TypeError(
                "selected must be pool indices, first pick first (a query's returned "
                "indices), not a boolean mask; use np.flatnonzero(mask) if the order does "
                "not matter."
            )
        if arr.size and (arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(
                f"selected must be a 1-D array of int pool indices; got dtype {arr.dtype} "
                f"and shape {arr.shape}."
            )
        arr = arr.astype(np.intp).ravel()
        if arr.size and (arr.min() < 0 or arr.max() >= n_pool):
            raise ValueError(
                f"selected holds indices outside the pool of {n_pool} samples (from "
                f"{arr.min()} to {arr.max()}); pass the indices of the query that gave "
                "influence."
            )
        if np.unique(arr).size != arr.size:
            raise ValueError("selected holds a pool index twice; each sample is selected once.")
        return arr

    @staticmethod
    def _check_column(values: Any, name: str, n_pool: int, dtype: Any) -> np.ndarray | None:
        if values is None:
            return None
        if hasattr(values, "to_numpy"):
            values = values.to_numpy(dtype=dtype, na_value=None if dtype is object else np.nan)
        arr = np.array(values, dtype=dtype)
        if arr.shape != (n_pool,):
            raise ValueError(
                f"{name} must have one value per pool sample, shape ({n_pool},) like "
                f"influence; got shape {arr.shape}."
            )
        return arr

    @staticmethod
    def _check_pool(X_pool: Any, n_pool: int) -> Any:
        if X_pool is None:
            return None
        rows = n_rows(X_pool)
        if rows != n_pool:
            raise ValueError(
                f"X_pool has {rows} samples but the influences cover {n_pool}; pass the "
                "pool of the query that was explained, in the same order."
            )
        return X_pool

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_explanation(
        cls,
        explanation: Any,
        *,
        X_pool: Any = None,
        image_shape: tuple[int, ...] | None = None,
        ax: Any = None,
        n_annotate: int = 5,
        n_images: int = 10,
        bins: Any = 40,
        log: bool | str = "auto",
    ) -> InfluenceDisplay:
        """Plot the table of ``strategy.explain()``.

        Parameters
        ----------
        explanation : pandas.DataFrame
            One row per pool sample, in pool order, with the columns
            ``influence`` and ``selected`` (bool) and optionally
            ``selection_order`` (1 = first pick), ``pseudo_label`` and
            ``confidence``: what ``InfluenceQueryStrategy.explain()`` returns.
        X_pool : array-like, torch.Tensor or sequence, optional
            The explained pool. When given, the selected images are drawn
            too (:meth:`plot_images`): below the histogram in one figure
            when ``ax`` is None, else in a figure of their own.
        image_shape : tuple of int, optional
            Shape of one pool sample as an image, e.g. ``(8, 8)``; see
            :meth:`plot_images`.
        ax : matplotlib Axes, optional
            Where to draw the histogram; a new figure when None.
        n_annotate : int, default=5
            Selected samples annotated with their pseudo-label, first picks
            first.
        n_images : int, default=10
            Selected images shown when ``X_pool`` is given.
        bins : int or sequence, default=40
            Histogram bins (as :meth:`matplotlib.axes.Axes.hist`).
        log : bool or "auto", default="auto"
            Count axis on a log scale; see :meth:`plot`.

        Returns
        -------
        InfluenceDisplay
            The display, drawn.
        """
        columns = getattr(explanation, "columns", None)
        missing = [c for c in ("influence", "selected") if columns is None or c not in columns]
        if missing:
            raise ValueError(
                f"explanation must be the DataFrame of strategy.explain(); it lacks the "
                f"column(s) {missing}."
            )
        frame = explanation
        positions = np.flatnonzero(frame["selected"].to_numpy(dtype=bool))
        if "selection_order" in columns and positions.size:
            order = frame["selection_order"].to_numpy(dtype=np.float64, na_value=np.nan)
            positions = positions[np.argsort(order[positions], kind="stable")]
        elif positions.size:
            influence = frame["influence"].to_numpy(dtype=np.float64)
            positions = positions[np.argsort(influence[positions], kind="stable")]
        display = cls(
            frame["influence"].to_numpy(dtype=np.float64),
            positions,
            pseudo_label=frame["pseudo_label"] if "pseudo_label" in columns else None,
            confidence=frame["confidence"] if "confidence" in columns else None,
            X_pool=X_pool,
        )
        if X_pool is None:
            return display.plot(ax=ax, n_annotate=n_annotate, bins=bins, log=log)
        figure = None
        if ax is None:  # one figure: the histogram above, the images below
            n_shown = min(_check_count(n_images, "n_images"), display._shown().size)
            rows = max(1, math.ceil(n_shown / 5))
            root = _pyplot("InfluenceDisplay").figure(
                figsize=(10, 4.2 + 2.3 * rows), layout="constrained"
            )
            top, figure = root.subfigures(2, 1, height_ratios=[4.2, 2.3 * rows])
            ax = top.subplots()
        display.plot(ax=ax, n_annotate=n_annotate, bins=bins, log=log)
        return display.plot_images(image_shape=image_shape, n_images=n_images, figure=figure)

    @classmethod
    def from_strategy(
        cls,
        strategy: Any,
        *,
        X_pool: Any = None,
        image_shape: tuple[int, ...] | None = None,
        ax: Any = None,
        n_annotate: int = 5,
        n_images: int = 10,
        bins: Any = 40,
        log: bool | str = "auto",
    ) -> InfluenceDisplay:
        """Plot the last query of a strategy: ``from_explanation(strategy.explain())``.

        Parameters
        ----------
        strategy : InfluenceQueryStrategy
            A strategy after a query (``learner.query``, ``strategy(...)``)
            or ``strategy.influence(...)``; anything with an ``explain()``
            method returning that table.
        X_pool, image_shape, ax, n_annotate, n_images, bins, log
            As :meth:`from_explanation`.

        Returns
        -------
        InfluenceDisplay
            The display, drawn.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the strategy has not queried yet (from ``explain``).
        """
        explain = getattr(strategy, "explain", None)
        if not callable(explain):
            raise TypeError(
                "strategy must have an explain() method, as InfluenceQueryStrategy has; "
                f"got {type(strategy).__name__}. With arrays, use "
                "InfluenceDisplay(strategy.scores_, selected=indices).plot()."
            )
        return cls.from_explanation(
            explain(),
            X_pool=X_pool,
            image_shape=image_shape,
            ax=ax,
            n_annotate=n_annotate,
            n_images=n_images,
            bins=bins,
            log=log,
        )

    def _shown(self) -> np.ndarray:
        """The samples to annotate and show: the selection, else the most helpful first."""
        if self.selected.size:
            return self.selected
        return np.argsort(self.influence, kind="stable")

    def _label(self, index: int) -> str:
        """'pseudo-label 3 (p=0.97)'; 'no prediction' for a detector's empty image."""
        label = None if self.pseudo_label is None else self.pseudo_label[index]
        confidence = np.nan if self.confidence is None else float(self.confidence[index])
        p = "" if math.isnan(confidence) else f"p={confidence:.2f}"
        if self.pseudo_label is None:
            return p
        if label is None or (isinstance(label, float) and math.isnan(label)):
            return "no prediction"
        return f"pseudo-label {label}" + (f" ({p})" if p else "")

    # -- drawing ----------------------------------------------------------------------
    def plot(
        self,
        *,
        ax: Any = None,
        n_annotate: int = 5,
        bins: Any = 40,
        log: bool | str = "auto",
        hist_kw: dict | None = None,
    ) -> InfluenceDisplay:
        """Draw the histogram of influences with the selected samples marked.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw; a new figure when None.
        n_annotate : int, default=5
            How many selected samples, first picks first, are annotated with
            their pseudo-label and confidence (0: none). With no selection,
            the most helpful samples are annotated by rank.
        bins : int or sequence, default=40
            Histogram bins (as :meth:`matplotlib.axes.Axes.hist`).
        log : bool or "auto", default="auto"
            Count axis on a log scale. Influences are heavy-tailed (most
            samples near 0, a few far out, where the selection is); "auto"
            takes a log scale when the fullest bin holds more than 20 times
            the selected samples' fullest bin, so that their bars stay visible.
        hist_kw : dict, optional
            Keyword arguments for the pool's ``ax.hist`` (e.g. ``color``).

        Returns
        -------
        InfluenceDisplay
            ``self``, with ``ax_``, ``figure_`` and the artists set.
        """
        plt = _pyplot("InfluenceDisplay.plot")
        n_annotate = _check_count(n_annotate, "n_annotate")
        if not (isinstance(log, bool) or log == "auto"):
            raise ValueError(f"log must be True, False or 'auto'; got {log!r}.")
        if ax is None:
            _, ax = plt.subplots(figsize=(10, 4.2), layout="constrained")
        influence, selected = self.influence, self.selected
        n_pool, n_selected = influence.size, selected.size

        pool_kw = {"color": _POOL_COLOR, "edgecolor": "white", "linewidth": 0.5}
        pool_kw.update(hist_kw or {})
        pool_kw.setdefault("label", f"pool ({n_pool} samples)")
        counts, edges, self.histogram_ = ax.hist(influence, bins=bins, **pool_kw)
        self.selected_histogram_ = self.selected_markers_ = self.selected_range_ = None
        tallest_selected = 1.0
        if n_selected:
            selected_x = influence[selected]
            self.selected_range_ = ax.axvspan(
                selected_x.min(),
                selected_x.max(),
                color=_SELECTED_COLOR,
                alpha=0.1,
                linewidth=0,
                label="range of the selected",
            )
            selected_counts, _, self.selected_histogram_ = ax.hist(
                selected_x, bins=edges, color=_SELECTED_COLOR, label=f"selected ({n_selected})"
            )
            (self.selected_markers_,) = ax.plot(
                selected_x,
                np.full(n_selected, 0.025),
                linestyle="none",
                marker="|",
                markersize=14,
                markeredgewidth=1.5,
                color=_SELECTED_COLOR,
                transform=ax.get_xaxis_transform(),  # x in data, y in axes fraction
                clip_on=False,
            )
            tallest_selected = max(float(selected_counts.max()), 1.0)
        if log == "auto":
            log = float(counts.max()) > 20.0 * tallest_selected
        if log:
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.7)
        else:
            ax.yaxis.get_major_locator().set_params(integer=True)  # counts
        numbered = self._number(ax, n_annotate, counts, edges)

        ax.set_xlabel(_XLABEL)
        ax.set_ylabel(_YLABEL + (" (log scale)" if log else ""))
        what = f"{n_selected} selected" if n_selected else "none selected"
        ax.set_title(f"Influence of the {n_pool} pool samples on the reference loss: {what}")
        self._legend(ax)
        self._make_room(ax, numbered)
        self.ax_ = ax
        self.figure_ = _root_figure(ax)
        return self

    def _number(self, ax: Any, n_annotate: int, counts: np.ndarray, edges: np.ndarray) -> list:
        """Number the first picks over their bars; returns each number's (bar height, offset)."""
        shown = self.annotated_ = self._shown()[:n_annotate].copy()
        self.annotation_numbers_, numbered, placed = [], [], []
        to_pixels, points = ax.transData, _root_figure(ax).dpi / 72
        for position, index in enumerate(shown):
            x = to_pixels.transform((self.influence[index], 1.0))[0]
            # above every bar the number would touch (half its width: 5 pt either side)
            low, high = (
                to_pixels.inverted().transform((x + d, 1.0))[0] for d in (-5 * points, 5 * points)
            )
            touched = counts[(edges[1:] >= low) & (edges[:-1] <= high)]
            height = float(np.max(touched, initial=1.0))
            taken = {level for x_other, level in placed if abs(x - x_other) < 9 * points}
            level = min(set(range(len(taken) + 1)) - taken)  # the lowest free level
            placed.append((x, level))
            offset = 2 + 9 * level
            self.annotation_numbers_.append(
                ax.annotate(
                    str(position + 1),
                    xy=(self.influence[index], height),
                    xytext=(0, offset),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    fontweight="bold",
                    color=_SELECTED_COLOR,
                )
            )
            numbered.append((height, offset))
        return numbered

    def _legend(self, ax: Any) -> None:
        """One legend right of the axes: the pool, the selection, then a key to the numbers."""
        from matplotlib.lines import Line2D

        handles, labels = ax.get_legend_handles_labels()
        n_plain = len(labels)
        if self.annotated_.size:
            heading = "first picks" if self.selected.size else "most helpful (none selected)"
            handles.append(Line2D([], [], linestyle="none"))
            labels.append(heading + ":")
        for position, index in enumerate(self.annotated_):
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker=f"${position + 1}$",
                    markersize=7,
                    color=_SELECTED_COLOR,
                )
            )
            label = self._label(int(index))
            labels.append(f"sample {index}" + (f": {label}" if label else ""))
        legend = ax.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
            fontsize=9,
            frameon=False,
        )
        texts = legend.get_texts()
        if self.annotated_.size:
            texts[n_plain].set_fontweight("bold")
        self.annotations_ = texts[n_plain + 1 :]

    @staticmethod
    def _make_room(ax: Any, numbered: list) -> None:
        """Raise the top of the count axis so that the numbers over the bars stay inside."""
        if not numbered:
            return
        height = ax.bbox.height * 72 / _root_figure(ax).dpi  # points
        low, top = ax.get_ylim()
        for bar, offset in numbered:
            room = 1.0 - (offset + 14) / max(height, 1.0)  # axes fraction the bar may reach
            if room <= 0.2:
                continue
            if ax.get_yscale() == "log":
                needed = math.exp(math.log(low) + (math.log(bar) - math.log(low)) / room)
            else:
                needed = low + (bar - low) / room
            top = max(top, needed)
        ax.set_ylim(low, top)

    def plot_images(
        self,
        X_pool: Any = None,
        *,
        image_shape: tuple[int, ...] | None = None,
        n_images: int = 10,
        n_cols: int = 5,
        figure: Any = None,
        axes: Any = None,
        cmap: str = "gray_r",
        imshow_kw: dict | None = None,
    ) -> InfluenceDisplay:
        """Show the selected images, first pick first, titled with influence and pseudo-label.

        Parameters
        ----------
        X_pool : array-like, torch.Tensor or sequence, optional
            The pool, one sample per row in the order of ``influence``;
            defaults to the one the display was built with. A row may be an
            image already, (H, W), (C, H, W) or (H, W, C) with 1, 3 or 4
            channels, or a flat vector that is a square image (64 values:
            8x8) or has ``image_shape``.
        image_shape : tuple of int, optional
            Shape to give each row, e.g. ``(8, 8)`` or ``(3, 32, 32)``.
        n_images : int, default=10
            At most this many images (fewer when fewer were selected).
        n_cols : int, default=5
            Images per row of the grid.
        figure : matplotlib Figure or SubFigure, optional
            Where to make the grid; a new figure when None (and no ``axes``).
        axes : sequence of matplotlib Axes, optional
            Draw into these instead, one image each (at least as many as
            images shown); those left over are hidden.
        cmap : str, default="gray_r"
            Colour map of single-channel images (dark ink on white).
        imshow_kw : dict, optional
            Keyword arguments for ``imshow``.

        Returns
        -------
        InfluenceDisplay
            ``self``, with ``image_axes_`` and ``image_figure_`` set.
        """
        plt = _pyplot("InfluenceDisplay.plot_images")
        n_images = _check_count(n_images, "n_images")
        n_cols = _check_count(n_cols, "n_cols", minimum=1)
        if X_pool is None:
            X_pool = self.X_pool
            if X_pool is None:
                raise ValueError(
                    "plot_images needs the pool: pass X_pool (the query's pool, in its order)."
                )
        else:
            self._check_pool(X_pool, self.influence.size)
        shown = self._shown()[:n_images]
        taken = take_rows(X_pool, shown)
        taken = [taken.iloc[i] if hasattr(taken, "iloc") else taken[i] for i in range(shown.size)]
        images = [_as_image(sample, image_shape) for sample in taken]
        made_grid = axes is None
        if axes is not None:
            axes = np.asarray(axes, dtype=object).ravel()
            if axes.size < shown.size:
                raise ValueError(
                    f"axes holds {axes.size} axes but {shown.size} images are to be shown; "
                    f"pass at least {shown.size} axes, or n_images={axes.size}."
                )
        else:
            cols = max(1, min(n_cols, shown.size))
            rows = max(1, math.ceil(shown.size / cols))
            if figure is None:
                figure = plt.figure(figsize=(1.8 * cols, 2.1 * rows), layout="constrained")
            axes = np.asarray(figure.subplots(rows, cols, squeeze=False), dtype=object).ravel()
        kw = {"cmap": cmap, "interpolation": "nearest"}
        kw.update(imshow_kw or {})
        picked = "pick" if self.selected.size else "rank"
        for position, (axis, index, image) in enumerate(zip(axes, shown, images, strict=False)):
            axis.imshow(image, **kw)
            label = self._label(int(index))
            influence = _format_influence(self.influence[index])
            title = f"{picked} {position + 1}: sample {index}\nI = {influence}"
            axis.set_title(title + (f"\n{label}" if label else ""), fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
        for axis in axes[shown.size :]:
            axis.set_visible(False)
        if made_grid and shown.size:
            what = "selected samples, first pick first" if self.selected.size else "most helpful"
            figure.suptitle(f"The {what}: influence I and the model's pseudo-label", fontsize=10)
        self.image_axes_ = axes[: shown.size]
        self.image_figure_ = axes[0].figure if axes.size else figure
        return self
