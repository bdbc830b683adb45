"""The damped curvature ``H + damping * I`` of the training loss, as products.

``H`` is the curvature of the *mean* loss over the labelled set (the paper's
``(1/n) sum_j grad^2 l(z_j)``), restricted to the selected parameters, in one
of three forms:

``"hessian"``
    The exact Hessian, by double-backward products (Pearlmutter's trick).
    This is the paper's ``H``. A network that is not at a minimum, or not
    convex there, has negative eigenvalues, so ``H + damping I`` may be
    indefinite: CG and the exact solve then refuse and LiSSA diverges.
``"gauss_newton"``
    The generalised Gauss-Newton matrix ``J^T (d^2 l / d out^2) J``, the
    Hessian with the term from the network's own second derivative dropped.
    It is positive semi-definite for the convex losses classifiers use, and
    equals the Hessian for models linear in their parameters (logistic
    regression) and at zero-residual minima. Its products cost one
    forward-mode pass and one backward pass.
``"fisher"``
    The empirical Fisher ``(1/n) sum_j grad l(z_j) grad l(z_j)^T``: positive
    semi-definite for *any* loss. The choice for losses that are not convex in
    the network's outputs, where the Gauss-Newton matrix is indefinite too
    (a detector's focal and GIoU losses, for example). A cruder approximation of the
    Hessian near a minimum, where the per-sample gradients shrink; same cost
    as a Gauss-Newton product.

The dense matrix is only built for small parameter counts (``"exact"``).
:func:`top_eigenvalue` estimates the largest eigenvalue from products.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

from ..exceptions import InvalidParameterError
from .model import BoundModel, batches, dual_level
from .trees import detached_leaf_copy, differentiable, tree_leaves, tree_map

__all__ = ["CURVATURES", "DampedCurvature", "DampedHessian", "product_chunk_size", "top_eigenvalue"]

#: The curvature matrices ``H`` :class:`DampedCurvature` takes products with (see the module
#: docstring); the strategy's ``curvature`` accepts these and "auto".
CURVATURES = ("gauss_newton", "hessian", "fisher")
#: A product's chunk grows to at most this many times the requested one (the user's
#: ``batch_size``, which keeps its hold on memory: the chunk scales with it) ...
CHUNK_GROWTH = 4
#: ... while the chunk's layer outputs, times ACTIVATION_COPIES, fit in this many bytes.
CHUNK_BYTES = 256 * 2**20
#: Copies of a layer's output a Gauss-Newton product holds at once: the primal, its tangent,
#: what autograd saves for the backward pass and the gradient flowing back.
ACTIVATION_COPIES = 4


def product_chunk_size(model: BoundModel, X: Any, requested: int) -> int:
    """Samples per forward pass of a full product over ``X``: ``requested`` or up to
    :data:`CHUNK_GROWTH` times more where the memory allows.

    The solvers repeat the same full passes (ten or more per query), and on a small
    network each pass costs more per sample in chunks of 256 than of 1,024: every
    operation has a fixed cost (with chunks of 1,024 and a smaller K-FAC fit, the
    query benchmark's s_test on the digits CNN at 2,000 labelled went from 0.62 to
    0.44 s, :doc:`/performance`). A
    chunk grows only while its layer outputs (:meth:`BoundModel.activation_bytes`,
    times :data:`ACTIVATION_COPIES`) fit in :data:`CHUNK_BYTES`, and never beyond
    :data:`CHUNK_GROWTH` times ``requested``: lowering ``batch_size`` lowers it too.

    Parameters
    ----------
    model : BoundModel
        The model the products run.
    X : object
        The samples (checked): the first two are run to measure the layer outputs.
    requested : int
        The chunk asked for (``max(batch_size, hessian_batch_size)``).

    Returns
    -------
    int
        Between ``requested`` and ``CHUNK_GROWTH * requested``.

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import BoundModel, ParameterSpace, evaluation_mode, select_parameters
    >>> from skisal.engine.curvature import product_chunk_size
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> with evaluation_mode(net.module_):  # a small MLP: 4 x 8, far under 256 MiB
    ...     product_chunk_size(model, X_labeled, requested=8)
    32
    """
    per_sample = model.activation_bytes(X)
    fits = int(CHUNK_BYTES // (ACTIVATION_COPIES * per_sample))  # 0 where it cannot tell (inf)
    return max(requested, min(CHUNK_GROWTH * requested, fits))


def _rows(vector: torch.Tensor, inputs: list[torch.Tensor], basis: torch.Tensor) -> torch.Tensor:
    """``basis @ d vector / d inputs`` as a ``(len(basis), sum numel)`` matrix (vmapped)."""
    rows = torch.autograd.grad(
        vector,
        inputs,
        grad_outputs=basis,
        is_grads_batched=True,
        retain_graph=True,
        allow_unused=True,
        materialize_grads=True,
    )
    return torch.cat([r.reshape(len(basis), -1) for r in rows], dim=1)


def _fisher_output_product(
    grads: list[torch.Tensor], tangents: list[torch.Tensor | None], n: int
) -> list[torch.Tensor]:
    """Per sample, ``g (g . t)``: the empirical Fisher's output-space product.

    ``grads`` are the per-sample loss gradients at the outputs (rows of a
    separable loss) and ``tangents`` the outputs' directional derivatives.
    """
    dots = sum(
        (g * t.to(g.dtype)).reshape(n, -1).sum(dim=1)
        for g, t in zip(grads, tangents, strict=True)
        if t is not None
    )
    if not isinstance(dots, torch.Tensor):
        return [torch.zeros_like(g) for g in grads]
    return [g * dots.reshape(n, *([1] * (g.ndim - 1))) for g in grads]


class DampedCurvature:
    """Products with ``H_S + damping * I`` for ``S`` the labelled set or a subset of it.

    ``H`` is the curvature the ``curvature`` argument names (see
    :data:`CURVATURES` and the module docstring); formerly called
    ``DampedHessian``, a name kept as an alias.

    Parameters
    ----------
    model : BoundModel
        The model and the parameters the curvature is taken over.
    X, y : array-like
        Labelled data (the training set of the current round).
    damping : float
        ``damping`` added to the diagonal.
    batch_size : int
        Samples per Hessian-vector product of a stochastic method (its
        minibatch).
    curvature : {"gauss_newton", "hessian", "fisher"}, default="gauss_newton"
        Which matrix ``H`` is (see the module docstring).
    subset : ndarray of int, optional
        The labelled samples ``S`` the curvature is taken over (default: all
        of them). A random subset makes every product cheaper in proportion.
    chunk_size : int, optional
        Samples per forward pass of a full product over :attr:`subset`
        (default ``batch_size``). Larger chunks amortise the per-call
        overhead (see :doc:`/performance`).

    Attributes
    ----------
    n : int
        Number of samples the curvature is taken over (``len(subset)``).
    subset : ndarray of int
        Their indices into ``X``.
    hvp_count : int
        Single-sample Hessian-vector products spent so far.

    Raises
    ------
    ValueError
        If ``curvature`` is not one of :data:`CURVATURES`.

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import BoundModel, DampedCurvature, ParameterSpace, select_parameters
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> hessian = DampedCurvature(model, X_labeled, y_labeled, damping=0.1, batch_size=8)
    >>> hessian.n, hessian.dim  # 20 samples; 2 x 4 weights and 2 biases
    (20, 10)
    >>> v = torch.ones(hessian.dim)
    >>> bool(torch.allclose(hessian.matvec(v), hessian.dense(torch.float32) @ v, atol=1e-5))
    True
    >>> hessian.matvec(v, indices=hessian.sample(np.random.RandomState(0))).shape  # a minibatch
    torch.Size([10])

    For a model linear in its parameters, Gauss-Newton and the Hessian agree:

    >>> exact = DampedCurvature(model, X_labeled, y_labeled, 0.1, 8, curvature="hessian")
    >>> bool(torch.allclose(exact.dense(), hessian.dense(), atol=1e-6))
    True
    """

    def __init__(
        self,
        model: BoundModel,
        X: Any,
        y: Any,
        damping: float,
        batch_size: int,
        curvature: str = "gauss_newton",
        subset: np.ndarray | None = None,
        chunk_size: int | None = None,
    ):
        if curvature not in CURVATURES:
            raise InvalidParameterError(
                f"curvature must be one of {CURVATURES}, got {curvature!r}."
            )
        self.curvature = curvature
        self.model = model
        self.X = X
        self.y = y
        self.damping = float(damping)
        self.batch_size = int(batch_size)
        self.chunk_size = self.batch_size if chunk_size is None else int(chunk_size)
        total = model.adapter.n_samples(X)
        self.subset = np.arange(total) if subset is None else np.asarray(subset, dtype=np.int64)
        self.n = len(self.subset)
        self.hvp_count = 0  # products of one sample, for diagnostics and benchmarks

    @property
    def dim(self) -> int:
        """Length of the flat parameter vector (``model.space.dim``)."""
        return self.model.space.dim

    def _hvp(self, v: torch.Tensor, idx: np.ndarray, reuse: bool = False) -> torch.Tensor:
        """``H_idx v`` for the mean loss over ``idx`` (undamped); ``reuse``: a full pass."""
        if self.curvature != "hessian":
            return self._gnvp(v, idx, reuse)
        space = self.model.space
        with torch.enable_grad():
            leaves = space.leaves()
            params = list(leaves.values())
            loss = self.model.mean_loss(leaves, self.X, self.y, idx, reuse)
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            tangent = space.split(v.to(space.dtype))
            dot = sum(
                (g * t).sum() for g, t in zip(grads, tangent.values(), strict=True) if g is not None
            )
            if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
                return torch.zeros_like(v)  # loss is linear in every selected parameter
            hv = torch.autograd.grad(dot, params, allow_unused=True)
        self.hvp_count += len(idx)
        return space.flatten(hv).to(v.dtype)

    def _gnvp(self, v: torch.Tensor, idx: np.ndarray, reuse: bool = False) -> torch.Tensor:
        """``J^T M J v / |idx|`` with ``J`` the output Jacobian: forward mode for ``J v``,
        backward for ``J^T``. ``M`` is the output-space loss Hessian (Gauss-Newton) or, per
        sample, ``g g^T`` with ``g`` the loss gradient at the outputs (empirical Fisher)."""
        model, space = self.model, self.model.space
        with torch.enable_grad():
            leaves = space.leaves()
            tangent = space.split(v.to(space.dtype))
            inputs = model.inputs(self.X, idx, reuse)
            targets = model.targets(self.y, idx)
            with dual_level():
                duals = {n: fwAD.make_dual(leaves[n], tangent[n]) for n in leaves}
                outputs = model.forward(duals, inputs)
                primal = tree_map(lambda t: fwAD.unpack_dual(t).primal, outputs)
                jv = tree_map(lambda t: fwAD.unpack_dual(t).tangent, outputs)
            # Output-space Hessian product, per sample (the loss is separable).
            out = detached_leaf_copy(primal)
            loss = model.adapter.per_sample_loss(model.estimator, out, targets).sum()
            out_leaves = [t for t in tree_leaves(out) if differentiable(t)]
            jv_leaves = [
                t
                for t, o in zip(tree_leaves(jv), tree_leaves(out), strict=True)
                if differentiable(o)
            ]
            fisher = self.curvature == "fisher"
            grads = torch.autograd.grad(
                loss, out_leaves, create_graph=not fisher, allow_unused=True, materialize_grads=True
            )
            if fisher:
                hjv = _fisher_output_product(grads, jv_leaves, len(idx))
            else:
                dot = sum(
                    (g * t.detach()).sum()
                    for g, t in zip(grads, jv_leaves, strict=True)
                    if t is not None
                )
                if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
                    return torch.zeros_like(v)
                hjv = torch.autograd.grad(
                    dot, out_leaves, allow_unused=True, materialize_grads=True
                )
            primal_leaves = [
                t
                for t, o in zip(tree_leaves(primal), tree_leaves(out), strict=True)
                if differentiable(o)
            ]
            result = torch.autograd.grad(
                primal_leaves,
                list(leaves.values()),
                grad_outputs=[h / len(idx) for h in hjv],
                allow_unused=True,
            )
        self.hvp_count += len(idx)
        return space.flatten(result).to(v.dtype)

    def matvec(self, v: torch.Tensor, indices: np.ndarray | None = None) -> torch.Tensor:
        """``(H_S + damping I) v`` with ``S`` = ``indices`` (default: all labelled samples).

        Parameters
        ----------
        v : torch.Tensor of shape (dim,)
            The vector.
        indices : ndarray of int, optional
            The samples ``S`` (a minibatch, for stochastic solvers), as indices
            into ``X``. None: all of :attr:`subset`, whose encoded inputs the
            model may cache.

        Returns
        -------
        torch.Tensor of shape (dim,)
            The product, in ``v``'s dtype.
        """
        full_pass = indices is None  # the same batches every call: encoded inputs are reused
        indices = self.subset if indices is None else np.asarray(indices)
        out = self.damping * v
        size = self.chunk_size if full_pass else self.batch_size
        for chunk in batches(len(indices), size):
            out = out + self._hvp(v, indices[chunk], full_pass) * (len(chunk) / len(indices))
        return out

    def restrict(self, subset: np.ndarray) -> DampedCurvature:
        """The same damped curvature over other samples of ``X`` (a new operator).

        Parameters
        ----------
        subset : ndarray of int
            Indices into ``X``.

        Returns
        -------
        DampedCurvature
            Same model, data, damping, sizes and curvature; ``subset`` sorted.
        """
        return DampedCurvature(
            self.model,
            self.X,
            self.y,
            self.damping,
            self.batch_size,
            self.curvature,
            subset=np.sort(np.asarray(subset)),
            chunk_size=self.chunk_size,
        )

    def sample(self, rng: np.random.RandomState, size: int | None = None) -> np.ndarray:
        """Indices into ``X`` of a random minibatch (without replacement) of :attr:`subset`.

        Parameters
        ----------
        rng : numpy.random.RandomState
            Source of the draw.
        size : int, optional
            Minibatch size; default ``batch_size``; at most the labelled set.

        Returns
        -------
        ndarray of int
            Distinct indices into the labelled set.
        """
        size = min(self.n, self.batch_size if size is None else size)
        return self.subset[rng.choice(self.n, size=size, replace=False)]

    def dense(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The dense ``H + damping I`` (``dim x dim``), for small parameter counts.

        One product per parameter and labelled batch: affordable up to a few
        thousand parameters.

        Parameters
        ----------
        dtype : torch.dtype, default=torch.float64
            The matrix's dtype (products run in the parameters' dtype).

        Returns
        -------
        torch.Tensor of shape (dim, dim)
            Symmetric, on the parameters' device.
        """
        if self.curvature == "gauss_newton":
            return self._dense_gauss_newton(dtype)
        if self.curvature == "fisher":
            return self._dense_fisher(dtype)
        space = self.model.space
        dim = space.dim
        hessian = torch.zeros(dim, dim, dtype=dtype, device=space.device)
        eye = torch.eye(dim, dtype=space.dtype, device=space.device)
        rows_per_call = max(1, min(dim, 2**22 // max(dim, 1)))
        for chunk in batches(self.n, self.batch_size):
            idx = self.subset[chunk]
            with torch.enable_grad():
                leaves = space.leaves()
                params = list(leaves.values())
                loss = self.model.mean_loss(leaves, self.X, self.y, idx, True) * (len(idx) / self.n)
                grads = torch.autograd.grad(loss, params, create_graph=True, materialize_grads=True)
                flat_grad = space.flatten(grads)
                if not flat_grad.requires_grad:
                    continue
                for start in range(0, dim, rows_per_call):
                    basis = eye[start : start + rows_per_call]
                    rows = _rows(flat_grad, params, basis)
                    hessian[start : start + len(basis)] += rows.to(dtype)
            self.hvp_count += len(idx) * dim
        return self._symmetrise_and_damp(hessian)

    def _dense_gauss_newton(self, dtype: torch.dtype) -> torch.Tensor:
        """Dense Gauss-Newton ``sum_b J_b^T H_out,b J_b / n``, one Jacobian per batch."""
        model, space = self.model, self.model.space
        matrix = torch.zeros(space.dim, space.dim, dtype=dtype, device=space.device)
        for chunk in batches(self.n, self.batch_size):
            idx = self.subset[chunk]
            with torch.enable_grad():
                leaves = space.leaves()
                outputs = model.forward(leaves, model.inputs(self.X, idx, True))
                primal = [t for t in tree_leaves(outputs) if differentiable(t, False)]
                flat_out = torch.cat([t.reshape(-1) for t in primal])
                eye = torch.eye(len(flat_out), dtype=flat_out.dtype, device=flat_out.device)
                jacobian = _rows(flat_out, list(leaves.values()), eye)
                out = detached_leaf_copy(outputs)
                out_leaves = [t for t in tree_leaves(out) if differentiable(t)]
                loss = model.adapter.per_sample_loss(
                    model.estimator, out, model.targets(self.y, idx)
                ).sum()
                grads = torch.autograd.grad(loss, out_leaves, create_graph=True)
                flat_grad = torch.cat([g.reshape(-1) for g in grads])
                out_hessian = _rows(flat_grad, out_leaves, eye)
            jacobian = jacobian.to(dtype)
            matrix += jacobian.T @ out_hessian.to(dtype) @ jacobian / self.n
            self.hvp_count += len(idx) * space.dim
        return self._symmetrise_and_damp(matrix)

    def _dense_fisher(self, dtype: torch.dtype) -> torch.Tensor:
        """Dense ``G^T G / n`` from the per-sample gradient rows ``G`` of each batch."""
        model, space = self.model, self.model.space
        matrix = torch.zeros(space.dim, space.dim, dtype=dtype, device=space.device)
        for chunk in batches(self.n, self.batch_size):
            idx = self.subset[chunk]
            with torch.enable_grad():
                leaves = space.leaves()
                outputs = model.forward(leaves, model.inputs(self.X, idx, True))
                losses = model.adapter.per_sample_loss(
                    model.estimator, outputs, model.targets(self.y, idx)
                )
                eye = torch.eye(len(idx), dtype=losses.dtype, device=losses.device)
                rows = _rows(losses, list(leaves.values()), eye).to(dtype)
            matrix += rows.T @ rows / self.n
            self.hvp_count += len(idx) * space.dim
        return self._symmetrise_and_damp(matrix)

    def _symmetrise_and_damp(self, matrix: torch.Tensor) -> torch.Tensor:
        matrix = (matrix + matrix.T) / 2  # remove float round-off asymmetry
        matrix.diagonal().add_(self.damping)
        return matrix


#: Former name of :class:`DampedCurvature` (it also takes products with the Gauss-Newton
#: matrix and the Fisher, not only the Hessian); kept so that code using it still runs.
DampedHessian = DampedCurvature


def top_eigenvalue(
    hessian: DampedCurvature,
    indices: np.ndarray,
    rng: np.random.RandomState,
    iterations: int = 20,
    tol: float = 1e-3,
) -> float:
    """Largest-magnitude eigenvalue of ``H_S + damping I`` by power iteration.

    Parameters
    ----------
    hessian : DampedCurvature
        The operator.
    indices : ndarray of int
        The samples ``S`` the curvature is taken over (fixed across
        iterations so that the iteration converges).
    rng : numpy.random.RandomState
        Source of the start vector.
    iterations : int, default=20
        Maximum number of products.
    tol : float, default=1e-3
        Stop when the estimate changes by less than this relative amount.

    Returns
    -------
    float
        The estimate (a lower bound of the magnitude before convergence).

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, DampedCurvature, ParameterSpace,
    ...     select_parameters, top_eigenvalue)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> hessian = DampedCurvature(model, X_labeled, y_labeled, damping=0.1, batch_size=20)
    >>> estimate = top_eigenvalue(hessian, np.arange(20), np.random.RandomState(0))
    >>> exact = float(torch.linalg.eigvalsh(hessian.dense())[-1])
    >>> abs(estimate - exact) <= 0.02 * exact
    True
    """
    start = rng.standard_normal(hessian.dim)
    x = torch.as_tensor(start, dtype=hessian.model.space.dtype).to(hessian.model.space.device)
    x = x / x.norm()
    estimate = 0.0
    for _ in range(iterations):
        y = hessian.matvec(x, indices)
        new = float(torch.dot(x, y))
        norm = y.norm()
        if not torch.isfinite(norm) or norm == 0:
            break
        x = y / norm
        if estimate and abs(new - estimate) <= tol * abs(new):
            estimate = new
            break
        estimate = new
    return abs(estimate)
