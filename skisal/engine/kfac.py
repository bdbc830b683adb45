"""Kronecker-factored curvature (K-FAC, EK-FAC) and its damped inverse.

For a layer with weight ``W`` (``out x in``), input activations ``a`` and
gradients ``g`` of the per-sample loss at the layer's output, K-FAC
(Martens & Grosse 2015; Grosse & Martens 2016 for convolutions) approximates
the layer's block of the curvature by ``G (x) A`` with ``A = E[a a^T]`` and
``G = E[g g^T]``. EK-FAC (George et al. 2018, as used by Grosse et al. 2023
and Kronfluence) keeps the eigenbasis of ``G (x) A`` and replaces its
eigenvalues by the per-sample second moments of the gradient in that basis,
which fixes K-FAC's eigenvalues at a second pass's cost.

Which curvature the factors approximate follows ``DampedCurvature.curvature``:

* ``"gauss_newton"`` (and ``"hessian"``, whose K-FAC is its Gauss-Newton
  part): ``g`` is back-propagated from ``S eps`` with ``S S^T`` the per-sample
  Hessian of the loss in the network's outputs and ``eps`` standard normal
  (one draw per sample: an unbiased sketch for any loss, not only those with a
  likelihood to sample labels from); ``output_samples="exact"`` uses every
  column of ``S`` instead (deterministic, one backward pass per output).
* ``"fisher"``: ``g`` is back-propagated from the loss gradient at the
  outputs (the empirical Fisher's factors; what a detector uses).

Layers covered: ``nn.Linear`` (any leading dimensions), ``nn.Conv1d`` and
``nn.Conv2d`` with ``groups=1`` and zero padding ("expand" convention:
positions are treated as samples of ``A``, summed in ``G``). A module called
several times per forward pass (a detector's head over its feature levels)
pools its calls. Selected parameters of other modules (normalisation layers,
embeddings) get no curvature: there the inverse is ``1 / damping``, and the
report names them.

Written here rather than taken from curvlinops or Kronfluence: both require a
``torch.nn`` loss of their own list (curvlinops: MSE, cross-entropy, BCE) or a
task object around a plain forward, and read the module's own parameters,
while skisal's adapters define arbitrary per-sample losses (a detector's focal
and GIoU terms) over engine-owned parameter copies and parameter subsets.
``tests/test_kfac.py`` checks these factors against dense matrices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..exceptions import InvalidParameterError
from .inverse_hvp import InverseHVPSolver, SolverReport
from .model import BoundModel, batches
from .trees import detached_leaf_copy, differentiable, tree_leaves, tree_map

__all__ = ["KFACSolver", "KroneckerCurvature", "supported_layer"]

#: Floats of one chunk of per-sample gradients in the eigenbasis (EK-FAC's second pass).
_CHUNK_FLOATS = 2**24
#: Largest per-sample output size for which the output Hessian's square root is formed.
MAX_OUTPUT_DIM = 512


def supported_layer(module: nn.Module) -> bool:
    """Whether K-FAC factors ``module``'s weight and bias.

    Parameters
    ----------
    module : torch.nn.Module
        A layer.

    Returns
    -------
    bool
        True for ``nn.Linear`` and for ``nn.Conv1d``/``nn.Conv2d`` with
        ``groups=1`` and ``padding_mode="zeros"``.

    Examples
    --------
    >>> from torch import nn
    >>> from skisal.engine.kfac import supported_layer
    >>> supported_layer(nn.Linear(3, 2)), supported_layer(nn.Conv2d(3, 4, 3, padding=1))
    (True, True)
    >>> supported_layer(nn.Conv2d(4, 4, 3, groups=2)), supported_layer(nn.BatchNorm2d(3))
    (False, False)
    """
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        return module.groups == 1 and module.padding_mode == "zeros"
    return False


@dataclass
class _Block:
    """One factored layer: which selected parameters it owns and its factors."""

    module: nn.Module
    weight: str | None
    bias: str | None
    A: torch.Tensor | None = None
    G: torch.Tensor | None = None
    positions: int = 0  # rows summed into A (samples x positions)
    eig_A: tuple[torch.Tensor, torch.Tensor] | None = None
    eig_G: tuple[torch.Tensor, torch.Tensor] | None = None
    corrected: torch.Tensor | None = None  # EK-FAC eigenvalues, out x in
    calls: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


def _patches(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Layer inputs as rows ``(N, positions, in)`` matching ``weight.reshape(out, -1)``."""
    if isinstance(module, nn.Linear):
        return x.reshape(x.shape[0], -1, x.shape[-1])
    padding = module.padding
    if isinstance(padding, str):  # "valid" or "same" (stride 1): explicit zero padding
        x = F.pad(x, _explicit_padding(module, padding))
        padding = (0,) * len(module.kernel_size)
    kernel, stride, dilation = module.kernel_size, module.stride, module.dilation
    if isinstance(module, nn.Conv1d):  # as a Conv2d of height 1
        x = x.unsqueeze(2)
        kernel, stride, dilation = (1, *kernel), (1, *stride), (1, *dilation)
        padding = (0, *padding)
    cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
    return cols.transpose(1, 2)


