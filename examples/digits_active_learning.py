"""Active learning on scikit-learn's digits: ISAL against uncertainty baselines.

A small CNN (a skorch ``NeuralNetClassifier``) learns the 8x8 digits of
:func:`sklearn.datasets.load_digits` from a few labels. Each strategy runs its
own modAL ``ActiveLearner`` loop: query ``--query-size`` pool samples, reveal
their labels (the pool's labels are the oracle), retrain from scratch (skorch
re-initialises the network on every ``fit``) and measure test accuracy.

Strategies compared:

* ``ISAL``: :class:`skisal.InfluenceQueryStrategy`, which picks the pool samples
  whose (pseudo-labelled) training is predicted to lower the loss on a labelled
  reference set most (Liu et al., ICCV 2021; the paper's reference set is the
  validation set);
* ``uncertainty``, ``margin``, ``entropy``: modAL's uncertainty sampling;
* ``random``: a seeded random baseline.

Every seed draws its own split (test, reference, initial labelled set, pool)
and initial network, shared by all strategies, so they are compared on equal
footing. The area under the learning curve (AULC) is the mean test accuracy
over all labelled-set sizes, the initial one included.

Run it from the repository root (about two minutes on 2 CPU cores)::

    python examples/digits_active_learning.py
    python examples/digits_active_learning.py --quick          # a few seconds, for CI
    python examples/digits_active_learning.py --seeds 5 --strategies ISAL random

It prints a table of mean test accuracy per labelled-set size, the AULC and
the mean query time per strategy, and writes ``results.csv`` (one row per
strategy, seed and step), ``summary.json`` and ``learning_curves.png`` (mean
+- std over seeds) to ``--out``. Needs ``modAL-python`` and ``matplotlib``
(``pip install skisal[modal,examples]``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from modAL.models import ActiveLearner
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier
from torch import nn
from tqdm import tqdm

from skisal import InfluenceQueryStrategy
from skisal._modal import installed_modal_returns_scores

TEST_SIZE = 500
REFERENCE_SIZE = 100
N_CLASSES = 10

#: Run sizes when not given on the command line: the full demo, and ``--quick``.
DEFAULTS = {"seeds": 5, "steps": 10, "epochs": 40}
QUICK = {"seeds": 1, "steps": 2, "epochs": 10}

QueryStrategy = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class Split:
    """One seed's partition of the digits; ``y_pool`` is the oracle."""

    X_test: np.ndarray
    y_test: np.ndarray
    X_reference: np.ndarray
    y_reference: np.ndarray
    X_initial: np.ndarray
    y_initial: np.ndarray
    X_pool: np.ndarray
    y_pool: np.ndarray


@dataclasses.dataclass(frozen=True)
class Record:
    """Test accuracy after ``step`` queries; ``query_seconds`` is None for the initial model."""

    strategy: str
    seed: int
    step: int
    n_labeled: int
    accuracy: float
    query_seconds: float | None


# -- data and model -------------------------------------------------------------
def load_images() -> tuple[np.ndarray, np.ndarray]:
    """Digits as float32 images of shape (n, 1, 8, 8) in [0, 1], with int64 labels."""
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]
    return X, digits.target.astype(np.int64)


def split_data(X: np.ndarray, y: np.ndarray, n_initial: int, seed: int) -> Split:
    """Shuffle with ``seed``; cut test, reference and initial sets; the rest is the pool."""
    order = np.random.default_rng(seed).permutation(len(y))
    test, reference, initial, pool = np.split(
        order, np.cumsum([TEST_SIZE, REFERENCE_SIZE, n_initial])
    )
    return Split(
        X[test], y[test], X[reference], y[reference], X[initial], y[initial], X[pool], y[pool]
    )


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions and a linear layer: 8x8 images to 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, N_CLASSES),
        )

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.layers(X)


def make_net(epochs: int) -> NeuralNetClassifier:
    """The classifier; passing the module class makes every ``fit`` start afresh."""
    return NeuralNetClassifier(
        DigitsCNN,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-2,
        max_epochs=epochs,
        batch_size=64,
        iterator_train__shuffle=True,
        train_split=None,
        classes=np.arange(N_CLASSES),  # the initial labelled set may miss a class
        verbose=0,
    )


