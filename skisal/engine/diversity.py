"""Diverse batch selection in the space of last-layer UUIC gradients.

Plain top-n selection by influence takes many near-duplicates when a query
asks for many samples. ``selection="diverse"`` spreads the batch instead: it
runs greedy k-means++ seeding (D^2 sampling, as BADGE does, Ash et al., ICLR 2020,
with scikit-learn's local trials) over
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
import torch.autograd.forward_ad as fwAD

from .layers import LayerProbe
from .model import BoundModel, batches

__all__ = [
    "LastLayerFactors",
    "gradient_factors",
    "influence_rank_weights",
    "kmeans_pp_select",
    "pick_distances",
]


def gradient_factors(
    model: BoundModel, X: Any, batch_size: int, layer: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``(a, h)`` of every sample's last-layer UUIC gradient ``a (x) h``.

    ``a`` is the gradient of the sample's pseudo-label loss with respect to the
    layer's output, ``h`` its input with a column of ones appended (the bias).
    Call under :func:`~skisal.engine.evaluation_mode`; the network's
    parameters are not differentiated, so they and their ``.grad`` stay as
    they are.

    Parameters
    ----------
    model : BoundModel
        The model, its adapter and estimator.
    X : array-like or torch.Tensor
        The samples (the pool).
    batch_size : int
        Samples per forward pass.
    layer : str, optional
        Name of the layer; default the last ``nn.Linear`` the forward pass
        runs (see :class:`~skisal.engine.layers.LayerProbe`).

    Returns
    -------
    outer : torch.Tensor of shape (n_samples, n_outputs)
        Gradients with respect to the layer's output, in the network's dtype.
    inner : torch.Tensor of shape (n_samples, n_inputs + 1)
        The layer's inputs and a column of ones, in the network's dtype (not
        widened: the pool's factors are the largest array of a query, and
        :func:`kmeans_pp_select` reads them in float32).

    Raises
    ------
    ValueError
        If ``layer`` names no module, or the network has no ``nn.Linear``.

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import BoundModel, ParameterSpace, evaluation_mode, select_parameters
    >>> from skisal.engine.diversity import gradient_factors
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> with evaluation_mode(net.module_):
    ...     outer, inner = gradient_factors(model, X_pool, batch_size=8)
    >>> outer.shape, inner.shape  # 2 outputs; 4 inputs and the bias column
    (torch.Size([30, 2]), torch.Size([30, 5]))
    """
    n = model.adapter.n_samples(X)
    factors = _FactorRows(n)

    def factor_batches() -> None:
        with LayerProbe(model.module, layer, output_leaf=True) as probe, torch.enable_grad():
            for idx in batches(n, batch_size):
                outputs = model.forward(None, model.inputs(X, idx))
                h, out = probe.take()
                loss = model.adapter.pseudo_label_loss(model.estimator, outputs).sum()
                (grad,) = torch.autograd.grad(loss, out)
                factors.write(idx, grad, h)

    # Detached parameters: autograd records only what follows the probed layer's output
    # (the leaf), not the network before it.
    detached = {name: p.detach() for name, p in model.module.named_parameters()}
    model.run_with(detached, factor_batches)
    return factors.outer, factors.inner


