"""Ground-truth tests of skisal on a convex model (issue point 5).

The model is multinomial logistic regression -- ``nn.Linear(64, 10)`` with
``CrossEntropyLoss`` -- as a skorch ``NeuralNetClassifier``, in float64, on
scikit-learn's digits (pixels / 16). skorch trains it briefly; its parameters
are then overwritten with the optimum of

    J(theta) = mean_{labelled} CE + (DAMPING / 2) ||theta||^2

found by Newton's method in float64 (gradient norm < 1e-12). The Hessian of
``J`` is exactly ``H + DAMPING * I`` with ``H`` the Hessian of the mean
labelled loss, the matrix skisal inverts with ``damping=DAMPING``, so the
first-order influence formula holds exactly at this point.

Every reference quantity is computed here, independently of skisal:

* ``H`` by ``torch.autograd.functional.hessian`` of a hand-written
  flat-parameter loss, cross-checked against the closed form
  ``(1/n) sum_i (diag p_i - p_i p_i^T) kron x_i x_i^T`` that Newton's method uses;
* ``grad l(R)`` and per-sample pool gradients ``G_z`` (at the argmax
  pseudo-label) by ``torch.func``;
* ``s_test = (H + DAMPING I)^-1 grad l(R)`` by ``torch.linalg.solve``;
* the actual effect of up-weighting a pool sample by retraining to optimum.

The flat parameter order is skisal's ``parameter_names_`` order for
``nn.Linear``: ``weight`` (row-major, 10 x 64) then ``bias`` (10).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier
from torch import nn
from torch.nn import functional as F

from skisal import InfluenceQueryStrategy

DAMPING = 0.01  # skisal's default damping, and the L2 weight of the objective J
N_LABELED, N_REFERENCE, N_POOL = 300, 100, 300
N_FEATURES, N_CLASSES = 64, 10
DIM = N_CLASSES * N_FEATURES + N_CLASSES  # 650 parameters


# -- data and model ---------------------------------------------------------------------------
class LogisticRegression(nn.Module):
    """Multinomial logistic regression in float64 (skisal casts inputs to its dtype)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(N_FEATURES, N_CLASSES, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def unpack(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat vector -> (weight, bias), in skisal's flattening order."""
    split = N_CLASSES * N_FEATURES
    return theta[:split].view(N_CLASSES, N_FEATURES), theta[split:]


def logits(theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    W, b = unpack(theta)
    return X @ W.T + b


def mean_ce(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits(theta, X), y)


# Closed-form Hessian of a weighted CE sum, used by Newton's method (fast), and
# cross-checked against autograd in the fixture. Augmented order is (class, feature+bias).
_AUG_TO_FLAT = torch.as_tensor(
    [
        c * N_FEATURES + j if j < N_FEATURES else N_CLASSES * N_FEATURES + c
        for c in range(N_CLASSES)
        for j in range(N_FEATURES + 1)
    ]
)


def ce_hessian(theta: torch.Tensor, X: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Hessian of ``sum_i weights_i * CE(theta; x_i, y_i)`` (independent of the labels)."""
    P = torch.softmax(logits(theta, X), dim=1)
    A = torch.diag_embed(P) - P[:, :, None] * P[:, None, :]
    Xa = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)
    Ha = torch.einsum("icd,ij,ik->cjdk", A * weights[:, None, None], Xa, Xa).reshape(DIM, DIM)
    H = torch.empty_like(Ha)
    H[_AUG_TO_FLAT[:, None], _AUG_TO_FLAT[None, :]] = Ha
    return H


def newton_minimise(objective, hessian, theta0: torch.Tensor, gtol: float = 1e-12) -> torch.Tensor:
    """Minimise a smooth strictly convex objective to gradient norm ``gtol`` (float64)."""
    theta = theta0.clone()
    for _ in range(50):
        grad = torch.func.grad(objective)(theta)
        if float(grad.norm()) <= gtol:
            return theta
        theta = theta - torch.linalg.solve(hessian(theta), grad)
    raise AssertionError(f"Newton did not converge: gradient norm {float(grad.norm()):.3g}")


def flat(tensors: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([tensors[n].detach().reshape(-1).to(torch.float64) for n in names])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a.dot(b) / (a.norm() * b.norm()))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def gt_digits():
    """Digits split 300 labelled / 100 reference / 300 pool, float64 (conftest has float32)."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(0)
    order = rng.permutation(len(X))
    X, y = X[order] / 16.0, y[order].astype(np.int64)
    a, b, c = N_LABELED, N_LABELED + N_REFERENCE, N_LABELED + N_REFERENCE + N_POOL
    return {
        "X_lab": X[:a], "y_lab": y[:a],
        "X_ref": X[a:b], "y_ref": y[a:b],
        "X_pool": X[b:c],
    }  # fmt: skip


@pytest.fixture(scope="module")
def lr(gt_digits):
    """The skorch LR net at the optimum of J, and independent ground-truth quantities."""
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        LogisticRegression,
        criterion=nn.CrossEntropyLoss,
        max_epochs=3,
        lr=0.5,
        batch_size=64,
        train_split=None,
        verbose=0,
    )
    net.fit(gt_digits["X_lab"], gt_digits["y_lab"])

    X_lab, y_lab = torch.as_tensor(gt_digits["X_lab"]), torch.as_tensor(gt_digits["y_lab"])
    X_ref, y_ref = torch.as_tensor(gt_digits["X_ref"]), torch.as_tensor(gt_digits["y_ref"])
    X_pool = torch.as_tensor(gt_digits["X_pool"])
    uniform = torch.full((N_LABELED,), 1.0 / N_LABELED, dtype=torch.float64)
    eye = torch.eye(DIM, dtype=torch.float64)

    def objective(theta):
        return mean_ce(theta, X_lab, y_lab) + DAMPING / 2 * theta.dot(theta)

    def objective_hessian(theta):
        return ce_hessian(theta, X_lab, uniform) + DAMPING * eye

    lin = net.module_.linear
    theta0 = torch.cat([lin.weight.detach().reshape(-1), lin.bias.detach()])
    theta = newton_minimise(objective, objective_hessian, theta0)
    with torch.no_grad():
        W, b = unpack(theta)
        lin.weight.copy_(W)
        lin.bias.copy_(b)

    # Explicit Hessian of the mean labelled loss by autograd, independent of skisal.
    H = torch.autograd.functional.hessian(lambda t: mean_ce(t, X_lab, y_lab), theta, vectorize=True)
    closed_form_err = float((H - ce_hessian(theta, X_lab, uniform)).abs().max() / H.abs().max())
    assert closed_form_err < 1e-12, f"closed-form Hessian vs autograd: {closed_form_err}"
    grad_ref = torch.func.grad(lambda t: mean_ce(t, X_ref, y_ref))(theta)
    pseudo = logits(theta, X_pool).argmax(dim=1)  # UUIC pseudo-labels
    per_sample_grad = torch.func.vmap(
        torch.func.grad(lambda t, x, c: mean_ce(t, x[None], c[None])), in_dims=(None, 0, 0)
    )(theta, X_pool, pseudo)
    return {
        "net": net,
        "theta": theta,
        "objective": objective,
        "objective_hessian": objective_hessian,
        "H": H,
        "grad_ref": grad_ref,
        "s_test": torch.linalg.solve(H + DAMPING * eye, grad_ref),
        "pseudo": pseudo,
        "pool_grads": per_sample_grad,  # (N_POOL, DIM)
        "tensors": (X_lab, y_lab, X_ref, y_ref, X_pool),
    }


def make_strategy(gt_digits, **kwargs) -> InfluenceQueryStrategy:
    kwargs.setdefault("damping", DAMPING)
    kwargs.setdefault("random_state", 0)
    return InfluenceQueryStrategy(
        gt_digits["X_ref"],
        gt_digits["y_ref"],
        X_labeled=gt_digits["X_lab"],
        y_labeled=gt_digits["y_lab"],
        **kwargs,
    )


@pytest.fixture(scope="module")
def exact_run(gt_digits, lr):
    """skisal with the dense solve and the paper's Hessian: scores and s_test."""
    strategy = make_strategy(gt_digits, inverse_hvp="exact", curvature="hessian", scoring="forward")
    scores = strategy.influence(lr["net"], gt_digits["X_pool"])
    return strategy, scores


# -- the setup itself ---------------------------------------------------------------------------
def test_model_is_at_the_regularised_optimum(lr):
    """Influence functions assume a zero gradient: check it, and that H + damping I is PD."""
    grad = torch.func.grad(lr["objective"])(lr["theta"])
    assert float(grad.norm()) < 1e-12
    eigenvalues = torch.linalg.eigvalsh(lr["H"])
    assert float(eigenvalues[0]) > -1e-10  # convex: H is PSD, so H + damping I is PD
    # the net skisal sees carries exactly theta
    lin = lr["net"].module_.linear
    assert torch.equal(torch.cat([lin.weight.detach().reshape(-1), lin.bias.detach()]), lr["theta"])


def test_reference_gradient_matches_autograd(gt_digits, lr, exact_run):
    strategy, _ = exact_run
    assert strategy.parameter_names_ == ["linear.weight", "linear.bias"]
    v = flat(strategy.reference_gradient_, strategy.parameter_names_)
    err = rel_err(v, lr["grad_ref"])
    assert err < 1e-12, f"grad l(R): relative error {err:.3g}"


# -- s_test against the explicit solve ----------------------------------------------------------
@pytest.mark.parametrize("curvature", ["hessian", "gauss_newton"])
@pytest.mark.parametrize("inverse_hvp", ["exact", "cg"])
def test_s_test_matches_explicit_hessian_solve(gt_digits, lr, exact_run, inverse_hvp, curvature):
    """Exact and CG (their defaults otherwise) against torch.linalg.solve(H + damping I, grad).

    For logistic regression the Gauss-Newton matrix *is* the Hessian, so both
    curvatures must give the same s_test. Besides the issue's cosine >= 0.999,
    the relative error is bounded: a cosine alone would miss a wrong damping
    or a wrong 1/n (those rescale or bend s_test only slightly).
    """
    if (inverse_hvp, curvature) == ("exact", "hessian"):
        strategy = exact_run[0]  # already computed by the fixture
    else:
        # Default hessian_batch_size=32: the uneven last chunk (300 = 9 * 32 + 12)
        # tests the per-chunk weighting of both the dense build and the products.
        strategy = make_strategy(gt_digits, inverse_hvp=inverse_hvp, curvature=curvature)
        strategy.influence(lr["net"], gt_digits["X_pool"])
    s = flat(strategy.s_test_, strategy.parameter_names_)
    cos, err = cosine(s, lr["s_test"]), rel_err(s, lr["s_test"])
    report = strategy.diagnostics_.solver
    print(
        f"\n[{inverse_hvp}/{curvature}] cosine={cos:.12f} rel_err={err:.3g} "
        f"iterations={report.iterations} residual={report.relative_residual:.3g}"
    )
    assert cos >= 0.999, f"cosine {cos}"
    # exact: float64 round-off. CG at its default cg_tol=1e-5: relative error <=
    # cond(H + damping I) * relative residual ~ 94 * 1e-5 (measured ~1e-5).
    bound = 1e-10 if inverse_hvp == "exact" else 1e-3
    assert err <= bound, f"relative error {err:.3g} > {bound:g}"
    assert report.converged
    if inverse_hvp == "exact":
        top = float(torch.linalg.eigvalsh(lr["H"])[-1]) + DAMPING
        assert report.top_eigenvalue == pytest.approx(top, rel=1e-10)


def test_cg_reaches_float64_precision_at_tight_tolerance(gt_digits, lr):
    """CG with cg_tol=1e-10 in float64: s_test to ~1e-9, and its residual is honest."""
    strategy = make_strategy(gt_digits, inverse_hvp="cg", cg_tol=1e-10, cg_max_iter=500)
    strategy.influence(lr["net"], gt_digits["X_pool"][:5])
    s = flat(strategy.s_test_, strategy.parameter_names_)
    err = rel_err(s, lr["s_test"])
    report = strategy.diagnostics_.solver
    A = lr["H"] + DAMPING * torch.eye(DIM, dtype=torch.float64)
    true_residual = rel_err(A @ s, lr["grad_ref"])
    print(
        f"\n[cg tol=1e-10] rel_err={err:.3g} iterations={report.iterations} "
        f"reported residual={report.relative_residual:.3g} true residual={true_residual:.3g}"
    )
    assert err < 1e-7, f"relative error {err:.3g}"
    assert report.relative_residual == pytest.approx(true_residual, rel=1e-3, abs=1e-13)


def test_lissa_defaults_match_explicit_solve(gt_digits, lr):
    """LiSSA with every default (damping=0.01, lissa_depth=1000, lissa_repeats=1,
    lissa_scale="auto", hessian_batch_size=32, lissa_tol=1e-6), random_state=0:
    cosine >= 0.99 with the explicit solve (measured ~0.998: at depth 1000 the
    bias (1 - damping/scale)^depth ~ 5e-4 is spent, the rest is the noise of
    32-sample minibatch Hessians)."""
    strategy = make_strategy(gt_digits, inverse_hvp="lissa")
    strategy.influence(lr["net"], gt_digits["X_pool"][:5])
    s = flat(strategy.s_test_, strategy.parameter_names_)
    cos, err = cosine(s, lr["s_test"]), rel_err(s, lr["s_test"])
    report = strategy.diagnostics_.solver
    top = float(torch.linalg.eigvalsh(lr["H"])[-1]) + DAMPING
    print(
        f"\n[lissa defaults] cosine={cos:.6f} rel_err={err:.3g} scale={report.scale:.4g} "
        f"power-iteration top={report.top_eigenvalue:.4g} true top={top:.4g}"
    )
    assert cos >= 0.99, f"LiSSA cosine {cos}"
    assert err <= 0.2, f"LiSSA relative error {err:.3g} (a cosine hides a wrong scale)"
    assert report.iterations == [1000]
    # scale="auto": a 64-sample probe estimates the top eigenvalue within its sampling
    # noise (~10%), the 1.5x safety puts the scale above the true one, and the estimate
    # costs a small share of the recursion's 32,000 products
    assert report.top_eigenvalue == pytest.approx(top, rel=0.25)
    assert report.scale > top
    assert 0 < report.power_iteration_products <= 20 * 64
    assert report.power_iteration_products <= 0.05 * report.hessian_vector_products


# -- influence scores -----------------------------------------------------------------------------
def test_influence_matches_explicit_formula(lr, exact_run):
    """I(z, R) = -grad l(R)^T (H + damping I)^-1 G_z with everything computed by hand."""
    _, scores = exact_run
    expected = -(lr["pool_grads"] @ lr["s_test"]).numpy()
    err = np.abs(scores - expected).max() / np.abs(expected).max()
    print(f"\n[influence vs explicit] max |diff| / max |I| = {err:.3g}")
    assert err < 1e-10, err


def _upweighted_change(lr, index: int, eps: float) -> float:
    """(l(R; theta_eps) - l(R; theta)) / eps, theta_eps = argmin J + eps * l(z, pseudo-label)."""
    _, _, X_ref, y_ref, X_pool = lr["tensors"]
    x, c = X_pool[index : index + 1], lr["pseudo"][index : index + 1]
    one = torch.ones(1, dtype=torch.float64)

    def objective(theta):
        return lr["objective"](theta) + eps * mean_ce(theta, x, c)

    def hessian(theta):
        return lr["objective_hessian"](theta) + eps * ce_hessian(theta, x, one)

    theta_eps = newton_minimise(objective, hessian, lr["theta"])
    base = mean_ce(lr["theta"], X_ref, y_ref)
    return float((mean_ce(theta_eps, X_ref, y_ref) - base) / eps)


@pytest.fixture(scope="module")
def retrain_samples(exact_run):
    """25 pool samples spread evenly over the (exact) score range, and their scores."""
    _, scores = exact_run
    order = np.argsort(scores, kind="stable")
    chosen = order[np.linspace(0, len(order) - 1, 25).round().astype(int)]
    return chosen, scores[chosen]


@pytest.mark.parametrize("eps", [1.0 / N_LABELED, 1e-3])
def test_predicted_influence_matches_retraining(lr, retrain_samples, eps):
    """The issue's check: predicted I(z, R) (inverse_hvp="exact") against the actual
    change of the mean reference loss, divided by eps, after re-optimising
    J + eps * l(z, pseudo-label) to gradient norm 1e-12, for 25 pool samples spread
    over the score range: Pearson >= 0.9. eps = 1/N_LABELED is one more copy of z
    in the labelled set (the size of labelling it), eps = 1e-3 a smaller step.

    The finite-eps change is smaller than the first-order prediction (measured
    slope 0.79 at eps=1/300, 0.93 at 1e-3: the damping 0.01 makes the optimum
    move far), which the correlation does not penalise; the unit slope in the
    limit is checked by the next test.
    """
    chosen, predicted = retrain_samples
    actual = np.array([_upweighted_change(lr, int(i), eps) for i in chosen])
    r = pearsonr(predicted, actual).statistic
    signs = float(np.mean(np.sign(predicted) == np.sign(actual)))
    slope = float(predicted @ actual / (predicted @ predicted))
    print(
        f"\n[retraining eps={eps:.3g}] pearson={r:.6f} sign agreement={signs:.2f} "
        f"slope actual/predicted={slope:.4f}"
    )
    assert r >= 0.9, f"Pearson {r}"
    # every sample whose predicted influence is not within noise of 0 gets the sign right
    clear = np.abs(predicted) > 0.1 * np.abs(predicted).max()
    assert clear.sum() >= 10
    assert np.all(np.sign(predicted[clear]) == np.sign(actual[clear])), signs


def test_predicted_influence_is_the_first_order_limit(lr, retrain_samples):
    """A correlation would forgive a wrong scale (a missing 1/n, damping applied
    twice): check that the prediction is the derivative itself. The forward
    difference at eps=1e-5 is within O(eps) of it (measured 8.7e-4 of max |I|),
    the central difference at eps=1e-4 within O(eps^2) (measured 5.7e-5)."""
    chosen, predicted = retrain_samples
    scale = np.abs(predicted).max()
    forward = np.array([_upweighted_change(lr, int(i), 1e-5) for i in chosen])
    up = np.array([_upweighted_change(lr, int(i), 1e-4) for i in chosen])
    down = np.array([_upweighted_change(lr, int(i), -1e-4) for i in chosen])
    central = (up + down) / 2  # (l(R; theta_+eps) - l(R; theta_-eps)) / (2 eps)
    err_forward = np.abs(forward - predicted).max() / scale
    err_central = np.abs(central - predicted).max() / scale
    print(
        f"\n[first-order limit] forward eps=1e-5: {err_forward:.3g}, central eps=1e-4: "
        f"{err_central:.3g} (max |difference| / max |I|)"
    )
    assert err_forward <= 5e-3, err_forward
    assert err_central <= 1e-3, err_central


# -- forward-mode scoring against per-sample reverse-mode gradients ------------------------------
def test_forward_scores_match_per_sample_gradients_float64_lr(lr, exact_run):
    """Forward mode (float64 LR) against skisal's own s_test dotted with per-sample
    autograd gradients at the pseudo-label: agreement to 1e-10 relative to max |score|."""
    strategy, scores = exact_run
    assert strategy.diagnostics_.scoring_method == "forward"
    s = flat(strategy.s_test_, strategy.parameter_names_)
    _, _, _, _, X_pool = lr["tensors"]
    expected = []
    for i in range(len(X_pool)):
        theta = lr["theta"].clone().requires_grad_(True)
        out = logits(theta, X_pool[i : i + 1])
        loss = F.cross_entropy(out, out.argmax(dim=1))
        (g,) = torch.autograd.grad(loss, theta)
        expected.append(-float(g @ s))
    expected = np.array(expected)
    err = np.abs(scores - expected).max() / np.abs(expected).max()
    print(f"\n[lr float64] forward vs hand-written: {err:.3g} of max |score|")
    assert err < 1e-10, f"forward vs per-sample grads: {err:.3g} > 1e-10 * max|score|"


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(N_FEATURES, 32)
        self.act = nn.Tanh()
        self.out = nn.Linear(32, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.hidden(x)))


@pytest.fixture(scope="module")
def mlp(gt_digits):
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        MLP,
        criterion=nn.CrossEntropyLoss,
        max_epochs=15,
        lr=0.2,
        batch_size=32,
        train_split=None,
        verbose=0,
    )
    return net.fit(gt_digits["X_lab"].astype(np.float32), gt_digits["y_lab"])


def test_forward_scores_match_per_sample_gradients_float32_mlp(gt_digits, mlp):
    """Nonlinear float32 MLP: scoring="forward" against (a) a hand-written loop
    -<s_test, grad l(z, argmax)> by torch.autograd.grad per sample and (b)
    scoring="reverse". Tolerance: |difference| <= 1e-4 * max |score| (float32
    forward passes, both contractions accumulated in float64)."""
    X_pool = gt_digits["X_pool"].astype(np.float32)
    X_lab = gt_digits["X_lab"].astype(np.float32)
    X_ref = gt_digits["X_ref"].astype(np.float32)

    def strategy(scoring):
        return InfluenceQueryStrategy(
            X_ref, gt_digits["y_ref"], X_labeled=X_lab, y_labeled=gt_digits["y_lab"],
            inverse_hvp="cg", scoring=scoring, random_state=0,
        )  # fmt: skip

    forward = strategy("forward")
    t = time.perf_counter()
    scores = forward.influence(mlp, X_pool)
    t_forward = time.perf_counter() - t
    assert forward.diagnostics_.scoring_method == "forward"
    reverse = strategy("reverse")
    scores_reverse = reverse.influence(mlp, X_pool)
    assert reverse.diagnostics_.scoring_method == "reverse"

    module = mlp.module_
    names = forward.parameter_names_
    assert names == [n for n, _ in module.named_parameters()]
    params = dict(module.named_parameters())
    s = flat(forward.s_test_, names)
    expected = []
    for x in torch.as_tensor(X_pool):
        out = module(x[None])
        loss = F.cross_entropy(out, out.argmax(dim=1).detach())
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        g = torch.cat([gi.reshape(-1) for gi in grads]).to(torch.float64)
        expected.append(-float(g @ s))
    expected = np.array(expected)
    scale = np.abs(expected).max()
    err_manual = np.abs(scores - expected).max() / scale
    err_reverse = np.abs(scores - scores_reverse).max() / scale
    print(
        f"\n[mlp float32] forward vs hand-written: {err_manual:.3g}, forward vs reverse: "
        f"{err_reverse:.3g} (relative to max |score| = {scale:.3g}); forward {t_forward:.2f}s"
    )
    assert err_manual <= 1e-4, f"forward vs per-sample grads: {err_manual:.3g} > 1e-4 * max|score|"
    assert err_reverse <= 1e-4, f"forward vs reverse: {err_reverse:.3g} > 1e-4 * max|score|"
    # the selection (order) must agree too, up to near-ties
    assert np.argmin(scores) == np.argmin(expected)
