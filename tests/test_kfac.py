"""K-FAC and EK-FAC against dense curvature matrices built independently.

Ground truths: for one linear layer and one sample the Kronecker product is the
exact Gauss-Newton block; EK-FAC's eigenvalues are the diagonal of the exact
block in K-FAC's eigenbasis (George et al. 2018) for every layer type; the
Gaussian sketch converges to the exact factors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier
from torch import nn

from skisal import SkorchClassifierAdapter
from skisal.engine import BoundModel, DampedCurvature, ParameterSpace, select_parameters
from skisal.engine.kfac import KroneckerCurvature, supported_layer


class _ConvNet(nn.Module):
    """Conv2d (padding, stride), Conv1d over rows, Linear with an extra leading axis."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1, stride=2)
        self.conv1d = nn.Conv1d(3, 2, 2, dilation=1, padding="same")
        self.norm = nn.BatchNorm1d(2)
        self.fc = nn.Linear(2 * 4 * 2, 3)

    def forward(self, x):
        h = torch.tanh(self.conv(x.reshape(-1, 1, 6, 6)))  # (N, 3, 3, 3)
        h = h.flatten(2)[:, :, :8]  # (N, 3, 8) sequences
        h = torch.tanh(self.norm(self.conv1d(h)))  # (N, 2, 8)
        return self.fc(h.reshape(len(x), -1)[:, :16])


def _model(module, X, y, parameters="all", dtype=torch.float64):
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        module,
        criterion=nn.CrossEntropyLoss,
        max_epochs=3,
        lr=0.1,
        train_split=None,
        verbose=0,
    ).fit(X.astype(np.float32), y)
    net.module_.to(dtype).eval()
    space = ParameterSpace(select_parameters(net.module_, parameters))
    return BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))


def _data(n, d=36, classes=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    y = (X[:, :classes].argmax(1)).astype(np.int64)
    return X, y


def _block_indices(space, weight, bias):
    """Flat positions of a layer's parameters in K-FAC's ``[W | b]`` row-major order."""
    offsets, start = {}, 0
    for name in space.names:
        offsets[name] = start
        start += space.parameters[name].numel()
    rows = []
    out = space.parameters[weight or bias].shape[0]
    width = space.parameters[weight][0].numel() if weight else 0
    for o in range(out):
        if weight:
            rows += list(range(offsets[weight] + o * width, offsets[weight] + (o + 1) * width))
        if bias:
            rows.append(offsets[bias] + o)
    return np.array(rows)


def _kron_basis(kfac, name):
    block = kfac.blocks_[name]
    return torch.kron(block.eig_G[1], block.eig_A[1])


@pytest.mark.parametrize("curvature", ["gauss_newton", "fisher"])
@pytest.mark.parametrize("module", ["mlp", "conv"])
def test_ekfac_eigenvalues_are_the_exact_blocks_diagonal_in_the_kfac_basis(curvature, module):
    X, y = _data(24)
    if module == "mlp":
        net = nn.Sequential(nn.Linear(36, 5), nn.Tanh(), nn.Linear(5, 3))
    else:
        net = _ConvNet()
    model = _model(net, X, y)
    X = X.astype(np.float64)
    hessian = DampedCurvature(model, X, y, damping=0.1, batch_size=10, curvature=curvature)
    dense = hessian.dense() - 0.1 * torch.eye(hessian.dim, dtype=torch.float64)
    kfac = KroneckerCurvature("ekfac", output_samples="exact").fit(hessian)
    assert len(kfac.blocks_) == (2 if module == "mlp" else 3)
    assert kfac.unfactored_ == ([] if module == "mlp" else ["norm.weight", "norm.bias"])
    for name, block in kfac.blocks_.items():
        rows = _block_indices(model.space, block.weight, block.bias)
        exact_block = dense[np.ix_(rows, rows)]
        basis = _kron_basis(kfac, name)
        expected = torch.diagonal(basis.T @ exact_block @ basis)
        got = kfac.eigenvalues(name).reshape(-1)
        torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-12)


