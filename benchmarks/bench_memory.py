"""Peak memory of ISAL pool scoring, each measurement in a fresh subprocess.

The child process builds skisal's DigitsCNN and a pool of ``n`` random 1x8x8 float32
images (the pool array), binds the model to skisal's engine, scores one batch (a warm-up
that loads torch's forward-mode decompositions and fills the allocator), and records its
*baseline*: resident memory with the model and the pool loaded. It then resets the
kernel's high-water mark (``/proc/self/clear_refs``) and scores the whole pool with
``score_pool`` (forward mode, a fixed ``s_test``); the *peak* is the high-water mark
(``VmHWM``) after scoring. Where ``clear_refs`` is not available, the peak is
``resource.getrusage(...).ru_maxrss`` (whole-process, so it may include loading).

Reported, per pool size:

* growth = peak RSS - baseline RSS (bytes);
* growth / pool array bytes (target <= 1.2);
* the same for a plain forward pass over the pool that keeps its probabilities (what
  uncertainty sampling holds), measured the same way in fresh processes of its own: the
  per-batch workspace any batched pass needs, beside ISAL's;

and across the two sizes the *marginal* growth, ``(growth(n2) - growth(n1)) /
(pool bytes(n2) - pool bytes(n1))``: what each extra byte of pool costs during
scoring, which separates memory that scales with the pool from the fixed per-batch
workspace. On CUDA the same is reported for device memory
(``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; the pool array
stays on the host, batches are copied to the device).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import configure_threads, fmt_num, markdown_table

#: Growth beyond the pool array allowed by the issue, as a fraction of the pool array.
TARGET_GROWTH = 1.2
#: Per mode: pool sizes, and per model its batch size and fresh-process repeats (median).
CONFIG = {
    "full": {
        "pools": [5_000, 50_000],
        "models": {
            "digits_cnn": {"batch_size": 256, "repeats": 3},
            "resnet18": {"batch_size": 128, "repeats": 3},
        },
    },
    "quick": {
        "pools": [5_000, 50_000],
        "models": {"digits_cnn": {"batch_size": 256, "repeats": 1}},
    },
}
MODELS = {
    "digits_cnn": "skisal's DigitsCNN (untrained), pool of uniform random 1x8x8 float32 images",
    "resnet18": "torchvision ResNet-18 (weights=None, num_classes=10), pool of N(0, 1) "
    "3x32x32 float32 images",
}


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the resident-set high-water mark; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the resident-set high-water mark (Linux >= 4.0)
        return True
    except OSError:
        return False


def _ru_maxrss_bytes() -> int:
    """Peak resident set of this process from ``getrusage``, in bytes."""
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _network(model_name: str) -> tuple[Any, tuple[int, ...], str]:
    """Module factory, sample shape and pool distribution of ``model_name``."""
    if model_name == "digits_cnn":
        from skisal.experiments.datasets import DigitsCNN

        return DigitsCNN, (1, 8, 8), "uniform"
    import torchvision

    def resnet18() -> Any:
        return torchvision.models.resnet18(weights=None, num_classes=10)

    return resnet18, (3, 32, 32), "normal"


def child(
    model_name: str,
    pool: int,
    device_name: str,
    batch_size: int,
    seed: int,
    method: str = "isal",
) -> dict[str, Any]:
    """One measurement, in this (fresh) process.

    Parameters
    ----------
    model_name : {"digits_cnn", "resnet18"}
    pool : int
        Pool size.
    device_name : str
        Torch device.
    batch_size : int
        Pool samples per forward pass.
    seed : int
    method : {"isal", "forward"}, default="isal"
        ISAL's ``score_pool``, or the plain forward pass over the pool (softmax
        probabilities of every sample kept, as uncertainty sampling keeps them).

    Returns
    -------
    dict
        Baseline and peak resident bytes (and device bytes on CUDA), the pool
        array's bytes, how the peak was read.
    """
    import numpy as np
    import torch
    from bench_scoring import forward_probabilities
    from skorch import NeuralNetClassifier
    from torch import nn

    from skisal.adapters import SkorchClassifierAdapter
    from skisal.engine import (
        BoundModel,
        ParameterSpace,
        evaluation_mode,
        score_pool,
        select_parameters,
    )

    factory, shape, distribution = _network(model_name)
    torch.manual_seed(seed)
    net = NeuralNetClassifier(
        factory, criterion=nn.CrossEntropyLoss, device=device_name, train_split=None
    ).initialize()
    adapter = SkorchClassifierAdapter()
    module = adapter.get_module(net)
    device = adapter.get_device(net)
    space = ParameterSpace(select_parameters(module, "all"))
    model = BoundModel(adapter, net, module, space, device)
    rng = np.random.RandomState(seed)
    X = np.empty((pool, *shape), dtype=np.float32)  # filled in chunks: no float64 temporary
    for start in range(0, pool, 1024):
        chunk = X[start : start + 1024]
        if distribution == "uniform":
            chunk[...] = rng.random_sample(chunk.shape)
        else:
            chunk[...] = rng.standard_normal(chunk.shape)
    s_test = torch.as_tensor(rng.standard_normal(space.dim).astype(np.float32), device=device)
    s_test *= 1e-3
    cuda = device.type == "cuda"

    def score(X: np.ndarray) -> tuple[torch.Tensor, str]:
        if method == "forward":
            return forward_probabilities(module, X, batch_size, device), "plain forward"
        scores, used, _, _ = score_pool(model, s_test, X, batch_size, method="forward")
        return scores, used

    with evaluation_mode(module), torch.no_grad():
        score(X[:batch_size])  # warm-up
        gc.collect()
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            device_baseline = torch.cuda.memory_allocated(device)
        baseline_kib = _status_kib("VmRSS")
        reset = _reset_peak() and baseline_kib is not None
        scores, used = score(X)
        if cuda:
            torch.cuda.synchronize(device)
            device_peak = torch.cuda.max_memory_allocated(device)
        peak_kib = _status_kib("VmHWM") if reset else None
    result = {
        "model": model_name,
        "pool": pool,
        "pool_bytes": X.nbytes,
        "scores_bytes": scores.element_size() * scores.numel(),
        "batch_size": batch_size,
        "method": method,
        "scoring_method": used,
        "peak_source": "VmHWM after clear_refs" if reset else "ru_maxrss",
        "baseline_rss": (baseline_kib or 0) * 1024,
        "peak_rss": peak_kib * 1024 if reset else _ru_maxrss_bytes(),
        "process_ru_maxrss": _ru_maxrss_bytes(),
    }
    if cuda:
        result["device_baseline"] = device_baseline
        result["device_peak"] = device_peak
    return result


def _measure(
    model_name: str, pool: int, args: Any, batch_size: int, method: str = "isal"
) -> dict[str, Any]:
    """Run one :func:`child` measurement in a fresh Python process and parse its JSON."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--model",
        model_name,
        "--pool",
        str(pool),
        "--device",
        args.device,
        "--batch-size",
        str(batch_size),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
        "--method",
        method,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _model_result(
    model_name: str, pools: list[int], batch_size: int, repeats: int, args: Any, log: Any
) -> dict[str, Any]:
    """Every pool size of one model (``repeats`` fresh processes each), and its ratios."""
    sizes = []
    for pool in pools:
        runs = [_measure(model_name, pool, args, batch_size) for _ in range(repeats)]
        growth = statistics.median(r["peak_rss"] - r["baseline_rss"] for r in runs)
        plain = [_measure(model_name, pool, args, batch_size, "forward") for _ in range(repeats)]
        forward_growth = statistics.median(r["peak_rss"] - r["baseline_rss"] for r in plain)
        entry = {
            "pool": pool,
            "pool_bytes": runs[0]["pool_bytes"],
            "scores_bytes": runs[0]["scores_bytes"],
            "baseline_rss": statistics.median(r["baseline_rss"] for r in runs),
            "peak_rss": statistics.median(r["peak_rss"] for r in runs),
            "growth": growth,
            "growth_over_pool": growth / runs[0]["pool_bytes"],
            "forward_growth": forward_growth,
            "forward_growth_over_pool": forward_growth / runs[0]["pool_bytes"],
            "runs": runs,
            "forward_runs": plain,
        }
        if "device_peak" in runs[0]:
            dev = statistics.median(r["device_peak"] - r["device_baseline"] for r in runs)
            entry["device_growth"] = dev
            entry["device_growth_over_pool"] = dev / runs[0]["pool_bytes"]
        log(
            f"[memory/{model_name}] pool {pool}: growth {growth / 2**20:.2f} MiB "
            f"({entry['growth_over_pool']:.3f} x pool array); plain forward "
            f"{forward_growth / 2**20:.2f} MiB ({entry['forward_growth_over_pool']:.3f})"
        )
        sizes.append(entry)
    first, last = sizes[0], sizes[-1]
    span = last["pool_bytes"] - first["pool_bytes"]
    result = {
        "description": MODELS[model_name],
        "batch_size": batch_size,
        "repeats": repeats,
        "sizes": sizes,
        "marginal_growth": (last["growth"] - first["growth"]) / span,
    }
    result["targets"] = {
        f"growth/pool <= {TARGET_GROWTH:g} at {e['pool']:,}": e["growth_over_pool"] <= TARGET_GROWTH
        for e in sizes
    }
    result["targets"][f"marginal growth <= {TARGET_GROWTH:g}"] = (
        result["marginal_growth"] <= TARGET_GROWTH
    )
    if "device_growth" in first:
        result["marginal_device_growth"] = (last["device_growth"] - first["device_growth"]) / span
    return result