def _explicit_padding(module: nn.Module, mode: str) -> tuple[int, ...]:
    """F.pad amounts (last dimension first) for a string ``padding``."""
    pads: list[int] = []
    for k, d in reversed(list(zip(module.kernel_size, module.dilation, strict=True))):
        total = 0 if mode == "valid" else d * (k - 1)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def _rows_per_column(module: nn.Module, g: torch.Tensor) -> torch.Tensor:
    """Output gradients ``(columns, N, ...)`` as rows ``(columns, N, positions, out)``."""
    if isinstance(module, nn.Linear):
        return g.reshape(*g.shape[:2], -1, g.shape[-1])
    return g.reshape(*g.shape[:3], -1).transpose(2, 3)


class KroneckerCurvature:
    """K-FAC or EK-FAC factors of ``H`` over (a subset of) the labelled set, and the damped inverse.

    Parameters
    ----------
    kind : {"kfac", "ekfac"}, default="ekfac"
        Eigenvalues from the Kronecker factors (K-FAC) or corrected by a
        second pass (EK-FAC).
    output_samples : int or "exact", default=1
        Gaussian sketches of the output Hessian's square root per sample
        (Gauss-Newton); "exact" back-propagates all its columns.
    max_samples : int, optional
        Fit over at most this many of the curvature's samples, drawn at
        random: a preconditioner needs the factors' shape, not their last
        digit. None: all of them.

    Attributes
    ----------
    blocks_ : dict of str to object
        Per factored layer (by module name): the factors and eigenbases.
    unfactored_ : list of str
        Selected parameters outside supported layers (inverse ``1 / damping``).
    notes_ : list of str
        What a solver's report should carry (the unfactored parameters).
    passes_ : int
        Passes over the samples spent (1 for K-FAC, 2 for EK-FAC).

    Examples
    --------
    For one linear layer and one sample, the Kronecker product is the exact
    Gauss-Newton matrix:

    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, DampedCurvature, KroneckerCurvature,
    ...     ParameterSpace, select_parameters)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> hessian = DampedCurvature(model, X_labeled[:1], y_labeled[:1], damping=0.1, batch_size=8)
    >>> kfac = KroneckerCurvature("kfac", output_samples="exact").fit(hessian)
    >>> list(kfac.blocks_), kfac.unfactored_, kfac.passes_  # one layer, named ""
    ([''], [], 1)
    >>> kfac.eigenvalues("").shape  # 2 outputs x (4 inputs + bias)
    torch.Size([2, 5])
    >>> v = torch.randn(hessian.dim)
    >>> exact = torch.linalg.solve(hessian.dense(torch.float32), v)
    >>> bool(torch.allclose(kfac.solve(v, damping=0.1), exact, rtol=1e-4, atol=1e-5))
    True
    """

    def __init__(
        self, kind: str = "ekfac", output_samples: int | str = 1, max_samples: int | None = None
    ) -> None:
        if kind not in ("kfac", "ekfac"):
            raise InvalidParameterError(f"kind must be 'kfac' or 'ekfac', got {kind!r}.")
        if output_samples != "exact" and not (
            isinstance(output_samples, int | np.integer) and output_samples >= 1
        ):
            raise InvalidParameterError(
                f"output_samples must be an integer >= 1 or 'exact', got {output_samples!r}."
            )
        self.kind = kind
        self.output_samples = output_samples
        self.max_samples = max_samples

    # -- fitting ---------------------------------------------------------------
    def fit(self, hessian: Any, rng: np.random.RandomState | None = None) -> KroneckerCurvature:
        """Accumulate the factors over ``hessian``'s samples (and correct them for EK-FAC).

        Parameters
        ----------
        hessian : DampedCurvature
            The model, labelled data, sample subset, batch size and curvature.
        rng : numpy.random.RandomState, optional
            Source of the Gaussian sketches (default: seed 0).

        Returns
        -------
        KroneckerCurvature
            ``self``, fitted.

        Raises
        ------
        ValueError
            If no selected parameter belongs to a supported layer, or a
            Gauss-Newton sketch would need the output Hessian of more than
            :data:`MAX_OUTPUT_DIM` outputs per sample (use ``curvature="fisher"``).
        """
        rng = np.random.RandomState(0) if rng is None else rng
        if self.max_samples is not None and hessian.n > self.max_samples:
            hessian = hessian.restrict(rng.choice(hessian.subset, self.max_samples, replace=False))
        model = hessian.model
        self.model_ = model
        self.blocks_, self.unfactored_ = _blocks(model)
        if not self.blocks_:
            raise ValueError(
                "inverse_hvp='kfac'/'ekfac'/'pcg' factor nn.Linear, nn.Conv1d and nn.Conv2d "
                f"layers, and none of the selected parameters {model.space.names[:5]} belongs "
                "to one. Use inverse_hvp='cg' or 'lanczos', or select such layers with "
                "`parameters`."
            )
        self.notes_ = []
        if self.unfactored_:
            self.notes_.append(
                f"{self.kind.upper()} has no factors for {self.unfactored_} (not in an nn.Linear, "
                "nn.Conv1d or nn.Conv2d layer): treated as without curvature there."
            )
        self.passes_ = 0
        self._pass(hessian, rng, self._accumulate_factors)
        for block in self.blocks_.values():
            block.A = block.A / max(block.positions, 1)
            block.G = block.G / hessian.n
            block.eig_A = _eigh(block.A)
            block.eig_G = _eigh(block.G)
        if self.kind == "ekfac":
            for block in self.blocks_.values():
                block.corrected = torch.zeros(
                    len(block.eig_G[0]),
                    len(block.eig_A[0]),
                    dtype=block.A.dtype,
                    device=block.A.device,
                )
            self._pass(hessian, rng, self._accumulate_corrections)
            for block in self.blocks_.values():
                block.corrected = block.corrected / hessian.n
        return self

    def _pass(self, hessian: Any, rng: np.random.RandomState, accumulate: Any) -> None:
        """One forward and backward pass over ``hessian``'s samples, layer by layer."""
        model = hessian.model
        indices = hessian.subset
        for chunk in batches(len(indices), hessian.chunk_size):
            idx = indices[chunk]
            weight, grads_by_layer = self._layer_gradients(hessian, idx, rng)
            for name, block in self.blocks_.items():
                a = torch.cat([_patches(block.module, x) for x, _ in block.calls], dim=1)
                g = torch.cat(
                    [_rows_per_column(block.module, o) for o in grads_by_layer[name]], dim=2
                )
                # g: (columns, N, positions, out); the inputs are shared by every column
                if block.weight is None:
                    a = a.new_ones(*a.shape[:2], 1)
                elif block.bias is not None:
                    a = torch.cat([a, a.new_ones(*a.shape[:2], 1)], dim=2)
                accumulate(block, a.to(model.space.dtype), g.to(model.space.dtype), weight)
                block.calls.clear()
        self.passes_ += 1

    def _layer_gradients(
        self, hessian: Any, idx: np.ndarray, rng: np.random.RandomState
    ) -> tuple[float, dict[str, list[torch.Tensor]]]:
        """Forward with hooks, then per-sample output gradients of every factored layer.

        Returns the weight of each back-propagated column (``1 / output_samples``
        for sketches, 1 for exact columns) and, per layer, its call outputs'
        gradients stacked over columns: ``(columns, N, ...)``.
        """
        model = hessian.model
        handles = []
        for block in self.blocks_.values():

            def hook(module, inputs, output, block=block):
                block.calls.append((inputs[0].detach(), output))

            handles.append(block.module.register_forward_hook(hook))
        try:
            with torch.enable_grad():
                leaves = model.space.leaves()
                outputs = model.forward(leaves, model.inputs(hessian.X, idx, True))
        finally:
            for handle in handles:
                handle.remove()
        with torch.enable_grad():
            columns, weight = self._output_columns(hessian, outputs, idx, rng)
            out_leaves = [t for t in tree_leaves(outputs) if differentiable(t)]
            layer_outputs = [o for block in self.blocks_.values() for _, o in block.calls]
            n_columns = len(columns[0])
            per_column = [
                torch.autograd.grad(
                    out_leaves,
                    layer_outputs,
                    grad_outputs=[c[k] for c in columns],
                    retain_graph=k < n_columns - 1,
                    allow_unused=True,
                    materialize_grads=True,
                )
                for k in range(n_columns)
            ]
        stacked = [torch.stack(g).detach() for g in zip(*per_column, strict=True)]
        result: dict[str, list[torch.Tensor]] = {}
        position = 0
        for name, block in self.blocks_.items():
            count = len(block.calls)
            result[name] = stacked[position : position + count]
            position += count
        return weight, result

    def _output_columns(
        self, hessian: Any, outputs: Any, idx: np.ndarray, rng: np.random.RandomState
    ) -> tuple[list[torch.Tensor], float]:
        """Vectors at the outputs to back-propagate, stacked as ``(columns, *output.shape)``."""
        model = hessian.model
        out = detached_leaf_copy(tree_map(lambda t: t.detach(), outputs))
        out_leaves = [t for t in tree_leaves(out) if differentiable(t)]
        targets = model.targets(hessian.y, idx)
        loss = model.adapter.per_sample_loss(model.estimator, out, targets).sum()
        fisher = hessian.curvature == "fisher"
        grads = torch.autograd.grad(
            loss, out_leaves, create_graph=not fisher, allow_unused=True, materialize_grads=True
        )
        if fisher:
            return [g.detach().unsqueeze(0) for g in grads], 1.0
        n = len(idx)
        if any(o.shape[0] != n for o in out_leaves):
            raise ValueError(
                "K-FAC with curvature='gauss_newton' needs outputs with one row per sample; "
                "this model's outputs are laid out otherwise. Use curvature='fisher'."
            )
        sizes = [o[0].numel() for o in out_leaves]
        dim = sum(sizes)
        if dim > MAX_OUTPUT_DIM:
            raise ValueError(
                f"K-FAC with curvature='gauss_newton' forms each sample's {dim}x{dim} output "
                f"Hessian; it is limited to {MAX_OUTPUT_DIM} outputs. Use curvature='fisher'."
            )
        flat = torch.cat([g.reshape(n, -1) for g in grads], dim=1)
        basis = torch.eye(dim, dtype=flat.dtype, device=flat.device)
        basis = basis.unsqueeze(1).expand(dim, n, dim)
        rows = torch.autograd.grad(
            flat,
            out_leaves,
            grad_outputs=basis,
            is_grads_batched=True,
            allow_unused=True,
            materialize_grads=True,
        )
        out_hessian = torch.cat([r.reshape(dim, n, -1) for r in rows], dim=2).transpose(0, 1)
        out_hessian = (out_hessian + out_hessian.transpose(1, 2)) / 2  # (n, dim, dim)
        values, vectors = torch.linalg.eigh(out_hessian.double())
        root = (vectors * values.clamp_min(0).sqrt().unsqueeze(1)).to(flat.dtype)
        if self.output_samples == "exact":
            cols, weight = root.permute(2, 0, 1), 1.0  # (dim, n, dim): column c of every S_n
        else:
            k = int(self.output_samples)
            seed = int(rng.randint(2**31 - 1))
            gen = torch.Generator(device="cpu").manual_seed(seed)
            eps = torch.randn(k, n, dim, 1, generator=gen, dtype=flat.dtype).to(flat.device)
            cols, weight = (root.unsqueeze(0) @ eps).squeeze(-1), 1.0 / k
        splits = cols.split(sizes, dim=2)
        return [
            s.reshape(len(cols), *o.shape) for s, o in zip(splits, out_leaves, strict=True)
        ], weight

    @staticmethod
    def _accumulate_factors(block: _Block, a: torch.Tensor, g: torch.Tensor, weight: float) -> None:
        rows_a = a.reshape(-1, a.shape[-1])
        rows_g = g.reshape(-1, g.shape[-1])
        A = rows_a.T @ rows_a
        G = (rows_g.T @ rows_g) * weight
        block.A = A if block.A is None else block.A + A
        block.G = G if block.G is None else block.G + G
        block.positions += rows_a.shape[0]

    @staticmethod
    def _accumulate_corrections(
        block: _Block, a: torch.Tensor, g: torch.Tensor, weight: float
    ) -> None:
        qa = block.eig_A[1].to(a.dtype)
        qg = block.eig_G[1].to(g.dtype)
        a_rot = a @ qa  # (N, T, in)
        g_rot = g @ qg  # (C, N, T, out)
        columns, n = g_rot.shape[:2]
        per_sample = g_rot.shape[-1] * a_rot.shape[-1]
        step = max(1, _CHUNK_FLOATS // max(per_sample, 1))
        for c in range(columns):
            for start in range(0, n, step):
                grads = torch.einsum(
                    "nto,nti->noi", g_rot[c, start : start + step], a_rot[start : start + step]
                )
                block.corrected += grads.square().sum(dim=0).to(block.corrected.dtype) * weight

    # -- the damped inverse --------------------------------------------------------
    def eigenvalues(self, name: str) -> torch.Tensor:
        """The ``out x in`` eigenvalues of layer ``name``'s block (K-FAC or EK-FAC).

        Parameters
        ----------
        name : str
            A key of :attr:`blocks_`.

        Returns
        -------
        torch.Tensor
            Non-negative, in the basis ``Q_G (x) Q_A``.
        """
        block = self.blocks_[name]
        if block.corrected is not None:
            return block.corrected
        return (block.eig_G[0].unsqueeze(1) * block.eig_A[0].unsqueeze(0)).clamp_min(0)

    def solve(self, v: torch.Tensor, damping: float) -> torch.Tensor:
        """``(K + damping I)^-1 v`` for the Kronecker-factored ``K``.

        Parameters
        ----------
        v : torch.Tensor of shape (dim,)
            A flat vector of the parameter space.
        damping : float
            Added to every eigenvalue; must be > 0 when a layer's factors are
            singular or parameters are unfactored.

        Returns
        -------
        torch.Tensor of shape (dim,)
            In ``v``'s dtype.

        Raises
        ------
        ValueError
            If ``damping`` is not > 0.
        """
        if not damping > 0:
            raise ValueError(
                f"damping={damping!r}: K-FAC's inverse (inverse_hvp='kfac', 'ekfac', and 'pcg', "
                "the default, which preconditions with it) needs damping > 0, its factors "
                "being singular; use damping > 0 (the default is 0.01), or inverse_hvp='cg'."
            )
        space = self.model_.space
        parts = space.split(v)
        result = {name: part / damping for name, part in parts.items()}
        for name, block in self.blocks_.items():
            pieces = []
            if block.weight is not None:
                w = parts[block.weight]
                pieces.append(w.reshape(w.shape[0], -1))
            if block.bias is not None:
                pieces.append(parts[block.bias].reshape(-1, 1))
            dtype = block.eig_A[1].dtype
            V = torch.cat(pieces, dim=1).to(dtype)
            qa, qg = block.eig_A[1], block.eig_G[1]
            rotated = qg.T @ V @ qa
            solved = qg @ (rotated / (self.eigenvalues(name).to(dtype) + damping)) @ qa.T
            solved = solved.to(v.dtype)
            if block.weight is not None:
                w = parts[block.weight]
                width = w[0].numel()
                result[block.weight] = solved[:, :width].reshape(w.shape)
            if block.bias is not None:
                result[block.bias] = solved[:, -1]
        return space.flatten([result[name] for name in space.names])


def _blocks(model: BoundModel) -> tuple[dict[str, _Block], list[str]]:
    """The factored layers owning selected parameters, and the selected parameters left over."""
    selected = set(model.space.names)
    blocks: dict[str, _Block] = {}
    for module_name, module in model.module.named_modules():
        if not supported_layer(module):
            continue
        prefix = f"{module_name}." if module_name else ""
        weight = f"{prefix}weight" if f"{prefix}weight" in selected else None
        bias = f"{prefix}bias" if f"{prefix}bias" in selected else None
        if weight is None and bias is None:
            continue
        blocks[module_name] = _Block(module=module, weight=weight, bias=bias)
    owned = {p for b in blocks.values() for p in (b.weight, b.bias) if p is not None}
    return blocks, [name for name in model.space.names if name not in owned]


def _eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition in float64 (factors can be badly conditioned), eigenvalues >= 0."""
    sym = (matrix + matrix.T).double() / 2
    values, vectors = torch.linalg.eigh(sym)
    return values.clamp_min(0), vectors


class KFACSolver(InverseHVPSolver):
    """``s_test = (K + damping I)^-1 v`` with ``K`` the K-FAC or EK-FAC approximation of ``H``.

    No iteration: one pass over the labelled samples for the factors (two for
    EK-FAC), their eigendecompositions, then a product per layer. An
    approximation of the curvature, not of the solve: ``report.relative_residual``
    measures it against the exact damped curvature only when ``check_residual``
    is on (one more pass).

    Parameters
    ----------
    kind : {"kfac", "ekfac"}, default="ekfac"
        K-FAC's eigenvalues or EK-FAC's corrected ones.
    output_samples : int or "exact", default=1
        See :class:`KroneckerCurvature`.
    check_residual : bool, default=False
        Measure ``||(H + damping I) s - v|| / ||v||`` after solving.

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import (BoundModel, DampedCurvature, KFACSolver, ParameterSpace,
    ...     select_parameters)
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> hessian = DampedCurvature(model, X_labeled, y_labeled, damping=0.1, batch_size=8)
    >>> v = model.loss_gradient(X_reference, y_reference, batch_size=10)  # grad l(R)
    >>> s_test, report = KFACSolver(check_residual=True).solve(
    ...     hessian, v, np.random.RandomState(0))
    >>> report.method, report.iterations, report.relative_residual < 0.5
    ('ekfac', [2], True)
    """

    def __init__(
        self, kind: str = "ekfac", output_samples: int | str = 1, check_residual: bool = False
    ) -> None:
        self.kind = kind
        self.name = kind  # the report's method
        self.output_samples = output_samples
        self.check_residual = check_residual

    def solve(self, hessian, v, rng, progress=False):
        """Fit the factors and apply their damped inverse (see :meth:`InverseHVPSolver.solve`).

        Parameters
        ----------
        hessian : DampedCurvature
            The model, labelled samples and curvature the factors approximate.
        v : torch.Tensor
            The flat reference gradient ``grad l(R)``.
        rng : numpy.random.RandomState
            Source of the Gaussian sketches (Gauss-Newton).
        progress : bool, default=False
            Accepted for the common solver interface; the one pass over the
            samples (two for EK-FAC) shows no bar.

        Returns
        -------
        s_test : torch.Tensor
            Same shape, dtype and device as ``v``.
        report : SolverReport
            ``iterations`` holds the passes over the samples (1 or 2).

        Raises
        ------
        ValueError
            If no selected parameter is in a supported layer.
        """
        report = SolverReport(method=self.kind, damping=hessian.damping)
        factors = KroneckerCurvature(self.kind, self.output_samples).fit(hessian, rng)
        s_test = factors.solve(v, hessian.damping)
        report.iterations = [factors.passes_]
        report.notes.extend(factors.notes_)
        if self.check_residual:
            report.relative_residual = self._residual(hessian, s_test, v)
        report.hessian_vector_products = hessian.hvp_count
        return s_test, report
