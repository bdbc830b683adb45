"""The runner never loses, silently replaces or reuses records it cannot trust."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import filelock
import pytest
from skorch.callbacks import Callback

from skisal.baselines import RandomSampling
from skisal.experiments import (
    STRATEGIES,
    ExperimentConfig,
    StepRecord,
    load_dataset,
    load_records,
    run_experiment,
)
from skisal.experiments.cli import main

# Two runs of three steps each (lines 1-3: seed 0, lines 4-6: seed 1), one epoch per fit.
TINY = ExperimentConfig.for_dataset("wine", ["random"], [0, 1], steps=2, epochs=1)
DROP = object()


def _key(record: StepRecord) -> tuple:
    """Everything but the timings."""
    return (record.strategy, record.seed, record.step, record.n_labeled, record.score)


def _no_training(epochs):
    raise AssertionError("the runner trained although it should not have")


@pytest.fixture(scope="module")
def wine():
    return load_dataset("wine")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, wine):
    out = tmp_path_factory.mktemp("finished")
    return out, run_experiment(TINY, out, dataset=wine)


def _copy(finished, folder: Path) -> list[str]:
    """Copy the finished run into ``folder``; return its record lines."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "records.jsonl"):
        shutil.copy(finished[0] / name, folder / name)
    return (folder / "records.jsonl").read_text().splitlines(keepends=True)


def _edit(line: str, **changes) -> str:
    fields = {**json.loads(line), **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not DROP}) + "\n"


def test_every_record_carries_the_fingerprint_of_its_configuration(finished):
    out, records = finished
    fingerprint = TINY.fingerprint()
    assert re.fullmatch("[0-9a-f]{16}", fingerprint)
    assert fingerprint != dataclasses.replace(TINY, epochs=2).fingerprint()
    lines = (out / "records.jsonl").read_text().splitlines()
    assert [json.loads(line)["fingerprint"] for line in lines] == [fingerprint] * 6
    assert [r.fingerprint for r in records] == [fingerprint] * 6
    assert StepRecord("random", 0, 0, 10, 0.5, None, 1.0, ()).fingerprint is None


def test_a_run_of_isal_from_before_its_change_is_another_configuration(finished, wine, tmp_path):
    """``isal`` became ``selection="auto"``: its old records must not be resumed as the new."""
    config = dataclasses.replace(TINY, strategies=("isal",))
    old = hashlib.sha256(
        json.dumps(dataclasses.asdict(config), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]
    assert config.fingerprint() != old  # the revision is part of it
    assert (
        TINY.fingerprint()
        == hashlib.sha256(  # configurations without isal: as before
            json.dumps(dataclasses.asdict(TINY), sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()[:16]
    )
    lines = [_edit(line, strategy="isal", fingerprint=old) for line in _copy(finished, tmp_path)]
    (tmp_path / "records.jsonl").write_text("".join(lines))
    stored = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**stored, "strategies": ["isal"]}))
    no_training = dataclasses.replace(wine, make_estimator=_no_training)
    with pytest.raises(ValueError, match=f"another configuration .fingerprint {old}"):
        run_experiment(config, tmp_path, dataset=no_training)


def test_records_of_another_configuration_are_refused_without_config_json(finished, wine, tmp_path):
    """Item 4: deleting config.json no longer lets a run reuse another run's records."""
    _copy(finished, tmp_path)
    (tmp_path / "config.json").unlink()
    before = (tmp_path / "records.jsonl").read_bytes()
    other = dataclasses.replace(TINY, epochs=5)
    with pytest.raises(
        ValueError, match=r"records\.jsonl, line 1: .*another configuration.*--overwrite"
    ):
        run_experiment(
            other, tmp_path, dataset=dataclasses.replace(wine, make_estimator=_no_training)
        )
    assert (tmp_path / "records.jsonl").read_bytes() == before
    assert not (tmp_path / "config.json").exists()  # not claimed by the refused configuration
    # The records' own configuration still resumes them, with nothing to run.
    no_training = dataclasses.replace(wine, make_estimator=_no_training)
    assert [_key(r) for r in run_experiment(TINY, tmp_path, dataset=no_training)] == [
        _key(r) for r in finished[1]
    ]
    assert (tmp_path / "config.json").exists()


def _corrupt_middle(lines):
    lines[2] = lines[2][:20] + "\n"


def _corrupt_last_with_newline(lines):
    lines[5] = lines[5][:20] + "\n"


