"""Solvers, curvature, parameter selection and scoring paths of the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import MLP, make_net
from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter, SolverDivergenceError
from skisal.engine import select_parameters


def _flat(tensors: dict) -> torch.Tensor:
    return torch.cat([t.flatten().double() for t in tensors.values()])


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


@pytest.fixture
def run(digits, fitted_net):
    def _run(net=None, **options):
        strategy = InfluenceQueryStrategy(
            digits["X_reference"],
            digits["y_reference"],
            X_labeled=digits["X_labeled"],
            y_labeled=digits["y_labeled"],
            random_state=0,
            **options,
        )
        scores = strategy.influence(fitted_net if net is None else net, digits["X_pool"])
        return strategy, scores

    return _run


def test_cg_matches_exact_on_gauss_newton(run):
    exact, _ = run(inverse_hvp="exact", parameters=["out"])
    cg, _ = run(inverse_hvp="cg", parameters=["out"])
    assert exact.diagnostics_.solver.min_eigenvalue > 0
    assert cg.diagnostics_.solver.relative_residual < 1e-4
    assert _cosine(_flat(exact.s_test_), _flat(cg.s_test_)) > 0.9999


def test_gauss_newton_is_positive_semidefinite_hessian_is_not(digits):
    """An untrained network is far from a minimum: H + damping I is indefinite, GGN is not."""
    torch.manual_seed(3)
    net = make_net(max_epochs=1, module__hidden=8).fit(digits["X_labeled"], digits["y_labeled"])
    options = dict(
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
        inverse_hvp="exact",
        damping=1e-3,
    )
    ggn = InfluenceQueryStrategy(digits["X_reference"], digits["y_reference"], **options)
    ggn.influence(net, digits["X_pool"])
    report = ggn.diagnostics_.solver
    # PSD up to float32 round-off of the products (relative to the top eigenvalue).
    assert report.min_eigenvalue >= 1e-3 - 1e-5 * report.top_eigenvalue
    hessian = InfluenceQueryStrategy(
        digits["X_reference"], digits["y_reference"], curvature="hessian", **options
    )
    with pytest.raises(SolverDivergenceError, match=r"not positive definite.*gauss_newton"):
        hessian.influence(net, digits["X_pool"])
    cg = hessian.set_params(inverse_hvp="cg")
    with pytest.raises(SolverDivergenceError, match=r"negative curvature.*gauss_newton"):
        cg.influence(net, digits["X_pool"])


def test_lissa_auto_scale_converges_to_cg(run):
    cg, _ = run(inverse_hvp="cg", damping=0.1)
    lissa, _ = run(
        inverse_hvp="lissa", damping=0.1, lissa_depth=3000, hessian_batch_size=120, lissa_tol=1e-7
    )
    report = lissa.diagnostics_.solver
    assert report.scale > report.top_eigenvalue > 0
    assert _cosine(_flat(cg.s_test_), _flat(lissa.s_test_)) > 0.99, report


def test_lissa_full_batch_stops_early_when_converged(run):
    strategy, _ = run(
        inverse_hvp="lissa", damping=1.0, lissa_depth=5000, hessian_batch_size=120, lissa_tol=1e-5
    )
    report = strategy.diagnostics_.solver
    assert report.converged and report.iterations[0] < 5000
    assert all(np.isfinite(report.norm_trace[0]))


def test_lissa_reports_the_power_iteration_cost_only_for_auto_scale(run):
    auto, _ = run(inverse_hvp="lissa", lissa_depth=20)
    fixed, _ = run(inverse_hvp="lissa", lissa_depth=20, lissa_scale=10.0)
    a, f = auto.diagnostics_.solver, fixed.diagnostics_.solver
    assert 0 < a.power_iteration_products <= 20 * 64  # 20 products on a 64-sample probe at most
    assert a.hessian_vector_products == a.power_iteration_products + 20 * 32
    assert f.power_iteration_products == 0 and f.top_eigenvalue is None
    assert f.hessian_vector_products == 20 * 32


def test_lissa_fixed_scale_too_small_raises_with_advice(run):
    with pytest.raises(SolverDivergenceError, match=r"scale must exceed the top eigenvalue"):
        run(inverse_hvp="lissa", lissa_scale=1e-3)


def test_lissa_repeats_are_averaged(run):
    one, _ = run(inverse_hvp="lissa", lissa_depth=20, lissa_repeats=1)
    three, _ = run(inverse_hvp="lissa", lissa_depth=20, lissa_repeats=3)
    assert len(three.diagnostics_.solver.iterations) == 3
    assert not torch.equal(_flat(one.s_test_), _flat(three.s_test_))


def test_identity_is_gradient_similarity(run):
    strategy, _ = run(inverse_hvp="identity")
    assert torch.equal(_flat(strategy.s_test_), _flat(strategy.reference_gradient_))
    assert strategy.diagnostics_.n_labeled == 120


def test_parameter_selection():
    net = MLP()
    assert list(select_parameters(net, "weights")) == ["hidden.weight", "out.weight"]
    assert list(select_parameters(net, ["out"])) == ["out.weight", "out.bias"]
    assert list(select_parameters(net, "norm.bias")) == ["norm.bias"]
    assert list(select_parameters(net, lambda n, p: p.numel() < 20)) == [
        "hidden.bias",
        "norm.weight",
        "norm.bias",
        "out.bias",
    ]
    net.hidden.weight.requires_grad_(False)
    assert "hidden.weight" not in select_parameters(net, "all")
    with pytest.raises(ValueError, match="selects no parameter"):
        select_parameters(net, lambda n, p: False)


def test_last_layer_scores_differ_from_all_parameters(run):
    last, last_scores = run(parameters=["out"])
    full, full_scores = run()
    assert last.parameter_names_ == ["out.weight", "out.bias"]
    assert last.diagnostics_.n_parameters == 16 * 10 + 10
    assert full.diagnostics_.n_parameters > last.diagnostics_.n_parameters
    assert not np.allclose(last_scores, full_scores)


class _NoJvpTanh(torch.autograd.Function):
    """tanh without a forward-mode derivative, as some custom ops are."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class NoJvpMLP(MLP):
    def forward(self, x):
        return self.out(self.dropout(_NoJvpTanh.apply(self.norm(self.hidden(x)))))


