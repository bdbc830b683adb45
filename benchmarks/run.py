"""Run skisal's benchmarks: pool scoring, s_test solvers, memory, queries, diverse selection.

Usage::

    python benchmarks/run.py                 # full mode (30-60 minutes on 1 CPU thread)
    python benchmarks/run.py --quick         # CI smoke run (about 20 s; under a minute)
    python benchmarks/run.py --device cuda   # on a GPU
    python benchmarks/run.py --only scoring  # one benchmark (repeatable flag)
    python benchmarks/run.py --only query --methods cg,lissa  # query benchmark, two solvers

Writes ``benchmarks/results/<benchmark>.json`` (``benchmarks/results/quick/`` in quick
mode) and regenerates ``summary.md`` there from every JSON file present. Outside the test
suite on purpose: timings are not assertions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = ("scoring", "s_test", "memory", "query", "selection")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI (< 1 minute)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        help="run only this benchmark (repeat the flag for several; default: all)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    query = parser.add_argument_group("query benchmark (comma-separated lists override its grid)")
    query.add_argument("--methods", help="method labels, e.g. cg,lissa (default: every one)")
    query.add_argument("--models", help="of digits_cnn,conv1d,resnet18 (default: the mode's)")
    query.add_argument("--labelled", help="labelled-set sizes, e.g. 500,2000")
    query.add_argument("--pools", help="pool sizes, e.g. 2000,20000")
    query.add_argument("--n-instances", type=int, help="samples per query (default: 50)")
    query.add_argument("--repeats", type=int, help="timed rounds per cell")
    query.add_argument(
        "--no-accuracy", action="store_true", help="skip the comparison with a converged solve"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder (default: benchmarks/results, or benchmarks/results/quick)",
    )
    return parser.parse_args(argv)


def summary_markdown(out: Path) -> str:
    """``summary.md``: hardware and the tables of every result file in ``out``.

    Parameters
    ----------
    out : pathlib.Path
        Results folder.

    Returns
    -------
    str
    """
    import bench_memory
    import bench_query
    import bench_s_test
    import bench_scoring
    import bench_selection
    from _common import hardware_line

    renderers = {
        "scoring": bench_scoring.markdown,
        "s_test": bench_s_test.markdown,
        "memory": bench_memory.markdown,
        "query": bench_query.markdown,
        "selection": bench_selection.markdown,
    }
    parts = ["# skisal benchmarks\n"]
    for name in BENCHMARKS:
        path = out / f"{name}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        try:
            body = renderers[name](result)
        except (KeyError, TypeError):  # a result file from an older version of the benchmark
            body = f"(`{path.name}` is from an older version of this benchmark: run it again)\n"
        parts.append(
            f"## {name} ({result.get('mode', '?')} mode)\n\n"
            f"Command: `{result.get('command')}`; {result.get('seconds', 0):.0f} s.\n\n"
            f"Hardware: {hardware_line(result['hardware'])}.\n\n" + body
        )
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and write their results.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        Exit status.
    """
    args = parse_args(argv)
    # Threads are fixed before the benchmark modules (and torch's thread pools) start.
    from _common import RESULTS, configure_threads, hardware_info, write_json

    configure_threads(args.threads)
    import bench_memory
    import bench_query
    import bench_s_test
    import bench_scoring
    import bench_selection
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available", file=sys.stderr)
        return 2
    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    modules = {
        "scoring": bench_scoring,
        "s_test": bench_s_test,
        "memory": bench_memory,
        "query": bench_query,
        "selection": bench_selection,
    }
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in args.only or BENCHMARKS:
        start = time.perf_counter()
        result: dict[str, Any] = modules[name].run(args)
        result["seconds"] = time.perf_counter() - start
        result["command"] = command.strip()
        result["hardware"] = hardware_info(device)
        write_json(out / f"{name}.json", result)
        print()
        print(modules[name].markdown(result))
        print(f"[{name}] {result['seconds']:.1f}s -> {out / f'{name}.json'}", flush=True)
    summary = summary_markdown(out)
    (out / "summary.md").write_text(summary)
    print(f"summary -> {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
