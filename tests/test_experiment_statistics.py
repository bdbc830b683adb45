"""Paired tests in the experiment summaries: verdicts computed from per-seed differences."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import wilcoxon

from skisal.experiments import StepRecord, format_markdown, format_summary, summarise, write_report
from skisal.experiments.cli import parse_args
from skisal.experiments.statistics import (
    paired_comparison,
    per_step_comparison,
    verdict,
    wilcoxon_p,
)

N_SEEDS = 8
OFFSETS = np.linspace(-0.02, 0.02, N_SEEDS)  # seeds differ in difficulty, shared by strategies


def _records(curves: dict[str, list[list[float]]]) -> list[StepRecord]:
    """One run per strategy and seed; ``curves[name][seed]`` is its score per step."""
    return [
        StepRecord(name, seed, step, 10 + 10 * step, score, None if step == 0 else 0.1, 1.0, ())
        for name, per_seed in curves.items()
        for seed, scores in enumerate(per_seed)
        for step, score in enumerate(scores)
    ]


def _curves() -> dict[str, list[list[float]]]:
    rng = np.random.RandomState(0)
    base = np.array([0.5, 0.6, 0.7, 0.8])
    margin = [list(base + np.r_[0, 0.05, 0.05, 0.05] + o) for o in OFFSETS]
    return {
        "margin": margin,
        # better than margin on every seed, by varying amounts: wins
        "isal_good": [
            list(np.add(m, np.r_[0, 1, 1, 1] * (0.01 + 0.01 * s))) for s, m in enumerate(margin)
        ],
        # worse on every seed: loses; below random at the second step
        "isal_bad": [
            list(np.add(m, np.r_[0, -0.1, -0.03, -0.02] - 0.001 * s * np.r_[0, 1, 1, 1]))
            for s, m in enumerate(margin)
        ],
        # noise around margin: ties
        "entropy": [list(np.add(m, np.r_[0, 1, 1, 1] * rng.normal(0, 0.01))) for m in margin],
        "random": [list(base + o) for o in OFFSETS],
    }


def test_wilcoxon_p_is_scipys_and_handles_degenerate_cases():
    d = np.random.RandomState(1).normal(0.2, 1.0, 12)
    assert wilcoxon_p(d) == pytest.approx(wilcoxon(d).pvalue)
    assert wilcoxon_p([1.0] * 6) == pytest.approx(2 / 2**6)  # exact: 2 of 64 sign patterns
    assert wilcoxon_p([0.0, 0.0]) == 1.0 and np.isnan(wilcoxon_p([]))
    assert verdict(1.0, float("nan")) == "ties"


def test_verdicts_follow_the_paired_differences():
    summary = summarise(_records(_curves()), baseline="margin")
    tests = {name: s["vs_baseline"] for name, s in summary.items()}
    assert tests["margin"] is None
    assert tests["isal_good"]["verdict"] == "wins" and tests["isal_good"]["better"] == N_SEEDS
    assert tests["isal_bad"]["verdict"] == "loses" and tests["isal_bad"]["worse"] == N_SEEDS
    assert tests["entropy"]["verdict"] == "ties"
    # the differences are the hand-computed per-seed AULC differences, in points
    own = np.array(summary["isal_good"]["aulc_per_seed"])
    base = np.array(summary["margin"]["aulc_per_seed"])
    np.testing.assert_allclose(tests["isal_good"]["difference_per_seed"], 100 * (own - base))
    assert tests["isal_good"]["p_value"] == pytest.approx(wilcoxon(100 * (own - base)).pvalue)


def test_per_step_comparison_names_the_steps_below_random():
    summary = summarise(_records(_curves()))
    step = summary["isal_bad"]["vs_random_per_step"]
    assert step["n_labeled"] == [10, 20, 30, 40]
    np.testing.assert_allclose(step["difference_mean"][:2], [0.0, -5.0 - 0.35], atol=1e-9)
    assert step["below"] == [20]
    assert summary["isal_good"]["vs_random_per_step"]["below"] == []
    assert summary["random"]["vs_random_per_step"] is None
    direct = per_step_comparison(summary)["isal_bad"]
    assert direct["better"][1] == 0  # no seed above random at 20 labels


def test_the_default_baseline_is_the_best_non_isal_non_random_aulc():
    summary = summarise(_records(_curves()))
    assert {s["vs_baseline"]["baseline"] for s in summary.values() if s["vs_baseline"]} == {
        "margin" if summary["margin"]["aulc_mean"] >= summary["entropy"]["aulc_mean"] else "entropy"
    }
    with pytest.raises(ValueError, match="baseline 'nope' is not one of the strategies"):
        summarise(_records(_curves()), baseline="nope")
    with pytest.raises(ValueError, match="reference 'random' is not one"):
        per_step_comparison({"a": {"n_labeled": [1], "score_per_seed": [[0.5]]}})
    with pytest.raises(ValueError, match="baseline 'x'"):
        paired_comparison({"a": {"aulc_per_seed": [0.5]}}, "x")


def test_terminal_markdown_and_json_carry_the_verdicts(tmp_path):
    records = _records(_curves())
    summary = write_report(records, tmp_path, baseline="margin")
    text = format_summary(summary)
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "Against margin: AULC minus margin's on the same seed" in text
    lines = {line.split()[0]: line for line in text.splitlines() if "worse of 8" in line}
    assert lines["isal_good"].endswith(": wins") and lines["isal_bad"].endswith(": loses")
    assert "Mean below random's at some step: isal_bad at 20 labels." in text
    assert "no difference can reach" not in text  # 8 seeds can

    markdown = (tmp_path / "summary.md").read_text()
    assert markdown == format_markdown(summary) + "\n"
    assert "AULC minus margin's (points, paired by seed; Wilcoxon signed-rank test)" in markdown
    per_step_row = [line for line in markdown.splitlines() if line.startswith("| `isal_bad` |")][-1]
    assert per_step_row.split(" | ")[1:3] == ["+0.0", "**-5.3**"]  # bold: below random

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["isal_good"]["vs_baseline"]["verdict"] == "wins"
    assert saved["isal_bad"]["vs_random_per_step"]["below"] == [20]


def test_cli_baseline_must_be_one_of_the_strategies(capsys):
    args = parse_args(["--strategies", "isal", "margin", "random", "--baseline", "margin"])
    assert args.baseline == "margin"
    with pytest.raises(SystemExit):
        parse_args(["--strategies", "isal", "random", "--baseline", "margin"])
    assert "--baseline 'margin' is not among the strategies run (isal, random)" in (
        capsys.readouterr().err
    )


def test_too_few_seeds_for_a_verdict_is_said():
    few = {name: runs[:5] for name, runs in _curves().items()}
    text = format_summary(summarise(_records(few), baseline="margin"))
    assert "With 5 seeds no difference can reach p < 0.05 (6 seeds or more can)" in text
    assert ": wins" not in text and ": loses" not in text  # even isal_good, better on 5 of 5


def test_long_strategy_names_keep_the_paired_lines_in_100_columns():
    curves = _curves()
    long = {
        name if name in ("margin", "random") else f"research.strategies:{name}+option_m3": runs
        for name, runs in curves.items()
    }
    text = format_summary(summarise(_records(long), baseline="margin"))
    assert all(len(line) <= 100 for line in text.splitlines())
    paired = [line for line in text.splitlines() if "worse of 8" in line]
    assert len(paired) == 4  # the three long names and random
    assert sum("~ " in line for line in paired) == 3  # each long name cut, then a space