def test_scoring_falls_back_to_reverse_mode_and_says_so(run, digits, fitted_net):
    net = make_net(module=NoJvpMLP).initialize()
    net.module_.load_state_dict(fitted_net.module_.state_dict())
    options = dict(inverse_hvp="cg", curvature="hessian", damping=5.0)
    fallback, fallback_scores = run(net=net, **options)
    assert fallback.diagnostics_.scoring_method == "reverse"
    assert "forward" in fallback.diagnostics_.scoring_fallback_reason.lower()
    forward, forward_scores = run(**options)
    assert forward.diagnostics_.scoring_method == "forward"
    np.testing.assert_allclose(
        fallback_scores, forward_scores, rtol=1e-3, atol=1e-4 * np.abs(forward_scores).max()
    )
    with pytest.raises(NotImplementedError):
        run(net=net, scoring="forward", **options)


def test_top_k_expected_gradient(run):
    _, top1 = run(inverse_hvp="identity")
    _, explicit = run(inverse_hvp="identity", adapter=SkorchClassifierAdapter(top_k=1))
    _, top3 = run(inverse_hvp="identity", adapter=SkorchClassifierAdapter(top_k=3))
    np.testing.assert_array_equal(top1, explicit)
    assert not np.allclose(top1, top3)
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        run(adapter=SkorchClassifierAdapter(top_k=0))
    # Over every class the posterior-weighted gradient is exactly zero: refused.
    with pytest.raises(ValueError, match=r"top_k=10 must be smaller than the number of classes"):
        run(adapter=SkorchClassifierAdapter(top_k=10))
    _, top9 = run(inverse_hvp="identity", adapter=SkorchClassifierAdapter(top_k=9))
    assert np.isfinite(top9).all()


def test_forward_and_reverse_scoring_agree(run):
    _, forward = run(scoring="forward")
    _, reverse = run(scoring="reverse")
    # float32 network; the forward path contracts in float64 at the outputs.
    np.testing.assert_allclose(forward, reverse, rtol=1e-3, atol=1e-5 * np.abs(reverse).max())


def test_class_weighted_criterion_is_scored_with_its_weights(run, digits):
    # The criterion's float32 weight meets float64 outputs in the contraction.
    torch.manual_seed(0)
    weight = torch.linspace(0.5, 2.0, 10)
    net = make_net(max_epochs=5, criterion__weight=weight)
    net.fit(digits["X_labeled"], digits["y_labeled"])
    _, forward = run(net, scoring="forward")
    _, reverse = run(net, scoring="reverse")
    np.testing.assert_allclose(forward, reverse, rtol=1e-3, atol=1e-5 * np.abs(reverse).max())
    _, unweighted = run(net.set_params(criterion__weight=None).initialize_criterion())
    assert not np.allclose(forward, unweighted, rtol=1e-3)


