"""Scoring a pool across processes with ``torch.distributed`` (launched by ``torchrun``).

When a process group is initialised with more than one process, every rank
holds the same model, labelled data, reference set and pool (each rank loads
them, as in data-parallel training). Rank 0 solves ``s_test`` once and
broadcasts it; each rank scores one contiguous shard of the pool; the scores
(and, for ``selection="diverse"``, the gradient factors) are gathered, so every
rank selects the same samples as a single process would with the same
``random_state``. Works with gloo (CPU tensors) and NCCL (CUDA tensors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["ProcessGroup", "current_group"]


class ProcessGroup:
    """The default process group, with the few collectives the strategy needs.

    Built by :func:`current_group` when ``InfluenceQueryStrategy(distributed=True)``
    queries inside an initialised group of more than one process. Tensors
    travel on the backend's device: CUDA for NCCL, the CPU for gloo.

    Attributes
    ----------
    rank, world_size : int
        This process's rank and the number of processes.
    device : torch.device
        Where collectives put their tensors.

    Raises
    ------
    ValueError or RuntimeError
        From :mod:`torch.distributed` when no default process group is
        initialised.

    Examples
    --------
    One process (``torchrun`` starts several, each running the same code):

    >>> import os, tempfile, torch
    >>> import torch.distributed as dist
    >>> from skisal.engine.distributed import ProcessGroup
    >>> store = os.path.join(tempfile.mkdtemp(), "store")
    >>> dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    >>> try:
    ...     group = ProcessGroup()
    ...     shard, sizes = group.shard(5)
    ...     result = group.broadcast_from_root(lambda: (torch.ones(2), "note"), group.device)
    ... finally:
    ...     dist.destroy_process_group()
    >>> shard, sizes, result
    (array([0, 1, 2, 3, 4]), [5], (tensor([1., 1.]), 'note'))
    """

    def __init__(self) -> None:
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        # NCCL communicates CUDA tensors only; gloo, CPU tensors.
        backend = str(dist.get_backend()).lower()
        self.device = (
            torch.device("cuda", torch.cuda.current_device())
            if "nccl" in backend
            else torch.device("cpu")
        )

    def shard(self, n: int) -> tuple[np.ndarray, list[int]]:
        """This rank's contiguous share of ``range(n)``, and every rank's share size.

        Parameters
        ----------
        n : int
            Number of items (pool samples) to share out.

        Returns
        -------
        indices : ndarray
            This rank's indices (as :func:`numpy.array_split` cuts them).
        sizes : list of int
            The number of indices of every rank, in rank order.

        Examples
        --------
        In a group of one process the only rank gets everything; with three,
        rank 1 would get ``[4, 5, 6]`` of 10 and ``sizes`` would be
        ``[4, 3, 3]``:

        >>> import os, tempfile
        >>> import torch.distributed as dist
        >>> from skisal.engine.distributed import ProcessGroup
        >>> store = os.path.join(tempfile.mkdtemp(), "store")
        >>> dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
        >>> try:
        ...     shard, sizes = ProcessGroup().shard(10)
        ... finally:
        ...     dist.destroy_process_group()
        >>> shard, sizes
        (array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), [10])
        """
        parts = np.array_split(np.arange(n), self.world_size)
        return parts[self.rank], [len(p) for p in parts]

    def broadcast_from_root(self, compute: Any, device: torch.device) -> Any:
        """Run ``compute()`` on rank 0 and hand its result (or its exception) to every rank.

        ``compute`` returns a tuple of tensors and picklable objects; tensors go
        through :func:`torch.distributed.broadcast` and arrive on ``device``,
        the rest through :func:`~torch.distributed.broadcast_object_list`.

        Parameters
        ----------
        compute : callable
            Called with no argument on rank 0 only; returns a tuple.
        device : torch.device
            Where the other ranks receive the tensors.

        Returns
        -------
        tuple
            ``compute()``'s result, on every rank.

        Raises
        ------
        Exception
            Whatever ``compute`` raised on rank 0, re-raised on every rank.

        Examples
        --------
        In a group of one process (``torchrun`` starts several, each running
        the same code):

        >>> import os, tempfile, torch
        >>> import torch.distributed as dist
        >>> from skisal.engine.distributed import ProcessGroup
        >>> store = os.path.join(tempfile.mkdtemp(), "store")
        >>> dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
        >>> try:
        ...     group = ProcessGroup()
        ...     result = group.broadcast_from_root(lambda: (torch.ones(2), {"n": 3}),
        ...                                        torch.device("cpu"))
        ... finally:
        ...     dist.destroy_process_group()
        >>> result
        (tensor([1., 1.]), {'n': 3})
        """
        result: Any = None
        error: BaseException | None = None
        if self.rank == 0:
            try:
                result = compute()
            except Exception as exc:  # every rank must learn of it, or the others hang
                error = exc
        meta: list[Any] = [None]
        if self.rank == 0:
            shapes = None if error else [_describe(x) for x in result]
            meta = [(error, shapes, None if error else [_payload(x) for x in result])]
        dist.broadcast_object_list(meta, src=0)
        error, shapes, objects = meta[0]
        if error is not None:
            raise error
        out = []
        for i, shape in enumerate(shapes):
            if shape is None:  # not a tensor: it came with the objects
                out.append(objects[i])
                continue
            size, dtype = shape
            if self.rank == 0:
                buffer = result[i].to(self.device)
            else:
                buffer = torch.empty(size, dtype=dtype, device=self.device)
            dist.broadcast(buffer, src=0)
            out.append(result[i] if self.rank == 0 else buffer.to(device))
        return tuple(out)

    def run_everywhere(self, compute: Any) -> Any:
        """Run ``compute()`` on every rank; if it fails on any, raise on all of them.

        Without this, a rank that fails (a non-finite score in its shard)
        would leave the others waiting in the next collective.

        Parameters
        ----------
        compute : callable
            Called with no argument on every rank.

        Returns
        -------
        object
            This rank's ``compute()`` result.

        Raises
        ------
        Exception
            On a failing rank, its own exception.
        RuntimeError
            On the other ranks, naming the rank that failed (chained to its
            exception).

        Examples
        --------
        In a group of one process (``torchrun`` starts several):

        >>> import os, tempfile, torch
        >>> import torch.distributed as dist
        >>> from skisal.engine.distributed import ProcessGroup
        >>> store = os.path.join(tempfile.mkdtemp(), "store")
        >>> dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
        >>> try:
        ...     group = ProcessGroup()
        ...     total = group.run_everywhere(lambda: sum(range(4)))
        ...     try:
        ...         group.run_everywhere(lambda: 1 / 0)
        ...     except ZeroDivisionError as exc:
        ...         failure = repr(exc)
        ... finally:
        ...     dist.destroy_process_group()
        >>> total, failure
        (6, "ZeroDivisionError('division by zero')")
        """
        try:
            result, error = compute(), None
        except Exception as exc:
            result, error = None, exc
        errors: list[Any] = [None] * self.world_size
        dist.all_gather_object(errors, None if error is None else (self.rank, error))
        for failure in errors:
            if failure is not None:
                rank, exc = failure
                if error is not None:
                    raise error
                raise RuntimeError(f"rank {rank} failed: {exc!r}") from exc
        return result

    def gather_rows(self, local: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """Concatenate every rank's ``local`` rows, in rank order (shapes may differ in rows).

        Parameters
        ----------
        local : torch.Tensor
            This rank's rows (e.g. the scores of its shard).
        sizes : list of int
            Every rank's number of rows, as :meth:`shard` returns them.

        Returns
        -------
        torch.Tensor
            All rows, on ``local``'s device.

        Examples
        --------
        In a group of one process (``torchrun`` starts several):

        >>> import os, tempfile, torch
        >>> import torch.distributed as dist
        >>> from skisal.engine.distributed import ProcessGroup
        >>> store = os.path.join(tempfile.mkdtemp(), "store")
        >>> dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
        >>> try:
        ...     group = ProcessGroup()
        ...     shard, sizes = group.shard(3)
        ...     rows = group.gather_rows(torch.tensor([0.5, 1.5, 2.5])[shard], sizes)
        ... finally:
        ...     dist.destroy_process_group()
        >>> rows
        tensor([0.5000, 1.5000, 2.5000])
        """
        longest = max(sizes)
        padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=self.device)
        padded[: local.shape[0]] = local.to(self.device)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        rows = torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])
        return rows.to(local.device)


def _describe(value: Any) -> tuple[torch.Size, torch.dtype] | None:
    if isinstance(value, torch.Tensor):
        return value.shape, value.dtype
    return None


def _payload(value: Any) -> Any:
    return None if isinstance(value, torch.Tensor) else value


def current_group() -> ProcessGroup | None:
    """The initialised default group when it has more than one process, else None.

    Returns
    -------
    ProcessGroup or None
        None outside ``torch.distributed``, or in a group of one process: the
        strategy then computes alone.

    Examples
    --------
    >>> from skisal.engine.distributed import current_group
    >>> current_group() is None  # no process group initialised here
    True
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return ProcessGroup()
    return None
