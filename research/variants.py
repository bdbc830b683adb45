"""Query strategies compared in the study, as small wrappers around skisal and modAL.

Names are ``base`` or ``base+option+option...``:

base
    ``random``, ``uncertainty``, ``margin``, ``entropy`` (modAL), ``isal`` (skisal's
    ``InfluenceQueryStrategy``, paper defaults: CG, damping 0.01, Gauss-Newton, top-1 UUIC,
    reference = first ``reference_size`` rows of the reference bank), or ``marginscore`` (the
    margin as the score, for the selection-rule controls).
options (isal)
    ``gradsim``        inverse_hvp="identity" (s_test = grad l(R), gradient similarity)
    ``damp<d>``        fixed damping d (e.g. damp100: the reference code's 0.01 * 1e4)
    ``spec<c>``        damping = c * lambda_max(GN over the labelled set), measured every query
    ``top<k>``         SkorchClassifierAdapter(top_k=k), expected gradient over top-k classes
    ``refbig``         reference = the whole bank (300 digits / 100 breast cancer)
    ``refstrat``       reference rows chosen class-balanced from the bank
options (selection rule; any base that yields a score)
    ``div_<emb>_m<m>`` prefilter the m*n best by score, weighted KMeans (n clusters,
                       sample_weight = helpfulness clipped > 0) on the embedding ``feat``
                       (input of the last nn.Linear) or ``badge`` ((p - onehot(argmax)) (x) h),
                       take the best-scored sample of every cluster
    ``hybrank``        rank(score) + rank(margin), lowest sum first (rank average)
    ``uncf_m<m>``      keep the m*n smallest margins, take the n best-scored among them
    ``uncdiv_<emb>_m<m>`` keep the m*n smallest margins, weighted KMeans(n) on the embedding
                       (weights = helpfulness), best-scored sample of every cluster
    ``eai``            expected absolute influence over the model's posterior:
                       score = -sum_y p_y |I(z, R, y)|, I(z, R, y) = t_y - p.t with
                       t = J_z s_test the logit tangent along s_test (I(z, R, argmax p) is the
                       UUIC influence). Since E_y I(z, R, y) = 0 exactly for softmax
                       cross-entropy, this equals -2 E_y[max(0, -I(z, R, y))]: the expected
                       reduction of the reference loss over the labels that would reduce it.
    ``hybrank`` may be combined with ``div_...``/``uncdiv_...`` (the rank sum is then the score,
    helpfulness = max(rank sum) - rank sum).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from common import Split
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
from scipy.stats import rankdata, spearmanr
from sklearn.cluster import KMeans
from torch import nn

from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter
from skisal._modal import installed_modal_returns_scores
from skisal.engine import (
    BoundModel,
    DampedHessian,
    ParameterSpace,
    evaluation_mode,
    select_parameters,
    top_eigenvalue,
)

RETURNS_SCORES = installed_modal_returns_scores()


def _result(indices: np.ndarray, scores: np.ndarray):
    return (indices, scores[indices]) if RETURNS_SCORES else indices


# -- model probes -----------------------------------------------------------------
def pool_outputs(learner: Any, X: np.ndarray, batch_size: int = 512):
    """Softmax probabilities and the input of the last nn.Linear (penultimate features)."""
    module = learner.estimator.module_
    last = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
    feats: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda m, inp, out: feats.append(inp[0].detach()))
    was_training = module.training
    module.eval()
    logits = []
    try:
        with torch.no_grad():
            for s in range(0, len(X), batch_size):
                logits.append(module(torch.as_tensor(X[s:s + batch_size])))
    finally:
        hook.remove()
        module.train(was_training)
    probs = torch.cat(logits).softmax(1).double().numpy()
    return probs, torch.cat(feats).double().numpy()


def logit_tangent(learner: Any, X: np.ndarray, s_test: dict, batch_size: int = 512):
    """t = J_z s_test for every pool sample: (n, C) directional derivative of the logits."""
    from torch.func import functional_call, jvp

    module = learner.estimator.module_
    params = {k: p.detach() for k, p in module.named_parameters()}
    tangents = {k: torch.zeros_like(p) for k, p in params.items()}
    for k, t in s_test.items():
        tangents[k] = t.to(params[k].dtype).reshape(params[k].shape)
    was_training = module.training
    module.eval()
    out = []
    try:
        for s in range(0, len(X), batch_size):
            x = torch.as_tensor(X[s:s + batch_size])
            _, t = jvp(lambda p: functional_call(module, p, (x,)), (params,), (tangents,))
            out.append(t.double())
    finally:
        module.train(was_training)
    return torch.cat(out).numpy()


def margins(probs: np.ndarray) -> np.ndarray:
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def badge_embedding(probs: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Last-layer UUIC gradient per sample: (p - onehot(argmax p)) outer h (BADGE)."""
    g = probs.copy()
    g[np.arange(len(g)), probs.argmax(1)] -= 1.0
    return (g[:, :, None] * feats[:, None, :]).reshape(len(g), -1)


