"""A model bound to its adapter: forward passes with swapped-in parameters, losses.

The engine differentiates with respect to *detached* leaves passed through
:func:`torch.func.functional_call`, so it never writes to the user's
parameters, their ``.grad`` or their ``requires_grad`` flags, and leaves the
module's mode to :func:`evaluation_mode`, which restores it exactly.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.func import functional_call

from ..exceptions import NonFiniteScoreError
from .parameters import ParameterSpace
from .trees import tree_leaves

__all__ = ["BoundModel", "batches", "evaluation_mode", "module_on", "non_finite_outputs"]


def non_finite_outputs(outputs: Any, n: int, losses: torch.Tensor | None = None) -> torch.Tensor:
    """Which of a batch's ``n`` samples have a NaN or infinite output or loss.

    Every floating-point output tensor whose first dimension is the batch is
    read row by row (other tensors cannot be attributed to a sample). The
    result stays on the outputs' device: no host round trip per batch.

    Parameters
    ----------
    outputs : object
        The adapter's forward outputs for the batch (a tensor or a structure).
    n : int
        Samples in the batch.
    losses : torch.Tensor of shape (n,), optional
        Per-sample losses, also checked.

    Returns
    -------
    torch.Tensor of bool, shape (n,)
        True for a sample with a non-finite output or loss.

    Examples
    --------
    >>> from skisal.engine.model import non_finite_outputs
    >>> logits = torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [2.0, 3.0]])
    >>> non_finite_outputs({"logits": logits, "scale": torch.tensor(1.0)}, 3)
    tensor([False,  True, False])
    """
    bad = None if losses is None else ~torch.isfinite(losses.detach().reshape(n))
    for leaf in tree_leaves(outputs):
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point() and leaf.ndim >= 1:
            if leaf.shape[0] == n:
                rows = ~torch.isfinite(leaf.detach().reshape(n, -1)).all(dim=1)
                bad = rows if bad is None else bad | rows.to(bad.device)
    return torch.zeros(n, dtype=torch.bool) if bad is None else bad


def module_on(module: nn.Module, device: torch.device, where: torch.device) -> nn.Module:
    """``module`` itself when it is on ``device``, else a copy moved there.

    The user's module never moves: a computation on another device works on
    a deep copy.

    Parameters
    ----------
    module : torch.nn.Module
        The user's network.
    device : torch.device
        Where to compute.
    where : torch.device
        Where ``module`` is (the adapter's ``get_device``).

    Returns
    -------
    torch.nn.Module
        ``module``, or a copy on ``device``.

    Examples
    --------
    >>> from skisal.engine.model import module_on
    >>> module = torch.nn.Linear(2, 2)
    >>> module_on(module, torch.device("cpu"), torch.device("cpu")) is module
    True
    >>> copy = module_on(module, torch.device("meta"), torch.device("cpu"))
    >>> copy is module, copy.weight.device.type, module.weight.device.type
    (False, 'meta', 'cpu')
    """
    return module if device == where else copy.deepcopy(module).to(device)


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, restoring each one's own flag on exit.

    BatchNorm must use its running statistics and dropout must be off for
    per-sample quantities; restoring flag by flag (not ``module.train()``)
    keeps a user's mixed train/eval setting bit-identical, also on error.

    Parameters
    ----------
    module : torch.nn.Module
        The network.

    Yields
    ------
    torch.nn.Module
        ``module``, in eval mode until the block ends.

    Examples
    --------
    >>> from torch import nn
    >>> from skisal.engine import evaluation_mode
    >>> module = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    >>> _ = module[0].eval()  # a mixed setting: the dropout layer still trains
    >>> with evaluation_mode(module):
    ...     print([m.training for m in module.modules()])
    [False, False, False]
    >>> [m.training for m in module.modules()]
    [True, False, True]
    """
    modes = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        yield module
    finally:
        for m, training in modes:
            m.training = training


@contextmanager
def dual_level() -> Iterator[None]:
    """``forward_ad.dual_level`` without torch's own internal deprecation notice.

    The first forward-mode pass in a process loads torch's JVP decompositions,
    which call ``torch.jit.script`` and warn about it: nothing a user can act on.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
        )
        with fwAD.dual_level():
            yield


def batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive index batches covering ``range(n)``.

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int
        Largest batch; the last one holds the rest.

    Yields
    ------
    ndarray of int
        The indices of one batch, in order.

    Examples
    --------
    >>> from skisal.engine.model import batches
    >>> [idx.tolist() for idx in batches(5, 2)]
    [[0, 1], [2, 3], [4]]
    """
    for start in range(0, n, batch_size):
        yield np.arange(start, min(start + batch_size, n))


class _Call(nn.Module):
    """Runs a callable while ``functional_call`` holds parameters swapped into ``net``.

    Whatever the callable runs on ``net`` (the adapter's forward, a loop of
    them) sees the swapped-in tensors.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.net = module

    def forward(self, fn: Callable[[], Any]) -> Any:
        return fn()


@dataclass
class BoundModel:
    """An adapter, the user's estimator, its module and the selected parameters.

    What the solvers and the pool scoring work on: forward passes with the
    engine's own parameter tensors swapped in, per-batch losses and the
    gradient of the mean loss.

    Parameters
    ----------
    adapter : skisal.ModelAdapter
        How the model family computes its loss and pseudo-labels.
    estimator : object
        The user's estimator (never modified).
    module : torch.nn.Module
        The network (``adapter.get_module(estimator)``, or a copy of it on
        another device).
    space : ParameterSpace
        The selected parameters of ``module``.
    device : torch.device
        Where inputs and targets are put.

    Examples
    --------
    >>> from skisal import SkorchClassifierAdapter
    >>> from skisal.engine import BoundModel, ParameterSpace, select_parameters
    >>> space = ParameterSpace(select_parameters(net.module_))
    >>> model = BoundModel(SkorchClassifierAdapter(), net, net.module_, space, torch.device("cpu"))
    >>> grad_before = net.module_.weight.grad.clone()  # what training left there
    >>> model.loss_gradient(X_labeled, y_labeled, batch_size=8).shape  # 2 x 4 weights, 2 biases
    torch.Size([10])
    >>> torch.equal(net.module_.weight.grad, grad_before)  # the user's .grad is not touched
    True

    Forward passes can swap other tensors in for the parameters:

    >>> zeros = {name: torch.zeros_like(p) for name, p in space.parameters.items()}
    >>> model.forward(zeros, model.inputs(X_pool, np.arange(2)))
    tensor([[0., 0.],
            [0., 0.]])
    >>> model.mean_loss(zeros, X_labeled, y_labeled, np.arange(20))  # uniform: log(2)
    tensor(0.6931)
    """

    # Duck-typed: the adapters sit above the engine, which never imports them.
    adapter: Any
    estimator: Any
    module: nn.Module
    space: ParameterSpace
    device: torch.device

    def __post_init__(self) -> None:
        self._call = _Call(self.module)
        # Encoded inputs kept for reuse; lives as long as this query's BoundModel,
        # so the ids of the caller's data in its keys stay valid.
        self._cache: dict[tuple[int, bytes], Any] = {}
        self._cache_bytes = 0

    def forward(self, params: dict[str, torch.Tensor] | None, inputs: Any) -> Any:
        """Outputs of the module on ``inputs`` with ``params`` swapped in.

        Parameters
        ----------
        params : dict of str to torch.Tensor or None
            Tensors used in place of the named parameters (through
            :func:`torch.func.functional_call`; the module is not changed);
            None runs the module's own parameters.
        inputs : object
            A batch from :meth:`inputs`.

        Returns
        -------
        object
            The adapter's :meth:`~skisal.ModelAdapter.forward` outputs.
        """
        if params is None:
            return self.adapter.forward(self.estimator, self.module, inputs)
        return self.run_with(params, lambda: self.forward(None, inputs))

    def run_with(self, params: dict[str, torch.Tensor], fn: Callable[[], Any]) -> Any:
        """``fn()`` with ``params`` swapped into the module for the whole call.

        One :func:`torch.func.functional_call` around a loop of
        ``forward(None, ...)`` passes instead of one per batch: pool scoring
        swaps the same dual parameters in for every batch, and on a small
        network the per-call swap is not negligible (see :doc:`/performance`).
        The module's own parameters are restored when ``fn`` returns or raises.

        Parameters
        ----------
        params : dict of str to torch.Tensor
            Tensors used in place of the named parameters.
        fn : callable
            Called without arguments; :meth:`forward` with ``params=None``
            inside it runs ``params``.

        Returns
        -------
        object
            What ``fn`` returns.
        """
        prefixed = {f"net.{name}": value for name, value in params.items()}
        return functional_call(self._call, prefixed, (fn,))

    def inputs(self, X: Any, indices: np.ndarray, reuse: bool = False) -> Any:
        """Model input for ``X[indices]``, encoded (see :meth:`skisal.ModelAdapter.encode`).

        With ``reuse``, the encoded batch is kept (within the adapter's
        ``input_cache_bytes``) for the next request of the same batch: the
        solvers' full passes over the labelled set repeat the same batches.

        Parameters
        ----------
        X : object
            The samples.
        indices : ndarray of int
            The samples of the batch.
        reuse : bool, default=False
            Look up and keep the encoded batch in the cache.

        Returns
        -------
        object
            The encoded batch, on :attr:`device`.
        """
        key = (id(X), np.asarray(indices).tobytes()) if reuse else None
        if key in self._cache:
            return self._cache[key]
        raw = self.adapter.get_inputs(self.estimator, X, indices, self.device)
        with torch.no_grad():
            encoded = self.adapter.encode(self.estimator, self.module, raw)
        if reuse and self.adapter.input_cache_bytes > 0:
            size = self.adapter.encoded_nbytes(encoded)
            if self._cache_bytes + size <= self.adapter.input_cache_bytes:
                self._cache[key] = encoded
                self._cache_bytes += size
        return encoded

    def targets(self, y: Any, indices: np.ndarray) -> Any:
        """Targets of the samples ``y[indices]``, on :attr:`device`, from the adapter.

        Parameters
        ----------
        y : object
            The targets, as the adapter's ``check_targets`` returned them.
        indices : ndarray of int
            The samples of the batch.

        Returns
        -------
        object
            The batch's targets, as the adapter's ``per_sample_loss`` takes them.
        """
        return self.adapter.get_targets(self.estimator, y, indices, self.device)

    def mean_loss(
        self,
        params: dict[str, torch.Tensor],
        X: Any,
        y: Any,
        indices: np.ndarray,
        reuse: bool = False,
    ) -> torch.Tensor:
        """Mean training loss over ``X[indices]`` with ``params`` swapped in.

        Parameters
        ----------
        params : dict of str to torch.Tensor
            Tensors used in place of the named parameters (e.g.
            :meth:`ParameterSpace.leaves`, to differentiate).
        X : object
            The samples.
        y : object
            Their targets.
        indices : ndarray of int
            The samples of the batch.
        reuse : bool, default=False
            Reuse encoded inputs (see :meth:`inputs`).

        Returns
        -------
        torch.Tensor
            A scalar, differentiable with respect to ``params``.
        """
        outputs = self.forward(params, self.inputs(X, indices, reuse))
        return self.adapter.per_sample_loss(
            self.estimator, outputs, self.targets(y, indices)
        ).mean()

    def pseudo_label_accuracy(self, X: Any, y: Any, batch_size: int) -> float | None:
        """The fraction of ``X`` whose pseudo-label is its target in ``y``.

        From the adapter's :meth:`~skisal.ModelAdapter.pseudo_label_correct`, one
        forward pass per batch; None where the adapter cannot say.

        Parameters
        ----------
        X, y : object
            The samples and their targets (checked).
        batch_size : int
            Samples per forward pass.

        Returns
        -------
        float or None
        """
        n = self.adapter.n_samples(X)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        with torch.no_grad():
            for indices in batches(n, batch_size):
                outputs = self.forward(None, self.inputs(X, indices))
                right = self.adapter.pseudo_label_correct(
                    self.estimator, outputs, self.targets(y, indices)
                )
                if right is None:
                    return None
                correct += right.sum()
        return float(correct) / max(n, 1)  # one host transfer, after the loop

    def activation_bytes(self, X: Any, n: int = 2) -> float:
        """Bytes of the network's layer outputs per sample, from one forward pass of ``n``.

        The sum over leaf modules of their outputs' tensors: what a forward pass
        keeps per sample for its backward, up to the operations between modules.

        Parameters
        ----------
        X : object
            Samples (checked); the first ``n`` are run.
        n : int, default=2
            Samples in the probe's pass.

        Returns
        -------
        float
            Bytes per sample; ``inf`` when the pass cannot tell (nothing to run,
            or no module returned a tensor).
        """
        n = min(n, self.adapter.n_samples(X))
        if n == 0:
            return float("inf")
        total = [0]

        def hook(_module: torch.nn.Module, _args: Any, output: Any) -> None:
            total[0] += sum(
                t.numel() * t.element_size()
                for t in tree_leaves(output)
                if isinstance(t, torch.Tensor)
            )

        leaves = [m for m in self.module.modules() if next(m.children(), None) is None]
        handles = [m.register_forward_hook(hook) for m in leaves]
        try:
            with torch.no_grad():
                self.forward(None, self.inputs(X, np.arange(n)))
        finally:
            for handle in handles:
                handle.remove()
        return total[0] / n if total[0] > 0 else float("inf")

    def check_finite(self, X: Any, y: Any, batch_size: int, name: str) -> None:
        """Raise if the model's outputs or losses are not finite on some samples of ``X``.

        A forward pass without gradients over ``X``: the engine runs it on the
        reference and labelled sets, whose non-finite outputs would otherwise
        poison ``s_test`` (and every pool score with it) or, where they do not
        reach the gradients, pass unnoticed.

        Parameters
        ----------
        X, y : object
            Samples and their targets, as the adapter's checks returned them.
        batch_size : int
            Samples per forward pass.
        name : str
            The argument ``X`` came from, for the message.

        Raises
        ------
        skisal.NonFiniteScoreError
            Naming the first rows of ``X`` at fault.
        """
        n = self.adapter.n_samples(X)
        flags = []
        with torch.no_grad():
            for idx in batches(n, batch_size):
                outputs = self.forward(None, self.inputs(X, idx))
                losses = self.adapter.per_sample_loss(self.estimator, outputs, self.targets(y, idx))
                flags.append(non_finite_outputs(outputs, len(idx), losses))
        bad = torch.nonzero(torch.cat(flags)).flatten().cpu().numpy()  # one sync per set
        if len(bad):
            raise NonFiniteScoreError(
                f"the model's outputs or loss are NaN or infinite on {len(bad)} sample(s) of "
                f"{name} (first rows: {bad[:10].tolist()}), so s_test and every score would "
                f"be too: check those rows (scaling, extreme values) or drop them from {name}."
            )

    def loss_gradient(self, X: Any, y: Any, batch_size: int) -> torch.Tensor:
        """Gradient of the mean loss over all of ``X``, as a flat vector.

        Parameters
        ----------
        X : object
            The samples (e.g. the reference set, for ``grad l(R)``).
        y : object
            Their targets.
        batch_size : int
            Samples per forward pass.

        Returns
        -------
        torch.Tensor of shape (space.dim,)
            In the parameters' dtype, on :attr:`device`.
        """
        n = self.adapter.n_samples(X)
        total = torch.zeros(self.space.dim, device=self.device, dtype=self.space.dtype)
        with torch.enable_grad():
            for idx in batches(n, batch_size):
                leaves = self.space.leaves()
                loss = self.mean_loss(leaves, X, y, idx) * (len(idx) / n)
                grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
                total += self.space.flatten(grads)
        return total
