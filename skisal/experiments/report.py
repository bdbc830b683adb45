"""Summaries of an experiment: learning curves, AULC, annotation saved.

The measures of the paper's section 4.1: for two strategies A and B, the
labels A needs to reach B's final score (its mean learning curve, linearly
interpolated between steps), and the annotation A saves against B,
``1 - labels_A / labels_B`` with ``labels_B`` the labels B used to get there.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .records import StepRecord

__all__ = [
    "aulc",
    "format_markdown",
    "format_summary",
    "labels_to_reach",
    "plot_learning_curves",
    "summarise",
    "write_report",
]


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


def labels_to_reach(n_labeled: Sequence[float], scores: Sequence[float], target: float) -> float:
    """Labels at which the curve first reaches ``target`` (linear interpolation).

    Parameters
    ----------
    n_labeled : sequence of float
        Labelled-set sizes, increasing.
    scores : sequence of float
        The (mean) score at each size.
    target : float
        The score to reach, e.g. another strategy's final score.

    Returns
    -------
    float
        Labels at the first crossing, interpolated between steps; ``nan`` when
        the curve never reaches ``target``.

    Examples
    --------
    >>> labels_to_reach([100, 200, 300], [0.5, 0.75, 1.0], 0.625)
    150.0
    >>> labels_to_reach([100, 200], [0.8, 0.9], 0.95)
    nan
    """
    x, s = np.asarray(n_labeled, float), np.asarray(scores, float)
    reached = np.flatnonzero(s >= target)
    if not len(reached):
        return math.nan
    i = int(reached[0])
    if i == 0:
        return float(x[0])
    fraction = (target - s[i - 1]) / (s[i] - s[i - 1])
    return float(x[i - 1] + fraction * (x[i] - x[i - 1]))


def summarise(records: Sequence[StepRecord]) -> dict[str, dict[str, Any]]:
    """Per strategy: mean/std learning curve over seeds, AULC, times, savings.

    Savings are computed against ``random`` (when present) and against the
    best other strategy (highest final mean score). Only seeds every strategy
    finished are used, so that the comparison stays paired.

    Parameters
    ----------
    records : sequence of StepRecord
        Steps of any number of strategies and seeds (as
        :func:`~skisal.experiments.run_experiment` returns them).

    Returns
    -------
    dict
        ``{strategy: {"n_labeled", "score_mean", "score_std", "aulc_mean",
        "aulc_std", "final_mean", "query_seconds_mean", "fit_seconds_mean",
        "seeds", "labels_to_reach", "saved", "best_other"}}``;
        ``labels_to_reach[B]`` is the labels this strategy needs to reach B's
        final mean score, ``saved[B]`` the fraction of B's final labels that
        saves (``nan``: never reached), ``best_other`` the other strategy
        with the highest final mean score.

    Raises
    ------
    ValueError
        If no seed has finished runs of every strategy.

    Examples
    --------
    >>> from skisal.experiments import StepRecord, summarise
    >>> records = [  # two strategies, two seeds, a query of 10 labels
    ...     StepRecord(name, seed, step, 10 + 10 * step, score, None if step == 0 else 0.1,
    ...                1.0, ())
    ...     for name, scores in [("isal", [0.5, 0.8]), ("random", [0.5, 0.6])]
    ...     for seed in (0, 1) for step, score in enumerate(scores)]
    >>> summary = summarise(records)
    >>> summary["isal"]["aulc_mean"], summary["random"]["final_mean"]
    (0.65, 0.6)
    >>> isal = summary["isal"]  # reaches random's final 60% with 13.3 labels instead of 20
    >>> round(isal["labels_to_reach"]["random"], 2), round(isal["saved"]["random"], 3)
    (13.33, 0.333)
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

    summary: dict[str, dict[str, Any]] = {}
    for name in strategies:
        runs = [sorted(by_run[(name, s)], key=lambda r: r.step) for s in seeds]
        scores = np.array([[r.score for r in run] for run in runs])
        n_labeled = [r.n_labeled for r in runs[0]]
        per_seed_aulc = [aulc(n_labeled, row) for row in scores]
        queries = [r.query_seconds for run in runs for r in run if r.query_seconds is not None]
        summary[name] = {
            "n_labeled": n_labeled,
            "score_mean": scores.mean(axis=0).tolist(),
            "score_std": scores.std(axis=0).tolist(),
            "aulc_mean": float(np.mean(per_seed_aulc)),
            "aulc_std": float(np.std(per_seed_aulc)),
            "final_mean": float(scores[:, -1].mean()),
            "query_seconds_mean": float(np.mean(queries)) if queries else math.nan,
            "fit_seconds_mean": float(np.mean([r.fit_seconds for run in runs for r in run])),
            "seeds": seeds,
        }
    for name, s in summary.items():
        s["labels_to_reach"], s["saved"] = {}, {}
        for other, o in summary.items():
            needed = labels_to_reach(s["n_labeled"], s["score_mean"], o["final_mean"])
            s["labels_to_reach"][other] = needed
            s["saved"][other] = 1 - needed / o["n_labeled"][-1]
        others = [o for o in summary if o != name]
        s["best_other"] = max(others, key=lambda o: summary[o]["final_mean"]) if others else None
    return summary


