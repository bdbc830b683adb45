"""Paired AULC differences between two strategies of a ``skisal-experiment`` folder.

python research/solver_default/paired.py results/digits STRATEGY_A STRATEGY_B
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from skisal.experiments.report import aulc


def paired_aulc(folder: str, a: str, b: str) -> tuple[float, float, int]:
    """Mean and standard deviation over seeds of AULC(b) - AULC(a), in points."""
    frame = pd.read_csv(f"{folder}/results.csv")
    per_seed = {}
    for (strategy, seed), runs in frame.groupby(["strategy", "seed"]):
        runs = runs.sort_values("n_labeled")
        per_seed[(strategy, seed)] = 100 * aulc(runs["n_labeled"], runs["score"])
    seeds = sorted({s for (_, s) in per_seed})
    diffs = np.array([per_seed[(b, s)] - per_seed[(a, s)] for s in seeds])
    return float(diffs.mean()), float(diffs.std(ddof=1)), len(seeds)


if __name__ == "__main__":
    mean, std, n = paired_aulc(*sys.argv[1:4])
    print(f"AULC({sys.argv[3]}) - AULC({sys.argv[2]}): {mean:+.2f} +- {std:.2f} points, {n} seeds")