# -- query strategies -----------------------------------------------------------
def random_sampling(seed: int) -> QueryStrategy:
    """Seeded random baseline that speaks the installed modAL's strategy protocol."""
    rng = np.random.default_rng(seed)
    returns_scores = installed_modal_returns_scores()

    def query(classifier: Any, X_pool: np.ndarray, n_instances: int = 1) -> Any:
        utility = rng.random(len(X_pool))
        indices = np.argsort(-utility)[:n_instances]
        return (indices, utility[indices]) if returns_scores else indices

    return query


def isal(split: Split, seed: int) -> QueryStrategy:
    """ISAL with the split's reference set (skisal's defaults otherwise)."""
    return InfluenceQueryStrategy(
        X_reference=split.X_reference, y_reference=split.y_reference, random_state=seed
    )


#: name -> factory(split, seed) of a modAL query strategy.
STRATEGIES: dict[str, Callable[[Split, int], QueryStrategy]] = {
    "ISAL": isal,
    "uncertainty": lambda split, seed: uncertainty_sampling,
    "margin": lambda split, seed: margin_sampling,
    "entropy": lambda split, seed: entropy_sampling,
    "random": lambda split, seed: random_sampling(seed),
}


# -- experiment -----------------------------------------------------------------
def run_active_learning(
    strategy: str, seed: int, split: Split, args: argparse.Namespace, progress: tqdm
) -> list[Record]:
    """One modAL loop: the initial fit, then ``args.steps`` query-label-retrain rounds."""
    torch.manual_seed(seed)  # same initial network for every strategy
    learner = ActiveLearner(
        estimator=make_net(args.epochs),
        query_strategy=STRATEGIES[strategy](split, seed),
        X_training=split.X_initial,
        y_training=split.y_initial,
    )
    X_pool, y_pool = split.X_pool, split.y_pool

    def record(step: int, query_seconds: float | None) -> Record:
        accuracy = float(learner.score(split.X_test, split.y_test))
        n_labeled = len(learner.y_training)
        return Record(strategy, seed, step, n_labeled, accuracy, query_seconds)

    records = [record(0, None)]
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        indices, _ = learner.query(X_pool, n_instances=args.query_size)
        query_seconds = time.perf_counter() - start
        learner.teach(X_pool[indices], y_pool[indices])
        X_pool, y_pool = np.delete(X_pool, indices, axis=0), np.delete(y_pool, indices)
        records.append(record(step, query_seconds))
        progress.update()
    return records


def run_experiment(args: argparse.Namespace) -> list[Record]:
    """Every strategy on every seed, with a progress bar over (strategy, seed, step)."""
    X, y = load_images()
    records: list[Record] = []
    total = len(args.strategies) * args.seeds * args.steps
    with tqdm(total=total, unit="query") as progress:
        for seed in range(args.seeds):
            split = split_data(X, y, args.initial, seed)
            for strategy in args.strategies:
                progress.set_postfix(strategy=strategy, seed=seed)
                records += run_active_learning(strategy, seed, split, args, progress)
    return records


def summarise(records: Sequence[Record], strategies: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per strategy: learning curve mean/std over seeds, AULC (%) and mean query time."""
    summary = {}
    for strategy in strategies:
        rows = [r for r in records if r.strategy == strategy]
        rows.sort(key=lambda r: (r.seed, r.step))
        n_seeds = len({r.seed for r in rows})
        accuracy = np.array([r.accuracy for r in rows]).reshape(n_seeds, -1)
        aulc = 100 * accuracy.mean(axis=1)
        summary[strategy] = {
            "n_labeled": [r.n_labeled for r in rows[: accuracy.shape[1]]],
            "accuracy_mean": accuracy.mean(axis=0).tolist(),
            "accuracy_std": accuracy.std(axis=0).tolist(),
            "aulc_percent_mean": float(aulc.mean()),
            "aulc_percent_std": float(aulc.std()),
            "query_seconds_mean": float(
                np.mean([r.query_seconds for r in rows if r.query_seconds is not None])
            ),
        }
    return summary


# -- reporting ------------------------------------------------------------------
def format_table(summary: dict[str, dict[str, Any]]) -> str:
    """Test accuracy (%) per labelled-set size, then AULC and query time, one column each."""
    names = list(summary)
    width = max(14, *(len(name) + 2 for name in names))

    def line(label: str, cells: Sequence[str]) -> str:
        return f"{label:>12}" + "".join(f"{cell:>{width}}" for cell in cells)

    n_labeled = next(iter(summary.values()))["n_labeled"]
    lines = [line("labelled", names)]
    for i, n in enumerate(n_labeled):
        cells = [
            f"{100 * s['accuracy_mean'][i]:.1f} ± {100 * s['accuracy_std'][i]:.1f}"
            for s in summary.values()
        ]
        lines.append(line(str(n), cells))
    aulc = [f"{s['aulc_percent_mean']:.2f} ± {s['aulc_percent_std']:.2f}" for s in summary.values()]
    lines.append(line("AULC (%)", aulc))
    lines.append(line("query (s)", [f"{s['query_seconds_mean']:.3f}" for s in summary.values()]))
    return "\n".join(lines)


def write_csv(records: Sequence[Record], path: Path) -> None:
    """One row per (strategy, seed, step); the initial model's query_seconds is empty."""
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[f.name for f in dataclasses.fields(Record)])
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in records)