def _percent(value: float) -> str:
    return "never" if math.isnan(value) else f"{100 * value:.0f}%"


def _count(value: float) -> str:
    return "never" if math.isnan(value) else f"{value:.0f}"


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """A text table: mean score per step, AULC, labels saved, query time.

    Parameters
    ----------
    summary : dict
        As :func:`summarise` returns it.

    Returns
    -------
    str
        One column per strategy (what ``skisal-experiment`` prints).

    Examples
    --------
    >>> from skisal.experiments import StepRecord, summarise
    >>> records = [  # two strategies, two seeds, a query of 10 labels
    ...     StepRecord(name, seed, step, 10 + 10 * step, score, None if step == 0 else 0.1,
    ...                1.0, ())
    ...     for name, scores in [("isal", [0.5, 0.8]), ("random", [0.5, 0.6])]
    ...     for seed in (0, 1) for step, score in enumerate(scores)]
    >>> print(format_summary(summarise(records)))  # doctest: +NORMALIZE_WHITESPACE
                  labelled            isal          random
                        10      50.0 ± 0.0      50.0 ± 0.0
                        20      80.0 ± 0.0      60.0 ± 0.0
                  AULC (%)    65.00 ± 0.00    55.00 ± 0.00
           labels to 60.0%              13              20
           saved vs random             33%              0%
       saved vs best other    33% (random)    never (isal)
                 query (s)           0.100           0.100
    """
    names = list(summary)
    width = max(16, *(len(n) + 2 for n in names))
    if len(names) > 1:  # room for "saved vs best other" cells: "12% (name)"
        width = max(width, *(len(n) + 10 for n in names))

    def line(label: str, cells: Sequence[str]) -> str:
        return f"{label:>22}" + "".join(f"{c:>{width}}" for c in cells)

    first = summary[names[0]]
    lines = [line("labelled", names)]
    for i, n in enumerate(first["n_labeled"]):
        cells = [
            f"{100 * s['score_mean'][i]:.1f} ± {100 * s['score_std'][i]:.1f}"
            for s in summary.values()
        ]
        lines.append(line(str(n), cells))
    lines.append(
        line(
            "AULC (%)",
            [f"{100 * s['aulc_mean']:.2f} ± {100 * s['aulc_std']:.2f}" for s in summary.values()],
        )
    )
    if "random" in summary:
        target = f"{100 * summary['random']['final_mean']:.1f}%"
        lines.append(
            line(
                f"labels to {target}",
                [_count(s["labels_to_reach"]["random"]) for s in summary.values()],
            )
        )
        lines.append(
            line("saved vs random", [_percent(s["saved"]["random"]) for s in summary.values()])
        )
    lines.append(
        line(
            "saved vs best other",
            [
                ""
                if s["best_other"] is None
                else f"{_percent(s['saved'][s['best_other']])} ({s['best_other']})"
                for s in summary.values()
            ],
        )
    )
    lines.append(line("query (s)", [f"{s['query_seconds_mean']:.3f}" for s in summary.values()]))
    return "\n".join(lines)


