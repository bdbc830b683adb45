"""Run one study of the research records through ``skisal.experiments`` and print its table.

    python -m research.reproduce --list
    python -m research.reproduce digits-contenders                  # the whole study
    python -m research.reproduce digits-contenders --seeds 2 --steps 3 --epochs 10  # smoke run
    python -m research.reproduce digits-contenders --baseline marginscore+div_feat_m3

Run from the repository's root. Records go to ``--out`` (default ``results/research/<study>``,
with a suffix when a size is overridden); a run that is interrupted resumes where it stopped.
The table (``research/tables.py``) is printed and written to ``<out>/table.md``; once the
records are complete, running again only tabulates them (e.g. against another ``--baseline``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch

from research import tables
from research.strategies import parse
from skisal.experiments import ExperimentConfig, load_dataset, run_experiment

SOLVER = "research.solver_default.strategies"
#: Built-in strategies of skisal.experiments the studies use as they are (their ``isal`` is
#: not the studies' one: skisal's default solver has changed since, see PAPER_ISAL).
BASELINES = ("random", "uncertainty", "margin", "entropy")


@dataclasses.dataclass(frozen=True)
class Study:
    """A table of a research document: what to run, and how to tabulate it."""

    document: str
    dataset: str
    strategies: tuple[str, ...]  # as the document names them
    seeds: range
    sizes: dict = dataclasses.field(default_factory=dict)  # overrides of the dataset's
    reference_rows: int | None = None  # ISAL's rows of a larger reference bank
    baseline: str | None = None  # default: the best uncertainty baseline
    versus: str | None = None
    aulc: str = "trapezoid"
    ddof: int = 0
    curves: tuple[str, ...] | None = None
    curves_std: bool = False

    def recorded_names(self) -> dict[str, str]:
        """Strategy name for ``skisal.experiments`` by the document's name."""
        names = {}
        for label in self.strategies:
            if label in BASELINES:
                names[label] = label
            elif label == "isal_converged" or label.startswith("isal_pcg_"):  # SOLVER's
                names[label] = f"{SOLVER}:{label}"
            elif "+" in label or label in ("isal", "marginscore"):
                spec = parse(label)
                bank = spec.base == "isal" and self.reference_rows and "refbig" not in label
                names[label] = f"research.strategies:{label}" + (
                    f"+ref{self.reference_rows}" if bank else ""
                )
            else:  # the lead's prototypes
                names[label] = f"research.strategies:{label}"
        return names


_MODES = "influence_modes.md"
_VARIANTS = """random uncertainty margin entropy isal isal+gradsim isal+spec0.01 isal+spec0.1
isal+spec1 isal+top2 isal+refbig isal+refstrat isal+div_feat_m3 isal+div_feat_m10
isal+div_badge_m3 isal+hybrank isal+uncf_m2 isal+eai isal+eai+div_feat_m3
isal+eai+uncdiv_feat_m3 isal+uncdiv_feat_m3 marginscore+div_feat_m3 isal+gradsim+eai""".split()
_DIGITS_ONLY = "isal+top3 isal+refbig+refstrat isal+div_badge_m10 isal+uncf_m4".split()
_DIGITS_ONLY += ["isal+hybrank+div_feat_m3"]
_CURVES = """random margin isal isal+eai isal+eai+div_feat_m3 isal+eai+uncdiv_feat_m3
marginscore+div_feat_m3""".split()
_BC_CONTENDERS = _CURVES + "isal+gradsim isal+spec0.1 isal+div_feat_m3 isal+uncf_m2".split()
_BC_CONTENDERS += ["isal+hybrank"]
_DIGITS = {"reference_size": 300}  # the study's bank: ISAL gets its first 100 rows
_BC = {"reference_size": 100}  # ... its first 50 rows
_LEAD = "influence_modes.md, follow-up by the lead"
_SOLVER_DOC = "solver_default/README.md"

