"""Run whole active-learning loops through modAL, record every step, resume.

Every seed splits the dataset afresh into a test set, ISAL's reference set, an
initial labelled set and the pool (whose labels are the oracle). Every
strategy starts from the same split and the same initial network; each step
queries ``query_size`` pool samples, reveals their labels with
``ActiveLearner.teach`` and retrains the estimator from scratch (skorch
re-initialises its module on ``fit``), as the paper does, then scores it on
the test set with the estimator's own ``score``.

One JSON line per finished step goes to ``records.jsonl``, flushed at once;
the pool indices each step selected are in it. Running again with the same
configuration and folder skips what is done and rebuilds an unfinished run's
labelled set from those lines. Torch is reseeded from ``(seed, step)``
before every fit, and so is any strategy with a ``random_state``, so a
resumed run makes the same choices as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._validation import take_rows
from .datasets import Dataset, load_dataset
from .strategies import StrategyContext, make_strategy, strategy_factory

__all__ = ["ExperimentConfig", "StepRecord", "load_records", "run_experiment", "split_indices"]

RECORDS_FILE = "records.jsonl"
CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """What to compare, on what, for how long.

    Parameters
    ----------
    dataset : str
        A built-in dataset name or ``"package.module:function"`` (see
        :func:`~skisal.experiments.load_dataset`).
    strategies : sequence of str
        Strategy names (see :data:`~skisal.experiments.STRATEGIES`).
    seeds : sequence of int
        One run per strategy and seed; each seed has its own split and
        initial network.
    initial_size, query_size, steps : int
        Initial labelled set, labels per query, queries per run.
    test_size, reference_size : int
        Test set and reference set sizes, drawn first.
    epochs : int
        Training epochs per fit.

    Examples
    --------
    Usually built from a dataset's defaults with :meth:`for_dataset`; it is
    saved as ``config.json`` beside the records, and a later run into the same
    folder must match it.

    >>> from skisal.experiments import ExperimentConfig
    >>> config = ExperimentConfig("wine", ("isal", "random"), (0, 1), initial_size=10,
    ...                           query_size=5, steps=3, test_size=58, reference_size=30,
    ...                           epochs=50)
    >>> config.validate(n_samples=178)  # 10 + 3 x 5 labels fit in 178 - 58 - 30
    """

    dataset: str
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    initial_size: int
    query_size: int
    steps: int
    test_size: int
    reference_size: int
    epochs: int

    @classmethod
    def for_dataset(
        cls,
        dataset: str,
        strategies: Sequence[str],
        seeds: Sequence[int],
        **sizes: int | None,
    ) -> ExperimentConfig:
        """A configuration with the dataset's default sizes, except those given.

        Parameters
        ----------
        dataset : str
            A built-in dataset name or ``"package.module:function"``; it is
            loaded to read its default sizes.
        strategies : sequence of str
            Strategy names.
        seeds : sequence of int
            The seeds.
        **sizes : int or None
            Any of ``initial_size``, ``query_size``, ``steps``, ``test_size``,
            ``reference_size``, ``epochs``; None keeps the dataset's default.

        Returns
        -------
        ExperimentConfig

        Raises
        ------
        TypeError
            If a keyword is not one of the sizes.
        ValueError
            If the dataset cannot be loaded.

        Examples
        --------
        >>> config = ExperimentConfig.for_dataset("wine", ["random"], [0], steps=2)
        >>> config.steps, config.query_size
        (2, 5)
        """
        defaults = load_dataset(dataset)
        fields = ("initial_size", "query_size", "steps", "test_size", "reference_size", "epochs")
        unknown = set(sizes) - set(fields)
        if unknown:
            raise TypeError(f"unknown sizes {sorted(unknown)}; expected some of {fields}.")
        values = {f: getattr(defaults, f) if sizes.get(f) is None else sizes[f] for f in fields}
        return cls(dataset, tuple(strategies), tuple(int(s) for s in seeds), **values)

    def validate(self, n_samples: int) -> None:
        """Raise ``ValueError`` naming the field when the configuration cannot work.

        :func:`run_experiment` calls it before any work.

        Parameters
        ----------
        n_samples : int
            Number of samples of the dataset.

        Raises
        ------
        ValueError
            If a size is not a positive integer, the strategies are empty or
            unknown, the seeds are empty or repeated, or the labelled sets do
            not fit in the samples left after the test and reference sets.

        Examples
        --------
        >>> from skisal.experiments import ExperimentConfig
        >>> config = ExperimentConfig.for_dataset("wine", ["random"], [0], steps=30)
        >>> config.validate(178)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: initial_size + steps x query_size = 160 labels, but the dataset has only 90 ...
        """
        for name in (
            "initial_size",
            "query_size",
            "steps",
            "test_size",
            "reference_size",
            "epochs",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not self.strategies:
            raise ValueError("strategies is empty: name at least one strategy.")
        for name in self.strategies:
            strategy_factory(name)  # unknown names fail here, before any work
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds}.")
        available = n_samples - self.test_size - self.reference_size
        needed = self.initial_size + self.steps * self.query_size
        if needed > available:
            raise ValueError(
                f"initial_size + steps x query_size = {needed} labels, but the dataset has "
                f"only {available} samples after the test and reference sets."
            )


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """The model after ``step`` queries of one run: one line of ``records.jsonl``.

    Parameters
    ----------
    strategy : str
        Strategy name.
    seed : int
        The run's seed.
    step : int
        Queries done (0: the initial labelled set).
    n_labeled : int
        Size of the labelled set.
    score : float
        The estimator's test score (accuracy for classifiers).
    query_seconds : float or None
        Seconds the query took; None at step 0.
    fit_seconds : float
        Seconds the (re)training took.
    selected : tuple of int
        The dataset indices this step's query chose (empty at step 0).

    Examples
    --------
    >>> from skisal.experiments import StepRecord
    >>> record = StepRecord("isal", seed=0, step=1, n_labeled=60, score=0.91,
    ...                     query_seconds=0.4, fit_seconds=2.0, selected=(5, 17))
    >>> record.selected
    (5, 17)
    """

    strategy: str
    seed: int
    step: int
    n_labeled: int
    score: float
    query_seconds: float | None
    fit_seconds: float
    selected: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Split:
    """Dataset indices of one seed's test, reference, initial and pool sets.

    Returned by :func:`split_indices`.
    """

    test: np.ndarray
    reference: np.ndarray
    initial: np.ndarray
    pool: np.ndarray


def split_indices(n_samples: int, config: ExperimentConfig, seed: int) -> Split:
    """Shuffle ``range(n_samples)`` with ``seed`` and cut the four sets.

    Parameters
    ----------
    n_samples : int
        Number of samples of the dataset.
    config : ExperimentConfig
        Gives ``test_size``, ``reference_size`` and ``initial_size``; the pool
        is the rest.
    seed : int
        Seeds the shuffle (the same for every strategy).

    Returns
    -------
    Split
        ``test``, ``reference``, ``initial`` and ``pool`` index arrays.

    Examples
    --------
    >>> config = ExperimentConfig.for_dataset("wine", ["random"], [0])
    >>> split = split_indices(178, config, seed=0)
    >>> len(split.test), len(split.reference), len(split.initial), len(split.pool)
    (58, 30, 10, 80)
    """
    order = np.random.default_rng(seed).permutation(n_samples)
    cuts = np.cumsum([config.test_size, config.reference_size, config.initial_size])
    return Split(*np.split(order, cuts))


def _step_seed(seed: int, step: int) -> int:
    """Independent, reproducible seed for one step of one run."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def _reseed(strategy: Any, seed: int) -> None:
    get_params = getattr(strategy, "get_params", None)
    if get_params is not None and "random_state" in get_params(deep=False):
        strategy.set_params(random_state=seed)


