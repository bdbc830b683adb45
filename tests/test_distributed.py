"""Distributed scoring: two gloo processes under torchrun agree with one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

import skisal
from skisal.engine.distributed import _differences, current_group, fingerprints

SCRIPTS = Path(__file__).parent / "distributed"
SCRIPT = SCRIPTS / "query_two_ranks.py"
needs_distributed = pytest.mark.skipif(
    not dist.is_available(), reason="this torch build has no torch.distributed"
)


def _torchrun(script: Path, timeout: float) -> subprocess.CompletedProcess:
    """Two gloo ranks running ``script``, importing the skisal these tests import."""
    root = str(Path(skisal.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(script)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


@needs_distributed
def test_two_gloo_ranks_select_what_one_process_selects():
    result = _torchrun(SCRIPT, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "OK" in result.stdout
    # A failure on rank 0 was raised on both ranks instead of leaving one waiting.
    assert "rank 0 raised SolverDivergenceError" in result.stdout
    assert "rank 1 raised SolverDivergenceError" in result.stdout
    # So was a failure in rank 1's shard only.
    assert "rank 1 shard failure: ArithmeticError: shard failed" in result.stdout
    assert "rank 0 shard failure: RuntimeError: rank 1 failed" in result.stdout


def test_without_a_process_group_everything_stays_local():
    assert not dist.is_initialized()
    assert current_group() is None


@needs_distributed
def test_ranks_holding_different_inputs_all_raise_instead_of_aborting_or_hanging():
    # A hang shows as TimeoutExpired, an abort in a mismatched collective as a nonzero exit.
    result = _torchrun(SCRIPTS / "mismatch_two_ranks.py", timeout=150)
    output = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    expected = {
        "shorter pool": "X_pool differs across ranks: rank 0 has 1001 samples, rank 1 has 996",
        "different model": "model differs across ranks: rank 0 has 2.weight=float32 (10, 16)",
        "different option": "options differ across ranks: rank 0 has damping=0.001, "
        "rank 1 has damping=0.01",
    }
    for scenario, part in expected.items():
        mine, theirs = lines.get(f"rank 0 {scenario}", ""), lines.get(f"rank 1 {scenario}", "")
        assert mine.startswith("ValueError: the ranks do not hold the same inputs"), output
        assert part in mine, output
        assert "or query with distributed=False" in mine, output
        assert mine == theirs, output  # the same error on every rank
    # Rank 1's own failure (a NaN in its pool) reaches rank 0 instead of leaving it waiting.
    assert lines["rank 1 nan pool"].startswith("ValueError: X_pool holds NaN"), output
    assert lines["rank 0 nan pool"].startswith(
        "RuntimeError: rank 1 failed before the distributed query started "
        "(rank 1: ValueError: X_pool holds NaN"
    ), output
    assert "rank 0 DONE" in result.stdout and "rank 1 DONE" in result.stdout, output


def test_fingerprints_tell_apart_what_differs_and_only_that():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    before = X.copy()
    model = torch.nn.Linear(2, 1)
    reference = fingerprints(model, {"damping": 0.01, "X_pool": X}, X_pool=X, y=[1, 0])
    np.testing.assert_array_equal(X, before)  # never modified
    assert reference["X_pool"]["samples"] == 6
    assert "X_pool" not in reference["options"]  # a data set's content, not its repr
    # The same content in another container, and a function option's memory address, agree.
    same = fingerprints(model, {"damping": 0.01}, X_pool=torch.from_numpy(X.copy()), y=(1, 0))
    assert same == reference
    assert fingerprints(options={"f": lambda: 0}) == fingerprints(options={"f": lambda: 0})
    changed = X.copy()
    changed[4, 1] += 1e-6  # one value of one row
    assert fingerprints(X_pool=changed)["X_pool"] != reference["X_pool"]
    other = torch.nn.Linear(2, 1)
    assert fingerprints(other)["model"] != reference["model"]


def test_differences_name_the_input_and_group_the_ranks():
    def prints(n, damping):
        return fingerprints(options={"damping": damping}, X_pool=np.zeros((n, 2)))

    same = prints(1001, 0.01)
    assert _differences([same, prints(1001, 0.01)]) == ""
    message = _differences([same, prints(996, 0.01), prints(1001, 0.01)])
    assert message == (
        "X_pool differs across ranks: ranks 0, 2 have 1001 samples, rank 1 has 996 samples"
    )
    message = _differences([same, prints(1001, 0.1)])
    assert message == "options differ across ranks: rank 0 has damping=0.01, rank 1 has damping=0.1"
    message = _differences([same, {**same, "X_pool": None}])
    assert message.startswith("X_pool differs across ranks: rank 0 has 1001 samples, sha256=")
    assert message.endswith("rank 1 has none")
