"""Summaries of an experiment: learning curves, AULC, annotation saved.

:func:`format_summary` is the table ``skisal-experiment`` prints and
:func:`write_report` writes a run's report; the plot is
:class:`~skisal.experiments.ComparisonDisplay`'s. The measures of the paper's
section 4.1: for two strategies A and B, the labels A needs to reach B's final
score (its mean learning curve, linearly interpolated between steps), and the
annotation A saves against B,
``1 - labels_A / labels_B`` with ``labels_B`` the labels B used to get there.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .display import (
    NO_MATPLOTLIB,
    ComparisonDisplay,
    aulc,
    comparison_axes,
    is_isal,
    paired_runs,
)
from .records import StepRecord
from .statistics import ALPHA, paired_comparison, per_step_comparison

__all__ = [
    "aulc",
    "best_baseline",
    "format_markdown",
    "format_summary",
    "labels_to_reach",
    "plot_learning_curves",
    "summarise",
    "write_report",
]


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


def summarise(
    records: Sequence[StepRecord], baseline: str | None = None
) -> dict[str, dict[str, Any]]:
    """Per strategy: mean/std learning curve over seeds, AULC, times, savings, paired tests.

    Savings are computed against ``random`` (when present) and against the
    best other strategy (highest final mean score). Only seeds every strategy
    finished are used, so that the comparison stays paired: each strategy's
    AULC is compared with ``baseline``'s seed by seed (Wilcoxon signed-rank
    test, :func:`~skisal.experiments.statistics.paired_comparison`), and its
    score with random sampling's at every step
    (:func:`~skisal.experiments.statistics.per_step_comparison`).

    Parameters
    ----------
    records : sequence of StepRecord
        Steps of any number of strategies and seeds (as
        :func:`~skisal.experiments.run_experiment` returns them).
    baseline : str, optional
        The strategy the paired test compares with; default the baseline
        with the highest AULC (:func:`best_baseline` with ``by="aulc_mean"``).

    Returns
    -------
    dict
        ``{strategy: {"n_labeled", "score_mean", "score_std", "aulc_mean",
        "aulc_std", "aulc_per_seed", "score_per_seed", "final_mean",
        "query_seconds_mean", "fit_seconds_mean", "seeds", "labels_to_reach",
        "saved", "best_other", "vs_baseline", "vs_random_per_step"}}``, in the
        strategies' order of first appearance;
        ``aulc_per_seed`` and ``score_per_seed`` (one row per seed) follow ``seeds``;
        ``labels_to_reach[B]`` is the labels this strategy needs to reach B's
        final mean score, ``saved[B]`` the fraction of B's final labels that
        saves (``nan``: never reached), ``best_other`` the other strategy
        with the highest final mean score; ``vs_baseline`` the paired test
        against ``baseline`` (None for the baseline itself, or without one) and
        ``vs_random_per_step`` the per-step differences to random (None for
        random, or without it).

    Raises
    ------
    ValueError
        If no seed has finished runs of every strategy, or ``baseline`` is
        not one of the strategies.

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
    seeds, runs_by_strategy = paired_runs(records)
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in runs_by_strategy.items():
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
            "aulc_per_seed": per_seed_aulc,
            "score_per_seed": scores.tolist(),
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
    baseline = best_baseline(summary, by="aulc_mean") if baseline is None else baseline
    paired = paired_comparison(summary, baseline) if baseline is not None else {}
    steps = per_step_comparison(summary) if "random" in summary else {}
    for name, s in summary.items():
        s["vs_baseline"] = paired.get(name)
        s["vs_random_per_step"] = steps.get(name)
    return summary


#: Width of the text ``format_summary`` writes, in characters.
WIDTH = 100


def best_baseline(summary: dict[str, dict[str, Any]], by: str = "final_mean") -> str | None:
    """The strategy whose labels the summaries count against: the best baseline.

    The strategy with the highest final mean score (or ``by``) among those
    that are neither ISAL's modes (names starting with "isal") nor
    ``random``; random sampling when there is no other; None without either.

    Parameters
    ----------
    summary : dict
        As :func:`summarise` returns it.
    by : {"final_mean", "aulc_mean"}, default="final_mean"
        What "best" means: the final score (what labels-to-reach counts
        against) or the AULC (what the paired test compares with).

    Returns
    -------
    str or None
        The strategy's name.

    Examples
    --------
    >>> from skisal.experiments import best_baseline
    >>> summary = {"isal": {"final_mean": 0.9}, "margin": {"final_mean": 0.85},
    ...            "entropy": {"final_mean": 0.87}, "random": {"final_mean": 0.8}}
    >>> best_baseline(summary)
    'entropy'
    >>> best_baseline({"isal": {"final_mean": 0.9}, "random": {"final_mean": 0.8}})
    'random'
    """
    others = [name for name in summary if not is_isal(name) and name != "random"]
    if others:
        return max(others, key=lambda name: summary[name][by])
    return "random" if "random" in summary else None


