"""The experiment's plot (ComparisonDisplay) and the summary skisal-experiment prints."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure

from skisal.experiments import (
    STRATEGIES,
    ComparisonDisplay,
    StepRecord,
    best_baseline,
    format_markdown,
    format_summary,
    summarise,
)
from skisal.experiments.display import comparison_axes

# Two seeds, three steps (10, 20, 30 labels). Per seed, AULC = (s0 + 2 s1 + s2) / 4.
CURVES = {
    "random": [[0.5, 0.6, 0.7], [0.4, 0.7, 0.8]],  # AULC 0.600, 0.650
    "isal": [[0.5, 0.7, 0.8], [0.4, 0.6, 0.9]],  # AULC 0.675, 0.625
    "margin": [[0.5, 0.8, 0.9], [0.4, 0.8, 0.9]],  # AULC 0.750, 0.725
    "isal_diverse": [[0.5, 0.9, 0.9], [0.4, 0.9, 0.9]],  # AULC 0.800, 0.775
}
AULC_ORDER = ["isal_diverse", "margin", "isal", "random"]

# The demo's strategies, which the built-in names are.
DEMO = [
    "isal",
    "isal_top",
    "isal_diverse",
    "gradient_similarity",
    "coreset",
    "uncertainty",
    "margin",
    "entropy",
    "random",
]


def _records(curves, n0=10, q=10) -> list[StepRecord]:
    return [
        StepRecord(
            name,
            seed,
            step,
            n0 + q * step,
            score,
            None if step == 0 else 0.01 * (1 + seed),
            1.0,
            () if step == 0 else tuple(range(q * step, q * step + q)),
        )
        for name, runs in curves.items()
        for seed, run in enumerate(runs)
        for step, score in enumerate(run)
    ]


@pytest.fixture
def axes():
    figure = Figure()
    return comparison_axes(figure)


def test_difference_is_the_hand_computed_paired_difference(axes):
    display = ComparisonDisplay.from_records(_records(CURVES), ax=axes)
    np.testing.assert_allclose(display.difference_["isal"], [[0, 10, 10], [0, -10, 10]])
    np.testing.assert_allclose(display.difference_["margin"], [[0, 20, 20], [0, 10, 10]])
    assert set(display.difference_) == {"isal", "margin", "isal_diverse"}
    np.testing.assert_allclose(display.aulc_["isal"], [67.5, 62.5])
    # The second panel: the per-step mean over seeds of those paired differences.
    lines = {tuple(np.round(line.get_ydata(), 6)) for line in display.axes_[1].get_lines()}
    assert (0.0, 0.0, 10.0) in lines  # isal: mean of (0, 10, 10) and (0, -10, 10)
    assert (0.0, 15.0, 15.0) in lines  # margin
    # The third panel: AULC minus random's per seed, mean over seeds (isal: +7.5, -2.5).
    texts = [t.get_text() for t in display.axes_[2].texts]
    assert "+2.50 ± 5.00, better on 1 of 2" in texts
    assert "+16.25 ± 3.75, better on 2 of 2" in texts  # isal_diverse: +20, +12.5


def test_legend_is_sorted_by_aulc_and_shows_it(axes):
    display = ComparisonDisplay.from_records(_records(CURVES), ax=axes)
    assert display.order_ == AULC_ORDER
    labels = [t.get_text() for t in display.ax_.get_legend().get_texts()]
    assert [label.split(": ")[0] for label in labels] == [
        f"{i}. {name}" for i, name in enumerate(AULC_ORDER, 1)
    ]
    assert labels[2] == "3. isal: 65.00 ± 2.50"
    assert "mean ± std over 2 seeds" in display.ax_.get_legend().get_title().get_text()
    ticks = [t.get_text() for t in display.axes_[2].get_yticklabels()]
    assert ticks == AULC_ORDER


def test_axes_labels_say_units_and_direction(axes):
    display = ComparisonDisplay.from_records(_records(CURVES), ax=axes, title="toy")
    assert display.ax_.get_ylabel() == "test accuracy in % (higher is better)"
    assert display.axes_[1].get_xlabel() == "labelled samples"
    assert "in points" in display.axes_[1].get_ylabel()
    assert "above 0: better" in display.axes_[1].get_title()
    assert display.ax_.get_title() == "toy"


def test_isal_stands_out_and_random_is_grey(axes):
    display = ComparisonDisplay.from_records(_records(CURVES), ax=axes)
    lines = display.lines_
    for isal in ("isal", "isal_diverse"):
        assert lines[isal].get_linestyle() == "-" and lines[isal].get_marker() not in ("", "None")
        assert lines[isal].get_linewidth() > lines["margin"].get_linewidth()
    assert lines["margin"].get_linestyle() == "--"
    assert lines["isal"].get_color() != lines["isal_diverse"].get_color()
    assert matplotlib.colors.to_rgb(lines["random"].get_color()) == (0.5, 0.5, 0.5)


def test_display_attributes_and_given_axes():
    figure = Figure()
    ax = figure.subplots()
    display = ComparisonDisplay.from_records(_records(CURVES), ax=ax)
    assert display.ax_ is ax and display.axes_ == (ax,) and display.figure_ is figure
    assert len(ax.get_lines()) == len(CURVES)
    # plot() again into two new Axes: returns itself, draws there.
    figure2 = Figure()
    top, bottom = figure2.subplots(2, 1)
    assert display.plot(ax=[top, bottom], title="again") is display
    assert display.ax_ is top and display.figure_ is figure2 and display.axes_ == (top, bottom)
    assert len(bottom.get_lines()) == len(CURVES)  # three differences and the zero line
    assert len(ax.get_lines()) == len(CURVES)  # the first Axes is left as it was


def test_plot_without_axes_makes_a_figure():
    import matplotlib.pyplot as plt

    display = ComparisonDisplay(
        [10, 20, 30], {name: np.array(runs) for name, runs in CURVES.items()}
    ).plot()
    try:
        assert len(display.axes_) == 3 and display.figure_ is display.ax_.figure
        assert display.order_ == AULC_ORDER
    finally:
        plt.close(display.figure_)
    display = ComparisonDisplay([10, 20, 30], {"isal": [0.5, 0.6, 0.7]}, baseline=None).plot()
    try:
        assert len(display.axes_) == 1 and display.difference_ == {}
        assert display.ax_.get_legend().get_title().get_text().startswith("AULC in %, 1 seed")
    finally:
        plt.close(display.figure_)


def test_constructor_does_not_touch_its_inputs(axes):
    scores = {name: np.array(runs) for name, runs in CURVES.items()}
    copies = {name: s.copy() for name, s in scores.items()}
    display = ComparisonDisplay([10, 20, 30], scores).plot(ax=axes)
    assert display.scores is scores
    for name, s in scores.items():
        np.testing.assert_array_equal(s, copies[name])


def test_errors_name_the_argument_and_the_fix(tmp_path):
    ax = Figure().subplots()
    with pytest.raises(ValueError, match=r"baseline='uniform' is not among.*baseline=None"):
        ComparisonDisplay([10, 20], {"isal": [[0.5, 0.6]]}, baseline="uniform").plot(ax=ax)
    with pytest.raises(ValueError, match=r"scores\['isal'\] must have shape \(n_seeds, 3\)"):
        ComparisonDisplay([10, 20, 30], {"isal": [[0.5, 0.6]]}, baseline=None).plot(ax=ax)
    with pytest.raises(ValueError, match="same seeds"):
        ComparisonDisplay([10, 20], {"random": [[0.5, 0.6]], "isal": [[0.5, 0.6]] * 2}).plot(ax=ax)
    with pytest.raises(ValueError, match="after the first need a baseline"):
        ComparisonDisplay([10, 20], {"isal": [0.5, 0.6]}, baseline=None).plot(
            ax=Figure().subplots(2)
        )
    with pytest.raises(ValueError, match="ax must be one, two or three"):
        ComparisonDisplay([10, 20], {"random": [0.5, 0.6]}).plot(ax=Figure().subplots(4))
    with pytest.raises(ValueError, match=r"path: no records in .*records\.jsonl"):
        ComparisonDisplay.from_results_dir(tmp_path)
    uneven = _records({"random": CURVES["random"]}) + _records({"isal": CURVES["isal"]}, n0=5)
    with pytest.raises(ValueError, match="labelled-set sizes differ"):
        ComparisonDisplay.from_records(uneven, ax=ax)
    old = {name: {"n_labeled": [10], "score_mean": [0.5]} for name in ("isal", "random")}
    with pytest.raises(ValueError, match="from_results_dir"):
        ComparisonDisplay.from_summary(old, ax=ax)


def test_from_results_dir_and_from_summary_agree(tmp_path, axes):
    records = _records(CURVES)
    lines = [json.dumps({**dataclasses.asdict(r), "selected": list(r.selected)}) for r in records]
    (tmp_path / "records.jsonl").write_text("\n".join(lines) + "\n")
    from_dir = ComparisonDisplay.from_results_dir(tmp_path, ax=axes)
    from_summary = ComparisonDisplay.from_summary(summarise(records), ax=comparison_axes(Figure()))
    assert from_dir.order_ == from_summary.order_ == AULC_ORDER
    for name in CURVES:
        np.testing.assert_allclose(from_dir.aulc_[name], from_summary.aulc_[name])


def test_summarise_keeps_the_per_seed_numbers():
    summary = summarise(_records(CURVES))
    assert summary["isal"]["score_per_seed"] == CURVES["isal"]
    np.testing.assert_allclose(summary["isal"]["aulc_per_seed"], [0.675, 0.625])


def test_import_without_matplotlib_and_the_error_when_drawing():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import skisal.experiments as e\n"
        "try:\n"
        "    e.ComparisonDisplay([1, 2], {'random': [0.5, 0.6]}).plot()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "needs matplotlib" in out.stdout and "pip install matplotlib" in out.stdout


def test_figure_is_the_top_level_one_for_a_subfigure():
    figure = Figure()
    subfigure = figure.subfigures(1, 2)[1]
    display = ComparisonDisplay.from_records(_records(CURVES), ax=subfigure.subplots(2, 1))
    assert display.figure_ is figure


# -- the printed summary -----------------------------------------------------------------------


def _demo_summary(names=DEMO):
    """Nine strategies (the demo's), three seeds; isal_top is last but random."""
    rng = np.random.RandomState(0)
    base = np.array([0.75, 0.88, 0.93, 0.95, 0.96])
    # Per strategy its gain over random: isal_diverse first, isal_top last but random.
    gains = [0.02, 0.01, 0.05, 0.03, 0.035, 0.04, 0.045, 0.025, 0.0]
    gains = dict(zip(names, gains, strict=True))
    curves = {}
    for name in names:
        gain = np.array([0, 1, 1, 0.5, 0.3]) * gains[name]
        curves[name] = [
            list(np.clip(base + gain + rng.normal(0, 0.001, 5), 0, 1)) for _ in range(3)
        ]
    for runs in curves.values():  # the same initial network: the same first score
        for run in runs:
            run[0] = 0.75
    return summarise(_records(curves, n0=50, q=50))


def test_demo_strategies_are_the_built_in_ones():
    assert set(DEMO) == set(STRATEGIES)


def test_format_summary_fits_in_100_columns_and_says_what_it_shows():
    summary = _demo_summary()
    text = format_summary(summary)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].startswith("Test accuracy in % (higher is better), mean ± std over 3 seeds")
    header = next(line for line in lines if "strategy" in line)
    assert "AULC" in header and "vs random" in header
    rows = [line for line in lines if line[:1].isdigit()]
    names = [row.split()[1] for row in rows]
    assert names == sorted(summary, key=lambda n: -summary[n]["aulc_mean"])
    assert names[0] == "isal_diverse" and names[-2:] == ["isal_top", "random"]
    assert "never" not in text and "(entropy)" not in text and "saved vs" not in text
    random_row = rows[names.index("random")]
    assert "fewer" not in random_row and "reference" in random_row
    assert "AULC: area under the learning curve" in text
    reference = best_baseline(summary)
    assert reference not in ("random", "isal", "isal_diverse")
    assert f"the final test accuracy of {reference} (the best baseline" in " ".join(text.split())
    for row in rows:
        assert row.split()[1] == reference or any(
            words in row for words in ("% fewer", "% more", "as many", "not reached")
        )


