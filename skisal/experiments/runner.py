"""Run whole active-learning loops through modAL, record every step, resume.

Every seed splits the dataset afresh into a test set, ISAL's reference set, an
initial labelled set and the pool (whose labels are the oracle). Every
strategy starts from the same split and the same initial network; each step
queries ``query_size`` pool samples, reveals their labels with
``ActiveLearner.teach`` and retrains the estimator from scratch (skorch
re-initialises its module on ``fit``), as the paper does, then scores it on
the test set with the estimator's own ``score``.

One JSON line per finished step goes to ``records.jsonl``, flushed at once
(:mod:`~skisal.experiments.records`); the pool indices each step selected are
in it, and so is the fingerprint of the configuration that wrote it. Running
again with the same configuration and folder skips what is done and rebuilds
an unfinished run's labelled set from those lines. Torch is reseeded from
``(seed, step)`` before every fit, and so is any strategy with a
``random_state``, so a resumed run makes the same choices as an uninterrupted
one.

A run never reuses or replaces records it cannot trust: it refuses, naming the
file and line, records of another configuration or without a fingerprint
(written before skisal recorded one), lines that are corrupt (except a last
line an interruption cut short, which is dropped), of the wrong shape, outside
the configuration, after a missing step, or in conflict with another line.
It locks its folder (the file ``.lock``, with ``filelock``) for the whole run,
so a second run into the same folder fails at once instead of corrupting it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import torch
from tqdm.auto import tqdm

from .._validation import take_rows
from ..exceptions import InvalidParameterError
from .datasets import Dataset, load_dataset
from .records import AFRESH, RECORDS_FILE, StepRecord, line_error, load_records, read_records
from .strategies import STRATEGY_REVISIONS, StrategyContext, make_strategy, strategy_factory

# StepRecord and load_records live in .records; still importable from here.
__all__ = [
    "ExperimentConfig",
    "StepRecord",
    "load_records",
    "run_experiment",
    "split_indices",
    "step_seed",
]

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"


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
    >>> config = ExperimentConfig.for_dataset("wine", ["isal", "random"], [0, 1], steps=3)
    >>> config.initial_size, config.query_size, config.test_size, config.reference_size
    (10, 5, 58, 30)
    >>> config.validate(n_samples=178)  # 10 + 3 x 5 labels fit in 178 - 58 - 30
    >>> len(config.fingerprint())  # stored with every record
    16
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
        """
        defaults = load_dataset(dataset)
        fields = ("initial_size", "query_size", "steps", "test_size", "reference_size", "epochs")
        unknown = set(sizes) - set(fields)
        if unknown:
            raise InvalidParameterError(
                f"unknown sizes {sorted(unknown)}; expected some of {fields}."
            )
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
                raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}.")
        if not self.strategies:
            raise InvalidParameterError("strategies is empty: name at least one strategy.")
        for name in self.strategies:
            strategy_factory(name)  # unknown names fail here, before any work
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise InvalidParameterError(
                f"seeds must be distinct and at least one, got {self.seeds}."
            )
        available = n_samples - self.test_size - self.reference_size
        needed = self.initial_size + self.steps * self.query_size
        if needed > available:
            raise InvalidParameterError(
                f"initial_size + steps x query_size = {needed} labels, but the dataset has "
                f"only {available} samples after the test and reference sets."
            )

    def fingerprint(self) -> str:
        """A short hash of the configuration, stored with every record it writes.

        Returns
        -------
        str
            16 hex digits of the SHA-256 of the configuration's canonical JSON,
            with the :data:`~skisal.experiments.strategies.STRATEGY_REVISIONS` of
            its built-in strategies (a record of ``isal`` from before it changed
            is of another configuration).
        """
        content = dataclasses.asdict(self)
        revisions = {n: STRATEGY_REVISIONS[n] for n in self.strategies if n in STRATEGY_REVISIONS}
        if revisions:  # configurations without them keep their earlier fingerprint
            content["strategy_revisions"] = revisions
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def step_seed(seed: int, step: int) -> int:
    """The seed the runner gives torch and the strategy at ``step`` of run ``seed``.

    Independent across steps and runs, and reproducible: a resumed run, or a
    script that replays one (``research/replay.py``), trains and queries
    exactly as the original run did.

    Parameters
    ----------
    seed : int
        The run's seed (one of :attr:`ExperimentConfig.seeds`).
    step : int
        The step: 0 for the initial fit, then one per query.

    Returns
    -------
    int
        A seed in ``[0, 2**32)``.

    Examples
    --------
    >>> from skisal.experiments import step_seed
    >>> step_seed(0, 3) == step_seed(0, 3) != step_seed(1, 3)
    True
    """
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def _reseed(strategy: Any, seed: int) -> None:
    get_params = getattr(strategy, "get_params", None)
    if get_params is not None and "random_state" in get_params(deep=False):
        strategy.set_params(random_state=seed)