def _by_aulc(summary: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(summary, key=lambda name: -summary[name]["aulc_mean"])


def _pm(mean: float, std: float, spec: str, n_seeds: int) -> str:
    """ "mean ± std" in ``spec`` format, or the mean alone for one seed."""
    text = format(mean, spec)
    return text if n_seeds == 1 else f"{text} ± {format(std, spec.lstrip('+'))}"


def _n_seeds(summary: dict[str, dict[str, Any]]) -> int:
    return len(next(iter(summary.values())).get("seeds", [])) or 1


def _cells(summary: dict[str, dict[str, Any]], name: str) -> tuple[str, str]:
    """The AULC and final-score cells of strategy ``name``, in %."""
    s, n_seeds = summary[name], _n_seeds(summary)
    return (
        _pm(100 * s["aulc_mean"], 100 * s["aulc_std"], ".2f", n_seeds),
        _pm(100 * s["final_mean"], 100 * s["score_std"][-1], ".1f", n_seeds),
    )


def _vs_random(summary: dict[str, dict[str, Any]], name: str) -> str:
    """AULC minus random's on the same seed, in points: mean ± std over seeds."""
    if name == "random":
        return "reference"
    own, random = summary[name], summary["random"]
    if "aulc_per_seed" not in own or "aulc_per_seed" not in random:
        return f"{100 * (own['aulc_mean'] - random['aulc_mean']):+.2f}"  # an older summary
    difference = 100 * (np.array(own["aulc_per_seed"]) - np.array(random["aulc_per_seed"]))
    return _pm(difference.mean(), difference.std(), "+.2f", _n_seeds(summary))


def _labels_to(summary: dict[str, dict[str, Any]], name: str, reference: str) -> str:
    """The labels ``name`` needs to reach ``reference``'s final score, in words."""
    used = summary[reference]["n_labeled"][-1]
    if name == reference:
        return f"{used} (reference)"
    needed = summary[name]["labels_to_reach"][reference]
    if needed is None or math.isnan(needed):
        return "not reached"
    saved = 1 - needed / used
    if abs(saved) < 0.005:
        return f"{needed:.0f} (as many)"
    return f"{needed:.0f} ({100 * abs(saved):.0f}% {'fewer' if saved > 0 else 'more'})"


def _fit(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One row: the first cell left-aligned (cut to its width), the others right-aligned."""
    first = cells[0] if len(cells[0]) <= widths[0] else cells[0][: widths[0] - 1] + "~"
    return f"{first:<{widths[0]}}" + "".join(
        f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True)
    )


def _tested_baseline(summary: dict[str, dict[str, Any]]) -> str | None:
    """The baseline of the summary's paired tests; None in a summary without them."""
    for s in summary.values():
        if s.get("vs_baseline"):
            return s["vs_baseline"]["baseline"]
    return None


def _verdict_cell(test: dict[str, Any]) -> str:
    """``-0.60 ± 0.31, 1 better, 9 worse of 10, p = 0.004: loses`` (seeds better or worse)."""
    n = test["better"] + test["worse"] + test["equal"]
    spread = f" ± {test['difference_std']:.2f}" if n > 1 else ""
    p = test["p_value"]
    p_text = "no test" if math.isnan(p) else f"p = {p:.2g}"
    return (
        f"{test['difference_mean']:+.2f}{spread}, {test['better']} better, {test['worse']} "
        f"worse of {n}, {p_text}: {test['verdict']}"
    )


def _paired_lines(
    summary: dict[str, dict[str, Any]], names: list[str], rank: int, name_width: int
) -> list[str]:
    """The paired tests against the baseline and the steps below random, for the terminal."""
    baseline = _tested_baseline(summary)
    lines = []
    if baseline is not None:
        lines += [
            "",
            f"Against {baseline}: AULC minus {baseline}'s on the same seed, in points.",
            f"Seeds better and worse; wins or loses at Wilcoxon signed-rank p < {ALPHA}, "
            "else ties:",
        ]
        for name in names:
            test = summary[name].get("vs_baseline")
            if test:
                cell = _verdict_cell(test)
                width = max(10, min(name_width, WIDTH - rank - len(cell)))
                lines.append(" " * rank + _fit([name], [width - 1]) + " " + cell)
        n_seeds = _n_seeds(summary)
        if 2 / 2**n_seeds >= ALPHA:  # the least two-sided p of the exact test
            lines.append(
                f"With {n_seeds} seed{'s' * (n_seeds > 1)} no difference can reach p < {ALPHA} "
                "(6 seeds or more can): every verdict is ties."
            )
    below = {
        name: summary[name]["vs_random_per_step"]["below"]
        for name in names
        if summary[name].get("vs_random_per_step")
    }
    if below:
        under = [f"{name} at {', '.join(map(str, n))} labels" for name, n in below.items() if n]
        lines += ["", "Mean below random's at some step: " + ("; ".join(under) or "none") + "."]
    return [
        line if len(line) <= WIDTH else textwrap.fill(line, WIDTH, subsequent_indent="  ")
        for line in lines
    ]


def format_summary(summary: dict[str, dict[str, Any]], score_name: str = "test accuracy") -> str:
    """The table ``skisal-experiment`` prints: one row per strategy, best first.

    At most :data:`WIDTH` (100) characters a line. A header says what the
    score is; the rows, sorted by AULC, give the AULC, its difference to
    random sampling's on the same seed, the final score, the labels needed to
    reach the final score of the best baseline (see :func:`best_baseline`)
    and the seconds per query; notes below say what each column means.

    Parameters
    ----------
    summary : dict
        As :func:`summarise` returns it.
    score_name : str, default="test accuracy"
        What the score is (the estimator's ``score``: accuracy for classifiers).

    Returns
    -------
    str
        The header, the table and the notes.

    Examples
    --------
    >>> from skisal.experiments import StepRecord, summarise
    >>> records = [  # three strategies, two seeds, a query of 10 labels
    ...     StepRecord(name, seed, step, 10 + 10 * step, score + seed / 100,
    ...                None if step == 0 else 0.1, 1.0, ())
    ...     for name, scores in [("isal", [0.5, 0.8]), ("margin", [0.5, 0.7]),
    ...                          ("random", [0.5, 0.6])]
    ...     for seed in (0, 1) for step, score in enumerate(scores)]
    >>> print(format_summary(summarise(records)))  # doctest: +ELLIPSIS
    Test accuracy in % (higher is better), mean ± std over 2 seeds, 10 to 20 labelled samples.
    <BLANKLINE>
       strategy          AULC %      vs random     final %  labels to 70.5%  s/query
    1  isal        65.50 ± 0.50  +10.00 ± 0.00  80.5 ± 0.5   17 (17% fewer)    0.100
    2  margin      60.50 ± 0.50   +5.00 ± 0.00  70.5 ± 0.5   20 (reference)    0.100
    3  random      55.50 ± 0.50      reference  60.5 ± 0.5      not reached    0.100
    <BLANKLINE>
    Against margin: AULC minus margin's on the same seed, in points.
    Seeds better and worse; wins or loses at Wilcoxon signed-rank p < 0.05, else ties:
       isal      +5.00 ± 0.00, 2 better, 0 worse of 2, p = 0.5: ties
       random    -5.00 ± 0.00, 0 better, 2 worse of 2, p = 0.5: ties
    With 2 seeds no difference can reach p < 0.05 (6 seeds or more can): every verdict is ties.
    <BLANKLINE>
    Mean below random's at some step: none.
    <BLANKLINE>
    AULC: area under the learning curve divided by its width, the mean test accuracy over the run.
    ...
    """
    names = _by_aulc(summary)
    first = summary[names[0]]
    n_seeds = _n_seeds(summary)
    n_labeled = first["n_labeled"]
    score = score_name[:1].upper() + score_name[1:]
    header = (
        f"{score} in % (higher is better), "
        + (f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else "1 seed")
        + f", {n_labeled[0]} to {n_labeled[-1]} labelled samples."
    )
    reference = best_baseline(summary)
    has_random = "random" in summary
    columns = ["strategy", "AULC %"] + ["vs random"] * has_random + ["final %"]
    if reference is not None:
        target = f"{100 * summary[reference]['final_mean']:.1f}%"
        columns.append(f"labels to {target}")
    columns.append("s/query")
    rows = []
    for name in names:
        s = summary[name]
        aulc_cell, final_cell = _cells(summary, name)
        row = [name, aulc_cell, *([_vs_random(summary, name)] if has_random else []), final_cell]
        if reference is not None:
            row.append(_labels_to(summary, name, reference))
        row.append(f"{s['query_seconds_mean']:.3f}")
        rows.append(row)
    widths = [max(len(c), *(len(r[i]) for r in rows)) + 2 for i, c in enumerate(columns)]
    rank = len(str(len(names))) + 2
    widths[0] = max(10, min(widths[0], WIDTH - rank - sum(widths[1:])))
    table = [" " * rank + _fit(columns, widths)]
    table += [f"{i:<{rank}}" + _fit(row, widths) for i, row in enumerate(rows, 1)]

    table += _paired_lines(summary, names, rank, widths[0])

    notes = [
        f"AULC: area under the learning curve divided by its width, the mean {score_name} "
        "over the run."
    ]
    if has_random:
        notes.append(
            "vs random: AULC minus random's on the same seed, in points; above 0 is better."
        )
    if reference is not None:
        notes.append(
            f"labels to {target}: the labelled samples at which the mean curve first reaches "
            f"{target}, the final {score_name} of {reference} (the best baseline, "
            f"{summary[reference]['n_labeled'][-1]} labels)."
        )
    notes.append("s/query: seconds per query.")
    wrapped = [textwrap.fill(note, WIDTH, subsequent_indent="  ") for note in notes]
    text = "\n".join([header, "", *table, "", *wrapped])
    return text


def format_markdown(summary: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: AULC, its difference to random, final score, labels, query time.

    One row per strategy, sorted by AULC; the labels each needs to reach
    random sampling's final score (the paper's measure) and the best
    baseline's (see :func:`best_baseline`), in words.

    Parameters
    ----------
    summary : dict
        As :func:`summarise` returns it.

    Returns
    -------
    str
        The table (``summary.md``).

    Examples
    --------
    >>> from skisal.experiments import StepRecord, summarise
    >>> records = [  # two strategies, two seeds, a query of 10 labels
    ...     StepRecord(name, seed, step, 10 + 10 * step, score, None if step == 0 else 0.1,
    ...                1.0, ())
    ...     for name, scores in [("isal", [0.5, 0.8]), ("random", [0.5, 0.6])]
    ...     for seed in (0, 1) for step, score in enumerate(scores)]
    >>> print(format_markdown(summarise(records)))  # doctest: +NORMALIZE_WHITESPACE
    | strategy | AULC (%) | final (%) | labels to reach random's final 60.0% |
      AULC minus random's (points, paired by seed; Wilcoxon signed-rank test) | query (s) |
    | --- | --- | --- | --- | --- | --- |
    | `isal` | 65.00 ± 0.00 | 80.0 ± 0.0 | 13 (33% fewer) |
      +10.00 ± 0.00, 2 better, 0 worse of 2, p = 0.5: ties | 0.100 |
    | `random` | 55.00 ± 0.00 | 60.0 ± 0.0 | 20 (reference) | reference | 0.100 |
    <BLANKLINE>
    Mean score minus random's on the same seed, in points, at each labelled-set size
      (**bold**: below random):
    <BLANKLINE>
    | strategy | 10 | 20 |
    | --- | --- | --- |
    | `isal` | +0.0 | +20.0 |

    Two seeds cannot make a Wilcoxon test significant (the least two-sided
    p is 0.5; 6 seeds give 0.031), so the verdict is "ties".
    """
    tested = _tested_baseline(summary)
    has_random = "random" in summary and tested != "random"  # else the test's column says it
    reference = best_baseline(summary)
    header = ["strategy", "AULC (%)"]
    if has_random:
        header.append("AULC minus random's (points, paired by seed)")
    header.append("final (%)")
    targets = ["random"] * ("random" in summary) + [reference] * (reference not in (None, "random"))
    for target in targets:
        header.append(
            f"labels to reach {target}'s final {100 * summary[target]['final_mean']:.1f}%"
        )
    if tested is not None:
        header.append(f"AULC minus {tested}'s (points, paired by seed; Wilcoxon signed-rank test)")
    header.append("query (s)")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name in _by_aulc(summary):
        s = summary[name]
        aulc_cell, final_cell = _cells(summary, name)
        cells = [
            f"`{name}`",
            aulc_cell,
            *([_vs_random(summary, name)] if has_random else []),
            final_cell,
        ]
        cells += [_labels_to(summary, name, target) for target in targets]
        if tested is not None:
            test = s.get("vs_baseline")
            cells.append(_verdict_cell(test) if test else "reference")
        cells.append(f"{s['query_seconds_mean']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + _per_step_table(summary))


def _per_step_table(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Each strategy minus random at every step, mean over seeds, in Markdown."""
    steps = {n: summary[n]["vs_random_per_step"] for n in _by_aulc(summary)}
    steps = {n: step for n, step in steps.items() if step}
    if not steps:
        return []
    n_labeled = next(iter(steps.values()))["n_labeled"]
    lines = [
        "",
        "Mean score minus random's on the same seed, in points, at each labelled-set "
        "size (**bold**: below random):",
        "",
        "| strategy | " + " | ".join(map(str, n_labeled)) + " |",
        "|" + " --- |" * (len(n_labeled) + 1),
    ]
    for name, step in steps.items():
        cells = [f"**{m:+.1f}**" if m < 0 else f"{m:+.1f}" for m in step["difference_mean"]]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return lines


def plot_learning_curves(
    summary: dict[str, dict[str, Any]],
    path: str | Path,
    title: str = "",
    ylabel: str | None = None,
    *,
    score_name: str = "test accuracy",
) -> ComparisonDisplay:
    """Draw a summary with :class:`~skisal.experiments.ComparisonDisplay` into an image file.

    Drawn off-screen (no display needed); needs matplotlib. The panels:
    the mean learning curves, the legend sorted by AULC; and, when the
    summary has ``random`` and another strategy, each strategy's difference to it on the same
    seed, per step and over the whole run.

    Parameters
    ----------
    summary : dict
        As :func:`summarise` returns it (with ``score_per_seed``).
    path : str or Path
        The image file to write (its suffix sets the format).
    title : str, default=""
        Plot title.
    ylabel : str, optional
        Label of the vertical axis of the learning curves (default: from
        ``score_name``: "test accuracy in % (higher is better)").
    score_name : str, default="test accuracy"
        What the score is.

    Returns
    -------
    ComparisonDisplay
        The display drawn.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from skisal.experiments import StepRecord, plot_learning_curves, summarise
    >>> records = [StepRecord(name, 0, step, 10 + 10 * step, score, None, 1.0, ())
    ...            for name, curve in [("random", [0.5, 0.6]), ("isal", [0.5, 0.8])]
    ...            for step, score in enumerate(curve)]
    >>> path = Path(tempfile.mkdtemp()) / "curves.png"
    >>> display = plot_learning_curves(summarise(records), path, title="toy")
    >>> path.exists(), display.order_
    (True, ['isal', 'random'])
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(NO_MATPLOTLIB) from exc

    figure = Figure()
    FigureCanvasAgg(figure)  # render off-screen: no display needed
    baseline = "random" if "random" in summary and len(summary) > 1 else None
    display = ComparisonDisplay.from_summary(
        summary,
        baseline=baseline,
        score_name=score_name,
        title=title,
        ax=comparison_axes(figure, baseline=baseline is not None),
    )
    if ylabel is not None:
        display.ax_.set_ylabel(ylabel)
    figure.savefig(path, dpi=100)
    return display


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: "never reached" becomes null."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def write_report(
    records: Sequence[StepRecord],
    out_dir: str | Path,
    title: str = "",
    ylabel: str | None = None,
    *,
    score_name: str = "test accuracy",
    baseline: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Write ``results.csv``, ``summary.json``, ``summary.md`` and ``learning_curves.png``.

    The plot is :class:`~skisal.experiments.ComparisonDisplay`'s (see
    :func:`plot_learning_curves`); ``summary.md`` is :func:`format_markdown`'s table.

    Parameters
    ----------
    records : sequence of StepRecord
        Every step to report.
    out_dir : str or Path
        An existing folder.
    title : str, default=""
        Title of the plot.
    ylabel : str, optional
        Label of the vertical axis of the learning curves (default: from ``score_name``).
    score_name : str, default="test accuracy"
        What the score is.
    baseline : str, optional
        The strategy of the paired tests (see :func:`summarise`).

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
    summary = summarise(records, baseline=baseline)
    text = json.dumps(_without_nan(summary), indent=2, allow_nan=False)
    (out_dir / "summary.json").write_text(text + "\n")
    (out_dir / "summary.md").write_text(format_markdown(summary) + "\n")
    plot_learning_curves(
        summary, out_dir / "learning_curves.png", title, ylabel, score_name=score_name
    )
    return summary