def test_autocast_scores_close_to_full_precision(digits):
    """Mixed-precision pool scoring: same s_test, scores within a few percent, same leaders."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    net = make_net(module=module).fit(digits["X_labeled"], digits["y_labeled"])

    def run(**options):
        strategy = InfluenceQueryStrategy(
            digits["X_reference"],
            digits["y_reference"],
            X_labeled=digits["X_labeled"],
            y_labeled=digits["y_labeled"],
            random_state=0,  # the default solver's K-FAC sketch
            **options,
        )
        return strategy, strategy.influence(net, digits["X_pool"])

    full, full_scores = run()
    mixed, mixed_scores = run(autocast=True)  # bfloat16 on the CPU
    for name, value in full.s_test_.items():
        assert torch.equal(value, mixed.s_test_[name])  # s_test untouched by autocast
    assert mixed.diagnostics_.scoring_fallback_reason is None
    assert np.isfinite(mixed_scores).all() and mixed_scores.dtype == np.float64
    assert not np.array_equal(full_scores, mixed_scores)  # it did run in lower precision
    assert np.abs(mixed_scores - full_scores).max() < 0.05 * np.abs(full_scores).max()
    ranks = [np.argsort(np.argsort(s)) for s in (full_scores, mixed_scores)]
    assert np.corrcoef(*ranks)[0, 1] > 0.98
    np.testing.assert_array_equal(run(autocast=torch.bfloat16)[1], mixed_scores)
    with pytest.raises(ValueError, match=r"autocast must be a bool, torch\.float16"):
        run(autocast="half")


class _Float32Tangent(torch.autograd.Function):
    """Identity whose forward-mode rule returns a float32 tangent, whatever the primal's dtype."""

    @staticmethod
    def forward(x):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def jvp(ctx, x_t):
        return x_t.float()

    @staticmethod
    def backward(ctx, grad):
        return grad


class Float32TangentMLP(MLP):
    def forward(self, x):
        h = _Float32Tangent.apply(torch.tanh(self.norm(self.hidden(x))))
        return self.out(self.dropout(h))


def test_autocast_falls_back_to_full_precision_where_forward_mode_cannot(run, fitted_net):
    """A float32 tangent on a bfloat16 primal under autocast: full precision, with a note."""
    net = make_net(module=Float32TangentMLP).initialize()
    net.module_.load_state_dict(fitted_net.module_.state_dict())
    _, full_scores = run(net)
    mixed, mixed_scores = run(net, autocast=True)
    np.testing.assert_array_equal(mixed_scores, full_scores)
    assert "autocast to torch.bfloat16 failed" in mixed.diagnostics_.scoring_fallback_reason
    assert mixed.diagnostics_.scoring_method == "forward"


def test_autocast_scores_batch_norm_in_reduced_precision(run, digits, fitted_net):
    """Eval-mode BatchNorm then Linear under autocast (PyTorch's own rule fails on it).

    Where the top two classes nearly tie, bfloat16 can pick the other pseudo-label, and the
    score changes with it (seen with torch 2.1's fit of this net: one sample's sign flipped);
    every other sample must stay within 5% of the largest score.
    """
    _, full_scores = run()
    mixed, mixed_scores = run(autocast=True)
    assert mixed.diagnostics_.scoring_fallback_reason is None
    assert not np.array_equal(mixed_scores, full_scores)  # it did run in bfloat16
    module = fitted_net.module_.eval()
    with torch.no_grad():
        logits = module(torch.as_tensor(digits["X_pool"]))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = module(torch.as_tensor(digits["X_pool"])).float()
    same = (logits.argmax(1) == low.argmax(1)).numpy()
    top2 = logits.topk(2, dim=1).values
    assert same.mean() > 0.95
    assert ((top2[:, 0] - top2[:, 1]).numpy()[~same] < 0.1).all()  # only near-ties flip
    error = np.abs(mixed_scores - full_scores)[same]
    assert error.max() < 0.05 * np.abs(full_scores).max()
    ranks = [np.argsort(np.argsort(s[same])) for s in (full_scores, mixed_scores)]
    assert np.corrcoef(*ranks)[0, 1] > 0.98
