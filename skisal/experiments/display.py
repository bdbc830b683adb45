"""The plot of an experiment: learning curves, and each strategy's difference to random.

:class:`ComparisonDisplay` follows scikit-learn's Display API: its ``from_*``
class methods compute what to draw and call :meth:`~ComparisonDisplay.plot`,
which draws it and keeps the figure and axes as ``figure_`` and ``ax_``.
``skisal-experiment`` draws ``learning_curves.png`` with it. matplotlib is
imported only when something is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .records import RECORDS_FILE, StepRecord, load_records

__all__ = ["ComparisonDisplay", "aulc"]

# ISAL's modes: strong colours, solid thick lines, markers; baselines: muted and dashed.
_ISAL_STYLES = [
    ("tab:blue", "o"),
    ("tab:red", "s"),
    ("tab:purple", "D"),
    ("black", "^"),
    ("tab:pink", "v"),
]
_BASELINE_COLORS = ["#2ca02c", "#ff7f0e", "#17becf", "#bcbd22", "#8c564b", "#e377c2", "#9edae5"]
_BASELINE_COLOR = "0.5"  # the strategy the others are compared with: grey
#: The error when there is nothing to draw with.
NO_MATPLOTLIB = (
    "drawing an experiment needs matplotlib, which is not installed: pip install matplotlib "
    "(or pip install 'skisal[examples]')."
)


def aulc(n_labeled: Sequence[float], scores: Sequence[float]) -> float:
    """Area under the learning curve, normalised by its width: a mean score.

    Trapezoidal rule over the labelled-set sizes, divided by
    ``n_labeled[-1] - n_labeled[0]``; equal to the mean score for a flat curve.

    Parameters
    ----------
    n_labeled : sequence of float
        Labelled-set sizes, increasing.
    scores : sequence of float
        The score at each size.

    Returns
    -------
    float
        The normalised area (the only score for a one-point curve).

    Examples
    --------
    >>> aulc([10, 20, 30], [0.5, 0.7, 0.9])
    0.7
    """
    x, s = np.asarray(n_labeled, float), np.asarray(scores, float)
    if len(x) == 1:
        return float(s[0])
    return float(np.sum((s[1:] + s[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def is_isal(name: str) -> bool:
    """Whether strategy ``name`` is one of ISAL's modes (its name starts with "isal")."""
    return name.lower().startswith("isal")


def paired_runs(records: Sequence[StepRecord]) -> tuple[list[int], dict[str, list[list[Any]]]]:
    """The seeds every strategy finished, and per strategy its runs on them, step by step.

    Parameters
    ----------
    records : sequence of StepRecord
        Steps of any number of strategies and seeds.

    Returns
    -------
    seeds : list of int
        Sorted.
    runs : dict
        ``{strategy: [records of one seed, sorted by step] for each seed}``,
        strategies in their order of first appearance.

    Raises
    ------
    ValueError
        If no seed has finished runs of every strategy.
    """
    by_run: dict[tuple[str, int], list[StepRecord]] = {}
    for r in records:
        by_run.setdefault((r.strategy, r.seed), []).append(r)
    strategies = list(dict.fromkeys(r.strategy for r in records))
    n_steps = max((len(v) for v in by_run.values()), default=0)
    finished = {k for k, v in by_run.items() if len(v) == n_steps}
    seeds = sorted(
        s for s in {r.seed for r in records} if all((name, s) in finished for name in strategies)
    )
    if not seeds:
        raise ValueError("no seed has finished runs of every strategy yet.")
    runs = {
        name: [sorted(by_run[(name, s)], key=lambda r: r.step) for s in seeds]
        for name in strategies
    }
    return seeds, runs


