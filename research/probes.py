"""What the research strategies read off a fitted network, besides skisal's influence scores.

Every probe takes the estimator a modAL learner holds (a skorch net, or a scikit-learn
``Pipeline`` ending in one, as ``skisal.experiments``' tabular datasets build) and the raw pool;
a Pipeline's preprocessing is applied first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jvp

from skisal import SkorchClassifierAdapter
from skisal.engine import (
    BoundModel,
    DampedCurvature,
    ParameterSpace,
    evaluation_mode,
    select_parameters,
    top_eigenvalue,
)


def network_inputs(estimator: Any, X: Any) -> tuple[nn.Module, torch.Tensor]:
    """The fitted ``nn.Module`` and ``X`` as its input (through a Pipeline's preprocessing)."""
    if hasattr(estimator, "steps"):
        X, estimator = estimator[:-1].transform(X), estimator[-1]
    return estimator.module_, torch.as_tensor(X)


def outputs_and_features(estimator: Any, X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities and the input of the last ``nn.Linear``, float64, one pass."""
    module, inputs = network_inputs(estimator, X)
    last = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
    features: list[torch.Tensor] = []
    hook = last.register_forward_pre_hook(lambda m, args: features.append(args[0].detach()))
    try:
        with evaluation_mode(module), torch.no_grad():
            logits = module(inputs)
    finally:
        hook.remove()
    probs = logits.softmax(1).double().numpy()
    return probs, torch.cat(features).double().numpy()


def logits_and_tangent(
    estimator: Any, X: Any, s_test: dict[str, torch.Tensor], batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and ``t = J_z s_test`` (their derivative along ``s_test``) per sample, float64.

    Parameters missing from ``s_test`` (not differentiated by ISAL) get a zero tangent.
    """
    module, inputs = network_inputs(estimator, X)
    params = {k: p.detach() for k, p in module.named_parameters()}
    tangents = {
        k: s_test[k].to(p.dtype).reshape(p.shape) if k in s_test else torch.zeros_like(p)
        for k, p in params.items()
    }
    logits, tangent = [], []
    with evaluation_mode(module), torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size]
            out, t = jvp(
                lambda p, x=batch: functional_call(module, p, (x,)), (params,), (tangents,)
            )
            logits.append(out.double())
            tangent.append(t.double())
    return torch.cat(logits), torch.cat(tangent)


def influence_per_label(logits: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """``I(z, R, y) = t_y - p.t`` for every label ``y``: (n, C), softmax cross-entropy.

    ``I(z, R, argmax p)`` is skisal's UUIC score; ``sum_y p_y I(z, R, y) = 0`` exactly.
    """
    p = logits.softmax(1)
    return tangent - (p * tangent).sum(1, keepdim=True)


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability (modAL's margin; small = uncertain)."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def badge_embedding(probs: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Last-layer UUIC gradient per sample, ``(p - onehot(argmax p)) (x) h`` (BADGE)."""
    g = probs.copy()
    g[np.arange(len(g)), probs.argmax(1)] -= 1.0
    return (g[:, :, None] * features[:, None, :]).reshape(len(g), -1)


def gn_top_eigenvalue(learner: Any, random_state: Any, iterations: int = 50) -> float:
    """lambda_max of the Gauss-Newton matrix of the mean training loss (all parameters).

    skisal's power iteration (``skisal.engine.top_eigenvalue``, tolerance 1e-3) over the
    learner's labelled set.
    """
    estimator = learner.estimator
    adapter = SkorchClassifierAdapter()
    module = adapter.get_module(estimator)
    space = ParameterSpace(select_parameters(module, "all"))
    model = BoundModel(adapter, estimator, module, space, torch.device("cpu"))
    y = np.asarray(learner.y_training, dtype=np.int64)
    with evaluation_mode(module), torch.no_grad():
        hessian = DampedCurvature(model, learner.X_training, y, damping=0.0, batch_size=256)
        rng = np.random.RandomState(random_state)
        return top_eigenvalue(hessian, np.arange(hessian.n), rng, iterations, 1e-3)
