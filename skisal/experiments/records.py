"""The records file of a run: one JSON line per finished step, checked line by line.

A run appends one :class:`StepRecord` per finished step to ``records.jsonl`` in its
output folder, flushed at once. :func:`load_records` reads them back and refuses,
naming the file and line, a line that is corrupt (except a last line an interruption
cut short, which is dropped), of the wrong shape, or in conflict with another line.
Whether a run may resume from them is the runner's check
(:func:`~skisal.experiments.run_experiment`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

__all__ = ["RECORDS_FILE", "StepRecord", "load_records"]

#: Name of the records file in a run's output folder.
RECORDS_FILE = "records.jsonl"
# The remedies errors name (the runner's errors too).
AFRESH = "start afresh in another output folder (--out) or with --overwrite (overwrite=True)"
REMEDY = f"Correct or delete that line, or {AFRESH}."


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
    fingerprint : str or None, default=None
        :meth:`~skisal.experiments.ExperimentConfig.fingerprint` of the run
        that wrote it (None in records written before skisal stored it).

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
    fingerprint: str | None = None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_COUNT = "a non-negative integer"
# Per field of a JSON line: its check, and what it must be (for the message).
_FIELD_CHECKS = {
    "strategy": (lambda v: isinstance(v, str), "a string"),
    "seed": (_count, _COUNT),
    "step": (_count, _COUNT),
    "n_labeled": (_count, _COUNT),
    "score": (_number, "a number"),
    "query_seconds": (lambda v: v is None or _number(v), "a number or null"),
    "fit_seconds": (_number, "a number"),
    "selected": (lambda v: isinstance(v, list) and all(map(_count, v)), f"a list of {_COUNT}s"),
    "fingerprint": (lambda v: v is None or isinstance(v, str), "a string or null"),
}


def line_error(path: Path, line: int, problem: str, remedy: str = REMEDY) -> ValueError:
    """The error for line ``line`` of ``path``: the problem, then the remedy."""
    return ValueError(f"{path}, line {line}: {problem}. {remedy}")


def _parse_record(fields: Any, path: Path, line: int) -> StepRecord:
    """The record of one JSON line, or ValueError naming what is wrong with it."""
    if not isinstance(fields, dict):
        raise line_error(path, line, f"expected a JSON object, got {type(fields).__name__}")
    missing = [k for k in _FIELD_CHECKS if k not in fields and k != "fingerprint"]
    extra = sorted(set(fields) - set(_FIELD_CHECKS))
    if missing or extra:
        raise line_error(path, line, f"missing fields {missing}, unknown fields {extra}")
    for name, value in fields.items():
        check, expected = _FIELD_CHECKS[name]
        if not check(value):
            raise line_error(path, line, f"{name} must be {expected}, got {value!r}")
    return StepRecord(**{**fields, "selected": tuple(fields["selected"])})


def read_records(path: Path) -> tuple[list[tuple[int, StepRecord]], str | None]:
    """The records of ``path`` with their line numbers, and its text to write back.

    What :func:`load_records` reads; the runner also rewrites the file with the text.

    The text is None when the file needs no change; otherwise it lacks a last
    line an interruption cut short and identical copies of a line.
    """
    if not path.exists():
        return [], None
    text = path.read_text()
    lines = text.split("\n")  # ends with "" unless the last write was cut short
    entries: list[tuple[int, StepRecord]] = []
    kept: list[str] = []
    seen: dict[tuple[str, int, int], tuple[int, StepRecord]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # no newline after it: the write was cut short
                continue
            raise line_error(
                path,
                number,
                f"not valid JSON ({exc.msg}); only a last line without its newline can "
                "be a write cut short by an interruption",
            ) from None
        record = _parse_record(fields, path, number)
        key = (record.strategy, record.seed, record.step)
        if key in seen:
            if seen[key][1] != record:
                raise line_error(
                    path,
                    number,
                    f"a second record of strategy {key[0]!r}, seed {key[1]}, step {key[2]}, "
                    f"which differs from the one on line {seen[key][0]}",
                )
            continue  # an identical copy: dropped
        seen[key] = (number, record)
        entries.append((number, record))
        kept.append(line)
    clean = "".join(line + "\n" for line in kept)
    return entries, None if clean == text else clean


def load_records(out_dir: str | Path) -> list[StepRecord]:
    """Records of ``out_dir/records.jsonl``, checked line by line.

    A last line without its newline that is not valid JSON (a write cut short
    by an interruption) is ignored, and so are blank lines and identical
    copies of a line. Records written before skisal stored the
    configuration's fingerprint are read too (their ``fingerprint`` is None);
    :func:`~skisal.experiments.run_experiment` refuses to resume from them.

    Parameters
    ----------
    out_dir : str or Path
        The folder a run wrote to.

    Returns
    -------
    list of StepRecord
        In file order; empty if there is no ``records.jsonl``.

    Raises
    ------
    ValueError
        Naming the file and line, if a line other than the last is not valid
        JSON, a line has missing or unknown fields or a field of the wrong
        type, or two different lines record the same strategy, seed and step.

    Examples
    --------
    >>> import tempfile
    >>> from skisal.experiments import load_records
    >>> load_records(tempfile.mkdtemp())
    []

    The measured records of the documentation, from a clone of the repository:
    ``summarise(load_records("docs/results/digits"))``.
    """
    entries, _ = read_records(Path(out_dir) / RECORDS_FILE)
    return [record for _, record in entries]
