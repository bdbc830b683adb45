"""Rebuild the learner of a recorded run at any step, for diagnostics the records do not hold.

``skisal.experiments`` records each step's selection, and reseeds torch from ``(seed, step)``
before every fit, so the model after ``step`` queries is fully determined by the records: it is
how the runner itself resumes an unfinished run. :func:`learner_at` does the same, outside the
runner, and the rebuilt learner scores exactly the recorded test score (tested).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from modAL.models import ActiveLearner

from skisal.experiments import (
    Dataset,
    ExperimentConfig,
    StrategyContext,
    load_dataset,
    load_records,
    make_strategy,
    split_indices,
    step_seed,
)
from skisal.experiments.runner import CONFIG_FILE


@dataclasses.dataclass
class Replayed:
    """One run's learner after ``step`` queries, with its data and strategy."""

    learner: ActiveLearner
    pool: np.ndarray  # dataset indices still in the pool, in the runner's order
    X_pool: Any
    context: StrategyContext
    strategy: Any  # a fresh instance of the run's strategy
    score: float  # the recorded test score after this step
    next_selected: tuple[int, ...] | None  # what the run's next query chose (None: last step)
    config: ExperimentConfig
    dataset: Dataset

    def test_score(self) -> float:
        """The rebuilt learner's test score (equals ``score`` when the replay is exact)."""
        split = split_indices(len(self.dataset.y), self.config, self.context.random_state)
        X, y = self.dataset.X, self.dataset.y
        return float(self.learner.score(X[split.test], y[split.test]))


def read_config(out_dir: str | Path) -> ExperimentConfig:
    """The configuration of a run folder (its ``config.json``)."""
    fields = json.loads((Path(out_dir) / CONFIG_FILE).read_text())
    fields["strategies"] = tuple(fields["strategies"])
    fields["seeds"] = tuple(fields["seeds"])
    return ExperimentConfig(**fields)


def learner_at(
    out_dir: str | Path, strategy: str, seed: int, step: int, dataset: Dataset | None = None
) -> Replayed:
    """The learner of run ``(strategy, seed)`` of ``out_dir`` after ``step`` queries.

    Parameters
    ----------
    out_dir : str or Path
        A folder ``skisal.experiments`` wrote.
    strategy : str
        A strategy of its configuration.
    seed : int
        One of its seeds.
    step : int
        Queries done (0: the initial labelled set); the run must have recorded it.
    dataset : Dataset, optional
        The configuration's dataset, if already loaded.

    Returns
    -------
    Replayed
    """
    config = read_config(out_dir)
    dataset = load_dataset(config.dataset) if dataset is None else dataset
    records = {
        r.step: r for r in load_records(out_dir) if r.strategy == strategy and r.seed == seed
    }
    if step not in records:
        raise ValueError(
            f"{out_dir} has no record of strategy {strategy!r}, seed {seed}, step {step}: "
            "run the experiment that far first."
        )
    X, y = dataset.X, dataset.y
    split = split_indices(len(y), config, seed)
    chosen = [np.asarray(records[k].selected, dtype=np.int64) for k in range(1, step + 1)]
    labelled = np.concatenate([split.initial, *chosen])
    context = StrategyContext(X[split.reference], y[split.reference], seed)
    instance = make_strategy(strategy, context)
    torch.manual_seed(step_seed(seed, step))
    learner = ActiveLearner(
        estimator=dataset.make_estimator(config.epochs),
        query_strategy=instance,
        X_training=X[labelled],
        y_training=y[labelled],
    )
    pool = split.pool[~np.isin(split.pool, labelled)]
    following = records.get(step + 1)
    return Replayed(
        learner,
        pool,
        X[pool],
        context,
        instance,
        records[step].score,
        None if following is None else following.selected,
        config,
        dataset,
    )