# (edit of the finished run's lines, error message, whether load_records refuses it too)
BROKEN = {
    "corrupt middle line": (_corrupt_middle, r"line 3: not valid JSON", True),
    "corrupt last line with its newline": (
        _corrupt_last_with_newline,
        r"line 6: not valid JSON",
        True,
    ),
    "stray step 99": (
        lambda ls: ls.append(_edit(ls[5], step=99)),
        r"line 7: step 99 is beyond the run's 2 steps",
        False,
    ),
    "missing key": (
        lambda ls: ls.__setitem__(1, _edit(ls[1], selected=DROP)),
        r"line 2: missing fields \['selected'\]",
        True,
    ),
    "extra key": (
        lambda ls: ls.__setitem__(1, _edit(ls[1], bogus=1)),
        r"line 2: .*unknown fields \['bogus'\]",
        True,
    ),
    "wrong type": (
        lambda ls: ls.__setitem__(3, _edit(ls[3], seed="1")),
        r"line 4: seed must be a non-negative integer, got '1'",
        True,
    ),
    "not an object": (
        lambda ls: ls.__setitem__(0, "[1, 2]\n"),
        r"line 1: expected a JSON object, got list",
        True,
    ),
    "conflicting record": (
        lambda ls: ls.append(_edit(ls[1], score=-1.0)),
        r"line 7: a second record of strategy 'random', seed 0, step 1, .* line 2",
        True,
    ),
    "strategy not in the config": (
        lambda ls: ls.append(_edit(ls[0], strategy="margin")),
        r"line 7: strategy 'margin' is not in the run",
        False,
    ),
    "seed not in the config": (
        lambda ls: ls.append(_edit(ls[0], seed=7)),
        r"line 7: seed 7 is not in the run",
        False,
    ),
    "wrong number selected": (
        lambda ls: ls.__setitem__(1, _edit(ls[1], selected=[1])),
        r"line 2: 1 selected, not 5",
        False,
    ),
    "missing step": (
        lambda ls: ls.pop(1),
        r"line 2: step 2 of strategy 'random', seed 0 follows a missing step 1",
        False,
    ),
    "no fingerprint (older skisal)": (
        lambda ls: ls.__setitem__(slice(None), [_edit(line, fingerprint=DROP) for line in ls]),
        r"line 1: the record was written by an older skisal",
        False,
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_untrustworthy_records_are_refused_by_file_and_line(finished, wine, tmp_path, case):
    """Item 6: no duplicates, no raw KeyError, no silent winner: an error naming the line."""
    edit, match, load_refuses = BROKEN[case]
    lines = _copy(finished, tmp_path)
    edit(lines)
    (tmp_path / "records.jsonl").write_text("".join(lines))
    before = {name: (tmp_path / name).read_bytes() for name in ("config.json", "records.jsonl")}
    no_training = dataclasses.replace(wine, make_estimator=_no_training)
    with pytest.raises(ValueError, match=r"records\.jsonl, " + match) as refused:
        run_experiment(TINY, tmp_path, dataset=no_training)
    assert "--overwrite" in str(refused.value)  # the fix is named
    after = {name: (tmp_path / name).read_bytes() for name in before}
    assert after == before  # nothing rewritten or appended
    if load_refuses:
        with pytest.raises(ValueError, match=r"records\.jsonl, " + match):
            load_records(tmp_path)
    else:
        assert len(load_records(tmp_path)) == len(lines)  # still readable for a report


def test_identical_duplicate_lines_are_dropped_not_multiplied(finished, wine, tmp_path):
    lines = _copy(finished, tmp_path)
    (tmp_path / "records.jsonl").write_text("".join(lines[:4] + lines[1:3] + lines[4:]))
    assert [_key(r) for r in load_records(tmp_path)] == [_key(r) for r in finished[1]]
    no_training = dataclasses.replace(wine, make_estimator=_no_training)
    assert len(run_experiment(TINY, tmp_path, dataset=no_training)) == 6
    assert (tmp_path / "records.jsonl").read_text() == "".join(lines)


def test_a_complete_last_line_without_its_newline_is_kept_and_resumed(finished, wine, tmp_path):
    lines = _copy(finished, tmp_path)
    (tmp_path / "records.jsonl").write_text("".join(lines[:4]).rstrip("\n"))
    resumed = run_experiment(TINY, tmp_path, dataset=wine)
    assert [_key(r) for r in resumed] == [_key(r) for r in finished[1]]
    on_disk = (tmp_path / "records.jsonl").read_text().splitlines(keepends=True)
    assert on_disk[:4] == lines[:4] and len(on_disk) == 6


@pytest.mark.parametrize("text", ["", "{", "[1]"])
def test_an_unreadable_config_json_is_named_with_the_fix(finished, wine, tmp_path, text):
    _copy(finished, tmp_path)
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError, match=r"config\.json is not a configuration.*--overwrite"):
        run_experiment(TINY, tmp_path, dataset=wine)
    assert (tmp_path / "config.json").read_text() == text


HOLD_LOCK = (
    "import sys, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(timeout=10); "
    "print('held', flush=True); sys.stdin.read()"
)


def test_a_second_process_holding_the_folder_makes_a_run_fail_at_once(finished, wine, tmp_path):
    """Item 14: a concurrent run into the same folder is refused before touching it."""
    lines = _copy(finished, tmp_path)
    (tmp_path / "records.jsonl").write_text("".join(lines[:4]))  # an unfinished run
    before = (tmp_path / "records.jsonl").read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / ".lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RuntimeError, match=re.escape(f"{tmp_path} is in use by another run")):
            run_experiment(TINY, tmp_path, dataset=wine)
        assert (tmp_path / "records.jsonl").read_bytes() == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    resumed = run_experiment(TINY, tmp_path, dataset=wine)  # free again: it resumes
    assert [_key(r) for r in resumed] == [_key(r) for r in finished[1]]


def test_overwrite_waits_for_no_one_and_deletes_nothing_while_locked(finished, tmp_path):
    """--overwrite used to delete the records of a run still writing them."""
    _copy(finished, tmp_path)
    before = (tmp_path / "records.jsonl").read_bytes()
    argv = ["--dataset", "wine", "--strategies", "random", "--seeds", "1", "--steps", "1"]
    argv += ["--epochs", "1", "--no-progress", "--out", str(tmp_path), "--overwrite"]
    lock = filelock.FileLock(str(tmp_path / ".lock"))
    with lock.acquire(timeout=0):
        with pytest.raises(RuntimeError, match="in use by another run"):
            main(argv)
    assert (tmp_path / "records.jsonl").read_bytes() == before
    assert (tmp_path / "config.json").exists()


def test_keyboard_interrupt_propagates_keeps_records_and_frees_the_folder(
    finished, wine, tmp_path, monkeypatch
):
    calls: list[int] = []

    class Interrupted(RandomSampling):
        def __call__(self, classifier, X_pool, n_instances=1):
            calls.append(1)
            if len(calls) >= 2:  # from the 2nd query on (modAL 0.4.2 calls again on error)
                raise KeyboardInterrupt
            return super().__call__(classifier, X_pool, n_instances)

    original = STRATEGIES["random"]
    monkeypatch.setitem(STRATEGIES, "random", lambda c: Interrupted(random_state=c.random_state))
    with pytest.raises(KeyboardInterrupt) as interrupted:
        run_experiment(TINY, tmp_path, dataset=wine)
    assert interrupted.type is KeyboardInterrupt
    expected = [_key(r) for r in finished[1]]
    assert [_key(r) for r in load_records(tmp_path)] == expected[:2]
    with filelock.FileLock(str(tmp_path / ".lock")).acquire(timeout=0):
        pass  # released on the way out
    monkeypatch.setitem(STRATEGIES, "random", original)
    assert [_key(r) for r in run_experiment(TINY, tmp_path, dataset=wine)] == expected


def test_ctrl_c_that_skorch_fit_swallows_still_stops_the_run_without_its_record(
    finished, wine, tmp_path
):
    """skorch's fit catches KeyboardInterrupt and returns a net cut short: not a step."""
    fits: list[int] = []

    class CtrlCOnThirdFit(Callback):
        def on_epoch_begin(self, net, **kwargs):
            if len(fits) == 2:  # the 3rd fit: step 2 of seed 0
                os.kill(os.getpid(), signal.SIGINT)

        def on_train_end(self, net, **kwargs):
            fits.append(1)

    def make_estimator(epochs):
        estimator = wine.make_estimator(epochs)
        return estimator.set_params(net__callbacks=[CtrlCOnThirdFit()])

    interrupting = dataclasses.replace(wine, make_estimator=make_estimator)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(TINY, tmp_path, dataset=interrupting)
    assert len(fits) == 3  # the 3rd fit, cut short by skorch, returned normally
    expected = [_key(r) for r in finished[1]]
    assert [_key(r) for r in load_records(tmp_path)] == expected[:2]  # no step 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
