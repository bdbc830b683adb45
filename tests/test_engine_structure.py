"""Names that stay importable where they were, and the engine's small interface promises.

What the engine may import is checked by the import contracts (tests/test_architecture.py).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import skisal.engine
from skisal import SkorchClassifierAdapter
from skisal.engine import (
    BoundModel,
    ConjugateGradientSolver,
    InfluenceDiagnostics,
    InfluenceEngine,
    ParameterSpace,
    SolverReport,
    evaluation_mode,
    select_parameters,
)

#: What ``skisal.engine.solvers`` exported before the solvers moved to modules of their own.
FORMER_SOLVERS_NAMES = [
    "ConjugateGradientSolver",
    "ExactSolver",
    "IdentitySolver",
    "InverseHVPSolver",
    "LissaSolver",
    "SolverReport",
    "top_eigenvalue",
]


@pytest.mark.parametrize("name", FORMER_SOLVERS_NAMES)
def test_solvers_module_still_exports_its_former_names(name):
    solvers = importlib.import_module("skisal.engine.solvers")
    assert name in solvers.__all__
    assert getattr(solvers, name) is getattr(skisal.engine, name)


def test_damped_hessian_is_the_former_name_of_damped_curvature():
    from skisal.engine import DampedCurvature, DampedHessian
    from skisal.engine.curvature import DampedHessian as from_module

    assert DampedHessian is DampedCurvature is from_module
    assert "DampedHessian" in skisal.engine.__all__


def test_s_test_fills_the_diagnostics_it_is_given(digits, fitted_net):
    """Like ``scores``, ``s_test`` fills a report passed in, and leaves its scoring fields."""
    space = ParameterSpace(select_parameters(fitted_net.module_, ["out"]))
    model = BoundModel(
        SkorchClassifierAdapter(), fitted_net, fitted_net.module_, space, torch.device("cpu")
    )
    engine = InfluenceEngine(
        model, ConjugateGradientSolver(), damping=0.01, batch_size=64, hessian_batch_size=64
    )
    data = (digits["X_reference"], digits["y_reference"], digits["X_labeled"], digits["y_labeled"])
    given = InfluenceDiagnostics(
        solver=SolverReport(method="stale", damping=9.0), scoring_method="reverse", n_pool=7
    )
    with evaluation_mode(fitted_net.module_):
        s_new, v_new, fresh = engine.s_test(*data, np.random.RandomState(0))
        s_test, v, filled = engine.s_test(*data, np.random.RandomState(0), diagnostics=given)
    assert filled is given
    assert torch.equal(s_test, s_new) and torch.equal(v, v_new)
    assert filled.solver.method == "cg" and filled.solver.damping == 0.01
    for name in ("n_parameters", "n_reference", "n_labeled", "n_curvature"):
        assert getattr(filled, name) == getattr(fresh, name) > 0
    assert filled.reference_gradient_norm == fresh.reference_gradient_norm > 0
    assert sorted(filled.timings) == ["finite_check", "reference_gradient", "s_test"]
    assert (filled.scoring_method, filled.n_pool) == ("reverse", 7)  # left for scores()
