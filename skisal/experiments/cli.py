"""``skisal-experiment``: compare query strategies on a dataset from the command line.

Examples::

    skisal-experiment --dataset digits                       # every strategy, 5 seeds
    skisal-experiment --dataset breast_cancer --seeds 10 --out results/bc
    skisal-experiment --dataset digits --strategies isal random --steps 3 --quick
    skisal-experiment --dataset mypkg.data:load_mine --strategies isal mypkg.al:mine

Interrupt it at any time: running the same command again finishes the run
without redoing any finished step.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from sklearn.base import is_classifier

from .datasets import DATASETS, load_dataset
from .records import RECORDS_FILE
from .report import WIDTH, format_summary, write_report
from .runner import ExperimentConfig, run_experiment
from .strategies import STRATEGIES

__all__ = ["main", "parse_args"]

#: Overrides applied by --quick (a smoke run), unless given explicitly.
QUICK = {"seeds": 1, "steps": 2, "epochs": 10}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``--help`` lists every option).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
        The options, with ``--quick``'s overrides and the defaults of
        ``--seeds`` (5) and ``--out`` (``results/<dataset>``) applied.

    Examples
    --------
    >>> from skisal.experiments.cli import parse_args
    >>> args = parse_args(["--dataset", "wine", "--quick", "--strategies", "isal", "random"])
    >>> args.seeds, args.steps, args.epochs, args.strategies, str(args.out)
    (1, 2, 10, ['isal', 'random'], 'results/wine')
    """
    parser = argparse.ArgumentParser(
        prog="skisal-experiment",
        description="Active-learning comparison of query strategies through modAL: "
        "learning curves, AULC and annotation saved, resumable.",
    )
    parser.add_argument(
        "--dataset",
        default="digits",
        help=f"one of {', '.join(DATASETS)}, or package.module:function returning a "
        "skisal.experiments.Dataset (default %(default)s)",
    )
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=list(STRATEGIES),
        metavar="NAME",
        help=f"among {', '.join(STRATEGIES)}, or package.module:function taking a "
        "StrategyContext (default: all built-in)",
    )
    parser.add_argument(
        "--baseline",
        metavar="NAME",
        help="the strategy every other is tested against, seed by seed (Wilcoxon signed-rank "
        "test on the AULC; default: the non-ISAL, non-random strategy of highest AULC)",
    )
    parser.add_argument("--seeds", type=_positive_int, help="number of seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="default %(default)s")
    for name, text in [
        ("steps", "queries per run"),
        ("initial-size", "initial labelled samples"),
        ("query-size", "labels per query"),
        ("test-size", "test samples"),
        ("reference-size", "reference samples (ISAL's R)"),
        ("epochs", "training epochs per fit"),
    ]:
        parser.add_argument(f"--{name}", type=_positive_int, help=f"{text} (dataset default)")
    parser.add_argument("--out", type=Path, help="output folder (default results/<dataset>)")
    parser.add_argument(
        "--overwrite", action="store_true", help="delete earlier records in --out first"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 seed, 2 steps, 10 epochs"
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch intra-op threads (default %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
    if args.seeds is None:
        args.seeds = 5
    if args.out is None:
        args.out = Path("results") / args.dataset.replace(":", "_")
    args.strategies = list(dict.fromkeys(args.strategies))
    if args.baseline is not None and args.baseline not in args.strategies:
        parser.error(
            f"--baseline {args.baseline!r} is not among the strategies run "
            f"({', '.join(args.strategies)}): name one of them, or add it to --strategies."
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison, print the summary and write the report to ``--out``.

    The summary (:func:`~skisal.experiments.format_summary`) fits in 100
    columns: one row per strategy, best AULC first, then what each column
    means; then the files written, among them ``summary.md`` (the table in
    Markdown) and ``learning_curves.png``
    (:class:`~skisal.experiments.ComparisonDisplay`).

    The entry point of ``skisal-experiment`` and ``python -m skisal.experiments``.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``); see :func:`parse_args`.

    Returns
    -------
    int
        The exit status, 0.

    Raises
    ------
    ValueError
        If the dataset or a strategy is unknown, the sizes do not fit the
        dataset, or ``--out`` holds a run of another configuration or a record
        it cannot resume from (the message names the file and line).
    RuntimeError
        If another run is writing to ``--out``.

    Examples
    --------
    >>> import tempfile
    >>> from skisal.experiments.cli import main
    >>> main(["--dataset", "wine", "--strategies", "random", "--seeds", "1", "--steps", "1",
    ...       "--epochs", "1", "--no-progress", "--out", tempfile.mkdtemp()])
    ... # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    scikit-learn wine (178 samples, 13 features, 3 classes), MLP behind a StandardScaler
    Test accuracy in % (higher is better), 1 seed, 10 to 15 labelled samples.
    <BLANKLINE>
       strategy    AULC %  vs random  final %  labels to ...%  s/query
    1  random       ...  reference      ...   15 (reference)    ...
    <BLANKLINE>
    AULC: area under the learning curve divided by its width, the mean test accuracy over the run.
    ...
    Wall time ... s. Wrote to ...:
      summary.md           this table in Markdown
      learning_curves.png  the learning curves
      ...
    0
    """
    args = parse_args(argv)
    # Small networks: extra intra-op threads cost more than they save, and one
    # thread makes the numbers independent of the machine's core count.
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    config = ExperimentConfig.for_dataset(
        args.dataset,
        args.strategies,
        range(args.first_seed, args.first_seed + args.seeds),
        initial_size=args.initial_size,
        query_size=args.query_size,
        steps=args.steps,
        test_size=args.test_size,
        reference_size=args.reference_size,
        epochs=args.epochs,
    )
    if not args.overwrite and (args.out / RECORDS_FILE).exists():
        print(f"resuming from {args.out / RECORDS_FILE}")
    start = time.perf_counter()
    # run_experiment deletes for --overwrite once it holds the folder's lock, not before.
    try:
        records = run_experiment(
            config,
            args.out,
            dataset=dataset,
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the finished steps are in {args.out / RECORDS_FILE}; run the same "
            "command again to resume.",
            file=sys.stderr,
        )
        raise  # the exit status stays that of Ctrl-C
    seconds = time.perf_counter() - start
    title = (
        f"{dataset.name}: {config.query_size} labels per query, "
        f"{len(config.seeds)} seed{'s' * (len(config.seeds) > 1)}"
    )
    score_name = "test accuracy" if is_classifier(dataset.make_estimator(1)) else "test score"
    summary = write_report(
        records, args.out, title=title, score_name=score_name, baseline=args.baseline
    )
    print(textwrap.fill(dataset.description, WIDTH))
    print(format_summary(summary, score_name=score_name))
    plot = "the learning curves" + " and each strategy's difference to random" * (
        "random" in summary and len(summary) > 1
    )
    print(f"\nWall time {seconds:.0f} s. Wrote to {args.out}:")
    for name, what in [
        ("summary.md", "this table in Markdown"),
        ("learning_curves.png", plot),
        ("summary.json", "every number of the summary, per strategy"),
        ("results.csv", "every step of every run"),
    ]:
        print(f"  {name:<21}{what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
