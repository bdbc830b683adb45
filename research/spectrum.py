"""Why does default ISAL behave like gradient similarity? The Gauss-Newton spectrum, measured.

    python -m research.reproduce digits-margin
    python -m research.spectrum results/research/digits-margin --seeds 0 1 2 --rounds 0 3 10

Along the recorded margin-sampling runs of a folder (rebuilt by ``research/replay.py``), at the
listed rounds, on the labelled set:

* the training loss;
* the whole non-zero spectrum of the Gauss-Newton matrix GN = (1/n) sum J_i^T M_i J_i (all
  parameters), exactly, from the (nC x nC) Gram matrix of the rows A_i^T J_i with
  M_i = A_i A_i^T, A_i = diag(sqrt p_i) - p_i sqrt(p_i)^T;
* the share of ||grad l(R)||^2 in eigendirections with eigenvalue > 0.01 / 0.1 / 1 (only there
  does (GN + d I)^-1 differ from I/d);
* skisal's power iteration (``top_eigenvalue``) for comparison;
* Spearman correlations on the pool between ISAL's scores at damping 0.01, at c x lambda_max
  (c = 0.01, 0.1, 1) and gradient similarity, and with the margin.

Prints one Markdown row per (seed, round) and writes ``spectrum.json`` into the run folder.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch.func import functional_call, jacrev, vmap

from research.probes import gn_top_eigenvalue, margins, network_inputs, outputs_and_features
from research.replay import learner_at
from research.strategies import paper_isal, reference_rows
from skisal.engine import evaluation_mode

THRESHOLDS = (0.01, 0.1, 1.0)


def gn_spectrum(estimator, X, y, v: torch.Tensor, chunk: int = 64):
    """Training loss, non-zero GN eigenvalues (descending), share of ``||v||^2`` above each
    of :data:`THRESHOLDS`."""
    module, inputs = network_inputs(estimator, X)
    params = {k: p.detach() for k, p in module.named_parameters()}

    def f(p, x):
        return functional_call(module, p, (x[None],))[0]

    rows = []
    with evaluation_mode(module):
        with torch.no_grad():
            logits = module(inputs)
            probs = logits.softmax(1).double()
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)).item()
        for s in range(0, len(inputs), chunk):
            jac = vmap(jacrev(f), in_dims=(None, 0))(params, inputs[s : s + chunk])
            J = torch.cat([j.reshape(*j.shape[:2], -1) for j in jac.values()], 2).double()
            p = probs[s : s + chunk]
            sp = p.sqrt()
            A = torch.diag_embed(sp) - p[:, :, None] * sp[:, None, :]  # M = A A^T
            rows.append(torch.einsum("bck,bcp->bkp", A, J).reshape(-1, J.shape[2]))  # A^T J
    U = torch.cat(rows)  # (nC, P)
    n = len(inputs)
    lam, W = torch.linalg.eigh(U @ U.T / n)
    keep = lam > 1e-12 * lam.max()
    lam, W = lam[keep], W[:, keep]
    proj = (W.T @ (U @ v.double())) / torch.sqrt(n * lam)  # v on u_k = U^T w_k / sqrt(n lam_k)
    share = {t: float((proj[lam > t] ** 2).sum() / (v.double() ** 2).sum()) for t in THRESHOLDS}
    return loss, lam.flip(0).numpy(), share


def _overlap(a: np.ndarray, b: np.ndarray, n: int) -> float:
    return len(set(np.argsort(a)[:n]) & set(np.argsort(b)[:n])) / n


def measure(out: Path, strategy: str, seed: int, round_: int, rows: int | None) -> dict:
    """Every number of one (seed, round); ``rows``: ISAL's rows of the reference set."""
    rep = learner_at(out, strategy, seed, round_)
    learner, X_pool, n = rep.learner, rep.X_pool, rep.config.query_size
    X_ref, y_ref = reference_rows(rep.context.X_reference, rep.context.y_reference, rows, False)
    default = paper_isal(X_ref, y_ref, seed)
    s_default = default.influence(learner, X_pool)
    v = torch.cat([t.flatten() for t in default.reference_gradient_.values()])
    loss, lam, share = gn_spectrum(learner.estimator, learner.X_training, learner.y_training, v)
    lam_pi = gn_top_eigenvalue(learner, seed)
    s_grad = paper_isal(X_ref, y_ref, seed, inverse_hvp="identity").influence(learner, X_pool)
    margin = margins(outputs_and_features(learner.estimator, X_pool)[0])
    record = {
        "seed": seed,
        "round": round_,
        "n_labeled": len(learner.y_training),
        "train_loss": loss,
        "n_params": int(v.numel()),
        "lambda_max": float(lam[0]),
        "lambda_max_power_iteration": lam_pi,
        "eig_top10": lam[:10].tolist(),
        "n_eig_gt": {str(t): int((lam > t).sum()) for t in THRESHOLDS},
        "v_share_gt": {str(t): s for t, s in share.items()},
        "rho_default_gradsim": float(spearmanr(s_default, s_grad).statistic),
        "rho_default_margin": float(spearmanr(s_default, margin).statistic),
        "overlap_default_gradsim": _overlap(s_default, s_grad, n),
    }
    for c in THRESHOLDS:
        spec = paper_isal(X_ref, y_ref, seed, damping=c * lam_pi).influence(learner, X_pool)
        record[f"rho_spec{c}_gradsim"] = float(spearmanr(spec, s_grad).statistic)
    return record


def row(r: dict) -> str:
    """The record as a row of the document's table."""
    eig = " / ".join(str(v) for v in r["n_eig_gt"].values())
    share = " / ".join(f"{r['v_share_gt'][str(t)]:.2f}" for t in THRESHOLDS[:2])
    spec = " / ".join(f"{r[f'rho_spec{c}_gradsim']:.2f}" for c in THRESHOLDS)
    cells = [
        *(r["seed"], r["round"], r["n_labeled"], f"{r['train_loss']:.1e}"),
        *(f"{r['lambda_max']:.3g}", eig, share, f"{r['rho_default_gradsim']:.2f}"),
        *(f"{r['overlap_default_gradsim']:.2f}", spec, f"{r['rho_default_margin']:.2f}"),
    ]
    return "| " + " | ".join(str(c) for c in cells) + " |"


HEADER = (
    "| seed | round | labels | train loss | λ_max | #eig > 0.01 / 0.1 / 1 | share of ‖∇l(R)‖² "
    "with λ > 0.01 / 0.1 | rho(default, gradsim) | top-n overlap default∩gradsim | "
    "rho(spec c=0.01 / 0.1 / 1, gradsim) | rho(default, margin) |\n" + "|---" * 11 + "|"
)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Measure, print the table, write ``spectrum.json``; return the records."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a run folder with margin-sampling runs")
    parser.add_argument("--strategy", default="margin")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, nargs="+", default=[0, 3, 10])
    parser.add_argument("--reference-rows", type=int, default=100, help="ISAL's (default 100)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(HEADER)
    records = []
    for seed in args.seeds:
        for round_ in args.rounds:
            records.append(measure(args.out, args.strategy, seed, round_, args.reference_rows))
            print(row(records[-1]), flush=True)
    (args.out / "spectrum.json").write_text(json.dumps(records, indent=1) + "\n")
    return records


if __name__ == "__main__":
    main()
