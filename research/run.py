"""Run (task, strategy, seed) AL loops, one process, results cached as JSON.

    python research/run.py --task digits --seeds 10 --strategies margin isal isal+gradsim

Skips runs whose JSON already exists (``--force`` recomputes). Runs strategies seed by seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import TASKS, result_path, run_active_learning, save


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--task", choices=list(TASKS), required=True)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--strategies", nargs="+", required=True)
    p.add_argument("--force", action="store_true")
    a = p.parse_args()
    t_all = time.perf_counter()
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        for s in a.strategies:
            if result_path(a.task, s, seed).exists() and not a.force:
                continue
            t0 = time.perf_counter()
            r = run_active_learning(a.task, s, seed)
            save(r)
            aulc = 100 * sum(r["accuracy"]) / len(r["accuracy"])
            print(f"{a.task} {s:32s} seed {seed}: AULC {aulc:6.2f} final "
                  f"{100 * r['accuracy'][-1]:5.1f}  ({time.perf_counter() - t0:5.1f} s)",
                  flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