# fmt: off
#: Every table of the research documents, by name.
STUDIES: dict[str, Study] = {
    "digits-variants": Study(
        _MODES, "digits", (*_VARIANTS, *_DIGITS_ONLY), range(10), _DIGITS, 100,
        versus="isal", aulc="mean",
    ),
    "breast_cancer-variants": Study(
        # isal+top2 (top_k = 2 classes) now raises: the expected gradient is identically zero.
        _MODES, "breast_cancer", tuple(s for s in _VARIANTS if s != "isal+top2"), range(10),
        _BC, 50, versus="isal", aulc="mean",
    ),
    "digits-contenders": Study(
        _MODES, "digits", tuple(_CURVES), range(20), _DIGITS, 100, versus="isal", aulc="mean",
        curves=tuple(_CURVES),
    ),
    "breast_cancer-contenders": Study(
        _MODES, "breast_cancer", tuple(_BC_CONTENDERS), range(20), _BC, 50, versus="isal",
        aulc="mean", curves=tuple(_CURVES),
    ),
    "digits-margin": Study(_MODES, "digits", ("margin",), range(3), _DIGITS, 100),
    "digits-posterior": Study(
        _LEAD, "digits", ("variance", "helpful", "margin", "isal"), range(5), baseline="margin"
    ),
    "digits-badge": Study(
        _LEAD, "digits", ("badge", "isal_badge", "margin", "isal"), range(5), baseline="margin"
    ),
    "digits-badge-tilted": Study(
        _LEAD, "digits", ("isal_badge_rms", "isal_badge_rank", "margin"), range(5),
        baseline="margin",
    ),
    "digits-badge-seeds5-9": Study(
        _LEAD, "digits", ("isal_badge_rank", "badge", "margin", "isal"), range(5, 10),
        baseline="margin",
    ),
    "breast_cancer-posterior": Study(
        _LEAD, "breast_cancer", ("helpful", "variance", "entropy", "isal"), range(5),
        baseline="entropy",
    ),
    "breast_cancer-badge": Study(
        _LEAD, "breast_cancer", ("badge", "isal_badge_rms", "isal_badge_rank", "entropy", "isal"),
        range(5), baseline="entropy",
    ),
    "solver-digits": Study(
        _SOLVER_DOC, "digits", ("isal_converged", "isal_pcg_loose"), range(5),
        baseline="isal_converged", ddof=1, curves=(), curves_std=True,
    ),
    "solver-breast_cancer": Study(
        _SOLVER_DOC, "breast_cancer", ("isal_converged", "isal_pcg_loose"), range(10),
        baseline="isal_converged", ddof=1, curves=(), curves_std=True,
    ),
    "subsample-digits": Study(
        _SOLVER_DOC, "digits", ("isal_pcg_loose", "isal_pcg_sub128"), range(10),
        baseline="isal_pcg_loose", ddof=1, curves=(), curves_std=True,
    ),
    "subsample-breast_cancer": Study(
        _SOLVER_DOC, "breast_cancer", ("isal_pcg_loose", "isal_pcg_sub32"), range(10),
        baseline="isal_pcg_loose", ddof=1, curves=(), curves_std=True,
    ),
    "tolerance-digits": Study(
        _SOLVER_DOC, "digits", ("isal_pcg_loose", "isal_pcg_tol03"), range(10),
        baseline="isal_pcg_loose", ddof=1, curves=(), curves_std=True,
    ),
    "tolerance-breast_cancer": Study(
        _SOLVER_DOC, "breast_cancer", ("isal_pcg_loose", "isal_pcg_tol03"), range(10),
        baseline="isal_pcg_loose", ddof=1, curves=(), curves_std=True,
    ),
}
# fmt: on

_SIZES = ("steps", "epochs", "query_size", "initial_size", "test_size")


def config_of(
    study: Study, seeds: int | None = None, first_seed: int | None = None, **sizes: int | None
) -> ExperimentConfig:
    """The study's configuration, with fewer seeds or other sizes if given."""
    first = study.seeds.start if first_seed is None else first_seed
    count = len(study.seeds) if seeds is None else seeds
    return ExperimentConfig.for_dataset(
        study.dataset,
        list(study.recorded_names().values()),
        range(first, first + count),
        **{**study.sizes, **{k: v for k, v in sizes.items() if v is not None}},
    )


def report(study: Study, records: Sequence) -> str:
    """The study's table (and learning curves) as Markdown."""
    labels = {v: k for k, v in study.recorded_names().items()}
    text = tables.table(records, study.baseline, study.versus, study.aulc, study.ddof, labels)
    if study.curves is not None:
        curves = tables.curves(records, study.curves or None, study.curves_std, labels)
        text += "\n\nMean test accuracy (%) per labelled-set size:\n\n" + curves
    return text


def main(argv: Sequence[str] | None = None) -> str:
    """Run (or resume) a study, print and write its table; return the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="?", choices=list(STUDIES))
    parser.add_argument("--list", action="store_true", help="list the studies and exit")
    parser.add_argument("--seeds", type=int, help="number of seeds (default: the study's)")
    parser.add_argument("--first-seed", type=int)
    for size in _SIZES:
        parser.add_argument("--" + size.replace("_", "-"), type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--baseline", help="pair against this strategy instead of the study's")
    parser.add_argument("--versus", help="second strategy to pair against instead")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.list or args.study is None:
        text = "\n".join(
            f"{name:26s} {s.document}: {s.dataset}, {len(s.strategies)} "
            f"strategies, seeds {s.seeds.start}..{s.seeds.stop - 1}"
            for name, s in STUDIES.items()
        )
        print(text)
        return text
    study = STUDIES[args.study]
    changes = {"baseline": args.baseline, "versus": args.versus}
    study = dataclasses.replace(study, **{k: v for k, v in changes.items() if v is not None})
    sizes = {k: getattr(args, k) for k in _SIZES}
    config = config_of(study, args.seeds, args.first_seed, **sizes)
    out = args.out
    if out is None:
        reduced = args.seeds is not None or args.first_seed is not None or any(sizes.values())
        suffix = f"-{config.fingerprint()[:8]}" if reduced else ""
        out = Path("results") / "research" / (args.study + suffix)
    torch.set_num_threads(1)  # small networks; and the numbers do not depend on the machine
    records = run_experiment(
        config, out, dataset=load_dataset(study.dataset), progress=args.progress
    )
    text = report(study, records)
    (out / "table.md").write_text(text + "\n")
    print(f"{study.document} ({args.study}), records in {out}:\n\n{text}")
    return text


if __name__ == "__main__":
    main()
