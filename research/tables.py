"""Markdown tables of paired comparisons from a ``skisal.experiments`` run folder.

    python -m research.tables results/research/digits-variants --baseline margin --versus isal

One row per strategy: AULC (mean and std over seeds), final score, the paired per-seed AULC
difference against ``--baseline`` (mean, std, wins/ties/losses, paired t-test and Wilcoxon
p-values), the difference against ``--versus``, the labels the mean curve needs to reach
random's and the baseline's final mean score (``skisal.experiments.labels_to_reach``,
interpolated), and the mean query time. Only seeds every strategy finished are used.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel, wilcoxon

from skisal.experiments import StepRecord, aulc, labels_to_reach, load_records, summarise

UNCERTAINTY = ("uncertainty", "margin", "entropy")


def short_name(name: str) -> str:
    """``research.strategies:isal+eai`` -> ``isal+eai``."""
    return name.rpartition(":")[2]


def per_seed_aulc(summary: dict, records: Sequence[StepRecord], how: str) -> dict[str, np.ndarray]:
    """Per strategy, the AULC (in points) of each seed of ``summary``, in its seed order.

    ``how``: "trapezoid" (``skisal.experiments.aulc``) or "mean" (the mean score over the
    labelled-set sizes, the measure of the records before 2026-12).
    """
    curves: dict[tuple[str, int], dict[int, StepRecord]] = {}
    for r in records:
        curves.setdefault((r.strategy, r.seed), {})[r.step] = r
    result = {}
    for name, s in summary.items():
        values = []
        for seed in s["seeds"]:
            run = [curves[(name, seed)][k] for k in sorted(curves[(name, seed)])]
            scores = [r.score for r in run]
            value = (
                aulc([r.n_labeled for r in run], scores) if how == "trapezoid" else np.mean(scores)
            )
            values.append(100 * value)
        result[name] = np.array(values)
    return result


def paired(a: np.ndarray, b: np.ndarray, ddof: int = 0) -> dict[str, float]:
    """Mean and std of ``a - b``, wins/ties/losses and p-values (t-test, Wilcoxon)."""
    d = a - b
    tied = np.abs(d) <= 1e-9
    p_t = ttest_rel(a, b).pvalue if len(d) > 1 else math.nan
    p_w = wilcoxon(d).pvalue if len(d) > 1 and not tied.all() else math.nan
    return {
        "mean": float(d.mean()),
        "std": float(d.std(ddof=ddof)) if len(d) > ddof else math.nan,
        "wins": int((d > 1e-9).sum()),
        "ties": int(tied.sum()),
        "losses": int((d < -1e-9).sum()),
        "p_t": float(p_t),
        "p_wilcoxon": float(p_w),
    }


def _labels(value: float, last: int) -> str:
    return f">{last}" if math.isnan(value) else f"{value:.0f}"


def table(
    records: Sequence[StepRecord],
    baseline: str | None = None,
    versus: str | None = None,
    how: str = "trapezoid",
    ddof: int = 0,
    labels: Mapping[str, str] | None = None,
) -> str:
    """The comparison table (Markdown), strategies by decreasing mean AULC.

    Parameters
    ----------
    records : sequence of StepRecord
        Every step of every run.
    baseline : str, optional
        Strategy (short name) the paired differences are taken against; default: the best of
        uncertainty, margin and entropy by mean AULC, if present.
    versus : str, optional
        A second strategy for a column of paired differences.
    how : {"trapezoid", "mean"}
        The AULC (see :func:`per_seed_aulc`).
    ddof : int
        Degrees of freedom of the paired differences' std.
    labels : mapping, optional
        Display names by recorded name (default :func:`short_name`).
    """
    summary = summarise(records)
    names = {n: (labels or {}).get(n, short_name(n)) for n in summary}
    by_label = {label: n for n, label in names.items()}
    scores = per_seed_aulc(summary, records, how)
    if baseline is None:
        present = [s for s in UNCERTAINTY if s in by_label]
        baseline = max(present, key=lambda s: scores[by_label[s]].mean()) if present else None
    n_labeled = summary[next(iter(summary))]["n_labeled"]
    seeds = summary[next(iter(summary))]["seeds"]
    targets = [
        (s, summary[by_label[s]]["final_mean"]) for s in ("random", baseline) if s in by_label
    ]
    header = ["strategy", "AULC % mean ± std", "final %"]
    if baseline:
        header += [f"Δ AULC vs {baseline} (paired)", "W/T/L", "p (t / Wilcoxon)"]
    if versus:
        header += [f"Δ vs {versus} (W/L, p t-test)"]
    header += [f"labels to {100 * t:.1f}% ({s} final)" for s, t in targets] + ["query s"]
    lines = [
        f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), labelled {n_labeled[0]}..{n_labeled[-1]}, "
        f"AULC: {how}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name in sorted(summary, key=lambda n: -scores[n].mean()):
        s, a = summary[name], scores[name]
        final = 100 * np.array(s["score_std"][-1])
        cells = [f"`{names[name]}`", f"{a.mean():.2f} ± {a.std():.2f}"]
        cells.append(f"{100 * s['final_mean']:.1f} ± {final:.1f}")
        if baseline:
            if names[name] == baseline:
                cells += ["—", "—", "—"]
            else:
                d = paired(a, scores[by_label[baseline]], ddof)
                cells += [
                    f"{d['mean']:+.2f} ± {d['std']:.2f}",
                    f"{d['wins']}/{d['ties']}/{d['losses']}",
                    f"{d['p_t']:.2f} / {d['p_wilcoxon']:.2f}",
                ]
        if versus:
            if names[name] == versus or versus not in by_label:
                cells.append("—")
            else:
                d = paired(a, scores[by_label[versus]], ddof)
                cells.append(
                    f"{d['mean']:+.2f} ± {d['std']:.2f} ({d['wins']}/{d['losses']}, {d['p_t']:.2f})"
                )
        for _, target in targets:
            cells.append(
                _labels(labels_to_reach(n_labeled, s["score_mean"], target), n_labeled[-1])
            )
        cells.append(f"{s['query_seconds_mean']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves(
    records: Sequence[StepRecord],
    strategies: Sequence[str] | None = None,
    std: bool = False,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Mean (± std) test score in % per labelled-set size, one column per strategy."""
    summary = summarise(records)
    names = {n: (labels or {}).get(n, short_name(n)) for n in summary}
    by_label = {label: n for n, label in names.items()}
    chosen = [by_label[s] for s in strategies] if strategies else list(summary)
    lines = [
        "| labelled | " + " | ".join(f"`{names[n]}`" for n in chosen) + " |",
        "|---" * (len(chosen) + 1) + "|",
    ]
    for i, n_labeled in enumerate(summary[chosen[0]]["n_labeled"]):
        cells = []
        for n in chosen:
            cell = f"{100 * summary[n]['score_mean'][i]:.1f}"
            cells.append(cell + (f" ± {100 * summary[n]['score_std'][i]:.1f}" if std else ""))
        lines.append(f"| {n_labeled} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table (and learning curves) of a run folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a folder skisal.experiments wrote")
    parser.add_argument("--baseline", help="default: the best uncertainty baseline")
    parser.add_argument("--versus", help="a second strategy to pair against")
    parser.add_argument("--aulc", choices=["trapezoid", "mean"], default="trapezoid")
    parser.add_argument("--ddof", type=int, default=0, help="of the paired std (default 0)")
    parser.add_argument("--curves", nargs="*", help="strategies of a learning-curve table")
    parser.add_argument("--std", action="store_true", help="curves with ± std")
    args = parser.parse_args(argv)
    records = load_records(args.out)
    print(table(records, args.baseline, args.versus, args.aulc, args.ddof))
    if args.curves is not None:
        print("\nMean test accuracy (%) per labelled-set size:\n")
        print(curves(records, args.curves or None, args.std))


if __name__ == "__main__":
    main()
