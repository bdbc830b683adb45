"""Forward-mode linear layers that skip absent tangents: same numbers, less work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from skisal.engine._layer_jvp import SkipAbsentTangents
from skisal.engine.model import dual_level

# (function, input shape, weight shape, bias size, positional options, keyword options)
LAYERS = {
    "linear": (F.linear, (5, 6), (4, 6), 4, (), {}),
    "conv1d": (F.conv1d, (3, 4, 9), (6, 4, 3), 6, (2, 1), {}),  # stride 2, padding 1
    "conv2d": (F.conv2d, (3, 4, 7, 7), (6, 2, 3, 3), 6, (), {"padding": "same", "groups": 2}),
    "conv3d": (F.conv3d, (2, 2, 5, 5, 5), (3, 2, 2, 2, 2), 3, (1, 0, 2), {}),  # dilation 2
}
#: Which of input, weight and bias carry a tangent.
TANGENTS = [
    (True, False, False),  # frozen layer after a tracked one: skipped work
    (False, True, True),  # tracked first layer: skipped work
    (False, True, False),  # tracked weight, frozen bias: skipped work
    (True, True, True),  # PyTorch's own rule
    (True, False, True),
    (False, False, True),
    (False, False, False),
]


def _dual_call(call, tensors, tangents, mode):
    """``call(*tensors)`` with a seeded random tangent on each flagged, non-None tensor."""
    gen = torch.Generator().manual_seed(1)
    with dual_level():
        args = [
            fwAD.make_dual(t, torch.randn(t.shape, generator=gen)) if has and t is not None else t
            for t, has in zip(tensors, tangents, strict=True)
        ]
        with mode:
            out = call(*args)
        primal, tangent = fwAD.unpack_dual(out)
    return primal, tangent


def _assert_same_as_pytorch(call, tensors, tangents):
    ours = _dual_call(call, tensors, tangents, SkipAbsentTangents())
    theirs = _dual_call(call, tensors, tangents, torch.no_grad())
    torch.testing.assert_close(ours[0], theirs[0], rtol=0, atol=0)
    if theirs[1] is None:
        assert ours[1] is None
    else:
        torch.testing.assert_close(ours[1], theirs[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("tangents", TANGENTS)
def test_same_primal_and_tangent_as_pytorch(name, tangents):
    func, x_shape, w_shape, n_bias, options, keywords = LAYERS[name]
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(s, generator=gen) for s in (x_shape, w_shape, (n_bias,)))
    _assert_same_as_pytorch(
        lambda x, w, b: func(x, w, b, *options, **keywords), (x, w, b), tangents
    )


@pytest.mark.parametrize("tangents", TANGENTS)
@pytest.mark.parametrize("affine", [True, False])
def test_eval_batch_norm_same_as_pytorch(tangents, affine):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 5, generator=gen)
    mean, var = torch.randn(3, generator=gen), torch.rand(3, generator=gen) + 0.5
    w, b = (
        (torch.randn(3, generator=gen), torch.randn(3, generator=gen)) if affine else (None, None)
    )
    _assert_same_as_pytorch(
        lambda x, w, b: F.batch_norm(x, mean, var, w, b, False, 0.1, 1e-3), (x, w, b), tangents
    )


def test_training_batch_norm_is_left_to_pytorch():
    x, x_t = torch.randn(4, 3), torch.randn(4, 3)
    mean, var = torch.zeros(3), torch.ones(3)
    with dual_level():
        with SkipAbsentTangents():
            ours = F.batch_norm(fwAD.make_dual(x, x_t), mean.clone(), var.clone(), training=True)
        theirs = F.batch_norm(fwAD.make_dual(x, x_t), mean.clone(), var.clone(), training=True)
        torch.testing.assert_close(fwAD.unpack_dual(ours).tangent, fwAD.unpack_dual(theirs).tangent)


def test_bias_as_keyword_and_no_bias():
    x, w, w_t = torch.randn(3, 4), torch.randn(2, 4), torch.randn(2, 4)
    b, b_t = torch.randn(2), torch.randn(2)
    with dual_level(), SkipAbsentTangents():
        keyword = F.linear(x, fwAD.make_dual(w, w_t), bias=fwAD.make_dual(b, b_t))
        no_bias = F.linear(x, fwAD.make_dual(w, w_t))
        torch.testing.assert_close(fwAD.unpack_dual(keyword).tangent, x @ w_t.T + b_t)
        torch.testing.assert_close(fwAD.unpack_dual(no_bias).tangent, x @ w_t.T)


def _scoring_flops(net: nn.Module, parameters) -> tuple[float, float]:
    """FLOPs of one forward pass, and of pool scoring, per pool sample."""
    from skorch import NeuralNetClassifier

    from skisal import SkorchClassifierAdapter
    from skisal.engine import (
        BoundModel,
        ParameterSpace,
        evaluation_mode,
        score_pool,
        select_parameters,
    )

    skorch_net = NeuralNetClassifier(
        net, criterion=nn.CrossEntropyLoss, train_split=None, verbose=0
    ).initialize()
    module = skorch_net.module_
    space = ParameterSpace(select_parameters(module, parameters))
    model = BoundModel(SkorchClassifierAdapter(), skorch_net, module, space, torch.device("cpu"))
    X = np.random.RandomState(0).rand(8, 2, 6, 6).astype(np.float32)
    with evaluation_mode(module), FlopCounterMode(display=False) as forward:
        module(torch.as_tensor(X))
    with evaluation_mode(module), FlopCounterMode(display=False) as scoring:
        score_pool(model, torch.randn(space.dim), X, batch_size=4)
    return forward.get_total_flops(), scoring.get_total_flops()


def _two_convs() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8 * 2 * 2, 3)
    )


def test_pool_scoring_skips_the_first_layers_zero_input_tangent():
    # PyTorch's rule would run the first conv three times (once on a zero input tangent)
    net = _two_convs()
    forward, scoring = _scoring_flops(net, "all")
    first = 2 * 8 * 4 * 4 * 2 * 9 * 8  # FLOPs of the first conv on 8 samples
    assert scoring == 3 * forward - first


def test_pool_scoring_skips_frozen_layers_zero_weight_tangent():
    # only the first conv tracked: the later layers propagate the input tangent alone
    net = _two_convs()
    forward, scoring = _scoring_flops(net, ["0"])
    assert scoring == 2 * forward
