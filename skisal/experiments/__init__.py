"""Active-learning experiments: datasets, strategies, a resumable runner, reports.

Command line: ``skisal-experiment --help`` (or ``python -m skisal.experiments``).
Needs modAL, and matplotlib for the plot (``pip install "skisal[modal,examples]"``):
:class:`ComparisonDisplay` draws the learning curves and each strategy's difference to random;
:func:`paired_comparison` tests each strategy against a baseline, seed by seed.
"""

from .datasets import DATASETS, Dataset, load_dataset
from .display import ComparisonDisplay
from .records import StepRecord, load_records
from .report import (
    aulc,
    best_baseline,
    format_markdown,
    format_summary,
    labels_to_reach,
    plot_learning_curves,
    summarise,
    write_report,
)
from .runner import ExperimentConfig, run_experiment, split_indices, step_seed
from .statistics import paired_comparison, per_step_comparison
from .strategies import STRATEGIES, StrategyContext, make_strategy

__all__ = [
    "DATASETS",
    "STRATEGIES",
    "ComparisonDisplay",
    "Dataset",
    "ExperimentConfig",
    "StepRecord",
    "StrategyContext",
    "aulc",
    "best_baseline",
    "format_markdown",
    "format_summary",
    "labels_to_reach",
    "load_dataset",
    "load_records",
    "make_strategy",
    "paired_comparison",
    "per_step_comparison",
    "plot_learning_curves",
    "run_experiment",
    "split_indices",
    "step_seed",
    "summarise",
    "write_report",
]