def _check_against_config(
    entries: Sequence[tuple[int, StepRecord]], config: ExperimentConfig, path: Path
) -> dict[tuple[str, int], list[StepRecord]]:
    """Per run, its records from step 0 on; ValueError for one it cannot resume from."""
    fingerprint = config.fingerprint()
    runs: dict[tuple[str, int], dict[int, tuple[int, StepRecord]]] = {}
    for number, r in entries:
        if r.fingerprint != fingerprint:
            written_by = (
                "an older skisal, which stored no configuration fingerprint"
                if r.fingerprint is None
                else f"another configuration (fingerprint {r.fingerprint}, not {fingerprint})"
            )
            remedy = "Rerun with the configuration that wrote it, or " if r.fingerprint else ""
            remedy += AFRESH if r.fingerprint else AFRESH.capitalize()
            raise line_error(path, number, f"the record was written by {written_by}", remedy + ".")
        expected = 0 if r.step == 0 else config.query_size
        for wrong, problem in [
            (r.strategy not in config.strategies, f"strategy {r.strategy!r} is not in the run"),
            (r.seed not in config.seeds, f"seed {r.seed} is not in the run"),
            (r.step > config.steps, f"step {r.step} is beyond the run's {config.steps} steps"),
            (len(r.selected) != expected, f"{len(r.selected)} selected, not {expected}"),
        ]:
            if wrong:
                raise line_error(path, number, problem)
        runs.setdefault((r.strategy, r.seed), {})[r.step] = (number, r)
    completed = {}
    for (name, seed), steps in runs.items():
        prefix = []
        while len(prefix) in steps:
            prefix.append(steps[len(prefix)][1])
        for step, (number, _) in sorted(steps.items()):
            if step > len(prefix):  # its labelled set depends on the missing step
                raise line_error(
                    path,
                    number,
                    f"step {step} of strategy {name!r}, seed {seed} follows a missing step "
                    f"{len(prefix)}; delete the lines of that run from there on to rerun them",
                )
        completed[(name, seed)] = prefix
    return completed