def run(args: Any, log: Any = print) -> dict[str, Any]:
    """Measure each model and pool size, each measurement in a fresh subprocess.

    Parameters
    ----------
    args : argparse.Namespace
        ``quick``, ``device``, ``seed``, ``threads``.
    log : callable, default=print

    Returns
    -------
    dict
        Per model: per pool size the raw measurements and median growth
        ratios, the marginal growth across sizes, whether the targets were met.
    """
    mode = "quick" if args.quick else "full"
    cfg = CONFIG[mode]
    models = {
        name: _model_result(name, cfg["pools"], m["batch_size"], m["repeats"], args, log)
        for name, m in cfg["models"].items()
    }
    return {
        "benchmark": "memory",
        "mode": mode,
        "config": cfg,
        "definitions": {
            "baseline": "VmRSS after loading model and pool and scoring one warm-up batch",
            "peak": "VmHWM (high-water mark reset after the baseline) after scoring the pool",
            "growth": "peak - baseline",
            "growth_over_pool": f"growth / pool array bytes (target <= {TARGET_GROWTH:g})",
            "marginal_growth": "(growth(largest pool) - growth(smallest)) / (difference of "
            "their pool array bytes)",
            "forward_growth": "the same growth for a plain forward pass over the pool that "
            "keeps its softmax probabilities (uncertainty sampling), same batches, in fresh "
            "processes of its own",
        },
        "models": models,
    }


