"""Shared helpers of the benchmarks: threads, timers, hardware record, tables, files."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def configure_threads(threads: int) -> None:
    """Pin torch (and any child process) to ``threads`` CPU threads.

    Parameters
    ----------
    threads : int
        Intra-op threads for torch; also exported as ``OMP_NUM_THREADS`` and
        ``MKL_NUM_THREADS`` so that subprocesses inherit the setting.
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (no-op on CPU), so that timers are honest.

    Parameters
    ----------
    device : torch.device
        The device the timed code runs on.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure(
    fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1
) -> tuple[dict[str, Any], Any]:
    """Time ``fn()``: ``warmup`` untimed calls, then the median of ``repeats`` timed calls.

    Parameters
    ----------
    fn : callable
        The work to time, without arguments.
    device : torch.device
        Synchronised before starting and before reading the timer.
    repeats : int
        Timed calls; the median is reported.
    warmup : int, default=1
        Untimed calls first (lazy initialisation, allocator, caches).

    Returns
    -------
    timing : dict
        ``{"median_s", "min_s", "times_s", "repeats", "warmup"}``.
    result : object
        What the last call of ``fn`` returned.
    """
    result = None
    for _ in range(warmup):
        result = fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    timing = {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "repeats": repeats,
        "warmup": warmup,
    }
    return timing, result


def measure_interleaved(
    fns: dict[str, Callable[[], Any]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, tuple[dict[str, Any], Any]]:
    """Time several functions in alternation, so that each sees the same machine state.

    Round ``r`` calls every function once, in order; a function's time is the
    median over rounds. Background load or CPU frequency changes then affect
    every method alike, which keeps their ratios honest on a shared machine.

    Parameters
    ----------
    fns : dict of str to callable
        The work to time, by name.
    device : torch.device
        Synchronised before starting and before reading the timer.
    repeats : int
        Timed rounds.
    warmup : int, default=1
        Untimed rounds first.

    Returns
    -------
    dict of str to (dict, object)
        Per name, the timing (as :func:`measure`) and the last result.
    """
    results: dict[str, Any] = {}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(warmup + repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            results[name] = fn()
            synchronize(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {
        name: (
            {
                "median_s": statistics.median(times[name]),
                "min_s": min(times[name]),
                "times_s": times[name],
                "repeats": repeats,
                "warmup": warmup,
                "interleaved_with": [other for other in fns if other != name],
            },
            results[name],
        )
        for name in fns
    }


def _cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware_info(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on.

    Parameters
    ----------
    device : torch.device
        The device the benchmarks ran on.

    Returns
    -------
    dict
        CPU model (from ``/proc/cpuinfo``), logical cores of the machine and
        of this process's affinity mask, torch threads in use, versions,
        device (and GPU name on CUDA), date.
    """
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    try:
        import torchvision

        tv_version = torchvision.__version__
    except ImportError:
        tv_version = None
    info = {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_available": affinity,
        "torch_threads": torch.get_num_threads(),
        "environment": {
            k: v
            for k, v in sorted(os.environ.items())
            if k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") or k.startswith("MALLOC_")
        },
        "torch": torch.__version__,
        "torchvision": tv_version,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    return info


def hardware_line(info: dict[str, Any]) -> str:
    """One-line description of :func:`hardware_info`'s record, for tables.

    Parameters
    ----------
    info : dict
        As returned by :func:`hardware_info`.

    Returns
    -------
    str
    """
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    malloc = " ".join(f"{k}={v}" for k, v in info["environment"].items() if k.startswith("MALLOC_"))
    return (
        f"{info['cpu_model']} ({info['cpu_cores']} cores, {info['cpu_cores_available']} "
        f"available), {info['torch_threads']} torch thread(s), torch {info['torch']}, "
        f"torchvision {info['torchvision']}, device {info['device']}{gpu}"
        + (f", {malloc}" if malloc else "")
        + f", {info['date']}"
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table.

    Parameters
    ----------
    headers : sequence of str
        Column titles.
    rows : sequence of sequences
        Cells, converted with ``str``.

    Returns
    -------
    str
        The table, lines joined by newlines (no trailing newline).
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_time(seconds: float | None) -> str:
    """Seconds as a short human string (``"1.23 s"``, ``"45.6 ms"``, ``"7.8 us"``).

    Parameters
    ----------
    seconds : float or None

    Returns
    -------
    str
    """
    if seconds is None or not np.isfinite(seconds):
        return "n/a"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def fmt_num(value: float | None, digits: int = 3) -> str:
    """A float with ``digits`` significant digits, or ``"n/a"``.

    Parameters
    ----------
    value : float or None
    digits : int, default=3

    Returns
    -------
    str
    """
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (numpy scalars converted), creating folders.

    Parameters
    ----------
    path : pathlib.Path
    data : dict
    """

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=default) + "\n")


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|`` (b the reference), in float64.

    Parameters
    ----------
    a, b : torch.Tensor
        Same shape.

    Returns
    -------
    float
    """
    a, b = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))