def load_records(out_dir: str | Path) -> list[StepRecord]:
    """Records of ``out_dir/records.jsonl``; a line cut short by a crash is ignored.

    Parameters
    ----------
    out_dir : str or Path
        The folder a run wrote to.

    Returns
    -------
    list of StepRecord
        In file order; empty if there is no ``records.jsonl``.

    Examples
    --------
    >>> import tempfile
    >>> from skisal.experiments import load_records
    >>> load_records(tempfile.mkdtemp())
    []

    The measured records of the documentation, from a clone of the repository:
    ``summarise(load_records("docs/results/digits"))``.
    """
    path = Path(out_dir) / RECORDS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            fields = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of an interrupted write
        fields["selected"] = tuple(fields["selected"])
        records.append(StepRecord(**fields))
    return records


def _rewrite_records(records: Sequence[StepRecord], out_dir: Path) -> None:
    path = out_dir / RECORDS_FILE
    if not path.exists():
        return
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in records))
    temporary.replace(path)


def _completed_steps(records: Sequence[StepRecord]) -> dict[tuple[str, int], list[StepRecord]]:
    """Per run, its records from step 0 on, up to the first missing step."""
    runs: dict[tuple[str, int], dict[int, StepRecord]] = {}
    for record in records:
        runs.setdefault((record.strategy, record.seed), {})[record.step] = record
    completed = {}
    for key, steps in runs.items():
        prefix = []
        while len(prefix) in steps:
            prefix.append(steps[len(prefix)])
        completed[key] = prefix
    return completed