def gn_top_eigenvalue(learner: Any, seed: int, iterations: int = 50) -> float:
    """lambda_max of the Gauss-Newton matrix of the mean training loss (all parameters)."""
    est = learner.estimator
    adapter = SkorchClassifierAdapter()
    module = adapter.get_module(est)
    space = ParameterSpace(select_parameters(module, "all"))
    model = BoundModel(adapter, est, module, space, torch.device("cpu"))
    y = np.asarray(learner.y_training, dtype=np.int64)
    with evaluation_mode(module), torch.no_grad():
        H = DampedHessian(model, learner.X_training, y, 0.0, 256, "gauss_newton")
        return top_eigenvalue(H, np.arange(H.n), np.random.RandomState(seed), iterations, 1e-3)


# -- selection rules ----------------------------------------------------------------
def select_top(score: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(score, kind="stable")[:n]


def select_diverse(score, n, emb, m, seed, helpfulness, cand=None):
    """Top m*n by score -> weighted KMeans(n) on emb -> best-scored sample per cluster.

    ``helpfulness`` gives the KMeans sample weights: -influence clipped at 0 for ISAL,
    1 - margin for the margin control. ``cand`` overrides the candidate set.
    """
    if cand is None:
        cand = np.argsort(score, kind="stable")[: min(len(score), m * n)]
    s = score[cand]
    w = np.clip(helpfulness[cand], 0, None)
    w = w + 1e-3 * (w.max() if w.max() > 0 else 1.0)  # keep every candidate assignable
    km = KMeans(n_clusters=n, n_init=3, random_state=seed).fit(emb[cand], sample_weight=w)
    chosen = []
    for c in range(n):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            chosen.append(cand[members[np.argmin(s[members])]])
    if len(chosen) < n:  # empty clusters: fill with the best remaining
        rest = [i for i in cand if i not in set(chosen)]
        chosen += rest[: n - len(chosen)]
    chosen = np.array(chosen)
    return chosen[np.argsort(score[chosen], kind="stable")]


# -- the configurable strategy ----------------------------------------------------
class Selector:
    """Score the pool (influence or margin), then apply a selection rule; logs per query."""

    def __init__(self, name: str, split: Split, seed: int) -> None:
        self.name, self.seed = name, seed
        base, *opts = name.split("+")
        self.base = base
        isal_kw: dict[str, Any] = {}
        ref_size, ref_strat = None, False
        self.spectral_c = None
        self.rule, self.m, self.emb = "top", None, None
        self.hybrank = False
        self.eai = False
        for o in opts:
            if o == "gradsim":
                isal_kw["inverse_hvp"] = "identity"
            elif mt := re.fullmatch(r"damp([\d.e+-]+)", o):
                isal_kw["damping"] = float(mt[1])
            elif mt := re.fullmatch(r"spec([\d.e+-]+)", o):
                self.spectral_c = float(mt[1])
            elif mt := re.fullmatch(r"top(\d+)", o):
                isal_kw["adapter"] = SkorchClassifierAdapter(top_k=int(mt[1]))
            elif o == "refbig":
                ref_size = split.task.reference_bank
            elif o == "refstrat":
                ref_strat = True
            elif mt := re.fullmatch(r"div_(feat|badge)_m(\d+)", o):
                self.rule, self.emb, self.m = "diverse", mt[1], int(mt[2])
            elif o == "eai":
                self.eai = True
            elif o == "hybrank":
                self.hybrank = True
            elif mt := re.fullmatch(r"uncdiv_(feat|badge)_m(\d+)", o):
                self.rule, self.emb, self.m = "uncdiv", mt[1], int(mt[2])
            elif mt := re.fullmatch(r"uncf_m(\d+)", o):
                self.rule, self.m = "uncf", int(mt[1])
            else:
                raise ValueError(f"unknown option {o!r} in {name!r}")
        if base == "isal":
            X_ref, y_ref = split.reference(ref_size, ref_strat)
            self.strategy = InfluenceQueryStrategy(X_ref, y_ref, random_state=seed, **isal_kw)
        elif base != "marginscore":
            raise ValueError(f"unknown base {base!r}")
        self.last_log: dict[str, Any] | None = None

    def __call__(self, learner: Any, X_pool: np.ndarray, n_instances: int = 1):
        n = int(n_instances)
        log: dict[str, Any] = {}
        probs, feats = pool_outputs(learner, X_pool)
        margin = margins(probs)
        if self.base == "isal":
            if self.spectral_c is not None:
                lam = gn_top_eigenvalue(learner, self.seed)
                self.strategy.damping = max(self.spectral_c * lam, 1e-8)
                log["lambda_max"] = lam
            score = self.strategy.influence(learner, X_pool)
            d = self.strategy.diagnostics_
            log.update(damping=float(self.strategy.damping), cg_iter=d.solver.iterations,
                       residual=d.solver.relative_residual,
                       ref_grad_norm=d.reference_gradient_norm)
        else:
            score = margin.copy()
        if self.eai:
            t = logit_tangent(learner, X_pool, self.strategy.s_test_)
            infl_y = t - (probs * t).sum(1, keepdims=True)  # I(z, R, y) for every label y
            uuic = infl_y[np.arange(len(t)), probs.argmax(1)]
            log["uuic_check_max_abs_err_rel"] = float(
                np.abs(uuic - score).max() / (np.abs(score).max() + 1e-30))
            score = -(probs * np.abs(infl_y)).sum(1)
        helpful = -score if self.base == "isal" else 1.0 - margin
        if self.hybrank:
            score = rankdata(score) + rankdata(margin)
            helpful = score.max() - score
        if self.rule == "top":
            idx = select_top(score, n)
        elif self.rule in ("diverse", "uncdiv"):
            emb = feats if self.emb == "feat" else badge_embedding(probs, feats)
            cand = None
            if self.rule == "uncdiv":
                cand = np.argsort(margin, kind="stable")[: min(len(margin), self.m * n)]
            idx = select_diverse(score, n, emb, self.m, self.seed, helpful, cand)
        else:  # uncf
            cand = np.argsort(margin, kind="stable")[: min(len(margin), self.m * n)]
            idx = cand[np.argsort(score[cand], kind="stable")[:n]]
        # how much the selection looks like margin sampling
        log["spearman_score_margin"] = float(spearmanr(score, margin).statistic)
        log["overlap_margin_topn"] = len(set(idx) & set(np.argsort(margin)[:n])) / n
        log["mean_margin_selected"] = float(margin[idx].mean())
        log["n_classes_selected"] = len(np.unique(probs[idx].argmax(1)))
        self.last_log = log
        return _result(np.asarray(idx), score)


def random_sampling(seed: int):
    rng = np.random.default_rng(seed)

    def query(classifier: Any, X_pool: np.ndarray, n_instances: int = 1):
        utility = rng.random(len(X_pool))
        return _result(np.argsort(-utility)[:n_instances], utility)

    return query


def make_strategy(name: str, split: Split, seed: int):
    if name == "random":
        return random_sampling(seed)
    if name == "uncertainty":
        return uncertainty_sampling
    if name == "margin":
        return margin_sampling
    if name == "entropy":
        return entropy_sampling
    return Selector(name, split, seed)