class _FactorRows:
    """The ``(outer, inner)`` factor matrices of ``n`` samples, filled batch by batch."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.outer: torch.Tensor | None = None
        self.inner: torch.Tensor | None = None
        self.written = 0

    def write(self, idx: np.ndarray, grad: torch.Tensor, h: torch.Tensor) -> None:
        """Rows ``idx`` (consecutive): output gradients ``grad`` and layer inputs ``h``."""
        grad, h = grad.flatten(1), h.flatten(1)
        if self.outer is None:  # written in place: joining the batches was a third of the cost
            self.outer = grad.new_empty((self.n, grad.shape[1]))
            self.inner = h.new_empty((self.n, h.shape[1] + 1))
        rows = slice(int(idx[0]), int(idx[-1]) + 1)
        self.outer[rows] = grad
        self.inner[rows, :-1] = h
        self.inner[rows, -1] = 1
        self.written += len(idx)


class LastLayerFactors:
    """:func:`gradient_factors`' result, recorded during a forward pass run anyway.

    The pool scoring's dual forward pass computes every pool sample's input to
    the last layer and its outputs; where that layer's output *is* the
    network's output (its gradient is then the pseudo-label loss's gradient
    at the outputs, a few operations), the factors cost almost nothing there,
    and :func:`gradient_factors`' own pass over the pool is saved (a quarter
    of a diverse selection's time on the digits CNN, :doc:`/performance`).
    Pass an instance as ``observer`` to :func:`~skisal.engine.score_pool`.

    Parameters
    ----------
    model : BoundModel
        The model being scored.
    n : int
        Samples in the pool.
    layer : str, optional
        As in :func:`gradient_factors`.

    Attributes
    ----------
    reason : str or None
        Why no factors were recorded (the network transforms the layer's
        output further, its outputs have more than two dimensions, or the pass
        was not in forward mode); None if they were.

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, ParameterSpace, evaluation_mode, score_pool,
    ...     select_parameters)
    >>> from skisal.engine.diversity import LastLayerFactors, gradient_factors
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> recorder = LastLayerFactors(model, len(X_pool))
    >>> with evaluation_mode(net.module_):
    ...     _ = score_pool(model, torch.randn(space.dim), X_pool, batch_size=8, observer=recorder)
    ...     outer, inner = gradient_factors(model, X_pool, batch_size=8)
    >>> recorded = recorder.result()
    >>> bool(torch.equal(recorded[0], outer) and torch.equal(recorded[1], inner))
    True
    """

    #: Rows of outputs differentiated at a time by :meth:`result`.
    block_rows = 8192

    def __init__(self, model: BoundModel, n: int, layer: str | None = None) -> None:
        self.model = model
        self.layer = layer
        self.reason: str | None = None
        self._rows = _FactorRows(n)
        self._probe: LayerProbe | None = None
        self._gradients = False  # whether _rows.outer holds the gradients yet (or the outputs)

    def __enter__(self) -> LastLayerFactors:
        try:
            self._probe = LayerProbe(self.model.module, self.layer)
        except ValueError as exc:  # no such layer: the selection that needs it will say so
            self.reason = str(exc)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    def record(self, idx: np.ndarray, outputs: Any) -> None:
        """Take one batch's factors from its forward pass.

        Parameters
        ----------
        idx : ndarray of int
            The batch's rows of the pool (consecutive).
        outputs : object
            What the network returned for the batch, as the pass got it (dual
            tensors in the scoring's forward mode).
        """
        if self.reason is not None or self._probe is None:
            return
        h, out = self._probe.take()
        if out is not outputs:  # identity: nothing ran between the layer and the outputs
            self.reason = f"the network transforms layer {self._probe.name!r}'s output further"
            return
        # the outputs for now: result() turns them into their gradients, in a few large
        # blocks (one autograd call per batch cost more than the rest of the recording)
        primal = fwAD.unpack_dual(out).primal.detach()
        if primal.ndim != 2:  # the losses need the outputs' shape, which the rows drop
            self.reason = f"layer {self._probe.name!r}'s outputs are not one row per sample"
            return
        self._rows.write(idx, primal, fwAD.unpack_dual(h).primal)

    def result(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The recorded factors.

        Returns
        -------
        tuple of torch.Tensor or None
            ``(outer, inner)`` as :func:`gradient_factors` returns them; None
            when :attr:`reason` says why, or when some batches were not
            recorded (a pass that fell back to reverse mode).
        """
        if self.reason is None and self._rows.written != self._rows.n:
            self.reason = "the pool was not scored in forward mode"
        if self.reason is not None:
            return None
        if not self._gradients:
            # per-sample losses: a block's gradient rows are those of the batches it joins
            for block in self._rows.outer.split(self.block_rows):
                with torch.enable_grad():
                    leaf = block.detach().requires_grad_(True)
                    loss = self.model.adapter.pseudo_label_loss(self.model.estimator, leaf)
                    (grad,) = torch.autograd.grad(loss.sum(), leaf)
                block.copy_(grad)
            self._gradients = True
        return self._rows.outer, self._rows.inner


def influence_rank_weights(scores: torch.Tensor) -> torch.Tensor:
    """Weights in ``[0.5, 1]`` growing linearly with helpfulness rank.

    The most negative influence gets 1, the least helpful 0.5: influence tilts
    the sampling without excluding any sample (zero weights, tried first,
    lost accuracy: the sign of a pseudo-label influence is a weak signal).

    Parameters
    ----------
    scores : torch.Tensor of shape (n,)
        Influences (lower = more helpful); ties keep their order.

    Returns
    -------
    torch.Tensor of shape (n,)
        float64 weights on ``scores``' device.

    Examples
    --------
    >>> from skisal.engine.diversity import influence_rank_weights
    >>> influence_rank_weights(torch.tensor([0.3, -1.0, 0.0]))
    tensor([0.5000, 1.0000, 0.7500], dtype=torch.float64)
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
    n_local_trials: int | None = None,
    dtype: torch.dtype = torch.float32,
    prune: bool = True,
) -> np.ndarray:
    """Greedy k-means++ seeding over the points ``outer[i] (x) inner[i]``, from ``first``.

    As scikit-learn's ``kmeans_plusplus``: each step draws ``n_local_trials``
    candidates with probability proportional to their squared distance to the
    nearest point already chosen, and keeps the one that lowers the summed
    squared distances most (default ``2 + log(n_instances)`` trials). Once
    every remaining point coincides with a chosen one, the rest follow in
    index order. The points are never formed: squared distances between outer
    products need only the two factors.

    Each step reads all the factors once, and that read is the cost (a
    product of a few rows with the whole matrix is bound by memory traffic),
    so the products run in ``dtype``, float32 by default: 50 picks from a
    pool of 20,000 with 513 features took 0.37 s, against 0.89 s in float64
    with rows times the transposed matrix (one CPU thread). The
    squared norms are summed in float64, and distances within the
    products' rounding error (``(p + q)`` units in the last place of the sum
    of the two squared norms) count as zero: such points coincide.

    Most points need no product at all (``prune``): a candidate can only
    lower a point's distance to the chosen points where the lower bound
    ``|a|^2 |h|^2 + |b|^2 |k|^2 - 2 |a.b| |h| |k|`` on their squared distance
    (Cauchy-Schwarz on the inner factors; the outer products ``a.b`` are
    cheap) falls below that distance, and each step reads only those points'
    inner factors. A pruned point keeps its distance, as it would have
    without pruning: the bound allows four times the products' rounding
    error. The distances computed are the same up to that rounding (rows
    gathered for the product may round differently from the whole matrix's),
    so picks differ only where two candidates tie within it. On the digits
    CNN's pools of 20,000 the bound left 5-12% of the points per step, and 50
    picks took 1.8x to 2.8x less time (3.2x to 3.7x on a 1-D CNN;
    ``python benchmarks/run.py --only selection``, :doc:`/performance`). On
    a weak model whose outputs are not yet class-separated it prunes little
    and costs a few elementwise passes per step (0.77x on a 2-epoch net).

    Parameters
    ----------
    outer, inner : torch.Tensor of shape (n, p) and (n, q)
        The factors of the ``n`` points (as :func:`gradient_factors` returns
        them, ``outer`` possibly scaled by weights).
    n_instances : int
        Points to select, at most ``n``.
    first : int
        Index of the first point (the most helpful sample).
    rng : numpy.random.RandomState
        Seeds the candidate draws.
    n_local_trials : int, optional
        Candidates per step (default ``2 + int(log(n_instances))``).
    dtype : torch.dtype, default=torch.float32
        Precision of the products between points.
    prune : bool, default=True
        Skip the points that the lower bound shows no candidate can move
        closer (the same distances, up to rounding); False computes every
        distance at every step.

    Returns
    -------
    ndarray of shape (n_instances,)
        Selected indices, in selection order, starting with ``first``.

    Examples
    --------
    Four points on a line (1, 1.1, 4 and 9), starting from the first: the far
    ones come next, the near-duplicate of the first last.

    >>> from skisal.engine.diversity import kmeans_pp_select
    >>> outer = torch.tensor([[1.0], [1.1], [4.0], [9.0]], dtype=torch.float64)
    >>> inner = torch.ones(4, 1, dtype=torch.float64)
    >>> kmeans_pp_select(outer, inner, 4, first=0, rng=np.random.RandomState(0)).tolist()
    [0, 3, 2, 1]
    """
    n = outer.shape[0]
    trials = 2 + int(np.log(n_instances)) if n_local_trials is None else n_local_trials
    sq_inner = _squared_norms(inner)
    sq_norms = _squared_norms(outer) * sq_inner
    inner_norms = sq_inner.sqrt()
    low_outer, low_inner = outer.to(dtype).contiguous(), inner.to(dtype).contiguous()
    rounding = (outer.shape[1] + inner.shape[1]) * torch.finfo(dtype).eps
    chosen = torch.zeros(n, dtype=torch.bool, device=outer.device)
    generator = torch.Generator(device=outer.device)
    generator.manual_seed(int(rng.randint(2**31 - 1)))

    def nearer(c: torch.Tensor, nearest: torch.Tensor, prune: bool = prune) -> torch.Tensor:
        """Each point's squared distance to the chosen points and each of ``c``: ``(len(c), n)``.

        ``nearest``: to the chosen points (+inf before the first).
        """
        outer_cross = low_outer[c] @ low_outer.T  # (k, n): the fast layout for p columns
        both = sq_norms[None, :] + sq_norms[c][:, None]
        inner_c = low_inner[c]
        if prune:
            bound = both - 2 * (outer_cross.abs() * inner_norms[None, :]) * inner_norms[c][:, None]
            rows = torch.nonzero((bound < nearest[None, :] + 4 * rounding * both).any(0))[:, 0]
            if 3 * len(rows) < n:  # gathering rows costs about three times reading them in place
                # index_select: 4x faster than indexing with a tensor, for rows of the factors
                inner_cross = low_inner.index_select(0, rows) @ inner_c.T
                squared = _squared_distances(
                    both.index_select(1, rows),
                    outer_cross.index_select(1, rows),
                    inner_cross,
                    rounding,
                )
                near = torch.minimum(nearest.index_select(0, rows)[None, :], squared)
                return nearest.repeat(len(c), 1).index_copy_(1, rows, near)
        # (n, k) products: the layout that reads the inner factors once, fastest on a CPU
        squared = _squared_distances(both, outer_cross, low_inner @ inner_c.T, rounding)
        return torch.minimum(nearest[None, :], squared)

    order = [int(first)]
    chosen[first] = True
    nearest = torch.full((n,), float("inf"), dtype=sq_norms.dtype, device=outer.device)
    nearest = nearer(torch.tensor([first], device=outer.device), nearest, prune=False)[0]
    while len(order) < n_instances:
        weights = torch.where(chosen, torch.zeros_like(nearest), nearest)
        if float(weights.sum()) <= 0:
            pick = int(torch.nonzero(~chosen)[0])
            nearest = nearer(torch.tensor([pick], device=outer.device), nearest)[0]
        else:
            candidates = torch.multinomial(weights, trials, replacement=True, generator=generator)
            candidate_nearest = nearer(candidates, nearest)
            best = int(torch.argmin(candidate_nearest.sum(1)))
            pick, nearest = int(candidates[best]), candidate_nearest[best]
        order.append(pick)
        chosen[pick] = True
    return np.asarray(order, dtype=np.int64)


def _squared_distances(
    both: torch.Tensor, outer_cross: torch.Tensor, inner_cross: torch.Tensor, rounding: float
) -> torch.Tensor:
    """``both - 2 (a.b)(h.k)`` in ``both``'s dtype, zero within ``rounding`` of ``both``.

    ``both`` and ``outer_cross`` are ``(k, m)``; ``inner_cross`` is ``(m, k)``.
    """
    squared = both - 2 * (outer_cross * inner_cross.T).to(both.dtype)
    return torch.where(squared > rounding * both, squared, torch.zeros_like(squared))


def _squared_norms(x: torch.Tensor, rows: int = 512) -> torch.Tensor:
    """Row-wise squared norms in float64, widened a block of rows at a time into one buffer.

    Not all at once (twice the factors' memory), and not into a fresh tensor per block:
    fresh blocks of a few MB take fresh pages, which cost more than the arithmetic.
    """
    norms = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    buffer = torch.empty((min(rows, x.shape[0]), x.shape[1]), dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], rows):
        block = buffer[: min(rows, x.shape[0] - start)]
        block.copy_(x[start : start + rows]).square_()
        torch.sum(block, dim=1, out=norms[start : start + len(block)])
    return norms


def pick_distances(outer: torch.Tensor, inner: torch.Tensor, order: np.ndarray) -> np.ndarray:
    """Each pick's distance to the nearest earlier pick, among the points ``outer (x) inner``.

    What made k-means++ seeding take a point: it was far from every point chosen
    before it. The first pick has none before it (NaN).

    Parameters
    ----------
    outer, inner : torch.Tensor of shape (n, p) and (n, q)
        The factors of the points, as given to :func:`kmeans_pp_select`.
    order : ndarray of shape (k,)
        The picks, in selection order.

    Returns
    -------
    ndarray of shape (k,)
        float64 Euclidean distances; NaN for the first pick.

    Examples
    --------
    >>> from skisal.engine.diversity import pick_distances
    >>> outer = torch.tensor([[1.0], [1.1], [4.0], [9.0]], dtype=torch.float64)
    >>> inner = torch.ones(4, 1, dtype=torch.float64)
    >>> pick_distances(outer, inner, np.array([0, 3, 2, 1])).round(2).tolist()
    [nan, 8.0, 3.0, 0.1]
    """
    picks = torch.as_tensor(np.asarray(order), device=outer.device)
    a, h = outer[picks].double(), inner[picks].double()
    sq = (a * a).sum(1) * (h * h).sum(1)
    squared = (sq[:, None] + sq[None, :] - 2 * (a @ a.T) * (h @ h.T)).clamp(min=0)
    earlier = torch.ones_like(squared, dtype=torch.bool).tril(diagonal=-1)  # row i: picks < i
    nearest = torch.where(earlier, squared, torch.full_like(squared, float("inf"))).amin(dim=1)
    nearest[0] = float("nan")
    return nearest.sqrt().cpu().numpy()
