"""Distributed scoring: two gloo processes under torchrun agree with one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from skisal.engine.distributed import current_group

SCRIPT = Path(__file__).parent / "distributed" / "query_two_ranks.py"


@pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")
def test_two_gloo_ranks_select_what_one_process_selects():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(SCRIPT)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
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