def _styles(names: Sequence[str], baseline: str | None) -> dict[str, dict[str, Any]]:
    """Line styles: ISAL's modes stand out, the baselines are muted, ``baseline`` is grey."""
    styles: dict[str, dict[str, Any]] = {}
    isal = others = 0
    for name in names:
        if name == baseline:
            styles[name] = dict(color=_BASELINE_COLOR, lw=2.0, ls="-", zorder=2)
        elif is_isal(name):
            color, marker = _ISAL_STYLES[isal % len(_ISAL_STYLES)]
            styles[name] = dict(color=color, lw=2.6, ls="-", marker=marker, ms=5, zorder=4)
            isal += 1
        else:
            color = _BASELINE_COLORS[others % len(_BASELINE_COLORS)]
            styles[name] = dict(color=color, lw=1.4, ls="--", alpha=0.9, zorder=3)
            others += 1
    return styles


class ComparisonDisplay:
    """Learning curves of several query strategies and their differences to random.

    Two panels: the mean score over seeds against the labelled-set size, one
    line per strategy, the legend sorted by area under the learning curve
    (AULC); and each strategy's score minus the baseline's (random sampling)
    on the same seed, mean ± std over seeds, where differences too small to
    see in the first panel show. ISAL's modes (strategies whose name starts
    with "isal") are drawn solid, thick and with markers, the other
    strategies dashed, the baseline grey.

    Create it with :meth:`from_records`, :meth:`from_results_dir` or
    :meth:`from_summary`, which also draw it; or with the constructor, then
    :meth:`plot`.

    Parameters
    ----------
    n_labeled : array-like of shape (n_steps,)
        Labelled-set sizes, increasing, the same for every strategy.
    scores : dict of str to array-like of shape (n_seeds, n_steps)
        Per strategy, its test score (a fraction: 0.9 is 90%) at each step of
        each seed; row ``i`` of every strategy is the same seed, so that
        differences are paired by seed.
    seeds : sequence of int, optional
        The seeds of the rows, for the record.
    baseline : str or None, default="random"
        The strategy the second panel subtracts; None: no second panel.
    score_name : str, default="test accuracy"
        What the score is, for the axis label.
    title : str, default=""
        The title of the first panel.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The learning curves.
    axes_ : tuple of matplotlib Axes
        Every panel drawn: the learning curves, then the differences (if drawn).
    figure_ : matplotlib Figure
        The figure of the panels.
    lines_ : dict of str to matplotlib Line2D
        Each strategy's mean learning curve.
    order_ : list of str
        The strategies by decreasing mean AULC: the legend's order.
    aulc_ : dict of str to ndarray of shape (n_seeds,)
        Each strategy's AULC per seed, in %.
    difference_ : dict of str to ndarray of shape (n_seeds, n_steps)
        Each strategy's score minus the baseline's on the same seed, in
        percentage points (empty without a baseline).

    See Also
    --------
    skisal.experiments.write_report : Writes the plot to ``learning_curves.png``.

    Examples
    --------
    Two strategies, two seeds, three steps (on real results:
    ``ComparisonDisplay.from_results_dir("results/digits")``):

    >>> from matplotlib.figure import Figure
    >>> from skisal.experiments import ComparisonDisplay
    >>> scores = {"random": [[0.5, 0.6, 0.7], [0.5, 0.7, 0.7]],
    ...           "isal": [[0.5, 0.8, 0.9], [0.5, 0.8, 0.8]]}
    >>> display = ComparisonDisplay([10, 20, 30], scores, title="toy")
    >>> figure = Figure(figsize=(9, 7), layout="constrained")
    >>> display = display.plot(ax=figure.subplots(2, 1, sharex=True))
    >>> display.order_  # by AULC, highest first
    ['isal', 'random']
    >>> display.difference_["isal"]  # percentage points above random, per seed and step
    array([[ 0., 20., 20.],
           [ 0., 10., 10.]])
    >>> display.ax_.get_ylabel()
    'test accuracy in % (higher is better)'
    """

    def __init__(
        self,
        n_labeled: Sequence[float],
        scores: Mapping[str, Any],
        *,
        seeds: Sequence[int] | None = None,
        baseline: str | None = "random",
        score_name: str = "test accuracy",
        title: str = "",
    ) -> None:
        self.n_labeled = n_labeled
        self.scores = scores
        self.seeds = seeds
        self.baseline = baseline
        self.score_name = score_name
        self.title = title

    @classmethod
    def from_records(
        cls,
        records: Sequence[StepRecord],
        *,
        baseline: str | None = "random",
        score_name: str = "test accuracy",
        title: str = "",
        ax: Any = None,
    ) -> ComparisonDisplay:
        """Draw the records of a run (as :func:`~skisal.experiments.run_experiment` returns them).

        Only seeds every strategy finished are drawn, so that differences stay paired.

        Parameters
        ----------
        records : sequence of StepRecord
            Steps of any number of strategies and seeds.
        baseline : str or None, default="random"
            See the class; None draws the learning curves only.
        score_name : str, default="test accuracy"
            What the score is, for the axis label.
        title : str, default=""
            The title of the first panel.
        ax : matplotlib Axes or sequence of two Axes, optional
            Where to draw (see :meth:`plot`).

        Returns
        -------
        ComparisonDisplay
            Drawn.

        Raises
        ------
        ValueError
            If no seed has finished runs of every strategy, or the strategies'
            labelled-set sizes differ.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> from skisal.experiments import ComparisonDisplay, StepRecord
        >>> records = [StepRecord(name, seed, step, 10 + 10 * step, score, None, 1.0, ())
        ...            for name, curve in [("random", [0.5, 0.6]), ("isal", [0.5, 0.8])]
        ...            for seed in (0, 1) for step, score in enumerate(curve)]
        >>> axes = Figure(layout="constrained").subplots(2, 1)
        >>> ComparisonDisplay.from_records(records, ax=axes).order_
        ['isal', 'random']
        """
        seeds, runs = paired_runs(records)
        sizes = {
            name: [r.n_labeled for r in strategy_runs[0]] for name, strategy_runs in runs.items()
        }
        n_labeled = next(iter(sizes.values()))
        if any(s != n_labeled for s in sizes.values()):
            raise ValueError(
                f"records: the strategies' labelled-set sizes differ ({sizes}); a comparison "
                "needs the same initial size, query size and steps for every strategy."
            )
        scores = {
            name: np.array([[r.score for r in run] for run in strategy_runs])
            for name, strategy_runs in runs.items()
        }
        display = cls(
            n_labeled, scores, seeds=seeds, baseline=baseline, score_name=score_name, title=title
        )
        return display.plot(ax=ax)

    @classmethod
    def from_results_dir(
        cls,
        path: str | Path,
        *,
        baseline: str | None = "random",
        score_name: str = "test accuracy",
        title: str = "",
        ax: Any = None,
    ) -> ComparisonDisplay:
        """Draw the records in the output folder of a run (its ``records.jsonl``).

        Parameters
        ----------
        path : str or Path
            The folder ``skisal-experiment --out`` (or
            :func:`~skisal.experiments.run_experiment`) wrote to.
        baseline, score_name, title, ax
            See :meth:`from_records`.

        Returns
        -------
        ComparisonDisplay
            Drawn.

        Raises
        ------
        ValueError
            If the folder has no records, or as :meth:`from_records` and
            :func:`~skisal.experiments.load_records` do.

        Examples
        --------
        The measured results of the documentation, from a clone of the repository:
        ``ComparisonDisplay.from_results_dir("docs/results/digits")``.

        >>> import tempfile
        >>> from skisal.experiments import ComparisonDisplay
        >>> ComparisonDisplay.from_results_dir(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: path: no records in .../records.jsonl; run skisal-experiment --out ...
        """
        records = load_records(path)
        if not records:
            raise ValueError(
                f"path: no records in {Path(path) / RECORDS_FILE}; run skisal-experiment "
                f"--out {path} first, or pass the folder a run wrote to."
            )
        return cls.from_records(
            records, baseline=baseline, score_name=score_name, title=title, ax=ax
        )

    @classmethod
    def from_summary(
        cls,
        summary: Mapping[str, Mapping[str, Any]],
        *,
        baseline: str | None = "random",
        score_name: str = "test accuracy",
        title: str = "",
        ax: Any = None,
    ) -> ComparisonDisplay:
        """Draw a summary (as :func:`~skisal.experiments.summarise` returns it).

        Parameters
        ----------
        summary : dict
            Per strategy, its ``"n_labeled"`` and ``"score_per_seed"``.
        baseline, score_name, title, ax
            See :meth:`from_records`.

        Returns
        -------
        ComparisonDisplay
            Drawn.

        Raises
        ------
        ValueError
            If the summary has no per-seed scores (``summary.json`` files
            written before skisal stored them), or the labelled-set sizes differ.

        Examples
        --------
        >>> from matplotlib.figure import Figure
        >>> from skisal.experiments import ComparisonDisplay, StepRecord, summarise
        >>> records = [StepRecord(name, 0, step, 10 + 10 * step, score, None, 1.0, ())
        ...            for name, curve in [("random", [0.5, 0.6]), ("isal", [0.5, 0.8])]
        ...            for step, score in enumerate(curve)]
        >>> ax = Figure().subplots()  # one Axes: the learning curves only
        >>> display = ComparisonDisplay.from_summary(summarise(records), ax=ax)
        >>> display.axes_ == (ax,)
        True
        """
        if any("score_per_seed" not in s for s in summary.values()):
            raise ValueError(
                "summary: no per-seed scores ('score_per_seed'); summaries written before "
                "skisal stored them cannot be drawn: use ComparisonDisplay.from_results_dir "
                "on the run's folder instead."
            )
        sizes = [list(s["n_labeled"]) for s in summary.values()]
        if any(s != sizes[0] for s in sizes):
            raise ValueError(
                "summary: the strategies' labelled-set sizes differ; a comparison needs the "
                "same initial size, query size and steps for every strategy."
            )
        scores = {name: np.array(s["score_per_seed"], float) for name, s in summary.items()}
        seeds = next(iter(summary.values())).get("seeds")
        display = cls(
            sizes[0], scores, seeds=seeds, baseline=baseline, score_name=score_name, title=title
        )
        return display.plot(ax=ax)

    def _checked(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``n_labeled`` and the scores in %, as arrays, or ValueError naming the argument."""
        x = np.asarray(self.n_labeled, float)
        if x.ndim != 1 or not len(x):
            raise ValueError(f"n_labeled must be a non-empty 1-d sequence, got shape {x.shape}.")
        if not self.scores:
            raise ValueError("scores is empty: pass {strategy: scores per seed and step}.")
        curves: dict[str, np.ndarray] = {}
        for name, value in self.scores.items():
            s = np.asarray(value, float)
            s = s[None, :] if s.ndim == 1 else s
            if s.ndim != 2 or s.shape[1] != len(x):
                raise ValueError(
                    f"scores[{name!r}] must have shape (n_seeds, {len(x)}) to match n_labeled, "
                    f"got {np.shape(value)}."
                )
            curves[name] = 100 * s
        n_seeds = {name: len(s) for name, s in curves.items()}
        if len(set(n_seeds.values())) > 1:
            raise ValueError(
                f"scores: every strategy needs the same seeds (rows), got {n_seeds}; keep only "
                "the seeds every strategy finished."
            )
        if self.baseline is not None and self.baseline not in curves:
            raise ValueError(
                f"baseline={self.baseline!r} is not among the strategies {list(curves)}: name "
                "one of them, or pass baseline=None to draw the learning curves only."
            )
        return x, curves

    def plot(self, ax: Any = None, *, title: str | None = None) -> ComparisonDisplay:
        """Draw the learning curves and, with a baseline, the differences to it.

        Parameters
        ----------
        ax : matplotlib Axes or sequence of Axes, optional
            One Axes: the learning curves only. Two: also the differences per
            step. Three: also each strategy's AULC minus the baseline's. None:
            a new figure with every panel (the curves only without a baseline).
        title : str, optional
            The title of the first panel (default: the ``title`` given when
            the display was created).

        Returns
        -------
        ComparisonDisplay
            ``self``, with ``ax_``, ``axes_``, ``figure_``, ``lines_``,
            ``order_``, ``aulc_`` and ``difference_`` set.

        Raises
        ------
        ValueError
            If the data are inconsistent (the message names the argument), the
            baseline is not one of the strategies, or ``ax`` holds more than
            one Axes and there is no baseline.

        Examples
        --------
        See the class.
        """
        x, curves = self._checked()
        if ax is None:
            try:
                import matplotlib.pyplot as plt
            except ImportError as exc:
                raise ImportError(NO_MATPLOTLIB) from exc
            ax = comparison_axes(plt.figure(), baseline=self.baseline is not None)
        axes = (ax,) if hasattr(ax, "plot") else tuple(np.ravel(np.asarray(ax, dtype=object)))
        if not 1 <= len(axes) <= 3 or not all(hasattr(a, "plot") for a in axes):
            raise ValueError(f"ax must be one, two or three matplotlib Axes, got {ax!r}.")
        if len(axes) > 1 and self.baseline is None:
            raise ValueError(
                "ax: the panels after the first need a baseline; pass one Axes, or "
                "baseline='random' (or another strategy)."
            )
        n_seeds = len(next(iter(curves.values())))
        self.aulc_ = {name: np.array([aulc(x, row) for row in s]) for name, s in curves.items()}
        self.order_ = sorted(curves, key=lambda name: -self.aulc_[name].mean())
        self.difference_ = {}
        if self.baseline is not None:
            for name in self.order_:
                if name != self.baseline:
                    self.difference_[name] = curves[name] - curves[self.baseline]
        figure = axes[0].figure  # the top-level Figure, also for Axes in a SubFigure
        self.ax_, self.axes_, self.figure_ = axes[0], axes, getattr(figure, "figure", figure)
        styles = _styles(list(curves), self.baseline)
        self._plot_curves(x, curves, styles, n_seeds, self.title if title is None else title)
        if len(axes) > 1:
            self._plot_difference(axes[1], x, styles, n_seeds)
        if len(axes) > 2:
            self._plot_aulc_difference(axes[2], styles, n_seeds)
        return self

    def _plot_curves(
        self,
        x: np.ndarray,
        curves: dict[str, np.ndarray],
        styles: dict[str, dict[str, Any]],
        n_seeds: int,
        title: str,
    ) -> None:
        """The first panel: the mean learning curves, the legend sorted by AULC."""
        self.lines_ = {}
        for rank, name in enumerate(self.order_, 1):
            (self.lines_[name],) = self.ax_.plot(
                x,
                curves[name].mean(axis=0),
                label=f"{rank}. {name}: {_mean_std(self.aulc_[name], '.2f')}",
                **styles[name],
            )
        self.ax_.set_title(title)
        self.ax_.set_ylabel(f"{self.score_name} in % (higher is better)")
        self.ax_.set_xlabel("labelled samples")
        self.ax_.grid(alpha=0.3)
        self.ax_.legend(
            title=f"AULC in %, {_over(n_seeds)}, best first",
            loc="lower right",
            fontsize="small",
            title_fontsize="small",
        )

    def _plot_difference(
        self, ax: Any, x: np.ndarray, styles: dict[str, dict[str, Any]], n_seeds: int
    ) -> None:
        """The second panel: each strategy minus the baseline per step, paired by seed."""
        ax.axhline(0, **styles[self.baseline])
        for name, difference in self.difference_.items():
            mean, std = difference.mean(axis=0), difference.std(axis=0)
            ax.plot(x, mean, **styles[name])
            if is_isal(name) and n_seeds > 1:  # every strategy's band would hide the lines
                ax.fill_between(
                    x, mean - std, mean + std, color=styles[name]["color"], alpha=0.12, lw=0
                )
        ax.set_ylabel(f"minus {self.baseline}, in points")
        ax.set_xlabel("labelled samples")
        band = "; band: ± std for ISAL" if n_seeds > 1 else ""
        ax.set_title(
            f"Minus {self.baseline} on the same seed ({_over(n_seeds)}{band}); above 0: better",
            fontsize="medium",
        )
        ax.grid(alpha=0.3)
        if ax.get_shared_x_axes().joined(ax, self.ax_):
            self.ax_.set_xlabel("")

    def _plot_aulc_difference(
        self, ax: Any, styles: dict[str, dict[str, Any]], n_seeds: int
    ) -> None:
        """The third panel: each strategy's AULC minus the baseline's, one row per strategy."""
        reference = self.aulc_[self.baseline]
        for row, name in enumerate(self.order_):
            difference = self.aulc_[name] - reference
            style = styles[name]
            ax.errorbar(
                difference.mean(),
                row,
                xerr=difference.std() if n_seeds > 1 else None,
                color=style["color"],
                marker=style.get("marker", "o"),
                ms=7 if is_isal(name) else 5,
                lw=2.5 if is_isal(name) else 1.4,
                capsize=3,
            )
            if name == self.baseline:
                text = "reference"
            else:
                text = _mean_std(difference, "+.2f")
                if n_seeds > 1:
                    text += f", better on {int(np.sum(difference > 0))} of {n_seeds}"
            ax.annotate(
                text,
                (difference.mean(), row),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                fontsize="x-small",
                color=style["color"],
            )
        ax.axvline(0, color=_BASELINE_COLOR, lw=1)
        ax.margins(x=0.15)  # room for the numbers above the points
        ax.set_yticks(range(len(self.order_)), self.order_)
        for label, name in zip(ax.get_yticklabels(), self.order_, strict=True):
            label.set_color(styles[name]["color"])
            label.set_fontweight("bold" if is_isal(name) else "normal")
        ax.set_ylim(len(self.order_) - 0.4, -0.7)  # the best on top
        ax.set_xlabel(f"AULC minus {self.baseline}'s, in points")
        ax.set_title(
            f"Whole run: AULC minus {self.baseline}'s\n(on the same seed, {_over(n_seeds)})",
            fontsize="medium",
        )
        ax.grid(axis="x", alpha=0.3)


def _over(n_seeds: int) -> str:
    """What the numbers are: "mean ± std over 10 seeds", or "1 seed"."""
    return f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else "1 seed"


def _mean_std(values: np.ndarray, spec: str) -> str:
    """ "mean ± std" of ``values``, or the one value's ``spec`` format."""
    if len(values) == 1:
        return format(values[0], spec)
    return f"{format(values.mean(), spec)} ± {values.std():.2f}"


def comparison_axes(figure: Any, baseline: bool = True) -> tuple[Any, ...]:
    """The panels of a :class:`ComparisonDisplay` on an empty ``figure``.

    Parameters
    ----------
    figure : matplotlib Figure
        Empty; its size is set.
    baseline : bool, default=True
        Whether there is a baseline: three panels (the learning curves above
        the differences per step, the AULC differences on the right), else one.

    Returns
    -------
    tuple of matplotlib Axes
        The panels, in the order :meth:`ComparisonDisplay.plot` takes them.
    """
    figure.set_layout_engine("constrained")
    if not baseline:
        figure.set_size_inches(9, 5)
        return (figure.add_subplot(),)
    figure.set_size_inches(14, 8)
    grid = figure.add_gridspec(2, 2, width_ratios=[2.4, 1], height_ratios=[3, 2])
    curves = figure.add_subplot(grid[0, 0])
    return curves, figure.add_subplot(grid[1, 0], sharex=curves), figure.add_subplot(grid[:, 1])