def plot_learning_curves(
    summary: dict[str, dict[str, Any]], args: argparse.Namespace, path: Path
) -> None:
    """Mean test accuracy +- std over seeds against the number of labelled samples."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)  # render off-screen: no display needed
    ax = figure.subplots()
    for name, s in summary.items():
        mean, std = 100 * np.array(s["accuracy_mean"]), 100 * np.array(s["accuracy_std"])
        label = f"{name} (AULC {s['aulc_percent_mean']:.1f}%)"
        ax.plot(s["n_labeled"], mean, marker="o", label=label)
        ax.fill_between(s["n_labeled"], mean - std, mean + std, alpha=0.2)
    ax.set_title(
        f"Active learning on digits: CNN, {args.query_size} labels per query, "
        f"mean ± std over {args.seeds} seed{'s' * (args.seeds > 1)}"
    )
    ax.set_xlabel("labelled samples")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    figure.savefig(path, dpi=120)


# -- command line ---------------------------------------------------------------
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])

    def run_size(name: str, text: str) -> None:
        default = f"default {DEFAULTS[name]}, {QUICK[name]} with --quick"
        parser.add_argument(f"--{name}", type=positive_int, help=f"{text} ({default})")

    run_size("seeds", "repetitions, each with its own split and initial network")
    run_size("steps", "queries per run")
    run_size("epochs", "training epochs per fit")
    parser.add_argument(
        "--initial", type=positive_int, default=50, help="initial labels (default %(default)s)"
    )
    parser.add_argument(
        "--query-size", type=positive_int, default=50, help="labels per query (default %(default)s)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/digits"),
        help="output folder (default %(default)s)",
    )
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=list(STRATEGIES),
        default=list(STRATEGIES),
        metavar="NAME",
        help=f"strategies to compare, among {', '.join(STRATEGIES)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run, for CI")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.strategies = list(dict.fromkeys(args.strategies))  # drop repeats, keep order

    available = len(load_digits().target) - TEST_SIZE - REFERENCE_SIZE
    needed = args.initial + args.steps * args.query_size
    if needed > available:
        parser.error(
            f"--initial + --steps x --query-size = {needed} labels, but only {available} "
            "samples are left after the test and reference sets"
        )
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # The network is tiny: intra-op threads cost more than they save (far more when other
    # processes compete for the cores), and one thread makes the results independent of the
    # machine's core count.
    torch.set_num_threads(1)
    # Deprecations raised inside the libraries, not by this script: modAL passes
    # check_X_y(force_all_finite=...), renamed in scikit-learn 1.6, and torch's forward-mode
    # AD (ISAL's pool scoring) loads its decompositions with torch.jit.script.
    warnings.filterwarnings("ignore", "'force_all_finite' was renamed", FutureWarning)
    warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)

    start = time.perf_counter()
    records = run_experiment(args)
    wall_seconds = time.perf_counter() - start
    summary = summarise(records, args.strategies)
    print(format_table(summary))
    print(f"wall time: {wall_seconds:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    paths = [args.out / name for name in ("results.csv", "summary.json", "learning_curves.png")]
    write_csv(records, paths[0])
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report = {"config": config, "wall_seconds": wall_seconds, "strategies": summary}
    paths[1].write_text(json.dumps(report, indent=2) + "\n")
    plot_learning_curves(summary, args, paths[2])
    print("wrote", *paths, sep="\n  ")


if __name__ == "__main__":
    main()