def markdown(result: dict[str, Any]) -> str:
    """Markdown table of a :func:`run` result.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """
    mib = 2**20
    d = result["definitions"]
    first = next(iter(result["models"].values()))
    device = "device_growth" in first["sizes"][0]
    headers = [
        "model",
        "pool",
        "pool array",
        "scores",
        "baseline RSS",
        "peak RSS",
        "growth",
        "growth / pool",
        "forward growth",
        "forward growth / pool",
    ]
    if device:
        headers += ["device growth", "device growth / pool"]
    rows, notes = [], []
    for name, m in result["models"].items():
        for e in m["sizes"]:
            row = [
                name,
                f"{e['pool']:,}",
                f"{e['pool_bytes'] / mib:.2f} MiB",
                f"{e['scores_bytes'] / mib:.2f} MiB",
                f"{e['baseline_rss'] / mib:.1f} MiB",
                f"{e['peak_rss'] / mib:.1f} MiB",
                f"{e['growth'] / mib:.2f} MiB",
                f"**{e['growth_over_pool']:.3f}**",
                f"{e['forward_growth'] / mib:.2f} MiB" if "forward_growth" in e else "n/a",
                f"{e['forward_growth_over_pool']:.3f}" if "forward_growth" in e else "n/a",
            ]
            if device:
                row += [
                    f"{e['device_growth'] / mib:.2f} MiB",
                    f"{e['device_growth_over_pool']:.3f}",
                ]
            rows.append(row)
        met = ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in m["targets"].items())
        extra = (
            f" (device: {fmt_num(m['marginal_device_growth'])})"
            if "marginal_device_growth" in m
            else ""
        )
        notes.append(
            f"- `{name}`: {m['description']}; batch {m['batch_size']}; median of "
            f"{m['repeats']} fresh process(es). Marginal growth "
            f"**{fmt_num(m['marginal_growth'])}**{extra}. Targets: {met}."
        )
    return (
        "### Peak memory of pool scoring\n\n"
        f"Baseline: {d['baseline']}; peak: {d['peak']}; growth = {d['growth']}; growth / "
        f"pool = {d['growth_over_pool']}; marginal growth = {d['marginal_growth']}; forward "
        f"growth = {d.get('forward_growth', 'not measured in this run')}.\n\n"
        + markdown_table(headers, rows)
        + "\n\n"
        + "\n".join(notes)
        + "\n"
    )


def _main() -> None:
    """Child entry point: one measurement, printed as a JSON line."""
    parser = argparse.ArgumentParser(description="one memory measurement (used by run.py)")
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--model", choices=sorted(MODELS), default="digits_cnn")
    parser.add_argument("--pool", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", choices=["isal", "forward"], default="isal")
    args = parser.parse_args()
    configure_threads(args.threads)
    result = child(args.model, args.pool, args.device, args.batch_size, args.seed, args.method)
    print(json.dumps(result))


if __name__ == "__main__":
    _main()
