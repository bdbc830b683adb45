"""Diverse batch selection in the space of last-layer UUIC gradients.

Plain top-n selection by influence takes many near-duplicates when a query
asks for many samples. ``selection="diverse"`` spreads the batch instead: it
runs k-means++ seeding (D^2 sampling, as BADGE does, Ash et al., ICLR 2020) over
every pool sample's UUIC gradient with respect to the last ``nn.Linear``
layer, ``g_z = (d l_uuic / d out_z) (x) [h_z, 1]``, each scaled by the square
root of a weight in [0.5, 1] that grows with the sample's rank by influence
(so squared distances, and sampling odds, scale with it). The first pick is
the most helpful sample by influence.

The gradients are never formed: for outer products,
``||a (x) h - b (x) k||^2 = |a|^2 |h|^2 + |b|^2 |k|^2 - 2 (a.b)(h.k)``, so the
distances need only the two factors, ``n_pool x (n_outputs + n_features)``
numbers instead of their product.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .layers import LayerProbe
from .model import BoundModel, batches

__all__ = ["gradient_factors", "influence_rank_weights", "kmeans_pp_select"]


def gradient_factors(
    model: BoundModel, X: Any, batch_size: int, layer: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``(a, h)`` of every sample's last-layer UUIC gradient ``a (x) h``.

    ``a`` is the gradient of the sample's pseudo-label loss with respect to the
    layer's output, ``h`` its input with a column of ones appended (the bias).
    Call under :func:`~skisal.engine.evaluation_mode`; the network's
    parameters are not differentiated, so they and their ``.grad`` stay as
    they are.
    """
    outer, inner = [], []
    n = model.adapter.n_samples(X)
    with LayerProbe(model.module, layer, output_leaf=True) as probe, torch.enable_grad():
        for idx in batches(n, batch_size):
            outputs = model.forward(None, model.inputs(X, idx))
            h, out = probe.take()
            loss = model.adapter.pseudo_label_loss(model.estimator, outputs).sum()
            (grad,) = torch.autograd.grad(loss, out)
            h = h.flatten(1).double()
            outer.append(grad.flatten(1).double())
            inner.append(torch.cat([h, torch.ones_like(h[:, :1])], dim=1))
    return torch.cat(outer), torch.cat(inner)


def influence_rank_weights(scores: torch.Tensor) -> torch.Tensor:
    """Weights in ``[0.5, 1]`` growing linearly with helpfulness rank.

    The most negative influence gets 1, the least helpful 0.5: influence tilts
    the sampling without excluding any sample (zero weights, tried first,
    lost accuracy: the sign of a pseudo-label influence is a weak signal).
    """
    n = scores.shape[0]
    ranks = torch.empty(n, dtype=torch.float64, device=scores.device)
    ranks[torch.argsort(scores, stable=True)] = torch.arange(
        n, dtype=torch.float64, device=scores.device
    )
    return 1.0 - 0.5 * ranks / max(n - 1, 1)


def kmeans_pp_select(
    outer: torch.Tensor,
    inner: torch.Tensor,
    n_instances: int,
    first: int,
    rng: np.random.RandomState,
) -> np.ndarray:
    """k-means++ seeding over the points ``outer[i] (x) inner[i]``, starting at ``first``.

    Each further point is drawn with probability proportional to its squared
    distance to the nearest point already chosen; once every remaining point
    coincides with a chosen one, the rest follow in index order.
    """
    n = outer.shape[0]
    sq_norms = (outer * outer).sum(1) * (inner * inner).sum(1)
    nearest = torch.full((n,), float("inf"), dtype=torch.float64, device=outer.device)
    chosen = torch.zeros(n, dtype=torch.bool, device=outer.device)
    generator = torch.Generator(device=outer.device)
    generator.manual_seed(int(rng.randint(2**31 - 1)))
    order = [int(first)]
    for _ in range(n_instances):
        c = order[-1]
        chosen[c] = True
        distance = sq_norms + sq_norms[c] - 2 * (outer @ outer[c]) * (inner @ inner[c])
        nearest = torch.minimum(nearest, distance.clamp(min=0))
        if len(order) == n_instances:
            break
        weights = torch.where(chosen, torch.zeros_like(nearest), nearest)
        if float(weights.sum()) > 0:
            order.append(int(torch.multinomial(weights, 1, generator=generator)))
        else:
            order.append(int(torch.nonzero(~chosen)[0]))
    return np.asarray(order, dtype=np.int64)