def test_kfac_is_exact_for_one_sample_and_one_linear_layer():
    X, y = _data(1, d=4)
    model = _model(nn.Linear(4, 3), np.repeat(X, 4, 0), np.repeat(y, 4))
    hessian = DampedCurvature(model, X, y, damping=0.05, batch_size=1)
    kfac = KroneckerCurvature("kfac", output_samples="exact").fit(hessian)
    v = torch.randn(hessian.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(kfac.solve(v, 0.05), torch.linalg.solve(hessian.dense(), v))


def test_kfac_factors_are_the_layer_second_moments():
    """A = mean of [a, 1][a, 1]^T over samples x positions, G = sum of g g^T over positions / n."""
    X, y = _data(12)
    model = _model(_ConvNet(), X, y)
    hessian = DampedCurvature(model, X, y, damping=0.1, batch_size=5, curvature="fisher")
    kfac = KroneckerCurvature("kfac").fit(hessian)
    module = model.module.conv
    x = torch.as_tensor(X).reshape(-1, 1, 6, 6)
    cols = nn.functional.unfold(x, 3, padding=1, stride=2).transpose(1, 2)  # (12, 9, 9)
    cols = torch.cat([cols, torch.ones(12, 9, 1, dtype=cols.dtype)], dim=2).reshape(-1, 10)
    torch.testing.assert_close(kfac.blocks_["conv"].A, cols.T @ cols / len(cols))
    # G: per-sample loss gradients at the conv's output, summed over positions
    outputs = {}
    handle = module.register_forward_hook(lambda m, i, o: outputs.setdefault("o", o))
    logits = model.module(x.reshape(12, -1))
    handle.remove()
    loss = nn.functional.cross_entropy(logits, torch.as_tensor(y), reduction="sum")
    (g,) = torch.autograd.grad(loss, outputs["o"])
    rows = g.reshape(12, 3, -1).transpose(1, 2).reshape(-1, 3)
    torch.testing.assert_close(kfac.blocks_["conv"].G, rows.T @ rows / 12)


def test_gaussian_sketches_converge_to_the_exact_factors():
    X, y = _data(16, d=5)
    model = _model(nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)), X, y)
    hessian = DampedCurvature(model, X, y, damping=0.1, batch_size=16)
    exact = KroneckerCurvature("kfac", output_samples="exact").fit(hessian)
    sketch = KroneckerCurvature("kfac", output_samples=4000).fit(hessian, np.random.RandomState(0))
    for name in exact.blocks_:
        G, G_sketch = exact.blocks_[name].G, sketch.blocks_[name].G
        assert float((G_sketch - G).norm() / G.norm()) < 0.05
        torch.testing.assert_close(sketch.blocks_[name].A, exact.blocks_[name].A)


def test_solve_inverts_the_damped_kronecker_product():
    X, y = _data(20)
    model = _model(_ConvNet(), X, y)
    hessian = DampedCurvature(model, X, y, damping=0.3, batch_size=7)
    for kind in ("kfac", "ekfac"):
        kfac = KroneckerCurvature(kind).fit(hessian, np.random.RandomState(0))
        v = torch.randn(
            hessian.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
        )
        s = kfac.solve(v, 0.3)
        for name, block in kfac.blocks_.items():
            rows = _block_indices(model.space, block.weight, block.bias)
            basis = _kron_basis(kfac, name)
            matrix = basis @ torch.diag(kfac.eigenvalues(name).reshape(-1) + 0.3) @ basis.T
            torch.testing.assert_close(matrix @ s[rows], v[rows])
        for name in kfac.unfactored_:  # no curvature: v / damping
            torch.testing.assert_close(model.space.split(s)[name], model.space.split(v)[name] / 0.3)


def test_parameter_subsets_weight_or_bias_only():
    X, y = _data(10, d=5)
    model = _model(
        nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)),
        X,
        y,
        parameters=["0.bias", "2.weight"],
    )
    hessian = DampedCurvature(model, X, y, damping=0.1, batch_size=4)
    dense = hessian.dense() - 0.1 * torch.eye(hessian.dim, dtype=torch.float64)
    kfac = KroneckerCurvature("ekfac", output_samples="exact").fit(hessian)
    assert {n: (b.weight, b.bias) for n, b in kfac.blocks_.items()} == {
        "0": (None, "0.bias"),
        "2": ("2.weight", None),
    }
    for name, block in kfac.blocks_.items():
        rows = _block_indices(model.space, block.weight, block.bias)
        basis = _kron_basis(kfac, name)
        expected = torch.diagonal(basis.T @ dense[np.ix_(rows, rows)] @ basis)
        torch.testing.assert_close(kfac.eigenvalues(name).reshape(-1), expected)


def test_subset_and_refusals():
    X, y = _data(30, d=5)
    model = _model(nn.Sequential(nn.Linear(5, 3)), X, y)
    subset = np.array([3, 7, 11, 20])
    on_subset = KroneckerCurvature("ekfac", "exact").fit(
        DampedCurvature(model, X, y, 0.1, 2, subset=subset)
    )
    on_rows = KroneckerCurvature("ekfac", "exact").fit(
        DampedCurvature(model, X[subset], y[subset], 0.1, 3)
    )
    torch.testing.assert_close(on_subset.eigenvalues("0"), on_rows.eigenvalues("0"))
    with pytest.raises(ValueError, match="kind must be"):
        KroneckerCurvature("diag")
    with pytest.raises(ValueError, match="output_samples"):
        KroneckerCurvature("kfac", output_samples=0)
    with pytest.raises(ValueError, match="damping > 0"):
        on_subset.solve(torch.zeros(on_subset.model_.space.dim, dtype=torch.float64), 0.0)
    norm_only = _model(nn.Sequential(nn.Linear(5, 3), nn.LayerNorm(3)), X, y, ["1"])
    with pytest.raises(ValueError, match="none of the selected parameters"):
        KroneckerCurvature().fit(DampedCurvature(norm_only, X, y, 0.1, 8))


def test_supported_layers():
    assert supported_layer(nn.Conv1d(2, 2, 3, padding="same"))
    assert not supported_layer(nn.Conv2d(2, 2, 3, padding_mode="reflect"))
    assert not supported_layer(nn.Conv3d(2, 2, 3))
