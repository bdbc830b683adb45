"""How much does a strategy's selection look like margin sampling? Per query, by replay.

    python -m research.query_logs digits-variants isal isal+gradsim isal+spec0.1 isal+top2 \\
        isal+eai isal+eai+div_feat_m3 marginscore+div_feat_m3 --seeds 10 --queries 1 5 10

The records of ``skisal.experiments`` hold what each query selected, not why. This rebuilds
the learner before each listed query of a study's recorded runs (``research/replay.py``),
repeats the query with the strategy reseeded as the runner reseeded it (the selection must
match the record; the table counts the matches), and measures, mean over seeds: the share of
the selection that margin sampling would also select, the Spearman correlation between the
strategy's scores and the margin (positive: more helpful <=> smaller margin), and the damping
and Gauss-Newton lambda_max the ``research.strategies`` variants used.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from research.probes import margins, outputs_and_features
from research.replay import learner_at
from research.reproduce import STUDIES
from skisal.experiments import step_seed


def query_log(out: Path, strategy: str, seed: int, query: int) -> dict[str, float]:
    """The diagnostics of query ``query`` (1 = the first) of run ``(strategy, seed)``."""
    rep = learner_at(out, strategy, seed, query - 1)
    instance, n = rep.strategy, rep.config.query_size
    if "random_state" in getattr(instance, "get_params", dict)():
        instance.set_params(random_state=step_seed(seed, query))  # as the runner did
    index, _ = instance(rep.learner, rep.X_pool, n_instances=n)
    margin = margins(outputs_and_features(rep.learner.estimator, rep.X_pool)[0])
    log = {
        "matches_record": float(tuple(rep.pool[index].tolist()) == rep.next_selected),
        "overlap_margin_topn": len(set(index) & set(np.argsort(margin)[:n])) / n,
    }
    score = getattr(instance, "scores_", None)  # lower = selected first
    if score is None and hasattr(instance, "utility_"):
        score = -instance.utility_
    if score is not None:
        log["spearman_score_margin"] = float(spearmanr(score, margin).statistic)
    return log | getattr(instance, "log_", {})


def summary(out: Path, names: dict[str, str], seeds: Sequence[int], queries: Sequence[int]):
    """Markdown table: per strategy, the mean over seeds of each query's diagnostics."""
    keys = ["overlap_margin_topn", "spearman_score_margin", "damping", "lambda_max"]
    heads = ["overlap with margin's top-n", "Spearman(score, margin)", "damping", "lambda_max GN"]
    q = " / ".join(f"q{k}" for k in queries)
    lines = [
        "| strategy | " + " | ".join(f"{h} ({q})" for h in heads) + " | replays = record |",
        "|---" * (len(heads) + 2) + "|",
    ]
    print("\n".join(lines), flush=True)
    for label, name in names.items():
        logs = {k: [query_log(out, name, s, k) for s in seeds] for k in queries}
        cells = []
        for key in keys:
            values = [[log.get(key) for log in logs[k]] for k in queries]
            if any(v is None for vs in values for v in vs):
                cells.append("—")
            else:
                cells.append(" / ".join(f"{np.mean(v):.3g}" for v in values))
        matched = sum(log["matches_record"] for k in queries for log in logs[k])
        cells.append(f"{matched:.0f}/{len(seeds) * len(queries)}")
        lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    """Print the table for some strategies of a study's records."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=list(STUDIES))
    parser.add_argument("strategies", nargs="+", help="as the study names them")
    parser.add_argument("--out", type=Path, help="default results/research/<study>")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--queries", type=int, nargs="+", default=[1, 5, 10])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = STUDIES[args.study].recorded_names()
    out = args.out or Path("results") / "research" / args.study
    return summary(out, {s: names[s] for s in args.strategies}, range(args.seeds), args.queries)


if __name__ == "__main__":
    main()
