"""Summarise cached runs: AULC table, paired differences, labels to reach random's final accuracy.

    python research/report.py                      # every task, every strategy found
    python research/report.py --task digits --curves isal margin

Only seeds present for *every* listed strategy of a task are used, so all numbers are paired.
Without --strategies, also writes ``research/results/table_<task>_min<k>seeds.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel, wilcoxon

RESULTS = Path(__file__).resolve().parent / "results"
UNCERTAINTY = ("uncertainty", "margin", "entropy")


def load(task: str) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {}
    for p in sorted((RESULTS / task).glob("*__seed*.json")):
        r = json.loads(p.read_text())
        runs.setdefault(r["strategy"], {})[r["seed"]] = r
    return runs


def labels_to_reach(n_labeled, curve, target):
    hit = np.flatnonzero(np.asarray(curve) >= target - 1e-12)
    return int(n_labeled[hit[0]]) if len(hit) else None


def table(task: str, strategies: list[str] | None, min_seeds: int) -> str:
    runs = load(task)
    if strategies:
        runs = {s: runs[s] for s in strategies if s in runs}
    runs = {s: r for s, r in runs.items() if len(r) >= min_seeds}
    seeds = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not seeds:
        return f"{task}: no common seeds"
    acc = {s: np.array([runs[s][k]["accuracy"] for k in seeds]) * 100 for s in runs}
    aulc = {s: a.mean(axis=1) for s, a in acc.items()}
    n_lab = runs[next(iter(runs))][seeds[0]]["n_labeled"]
    qsec = {s: np.mean([np.mean(runs[s][k]["query_seconds"]) for k in seeds]) for s in runs}
    unc = [s for s in UNCERTAINTY if s in aulc]
    best = max(unc, key=lambda s: aulc[s].mean()) if unc else None
    target = acc["random"].mean(axis=0)[-1] if "random" in acc else None
    target2 = acc[best].mean(axis=0)[-1] if best else None
    lines = [
        f"### {task}: {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), "
        f"labelled {n_lab[0]}..{n_lab[-1]}; best uncertainty baseline = **{best}**",
        "",
        "| strategy | AULC % mean ± std | final acc % | Δ AULC vs "
        f"{best} (paired mean ± std) | W/T/L | p (t / Wilcoxon) | Δ vs isal | "
        f"labels to {target:.1f}% (random final) | labels to {target2:.1f}% ({best} final) | query s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(runs, key=lambda s: -aulc[s].mean())
    for s in order:
        a = aulc[s]
        cells = [f"`{s}`", f"{a.mean():.2f} ± {a.std():.2f}",
                 f"{acc[s][:, -1].mean():.1f} ± {acc[s][:, -1].std():.1f}"]
        if best and s != best:
            d = a - aulc[best]
            w, t, l = int((d > 1e-9).sum()), int((np.abs(d) <= 1e-9).sum()), int((d < -1e-9).sum())
            pt = ttest_rel(a, aulc[best]).pvalue
            try:
                pw = wilcoxon(a, aulc[best]).pvalue
            except ValueError:
                pw = float("nan")
            cells += [f"{d.mean():+.2f} ± {d.std():.2f}", f"{w}/{t}/{l}", f"{pt:.2f} / {pw:.2f}"]
        else:
            cells += ["—", "—", "—"]
        if "isal" in aulc and s != "isal":
            cells.append(f"{(a - aulc['isal']).mean():+.2f}")
        else:
            cells.append("—")
        reach = labels_to_reach(n_lab, acc[s].mean(axis=0), target) if target else None
        cells.append(str(reach) if reach is not None else f">{n_lab[-1]}")
        reach2 = labels_to_reach(n_lab, acc[s].mean(axis=0), target2) if target2 else None
        cells.append(str(reach2) if reach2 is not None else f">{n_lab[-1]}")
        cells.append(f"{qsec[s]:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves(task: str, strategies: list[str]) -> str:
    runs = load(task)
    strategies = [s for s in strategies if s in runs]
    seeds = sorted(set.intersection(*(set(runs[s]) for s in strategies)))
    n_lab = runs[strategies[0]][seeds[0]]["n_labeled"]
    lines = ["| labelled | " + " | ".join(f"`{s}`" for s in strategies) + " |",
             "|---" * (len(strategies) + 1) + "|"]
    mean = {s: 100 * np.array([runs[s][k]["accuracy"] for k in seeds]).mean(0) for s in strategies}
    for i, n in enumerate(n_lab):
        lines.append(f"| {n} | " + " | ".join(f"{mean[s][i]:.1f}" for s in strategies) + " |")
    return "\n".join(lines)


def log_summary(task: str, strategies: list[str], n_seeds: int = 10) -> str:
    """Per strategy: mean over seeds 0..n_seeds-1 of per-query logs, first / middle / last query."""
    runs = load(task)
    lines = ["| strategy | overlap with margin's top-n (q1 / q5 / q10) | Spearman(score, margin) "
             "(q1 / q5 / q10) | damping (q1 / q5 / q10) | lambda_max GN (q1 / q5 / q10) |",
             "|---|---|---|---|---|"]
    for s in strategies:
        if s not in runs:
            continue
        logs = [r["logs"] for k, r in runs[s].items()
                if k < n_seeds and r["logs"] and r["logs"][0]]
        if not logs:
            continue

        def trio(key):
            vals = [[lg[q].get(key) for lg in logs] for q in (0, 4, 9)]
            if any(v is None for vs in vals for v in vs):
                return "—"
            return " / ".join(f"{np.mean(v):.3g}" for v in vals)

        lines.append(f"| `{s}` | {trio('overlap_margin_topn')} | {trio('spearman_score_margin')}"
                     f" | {trio('damping')} | {trio('lambda_max')} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--task", nargs="+", default=["digits", "breast_cancer"])
    p.add_argument("--strategies", nargs="+")
    p.add_argument("--min-seeds", type=int, default=1)
    p.add_argument("--curves", nargs="+")
    p.add_argument("--logs", nargs="+", help="strategies whose per-query logs to summarise")
    p.add_argument("--log-seeds", type=int, default=10, help="--logs uses seeds 0..N-1")
    a = p.parse_args()
    for task in a.task:
        if not (RESULTS / task).exists():
            continue
        text = table(task, a.strategies, a.min_seeds)
        if a.curves:
            text += "\n\nMean test accuracy (%) per labelled-set size:\n\n" + curves(task, a.curves)
        if a.logs:
            text += "\n\nPer-query logs (mean over seeds):\n\n" + log_summary(task, a.logs, a.log_seeds)
        print(text + "\n")
        if not a.strategies:
            (RESULTS / f"table_{task}_min{a.min_seeds}seeds.md").write_text(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
