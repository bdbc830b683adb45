"""Diverse selection: k-means++ over the pool's last-layer gradients, pruned and not.

``selection="diverse"`` (what ``"auto"`` runs on an accurate model) seeds k-means++ over every
pool sample's last-layer gradient. For each net of the query benchmark's builders (the same
training, pool and sizes) this takes the factors and influence weights the strategy would use
(:func:`~skisal.engine.diversity.gradient_factors`, the scores of a default query) and times,
side by side in alternating rounds,

* ``margin``: modAL's ``margin_sampling`` query on the same net and pool (the scale of the
  query benchmark's ratios);
* ``pruned``: :func:`~skisal.engine.diversity.kmeans_pp_select` as the strategy runs it (a
  lower bound skips the points no candidate can move closer);
* ``every``: the same with ``prune=False``, every distance at every step;

and checks that both pick the same samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from _common import fmt_time, markdown_table, measure_interleaved
from bench_query import BUILDERS
from modAL.uncertainty import margin_sampling

from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter
from skisal.engine import BoundModel, ParameterSpace, evaluation_mode, select_parameters
from skisal.engine.diversity import gradient_factors, influence_rank_weights, kmeans_pp_select

CONFIG: dict[str, dict[str, Any]] = {
    "full": {
        "cases": [("digits_cnn", (2_000, 8_000), 5), ("conv1d", (2_000, 8_000), 5)],
        "pool": 20_000,
        "n_instances": 50,
        "n_reference": 200,
        "batch_size": 256,
        "repeats": 5,
    },
    "quick": {
        "cases": [("digits_cnn", (200,), 2)],
        "pool": 1_000,
        "n_instances": 20,
        "n_reference": 100,
        "batch_size": 256,
        "repeats": 2,
    },
}


def run_net(
    name: str, n_lab: int, epochs: int, cfg: dict[str, Any], device: torch.device, seed: int
) -> dict[str, Any]:
    """Train one net; time margin sampling and both k-means++ seedings on its pool.

    Returns
    -------
    dict
        ``timings`` (name -> median seconds), ``same_picks``, ``n_features``.
    """
    problem = BUILDERS[name](n_lab, cfg["n_reference"], epochs, cfg["batch_size"], device, seed)
    net, X_pool, k = problem["net"], problem["pool"](cfg["pool"]), cfg["n_instances"]
    strategy = InfluenceQueryStrategy(
        problem["X_ref"], problem["y_ref"], selection="top", batch_size=cfg["batch_size"]
    )
    strategy(net, X_pool, n_instances=k, X_labeled=problem["X_lab"], y_labeled=problem["y_lab"])
    scores = torch.as_tensor(strategy.scores_, device=device)
    space = ParameterSpace(select_parameters(net.module_))
    model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, device)
    with evaluation_mode(net.module_):
        outer, inner = gradient_factors(model, X_pool, cfg["batch_size"])
    outer = outer * influence_rank_weights(scores).sqrt()[:, None]  # as the strategy weighs them
    first = int(torch.argmin(scores))

    def seeding(prune: bool):
        return lambda: kmeans_pp_select(
            outer, inner, k, first, np.random.RandomState(seed), prune=prune
        )

    timed = measure_interleaved(
        {
            "margin": lambda: margin_sampling(net, X_pool, n_instances=k),
            "pruned": seeding(True),
            "every": seeding(False),
        },
        device,
        cfg["repeats"],
    )
    return {
        "timings": {label: t["median_s"] for label, (t, _) in timed.items()},
        "same_picks": bool(np.array_equal(timed["pruned"][1], timed["every"][1])),
        "n_features": int(inner.shape[1]),
    }


def run(args: Any) -> dict[str, Any]:
    """Every net of the mode (``args.quick``) on ``args.device``.

    Parameters
    ----------
    args : argparse.Namespace
        ``quick``, ``device``, ``seed``.

    Returns
    -------
    dict
        ``{"mode", "config", "nets": [{"model", "labelled", ...run_net result}]}``.
    """
    mode = "quick" if args.quick else "full"
    cfg = CONFIG[mode]
    device = torch.device(args.device)
    nets = []
    for name, labelled, epochs in cfg["cases"]:
        for n_lab in labelled:
            result = run_net(name, n_lab, epochs, cfg, device, args.seed)
            nets.append({"model": name, "labelled": n_lab, **result})
            t = result["timings"]
            print(
                f"[selection/{name}/{n_lab}] margin {t['margin']:.3f}s pruned {t['pruned']:.3f}s "
                f"every {t['every']:.3f}s same picks {result['same_picks']}",
                flush=True,
            )
    return {
        "benchmark": "selection",
        "mode": mode,
        "config": {k: v for k, v in cfg.items() if k != "cases"},
        "nets": nets,
    }


def markdown(result: dict[str, Any]) -> str:
    """Markdown table of a :func:`run` result.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """
    cfg = result["config"]
    rows = []
    for net in result["nets"]:
        t = net["timings"]
        rows.append(
            [
                net["model"],
                f"{net['labelled']:,}",
                net["n_features"],
                fmt_time(t["margin"]),
                fmt_time(t["pruned"]),
                fmt_time(t["every"]),
                f"**{t['every'] / t['pruned']:.2f}x**",
                f"{t['pruned'] / t['margin']:.2f}x",
                "yes" if net["same_picks"] else "**NO**",
            ]
        )
    table = markdown_table(
        [
            "model",
            "labelled",
            "inner factor width",
            "margin query",
            "k-means++, pruned",
            "k-means++, every distance",
            "every / pruned",
            "pruned / margin query",
            "same picks",
        ],
        rows,
    )
    return (
        f'`selection="diverse"`\'s k-means++ seeding of {cfg["n_instances"]} picks from a pool '
        f"of {cfg['pool']:,} (median of {cfg['repeats']} rounds alternating with a modAL margin "
        "query on the same net and pool), with the lower-bound pruning (the default) and "
        "without it.\n\n" + table + "\n"
    )
