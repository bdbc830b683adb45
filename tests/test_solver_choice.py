"""The s_test solvers behind ``inverse_hvp``: agreement with the exact solve, subsampled
curvature, the warning of a solve that stops short, and the detection adapter."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from conftest import assert_module_unchanged, bound_model, snapshot_module
from skisal import InfluenceQueryStrategy
from skisal.engine import DampedCurvature, evaluation_mode
from skisal.engine.curvature import product_chunk_size
from skisal.engine.kfac import KFACSolver, KroneckerCurvature


def _strategy(digits, **kw):
    params = dict(
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
        return_scores=True,
        random_state=0,
        parameters=["out"],
    )
    return InfluenceQueryStrategy(digits["X_reference"], digits["y_reference"], **{**params, **kw})


def _flat(strategy):
    return torch.cat([t.reshape(-1) for t in strategy.s_test_.values()]).double()


def _solve(digits, fitted_net, **kw):
    strategy = _strategy(digits, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        strategy.influence(fitted_net, digits["X_pool"])
    return strategy


@pytest.mark.parametrize(
    "method,kw",
    [("pcg", {"cg_tol": 1e-7, "cg_max_iter": 500}), ("lanczos", {"lanczos_rank": 400})],
)
def test_iterative_solvers_reach_the_exact_solve(digits, fitted_net, method, kw):
    exact = _flat(_solve(digits, fitted_net, inverse_hvp="exact"))
    got = _solve(digits, fitted_net, inverse_hvp=method, **kw)
    assert float((_flat(got) - exact).norm() / exact.norm()) < 1e-3
    assert got.diagnostics_.solver.method == method


def test_the_default_solve_ranks_the_pool_as_the_exact_solve(digits, fitted_net):
    """The default (PCG to cg_tol="auto") over every parameter: the pool's scores correlate
    with the exact solve's at 0.98 on this net (the issue's bar is 0.9). Two iterations
    (0.92), K-FAC alone (0.87) or no solve (0.64) would fail."""
    scores = {}
    for method in ("auto", "exact"):
        strategy = _strategy(digits, inverse_hvp=method, parameters=None)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            strategy.influence(fitted_net, digits["X_pool"])
        scores[method] = strategy.scores_
    assert strategy.diagnostics_.solver.method == "exact"
    assert float(np.corrcoef(scores["auto"], scores["exact"])[0, 1]) > 0.95


def test_a_perfect_preconditioner_converges_in_one_iteration(digits, fitted_net):
    """The preconditioner hook of ConjugateGradientSolver: M = the damped curvature itself."""
    model = bound_model(fitted_net, ["out"])
    hessian = DampedCurvature(model, digits["X_labeled"], digits["y_labeled"], 0.01, 32)
    with evaluation_mode(fitted_net.module_):  # as the strategy runs it: dropout off
        _check_perfect_preconditioner(model, hessian, digits)


def _check_perfect_preconditioner(model, hessian, digits):
    from skisal.engine import ConjugateGradientSolver

    dense = hessian.dense()

    class Exact:
        def fit(self, hessian, rng):
            return self

        def solve(self, r, damping):
            return torch.linalg.solve(dense, r.double()).to(r.dtype)

    v = model.loss_gradient(digits["X_reference"], digits["y_reference"], 64)
    solver = ConjugateGradientSolver(tol=1e-5, preconditioner=Exact())
    s, report = solver.solve(hessian, v, np.random.RandomState(0))
    assert report.method == "pcg" and report.iterations == [1] and report.converged
    plain, plain_report = ConjugateGradientSolver(tol=1e-5).solve(hessian, v, None)
    assert plain_report.iterations[0] > 5
    torch.testing.assert_close(s, plain, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kind", ["kfac", "ekfac"])
def test_kfac_solvers_apply_the_factored_inverse(digits, fitted_net, kind):
    """The strategy's s_test is the engine's K-FAC inverse of the reference gradient."""
    before = snapshot_module(fitted_net.module_)
    strategy = _solve(digits, fitted_net, inverse_hvp=kind)
    assert_module_unchanged(before, fitted_net.module_)
    model = bound_model(fitted_net, ["out"])
    # the strategy's chunks: batch_size=256 samples per pass (one sketch seed per chunk)
    hessian = DampedCurvature(
        model, digits["X_labeled"], digits["y_labeled"], 0.01, 32, chunk_size=256
    )
    v = torch.cat([t.reshape(-1) for t in strategy.reference_gradient_.values()])
    with evaluation_mode(fitted_net.module_):
        solver = KFACSolver(kind)
        expected, report = solver.solve(hessian, v, np.random.RandomState(0))  # the query's rng
    assert strategy.diagnostics_.solver.iterations == report.iterations == [solver_passes[kind]]
    torch.testing.assert_close(_flat(strategy), expected.double(), rtol=1e-5, atol=1e-7)


solver_passes = {"kfac": 1, "ekfac": 2}


def test_subsampled_curvature_is_the_curvature_of_the_drawn_rows(digits, fitted_net):
    strategy = _solve(digits, fitted_net, inverse_hvp="exact", hessian_subsample=50)
    assert strategy.diagnostics_.n_curvature == 50
    assert strategy.diagnostics_.n_labeled == 120
    full = _solve(digits, fitted_net, inverse_hvp="exact")
    assert full.diagnostics_.n_curvature == 120
    assert not torch.allclose(_flat(strategy), _flat(full))
    # Which rows: the strategy draws them from its random_state, reproducibly.
    again = _solve(digits, fitted_net, inverse_hvp="exact", hessian_subsample=50)
    torch.testing.assert_close(_flat(again), _flat(strategy))
    # A subsample at least the labelled set's size is the whole set.
    whole = _solve(digits, fitted_net, inverse_hvp="exact", hessian_subsample=500)
    torch.testing.assert_close(_flat(whole), _flat(full))


@pytest.mark.parametrize(
    "method,expected",
    [("pcg", 50), ("cg", 50), ("lanczos", 50), ("kfac", 50), ("ekfac", 50), ("exact", 120)],
)
def test_auto_subsample_caps_the_solvers_whose_cost_grows(
    digits, fitted_net, monkeypatch, method, expected
):
    """hessian_subsample="auto" (the default): at most AUTO_HESSIAN_SUBSAMPLE labelled samples
    for the solvers that pass over the labelled set; the whole set for the exact reference.

    The cap is lowered to 50 here so that 120 labelled samples exceed it; with "auto" the draw
    is the one an explicit ``hessian_subsample=50`` makes.
    """
    monkeypatch.setattr("skisal._query.AUTO_HESSIAN_SUBSAMPLE", 50)
    kw = {"cg_tol": 1e-3} if method in ("cg", "pcg") else {}
    auto = _strategy(digits, inverse_hvp=method, **kw)
    assert auto.get_params()["hessian_subsample"] == "auto"  # the default
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # lanczos' fixed rank
        auto.influence(fitted_net, digits["X_pool"])
        explicit = _strategy(digits, inverse_hvp=method, hessian_subsample=expected, **kw)
        explicit.influence(fitted_net, digits["X_pool"])
    assert auto.diagnostics_.n_curvature == expected
    torch.testing.assert_close(_flat(auto), _flat(explicit))


def test_auto_subsample_leaves_lissa_and_small_sets_whole(digits, fitted_net, monkeypatch):
    """LiSSA's cost does not grow with the labelled set: "auto" does not subsample for it. Under
    the cap, "auto" is the whole labelled set: the same s_test as None."""
    lissa = _strategy(digits, inverse_hvp="lissa", lissa_depth=20)
    monkeypatch.setattr("skisal._query.AUTO_HESSIAN_SUBSAMPLE", 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 20 steps stop short
        lissa.influence(fitted_net, digits["X_pool"])
    assert lissa.diagnostics_.n_curvature == 120
    monkeypatch.undo()
    auto = _solve(digits, fitted_net, inverse_hvp="pcg", cg_tol=1e-3)
    whole = _solve(digits, fitted_net, inverse_hvp="pcg", cg_tol=1e-3, hessian_subsample=None)
    assert auto.diagnostics_.n_curvature == whole.diagnostics_.n_curvature == 120
    torch.testing.assert_close(_flat(auto), _flat(whole))


def test_subsample_matches_a_solve_over_those_rows(digits, fitted_net):
    """Subsampling = solving over a labelled set of just the drawn rows."""
    sub = _solve(digits, fitted_net, inverse_hvp="exact", hessian_subsample=40)
    # The draw is the query's first use of its random_state (exact needs no randomness).
    drawn = np.sort(np.random.RandomState(0).choice(120, size=40, replace=False))
    direct = _solve(
        digits,
        fitted_net,
        inverse_hvp="exact",
        X_labeled=digits["X_labeled"][drawn],
        y_labeled=digits["y_labeled"][drawn],
    )
    torch.testing.assert_close(_flat(direct), _flat(sub), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "kw,remedy",
    [
        ({"inverse_hvp": "cg", "cg_max_iter": 1}, "raise cg_max_iter"),
        ({"inverse_hvp": "pcg", "cg_max_iter": 1}, "raise cg_max_iter"),
        ({"inverse_hvp": "lissa", "lissa_depth": 5}, "raise lissa_repeats"),
        ({"inverse_hvp": "lanczos", "lanczos_rank": 1}, "raise lanczos_rank"),
    ],
)
def test_a_solve_that_stops_short_warns_with_the_remedy(digits, fitted_net, kw, remedy):
    strategy = _strategy(digits, **kw)
    with pytest.warns(ConvergenceWarning, match=remedy):
        strategy.influence(fitted_net, digits["X_pool"])
    assert not strategy.diagnostics_.solver.converged


def test_a_converged_solve_does_not_warn(digits, fitted_net):
    # _solve turns ConvergenceWarning into an error
    assert _solve(digits, fitted_net, inverse_hvp="cg").diagnostics_.solver.converged


def test_auto_solver_is_the_adapters_choice(digits, fitted_net):
    strategy = _strategy(digits)
    strategy.influence(fitted_net, digits["X_pool"])
    assert strategy.inverse_hvp == "auto"  # the parameter is left as given
    assert strategy.diagnostics_.solver.method == "pcg"
    from skisal.detection import DetectionAdapter

    assert DetectionAdapter.default_inverse_hvp == "cg"


def test_kfac_on_a_detector_factors_its_head_over_every_feature_level():
    from skisal.detection import TorchvisionDetector, make_shapes

    X, y = make_shapes(40, image_size=(48, 80), random_state=0)
    detector = TorchvisionDetector(
        "fcos_small", num_classes=4, min_size=64, max_size=96, epochs=2, random_state=0
    ).fit(X[:20], y[:20])
    calls = {}
    original = KroneckerCurvature._accumulate_factors

    def count(block, a, g, weight):
        calls.setdefault(id(block), 0)
        calls[id(block)] += 1
        assert a.shape[1] == g.shape[2]  # positions pooled over the levels, inputs and outputs
        original(block, a, g, weight)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(KroneckerCurvature, "_accumulate_factors", staticmethod(count))
        strategy = InfluenceQueryStrategy(
            X[20:26],
            y[20:26],
            X_labeled=X[:20],
            y_labeled=y[:20],
            inverse_hvp="ekfac",
            return_scores=True,
            random_state=0,
        )
        strategy.influence(detector, X[26:32])
    assert strategy.diagnostics_.solver.iterations == [2]
    assert len(calls) == 3  # cls_logits, bbox_reg, bbox_ctrness: the default parameters
    assert np.isfinite(np.asarray(strategy.scores_)).all()
    default = InfluenceQueryStrategy(
        X[20:26], y[20:26], X_labeled=X[:20], y_labeled=y[:20], random_state=0
    )
    default.influence(detector, X[26:32])
    assert default.diagnostics_.solver.method == "cg"  # the detection adapter's choice


def test_full_passes_grow_their_chunks_within_the_memorybound_model(
    digits, fitted_net, monkeypatch
):
    """The layer outputs of conftest's MLP, by hand: hidden (16), norm (16), dropout (16) and
    out (10) floats per sample; tanh is no module. Chunks grow 4x while 4 copies fit in
    CHUNK_BYTES, and scale with what was requested."""
    import skisal.engine.curvature as curvature

    model = bound_model(fitted_net)
    with evaluation_mode(fitted_net.module_):
        assert model.activation_bytes(digits["X_labeled"]) == (16 + 16 + 16 + 10) * 4
        assert product_chunk_size(model, digits["X_labeled"], 8) == 32
        assert product_chunk_size(model, digits["X_labeled"], 4) == 16  # batch_size still rules
        monkeypatch.setattr(curvature, "CHUNK_BYTES", 4 * 232 * 20)  # 20 samples fit
        assert product_chunk_size(model, digits["X_labeled"], 8) == 20
        monkeypatch.setattr(curvature, "CHUNK_BYTES", 100)  # not even one: as requested
        assert product_chunk_size(model, digits["X_labeled"], 8) == 8


def test_larger_chunks_change_no_product(digits, fitted_net, monkeypatch):
    """The same s_test (deterministic CG to 1e-5) with the grown chunks of 32 as with 8."""
    import skisal.engine.curvature as curvature
    import skisal.engine.influence as influence

    chosen = []

    def spy(*args):
        chosen.append(product_chunk_size(*args))
        return chosen[-1]

    monkeypatch.setattr(influence, "product_chunk_size", spy)
    kw = dict(inverse_hvp="cg", batch_size=8, hessian_batch_size=8, parameters=None)
    grown = _flat(_solve(digits, fitted_net, **kw))
    monkeypatch.setattr(curvature, "CHUNK_GROWTH", 1)
    requested = _flat(_solve(digits, fitted_net, **kw))
    assert chosen == [32, 8]
    assert float((grown - requested).norm() / requested.norm()) < 1e-4