def _check_or_write_config(config: ExperimentConfig, out_dir: Path) -> None:
    path = out_dir / CONFIG_FILE
    wanted = dataclasses.asdict(config)
    wanted = json.loads(json.dumps(wanted))  # tuples as lists, as on disk
    if path.exists():
        found = json.loads(path.read_text())
        if found != wanted:
            changed = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise ValueError(
                f"{out_dir} holds a run with another configuration (differs in {changed}); "
                "use another output folder, or delete it (--overwrite) to start afresh."
            )
    else:
        path.write_text(json.dumps(wanted, indent=2) + "\n")


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    dataset: Dataset | None = None,
    progress: bool = False,
) -> list[StepRecord]:
    """Run (or finish) every strategy on every seed; return all records.

    Parameters
    ----------
    config : ExperimentConfig
        What to run.
    out_dir : str or Path
        Folder for ``config.json`` and ``records.jsonl``; created if needed.
        If it holds records of the same configuration, finished steps are
        kept and the rest is run.
    dataset : Dataset, optional
        The data, if already loaded (default: ``load_dataset(config.dataset)``).
    progress : bool, default=False
        Show a tqdm bar over the steps.

    Returns
    -------
    list of StepRecord
        Every step of every run, in (seed, strategy, step) order.

    Raises
    ------
    ValueError
        If the sizes do not fit the dataset, a strategy is unknown, or
        ``out_dir`` holds a run of another configuration.

    Examples
    --------
    One seed of random sampling on wine, one query, one training epoch:

    >>> import tempfile
    >>> from skisal.experiments import ExperimentConfig, run_experiment
    >>> config = ExperimentConfig.for_dataset("wine", ["random"], [0], steps=1, epochs=1)
    >>> out = tempfile.mkdtemp()
    >>> records = run_experiment(config, out)
    >>> [(r.step, r.n_labeled, len(r.selected)) for r in records]
    [(0, 10, 0), (1, 15, 5)]
    >>> len(run_experiment(config, out))  # finished: nothing is run again
    2
    """
    dataset = load_dataset(config.dataset) if dataset is None else dataset
    n_samples = len(dataset.y)
    config.validate(n_samples)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_or_write_config(config, out_dir)
    records = load_records(out_dir)
    _rewrite_records(records, out_dir)  # drops a line an interruption cut short
    completed = _completed_steps(records)

    runs = [(seed, name) for seed in config.seeds for name in config.strategies]
    remaining = sum(config.steps + 1 - len(completed.get((n, s), [])) for s, n in runs)
    results: list[StepRecord] = []
    with (
        (out_dir / RECORDS_FILE).open("a") as sink,
        tqdm(total=remaining, unit="step", disable=not progress) as bar,
    ):

        def write(record: StepRecord) -> None:
            sink.write(json.dumps(dataclasses.asdict(record)) + "\n")
            sink.flush()
            results.append(record)
            bar.update()

        for seed, name in runs:
            done = completed.get((name, seed), [])
            results.extend(done)
            if len(done) == config.steps + 1:
                continue
            bar.set_postfix(strategy=name, seed=seed)
            split = split_indices(n_samples, config, seed)
            _run_one(name, seed, split, dataset, config, done, write)
    return results


def _run_one(
    name: str,
    seed: int,
    split: Split,
    dataset: Dataset,
    config: ExperimentConfig,
    done: Sequence[StepRecord],
    write: Any,
) -> None:
    """One strategy's loop on one seed, from the last finished step on."""
    from modAL.models import ActiveLearner

    X, y = dataset.X, dataset.y
    context = StrategyContext(take_rows(X, split.reference), y[split.reference], seed)
    strategy = make_strategy(name, context)
    X_test, y_test = take_rows(X, split.test), y[split.test]
    selected = [np.asarray(r.selected, dtype=np.int64) for r in done[1:]]
    labelled = np.concatenate([split.initial, *selected])
    last_step = max(len(done) - 1, 0)

    # The learner as it was after `last_step`: same data order and seed as teach() used.
    torch.manual_seed(_step_seed(seed, last_step))
    start = time.perf_counter()
    learner = ActiveLearner(
        estimator=dataset.make_estimator(config.epochs),
        query_strategy=strategy,
        X_training=take_rows(X, labelled),
        y_training=y[labelled],
    )
    fit_seconds = time.perf_counter() - start
    if not done:
        score = float(learner.score(X_test, y_test))
        write(StepRecord(name, seed, 0, len(labelled), score, None, fit_seconds, ()))

    in_pool = np.ones(len(y), dtype=bool)
    in_pool[labelled] = False
    pool = split.pool[in_pool[split.pool]]  # pool order kept
    for step in range(last_step + 1, config.steps + 1):
        _reseed(strategy, _step_seed(seed, step))
        start = time.perf_counter()
        chosen, _ = learner.query(take_rows(X, pool), n_instances=config.query_size)
        query_seconds = time.perf_counter() - start
        selected = pool[np.asarray(chosen, dtype=np.int64)]

        torch.manual_seed(_step_seed(seed, step))
        start = time.perf_counter()
        learner.teach(take_rows(X, selected), y[selected])
        fit_seconds = time.perf_counter() - start
        pool = pool[~np.isin(pool, selected)]
        score = float(learner.score(X_test, y_test))
        n_labeled = len(learner.y_training)
        write(
            StepRecord(
                name,
                seed,
                step,
                n_labeled,
                score,
                query_seconds,
                fit_seconds,
                tuple(int(i) for i in selected),
            )
        )
