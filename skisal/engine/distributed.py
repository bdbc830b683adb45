"""Scoring a pool across processes with ``torch.distributed`` (launched by ``torchrun``).

When a process group is initialised with more than one process, every rank
holds the same model, labelled data, reference set and pool (each rank loads
them, as in data-parallel training). Rank 0 solves ``s_test`` once and
broadcasts it; each rank scores one contiguous shard of the pool; the scores
(and, for ``selection="diverse"``, the gradient factors) are gathered, so every
rank selects the same samples as a single process would with the same
``random_state``. Works with gloo (CPU tensors) and NCCL (CUDA tensors).

Before the first collective that depends on them, the ranks compare
:func:`fingerprints` of those inputs with :meth:`ProcessGroup.check_same`: a
pool a few rows shorter on one rank would otherwise abort in a mismatched
collective, and a different model would give a result that matches no rank.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["ProcessGroup", "current_group", "fingerprints"]


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
    In a group of one process (``torchrun`` starts several, each running the
    same code, and each rank would get its own ``shard``):

    >>> import os, tempfile
    >>> import torch.distributed as dist
    >>> from skisal.engine.distributed import ProcessGroup, fingerprints
    >>> store = os.path.join(tempfile.mkdtemp(), "store")
    >>> dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    >>> try:
    ...     group = ProcessGroup()
    ...     group.check_same(fingerprints(net.module_, X_pool=X_pool))  # the same inputs?
    ...     result = group.broadcast_from_root(lambda: (torch.ones(2), "note"), group.device)
    ...     shard, sizes = group.shard(5)
    ...     rows = group.gather_rows(torch.arange(5.0)[shard], sizes)
    ...     total = group.run_everywhere(lambda: sum(range(4)))
    ...     try:
    ...         group.run_everywhere(lambda: 1 / 0)  # raised on every rank
    ...     except ZeroDivisionError as exc:
    ...         failure = repr(exc)
    ... finally:
    ...     dist.destroy_process_group()
    >>> result, shard, sizes, rows
    ((tensor([1., 1.]), 'note'), array([0, 1, 2, 3, 4]), [5], tensor([0., 1., 2., 3., 4.]))
    >>> total, failure
    (6, "ZeroDivisionError('division by zero')")
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

    def check_same(
        self, fingerprints: Mapping[str, Any] | None, *, failure: Exception | None = None
    ) -> None:
        """Make sure every rank holds the same inputs, or learns that one rank failed.

        One :func:`~torch.distributed.all_gather_object` of a small dict (see
        :func:`fingerprints`), called on every rank before the first collective
        that depends on those inputs. A rank whose own checks failed calls it
        with ``failure`` instead, so that the others raise too rather than wait
        for it in the next collective.

        Parameters
        ----------
        fingerprints : mapping or None
            Name -> picklable value comparable with ``==`` (None with ``failure``).
        failure : Exception, optional
            This rank's failure, re-raised here after the other ranks have
            been told of it.

        Raises
        ------
        ValueError
            On every rank, with the same message, when the fingerprints differ:
            it names each differing input and what each rank holds.
        Exception
            ``failure``, on the rank that passed it.
        RuntimeError
            On the other ranks, naming the failed ranks and their errors.

        Notes
        -----
        With two ranks, a pool 5 rows shorter on rank 1 makes both raise
        ``ValueError: ... X_pool differs across ranks: rank 0 has 1001
        samples, rank 1 has 996 samples. ...``; a rank that passes
        ``failure=exc`` re-raises ``exc`` and the others raise a
        ``RuntimeError`` naming it (``tests/test_distributed.py`` runs both
        under ``torchrun``).
        """
        if failure is not None:
            # A string, not the exception: it always pickles, so this rank
            # cannot fail inside the collective the others are waiting in.
            mine: tuple[str, Any] = ("failed", f"{type(failure).__name__}: {failure}")
        else:
            mine = ("ok", dict(fingerprints or {}))
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, mine)
        if failure is not None:
            raise failure
        failed = [(rank, body) for rank, (kind, body) in enumerate(gathered) if kind == "failed"]
        if failed:
            many = len(failed) > 1
            ranks = ", ".join(str(rank) for rank, _ in failed)
            errors = "; ".join(f"rank {rank}: {body.rstrip('. ')}" for rank, body in failed)
            raise RuntimeError(
                f"rank{'s' if many else ''} {ranks} failed before the distributed query "
                f"started ({errors}). This rank stops too instead of waiting for "
                f"{'them' if many else 'it'} in a collective; fix the input named above on "
                f"{'those ranks' if many else 'that rank'}: every rank must hold the same "
                "model, data and options."
            )
        message = _differences([body for _, body in gathered])
        if message:
            raise ValueError(
                f"the ranks do not hold the same inputs: {message}. Every rank must load the "
                "same model, labelled data, reference set, pool and options (same files, "
                "seeds and order) before a distributed query; or query with "
                "distributed=False on each rank."
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


#: Hex digits of each sha256 kept in a fingerprint: 64 bits tell different inputs apart.
_DIGITS = 16
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def fingerprints(
    model: torch.nn.Module | None = None,
    options: Mapping[str, Any] | None = None,
    **data: Any,
) -> dict[str, Any]:
    """Cheap, exact fingerprints of a query's inputs, for :meth:`ProcessGroup.check_same`.

    Each data set gives its number of samples and the sha256 of all its
    bytes (with dtypes and shapes): a small fraction of a query's cost (see
    :doc:`/performance`), and unlike a hash of a few strided rows it also
    tells apart pools that differ in one row. The model gives the sha256 of every
    tensor of its ``state_dict`` (parameters and buffers: layers whose
    parameters are not selected still shape the gradients); bytes, not float
    sums, so identical models always agree and swapped rows do not.

    Parameters
    ----------
    model : torch.nn.Module, optional
        The network.
    options : mapping, optional
        Options (a strategy's ``get_params(deep=False)``); those named like a
        data set are left out (that data set is fingerprinted instead), the
        rest compared by ``repr`` (without memory addresses).
    **data : array-like, torch.Tensor, pandas object, sequence or None
        Data sets by name (``X_pool=...``).

    Returns
    -------
    dict
        Small and picklable: ``{name: {"samples": n, "sha256": hex} or None,
        "model": {tensor name: "dtype shape sha256"}, "options": {name: repr}}``.

    Examples
    --------
    >>> from skisal.engine.distributed import fingerprints
    >>> X = np.arange(6.0).reshape(3, 2)
    >>> prints = fingerprints(torch.nn.Linear(2, 1), {"damping": 0.001}, X_pool=X, y=None)
    >>> prints["X_pool"]["samples"], prints["y"], prints["options"]
    (3, None, {'damping': '0.001'})
    >>> sorted(prints["model"])
    ['bias', 'weight']
    >>> fingerprints(X_pool=X) == fingerprints(X_pool=X[[0, 2, 1]])
    False
    """
    result: dict[str, Any] = {}
    for name, value in data.items():
        result[name] = None if value is None else _data_fingerprint(value)
    if model is not None:
        result["model"] = {
            name: (
                f"{_dtype(t)} {tuple(t.shape)} sha256 {_sha256(t)}"
                if isinstance(t, torch.Tensor)
                else f"{type(t).__name__} sha256 {_sha256(t)}"  # e.g. packed parameters
            )
            for name, t in model.state_dict().items()
        }
    if options is not None:
        result["options"] = {
            name: _ADDRESS.sub("", repr(value))
            for name, value in sorted(options.items())
            if name not in data
        }
    return result


def _data_fingerprint(value: Any) -> dict[str, Any]:
    try:
        samples: int | None = int(value.shape[0]) if hasattr(value, "shape") else len(value)
    except (TypeError, IndexError):
        samples = None
    return {"samples": samples, "sha256": _sha256(value)}


def _sha256(value: Any) -> str:
    digest = hashlib.sha256()
    _update(digest, value)
    return digest.hexdigest()[:_DIGITS]


def _dtype(value: Any) -> str:
    return str(value.dtype).removeprefix("torch.")


def _update(digest: Any, value: Any) -> None:
    """Feed ``value``'s type, shape and bytes to ``digest``, recursively for containers."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        if tensor.is_quantized:  # its integer values; bytes cannot be viewed otherwise
            tensor = tensor.int_repr()
        tensor = tensor.resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
        digest.update(f"array {_dtype(tensor)} {tuple(value.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    elif isinstance(value, np.ndarray):
        digest.update(f"array {_dtype(value)} {value.shape};".encode())
        if value.dtype == object:
            for item in value.ravel():
                _update(digest, item)
        else:
            digest.update(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    elif hasattr(value, "iloc"):  # a pandas object: per-row hashes, without the index
        from pandas.util import hash_pandas_object

        if hasattr(value, "columns"):
            header = f"frame {list(value.columns)!r} {[str(d) for d in value.dtypes]};"
        else:
            header = f"series {value.name!r} {value.dtype};"
        digest.update(header.encode())
        digest.update(hash_pandas_object(value, index=False).to_numpy())
    elif isinstance(value, Mapping):
        digest.update(f"mapping {len(value)};".encode())
        for key in sorted(value, key=repr):
            _update(digest, key)
            _update(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(f"sequence {len(value)};".encode())
        for item in value:
            _update(digest, item)
    elif value is None or isinstance(value, str | bytes | int | float | complex | np.generic):
        digest.update(f"{type(value).__name__} {value!r};".encode())
    else:  # another object (e.g. an image a Pipeline encodes): its pickled state
        try:
            digest.update(pickle.dumps(value, protocol=4))
        except Exception:  # not picklable: its type is all that can be compared
            digest.update(f"object {type(value).__qualname__};".encode())


_MISSING = "no such fingerprint"


def _differences(prints: list[dict[str, Any]]) -> str:
    """What differs across ranks' fingerprints, as a sentence; "" when nothing does."""
    names = list(dict.fromkeys(name for p in prints for name in p))
    parts = []
    for name in names:
        values = [p.get(name, _MISSING) for p in prints]
        if all(v == values[0] for v in values):
            continue
        keys = None
        if all(isinstance(v, dict) for v in values):
            keys = [
                k
                for k in dict.fromkeys(k for v in values for k in v)
                if not all(v.get(k, _MISSING) == values[0].get(k, _MISSING) for v in values)
            ]
            if "samples" in keys:  # then the content differs too: the count says enough
                keys = ["samples"]
        groups: list[tuple[list[int], Any]] = []
        for rank, value in enumerate(values):
            for ranks, seen in groups:
                if seen == value:
                    ranks.append(rank)
                    break
            else:
                groups.append(([rank], value))
        held = ", ".join(
            f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))} "
            f"{'have' if len(ranks) > 1 else 'has'} {_show(value, keys)}"
            for ranks, value in groups
        )
        verb = "differ" if name.endswith("s") else "differs"  # "options differ"
        parts.append(f"{name} {verb} across ranks: {held}")
    return "; ".join(parts)


def _show(value: Any, keys: list[str] | None, most: int = 3) -> str:
    if value is None:
        return "none"
    if not isinstance(value, dict):
        return str(value)
    keys = list(value) if keys is None else keys
    shown = [
        f"{value[k]} {k}" if isinstance(value.get(k), int) else f"{k}={value.get(k, 'none')}"
        for k in keys[:most]
    ]
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return ", ".join(shown) + more


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
