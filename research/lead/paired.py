"""Paired AULC differences against one strategy.

Usage: python research/lead/paired.py RESULTS_DIR REFERENCE_STRATEGY
"""

import sys

import numpy as np
from scipy import stats

from skisal.experiments import aulc, load_records


def main(out_dir: str, reference: str) -> None:
    runs: dict = {}
    for r in load_records(out_dir):
        runs.setdefault((r.strategy, r.seed), []).append(r)
    per_seed: dict = {}
    for (strategy, seed), records in runs.items():
        records.sort(key=lambda r: r.step)
        curve = ([r.n_labeled for r in records], [r.score for r in records])
        per_seed.setdefault(strategy, {})[seed] = 100 * aulc(*curve)
    seeds = sorted(per_seed[reference])
    for strategy, values in per_seed.items():
        mean = np.mean([values[s] for s in seeds])
        if strategy == reference:
            print(f"{strategy:36s} {mean:.2f}")
            continue
        d = np.array([values[s] - per_seed[reference][s] for s in seeds])
        wins, ties, losses = int((d > 0).sum()), int((d == 0).sum()), int((d < 0).sum())
        p = stats.wilcoxon(d).pvalue if np.any(d) else 1.0
        print(
            f"{strategy:36s} {mean:.2f}  diff {d.mean():+.2f} ± {d.std():.2f}  "
            f"W/T/L {wins}/{ties}/{losses}  Wilcoxon p = {p:.2f}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
