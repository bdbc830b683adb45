"""Why does default ISAL behave like gradient similarity? Measure the Gauss-Newton spectrum.

    python research/spectrum.py --task digits --seeds 0 1 2 --rounds 0 3 10

Follows modAL margin sampling (the best baseline) for ``max(rounds)`` queries and, at the
listed rounds, computes on the labelled set:

* the training loss;
* the *whole* non-zero spectrum of the Gauss-Newton matrix GN = (1/n) sum J_i^T M_i J_i (all
  parameters), exactly, from the (nC x nC) Gram matrix of the rows A_i^T J_i with
  M_i = A_i A_i^T, A_i = diag(sqrt p_i) - p_i sqrt(p_i)^T;
* the share of ||grad l(R)||^2 that lies in eigendirections with eigenvalue > 0.01 / 0.1 / 1
  (only there does (GN + d I)^-1 differ from I/d: elsewhere s_test = v / d);
* skisal's ``top_eigenvalue`` (power iteration) for comparison;
* Spearman correlations on the pool between ISAL's scores at damping 0.01 (default),
  c * lambda_max (c = 0.01, 0.1, 1) and gradient similarity, and with the margin.

Prints one line per (seed, round) and writes results/spectrum_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from common import RESULTS, make_net, split_data
from modAL.models import ActiveLearner
from modAL.uncertainty import margin_sampling
from scipy.stats import spearmanr
from torch.func import functional_call, jacrev, vmap
from variants import gn_top_eigenvalue, margins, pool_outputs

from skisal import InfluenceQueryStrategy


def gn_spectrum(module, X, y, v):
    """Non-zero GN eigenvalues (descending) and share of ||v||^2 above thresholds."""
    params = {k: p.detach() for k, p in module.named_parameters()}
    X = torch.as_tensor(X)

    def f(p, x):
        return functional_call(module, p, (x[None],))[0]

    module.eval()
    with torch.no_grad():
        probs = module(X).softmax(1).double()
        loss = torch.nn.functional.cross_entropy(module(X), torch.as_tensor(y)).item()
    rows = []
    for s in range(0, len(X), 64):
        jac = vmap(jacrev(f), in_dims=(None, 0))(params, X[s:s + 64])  # dict: (b, C, *shape)
        J = torch.cat([j.reshape(j.shape[0], j.shape[1], -1) for j in jac.values()], 2).double()
        p = probs[s:s + 64]
        sp = p.sqrt()
        A = torch.diag_embed(sp) - p[:, :, None] * sp[:, None, :]  # (b, C, C), M = A A^T
        rows.append(torch.einsum("bck,bcp->bkp", A, J).reshape(-1, J.shape[2]))  # A^T J
    U = torch.cat(rows)  # (nC, P)
    n = len(X)
    G = U @ U.T / n
    lam, W = torch.linalg.eigh(G)
    keep = lam > 1e-12 * lam.max()
    lam, W = lam[keep], W[:, keep]
    # eigenvectors of GN: u_k = U^T w_k / sqrt(n lam_k)
    proj = (W.T @ (U @ v.double())) / torch.sqrt(n * lam)
    share = {t: float((proj[lam > t] ** 2).sum() / (v.double() ** 2).sum())
             for t in (0.01, 0.1, 1.0)}
    lam = lam.flip(0).numpy()
    return loss, lam, share


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="digits")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, nargs="+", default=[0, 3, 10])
    a = ap.parse_args()
    out = []
    for seed in a.seeds:
        split = split_data(a.task, seed)
        X_ref, y_ref = split.reference()
        torch.manual_seed(seed)
        learner = ActiveLearner(estimator=make_net(a.task), query_strategy=margin_sampling,
                                X_training=split.X_initial, y_training=split.y_initial)
        X_pool, y_pool = split.X_pool, split.y_pool
        for r in range(max(a.rounds) + 1):
            if r in a.rounds:
                base = InfluenceQueryStrategy(X_ref, y_ref, random_state=seed)
                s_default = base.influence(learner, X_pool)
                v = torch.cat([t.flatten() for t in base.reference_gradient_.values()])
                module = learner.estimator.module_
                loss, lam, share = gn_spectrum(module, learner.X_training,
                                               learner.y_training, v)
                lam_pi = gn_top_eigenvalue(learner, seed)
                gs = InfluenceQueryStrategy(X_ref, y_ref, inverse_hvp="identity")
                s_grad = gs.influence(learner, X_pool)
                probs, _ = pool_outputs(learner, X_pool)
                m = margins(probs)
                rec = {"seed": seed, "round": r, "n_labeled": len(learner.y_training),
                       "train_loss": loss, "n_params": int(v.numel()),
                       "n_nonzero_eig": len(lam), "lambda_max": float(lam[0]),
                       "lambda_max_power_iteration": lam_pi,
                       "eig_top10": lam[:10].tolist(),
                       "n_eig_gt": {str(t): int((lam > t).sum()) for t in (0.01, 0.1, 1.0)},
                       "trace_over_P": float(lam.sum() / v.numel()),
                       "v_share_gt": share,
                       "rho_default_gradsim": float(spearmanr(s_default, s_grad).statistic),
                       "rho_default_margin": float(spearmanr(s_default, m).statistic)}
                for c in (0.01, 0.1, 1.0):
                    sc = InfluenceQueryStrategy(X_ref, y_ref, damping=c * lam_pi,
                                                random_state=seed).influence(learner, X_pool)
                    rec[f"rho_spec{c}_gradsim"] = float(spearmanr(sc, s_grad).statistic)
                    rec[f"rho_spec{c}_default"] = float(spearmanr(sc, s_default).statistic)
                    top = set(np.argsort(sc)[:split.task.query_size])
                    rec[f"overlap_spec{c}_gradsim"] = len(
                        top & set(np.argsort(s_grad)[:split.task.query_size])
                    ) / split.task.query_size
                rec["overlap_default_gradsim"] = len(
                    set(np.argsort(s_default)[:split.task.query_size])
                    & set(np.argsort(s_grad)[:split.task.query_size])) / split.task.query_size
                out.append(rec)
                print(json.dumps({k: (round(x, 4) if isinstance(x, float) else x)
                                  for k, x in rec.items() if k != "eig_top10"}), flush=True)
            if r == max(a.rounds):
                break
            idx, _ = learner.query(X_pool, n_instances=split.task.query_size)
            learner.teach(X_pool[idx], y_pool[idx])
            X_pool, y_pool = np.delete(X_pool, idx, axis=0), np.delete(y_pool, idx)
    (RESULTS / f"spectrum_{a.task}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
