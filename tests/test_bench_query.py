"""The query benchmark's report of a method whose query raises: a row of its own, the rest timed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_query  # benchmarks/ is not a package: imported from its folder


def test_a_method_that_raises_is_reported_not_fatal(monkeypatch):
    # LiSSA at a fixed scale far below the top eigenvalue diverges and raises
    methods = {**bench_query.METHODS, "lissa-bad": {"inverse_hvp": "lissa", "lissa_scale": 1e-3}}
    monkeypatch.setattr(bench_query, "METHODS", methods)
    args = argparse.Namespace(
        quick=True, device="cpu", seed=0, methods="identity,lissa-bad", no_accuracy=True
    )
    result = bench_query.run(args, log=lambda *_: None)
    cell = result["models"]["digits_cnn"]["nets"]["200"]["pools"]["1000"]["methods"]
    assert "SolverDivergenceError" in cell["lissa-bad"]["failed"]
    assert cell["identity"]["ratio"] > 0  # the other method is still timed
    text = bench_query.markdown(result)
    assert "| lissa-bad | raised |" in text
    assert "Raised (not timed):" in text and "`lissa-bad`: SolverDivergenceError" in text