def test_format_summary_cuts_long_names_to_fit():
    names = [f"mypackage.strategies:{name}_with_a_long_suffix" for name in DEMO[:-1]]
    summary = _demo_summary([*names, "random"])
    lines = format_summary(summary, score_name="test score").splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].startswith("Test score in %")


def test_format_summary_labels_in_words():
    summary = summarise(_records(CURVES))
    assert best_baseline(summary) == "margin"
    text = format_summary(summary)
    rows = {line.split()[1]: line for line in text.splitlines() if line[:1].isdigit()}
    # margin ends at 90%; isal_diverse reaches it at 20 labels, a third fewer than 30.
    assert rows["isal_diverse"].rstrip().endswith("20 (33% fewer)    0.015")
    assert "30 (reference)" in rows["margin"]
    assert "not reached" in rows["random"] and "reference" in rows["random"]
    assert "not reached" in rows["isal"]  # its mean curve ends at 85%


def test_format_markdown_sorted_in_words():
    table = format_markdown(summarise(_records(CURVES))).split("\n\n")[0].splitlines()
    assert "labels to reach random's final 75.0%" in table[0]
    assert "labels to reach margin's final 90.0%" in table[0]
    assert [row.split("`")[1] for row in table[2:]] == AULC_ORDER
    random_row = table[-1]
    assert random_row.startswith("| `random` |") and "| reference |" in random_row
    assert "fewer" not in random_row and "never" not in "\n".join(table)


def test_one_seed_has_no_spread():
    summary = summarise(_records({name: runs[:1] for name, runs in CURVES.items()}))
    text = format_summary(summary)
    assert "±" not in text.split("\n", 1)[1].split("AULC:")[0]  # no "± 0.00" in the table
    assert ", 1 seed," in text.splitlines()[0]
    assert not math.isnan(summary["isal"]["aulc_mean"])


def test_summaries_without_random_have_no_random_column():
    curves = {name: runs for name, runs in CURVES.items() if name != "random"}
    summary = summarise(_records(curves))
    text, markdown = format_summary(summary), format_markdown(summary)
    header = next(line for line in text.splitlines() if "strategy" in line)
    assert "vs random" not in header and "AULC" in header
    assert "minus random" not in markdown.splitlines()[0]
    rows = [line for line in markdown.splitlines()[2:] if line.startswith("| `")]
    assert {row.split("`")[1] for row in rows} >= set(curves)