def format_markdown(summary: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: AULC, final score, labels to random's final score, query time.

    Parameters
    ----------
    summary : dict
        As :func:`summarise` returns it.

    Returns
    -------
    str
        The table (``summary.md``), one row per strategy.

    Examples
    --------
    >>> from skisal.experiments import StepRecord, summarise
    >>> records = [  # two strategies, two seeds, a query of 10 labels
    ...     StepRecord(name, seed, step, 10 + 10 * step, score, None if step == 0 else 0.1,
    ...                1.0, ())
    ...     for name, scores in [("isal", [0.5, 0.8]), ("random", [0.5, 0.6])]
    ...     for seed in (0, 1) for step, score in enumerate(scores)]
    >>> table = format_markdown(summarise(records)).splitlines()
    >>> print(table[0].replace(" (random's final)", ""))
    | strategy | AULC (%) | final (%) | labels to 60.0% | saved vs random | query (s) |
    >>> for row in table[2:]:
    ...     print(row)
    | `isal` | 65.00 ± 0.00 | 80.0 ± 0.0 | 13 | 33% | 0.100 |
    | `random` | 55.00 ± 0.00 | 60.0 ± 0.0 | 20 | 0% | 0.100 |
    """
    has_random = "random" in summary
    header = ["strategy", "AULC (%)", "final (%)"]
    if has_random:
        target = 100 * summary["random"]["final_mean"]
        header += [f"labels to {target:.1f}% (random's final)", "saved vs random"]
    header += ["query (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, s in summary.items():
        final_std = 100 * s["score_std"][-1]
        cells = [
            f"`{name}`",
            f"{100 * s['aulc_mean']:.2f} ± {100 * s['aulc_std']:.2f}",
            f"{100 * s['final_mean']:.1f} ± {final_std:.1f}",
        ]
        if has_random:
            cells += [_count(s["labels_to_reach"]["random"]), _percent(s["saved"]["random"])]
        cells.append(f"{s['query_seconds_mean']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_learning_curves(
    summary: dict[str, dict[str, Any]], path: str | Path, title: str = "", ylabel: str = "score"
) -> None:
    """Mean score ± std over seeds against labelled samples, one line per strategy.

    Drawn off-screen (no display needed); needs matplotlib.

    Parameters
    ----------
    summary : dict
        As :func:`summarise` returns it.
    path : str or Path
        The image file to write (its suffix sets the format).
    title : str, default=""
        Plot title.
    ylabel : str, default="score"
        Label of the vertical axis (the scores are shown in %).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skisal.experiments import StepRecord, plot_learning_curves, summarise
    >>> records = [StepRecord("random", 0, step, 10 + 10 * step, 0.5 + 0.1 * step, None, 1.0, ())
    ...            for step in range(3)]  # one strategy, one seed
    >>> path = Path(tempfile.mkdtemp()) / "curves.png"
    >>> plot_learning_curves(summarise(records), path, title="toy")
    >>> path.exists()
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(figure)  # render off-screen: no display needed
    ax = figure.subplots()
    for name, s in summary.items():
        mean, std = 100 * np.array(s["score_mean"]), 100 * np.array(s["score_std"])
        ax.plot(
            s["n_labeled"],
            mean,
            marker="o",
            ms=3,
            label=f"{name} (AULC {100 * s['aulc_mean']:.2f})",
        )
        ax.fill_between(s["n_labeled"], mean - std, mean + std, alpha=0.15)
    ax.set_title(title)
    ax.set_xlabel("labelled samples")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    figure.savefig(path, dpi=120)


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: "never reached" becomes null."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def write_report(
    records: Sequence[StepRecord], out_dir: str | Path, title: str = "", ylabel: str = "score"
) -> dict[str, dict[str, Any]]:
    """Write ``results.csv``, ``summary.json``, ``summary.md`` and ``learning_curves.png``.

    Parameters
    ----------
    records : sequence of StepRecord
        Every step to report.
    out_dir : str or Path
        An existing folder.
    title : str, default=""
        Title of the plot.
    ylabel : str, default="score"
        Label of the plot's vertical axis.

    Returns
    -------
    dict
        The summary (see :func:`summarise`); in ``summary.json``, ``nan``
        ("never reached") is written as null.

    Raises
    ------
    ValueError
        If no seed has finished runs of every strategy.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skisal.experiments import StepRecord, write_report
    >>> records = [StepRecord("random", 0, step, 10 + 10 * step, 0.5 + 0.1 * step, None, 1.0, ())
    ...            for step in range(3)]  # one strategy, one seed
    >>> out = Path(tempfile.mkdtemp())
    >>> summary = write_report(records, out)
    >>> sorted(p.name for p in out.iterdir())
    ['learning_curves.png', 'results.csv', 'summary.json', 'summary.md']
    """
    out_dir = Path(out_dir)
    fields = [f.name for f in dataclasses.fields(StepRecord)]
    with (out_dir / "results.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        for r in records:
            row = dataclasses.asdict(r)
            row["selected"] = " ".join(map(str, r.selected))
            writer.writerow(row)
    summary = summarise(records)
    text = json.dumps(_without_nan(summary), indent=2, allow_nan=False)
    (out_dir / "summary.json").write_text(text + "\n")
    (out_dir / "summary.md").write_text(format_markdown(summary) + "\n")
    plot_learning_curves(summary, out_dir / "learning_curves.png", title, ylabel)
    return summary