def _check_config_file(config: ExperimentConfig, out_dir: Path) -> bool:
    """Whether ``config.json`` exists; ValueError if it is unreadable or differs."""
    path = out_dir / CONFIG_FILE
    if not path.exists():
        return False
    wanted = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples as lists, as on disk
    try:
        found = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        found = exc
    if not isinstance(found, dict):
        raise ValueError(
            f"{path} is not a configuration skisal wrote ({str(found)[:80]}); delete it if "
            f"records.jsonl is this configuration's (its fingerprints are checked), or {AFRESH}."
        )
    if found != wanted:
        changed = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
        raise ValueError(
            f"{out_dir} holds a run with another configuration (differs in {changed}); "
            "use another output folder, or delete it (--overwrite) to start afresh."
        )
    return True


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    dataset: Dataset | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> list[StepRecord]:
    """Run (or finish) every strategy on every seed; return all records.

    Parameters
    ----------
    config : ExperimentConfig
        What to run.
    out_dir : str or Path
        Folder for ``config.json`` and ``records.jsonl``; created if needed,
        and locked while the run lasts. If it holds records of the same
        configuration, finished steps are kept and the rest is run.
    dataset : Dataset, optional
        The data, if already loaded (default: ``load_dataset(config.dataset)``).
    progress : bool, default=False
        Show a tqdm bar over the steps.
    overwrite : bool, default=False
        Delete ``records.jsonl`` and ``config.json`` first (once the folder is
        locked) and start afresh.

    Returns
    -------
    list of StepRecord
        Every step of every run, in (seed, strategy, step) order.

    Raises
    ------
    ValueError
        If the sizes do not fit the dataset or a strategy is unknown, or, naming
        the file, the line and the fix, if ``out_dir`` holds a configuration or
        a record this run cannot resume from (see :func:`load_records`; also a
        record without this configuration's fingerprint, outside it, or after a
        missing step).
    RuntimeError
        If another run holds ``out_dir``'s lock.

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
    lock = filelock.FileLock(str(out_dir / LOCK_FILE))
    try:
        held = lock.acquire(timeout=0)  # a second run fails at once, not after a wait
    except filelock.Timeout:
        raise RuntimeError(
            f"{out_dir} is in use by another run (it holds {out_dir / LOCK_FILE}); wait for "
            "that run to finish, or use another output folder (--out)."
        ) from None
    with held:
        return _run_locked(config, out_dir, dataset, progress, overwrite)


def _run_locked(
    config: ExperimentConfig, out_dir: Path, dataset: Dataset, progress: bool, overwrite: bool
) -> list[StepRecord]:
    path = out_dir / RECORDS_FILE
    if overwrite:
        for name in (RECORDS_FILE, CONFIG_FILE):
            (out_dir / name).unlink(missing_ok=True)
    has_config = _check_config_file(config, out_dir)
    entries, clean = read_records(path)
    completed = _check_against_config(entries, config, path)
    # Written only now that the records are known to be this configuration's.
    if not has_config:
        config_text = json.dumps(dataclasses.asdict(config), indent=2) + "\n"
        (out_dir / CONFIG_FILE).write_text(config_text)
    if clean is not None:  # drops a line an interruption cut short, and copies
        temporary = path.with_suffix(".tmp")
        temporary.write_text(clean)
        temporary.replace(path)

    fingerprint = config.fingerprint()
    runs = [(seed, name) for seed in config.seeds for name in config.strategies]
    remaining = sum(config.steps + 1 - len(completed.get((n, s), [])) for s, n in runs)
    results: list[StepRecord] = []
    with (
        path.open("a") as sink,
        tqdm(total=remaining, unit="step", disable=not progress) as bar,
        _ctrl_c_seen() as interrupted,
    ):

        def write(record: StepRecord) -> None:
            if interrupted():  # skorch's fit swallowed it: that step's model is cut short
                raise KeyboardInterrupt
            record = dataclasses.replace(record, fingerprint=fingerprint)
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
            split = split_indices(len(dataset.y), config, seed)
            _run_one(name, seed, split, dataset, config, done, write)
    return results


@contextlib.contextmanager
def _ctrl_c_seen() -> Iterator[Any]:
    """Yield a function telling whether Ctrl-C was pressed since the block began.

    skorch's ``fit`` catches ``KeyboardInterrupt`` and returns a net trained
    for fewer epochs; recording that step would keep a wrong score. Python's
    own handler is wrapped (it still raises ``KeyboardInterrupt``), only in
    the main thread and only when SIGINT is not ignored.
    """
    seen = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:

        def note_and_raise(signum: int, frame: Any) -> None:
            seen.set()
            signal.default_int_handler(signum, frame)

        signal.signal(signal.SIGINT, note_and_raise)
    try:
        yield seen.is_set
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)


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
    torch.manual_seed(step_seed(seed, last_step))
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
        _reseed(strategy, step_seed(seed, step))
        start = time.perf_counter()
        chosen, _ = learner.query(take_rows(X, pool), n_instances=config.query_size)
        query_seconds = time.perf_counter() - start
        selected = pool[np.asarray(chosen, dtype=np.int64)]

        torch.manual_seed(step_seed(seed, step))
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
