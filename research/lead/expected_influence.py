"""Prototype: influence over the model's whole posterior on the label (research only).

For cross-entropy on logits, I(z, k) = d_k - p.d with d = J_z s_test (one JVP per
batch gives every class's influence). E_p[I(z, k)] = 0 exactly, so the first-order
expected influence cannot rank; these variants use its spread instead.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch.func import functional_call, jvp

from skisal import InfluenceQueryStrategy
from skisal.engine import evaluation_mode


class PosteriorInfluence(BaseEstimator):
    def __init__(self, X_reference=None, y_reference=None, mode="variance", random_state=None):
        self.X_reference = X_reference
        self.y_reference = y_reference
        self.mode = mode
        self.random_state = random_state

    def __call__(self, learner, X_pool, n_instances=1):
        isal = InfluenceQueryStrategy(self.X_reference, self.y_reference,
                                      random_state=self.random_state)
        uuic = isal.influence(learner, X_pool)
        est = learner.estimator
        if hasattr(est, "steps"):
            X_pool, est = est[:-1].transform(X_pool), est[-1]
        module = est.module_
        params = {k: v.detach() for k, v in module.named_parameters()}
        tangents = {k: isal.s_test_.get(k, torch.zeros_like(v)) for k, v in params.items()}
        X = torch.as_tensor(X_pool)
        outs = []
        with evaluation_mode(module), torch.no_grad():
            for start in range(0, len(X), 512):
                xb = X[start:start + 512]
                logits, d = jvp(lambda p: functional_call(module, p, (xb,)), (params,), (tangents,))
                outs.append((logits.double(), d.double()))
        logits = torch.cat([o[0] for o in outs]); d = torch.cat([o[1] for o in outs])
        p = logits.softmax(1)
        infl = d - (p * d).sum(1, keepdim=True)  # I(z, k) for every class k
        if self.mode == "variance":      # E_p[I^2]: higher = label matters more for R
            utility = (p * infl ** 2).sum(1)
        elif self.mode == "helpful":     # E_p[max(-I, 0)]: expected helpful part
            utility = (p * (-infl).clamp(min=0)).sum(1)
        elif self.mode == "check":       # UUIC recomputed: must rank as ISAL
            utility = -infl.gather(1, p.argmax(1, keepdim=True)).squeeze(1)
            assert np.allclose(-utility.numpy(), uuic, rtol=1e-3, atol=1e-6 * np.abs(uuic).max())
        else:
            raise ValueError(self.mode)
        utility = utility.numpy()
        self.utility_ = utility
        order = np.argsort(-utility, kind="stable")[:n_instances]
        return order, utility[order]


def variance(context):
    return PosteriorInfluence(context.X_reference, context.y_reference, "variance",
                              context.random_state)


def helpful(context):
    return PosteriorInfluence(context.X_reference, context.y_reference, "helpful",
                              context.random_state)


def check(context):
    return PosteriorInfluence(context.X_reference, context.y_reference, "check",
                              context.random_state)


# -- BADGE-style diversity (k-means++ seeding on last-layer UUIC gradients) ---------
from sklearn.cluster import kmeans_plusplus  # noqa: E402
from torch import nn  # noqa: E402


def _last_layer_embedding(est, X_pool):
    if hasattr(est, "steps"):
        X_pool, est = est[:-1].transform(X_pool), est[-1]
    module = est.module_
    last = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
    feats = []
    h = last.register_forward_pre_hook(lambda m, a: feats.append(a[0].detach()))
    try:
        with evaluation_mode(module), torch.no_grad():
            logits = module(torch.as_tensor(X_pool))
    finally:
        h.remove()
    p = logits.softmax(1).double()
    g = p.clone()
    g[torch.arange(len(g)), p.argmax(1)] -= 1.0
    f = torch.cat(feats).double()
    return (g[:, :, None] * f[:, None, :]).reshape(len(g), -1).numpy()


class Badge(BaseEstimator):
    def __init__(self, X_reference=None, y_reference=None, weighted=False, random_state=None):
        self.X_reference = X_reference
        self.y_reference = y_reference
        self.weighted = weighted
        self.random_state = random_state

    def __call__(self, learner, X_pool, n_instances=1):
        emb = _last_layer_embedding(learner.estimator, X_pool)
        if self.weighted == "rms":
            post = PosteriorInfluence(self.X_reference, self.y_reference, "variance",
                                      self.random_state)
            _, _ = post(learner, X_pool, 1)
            rms = np.sqrt(post.utility_)
            emb = emb * np.sqrt(rms / rms.max())[:, None]
        elif self.weighted == "rank":
            isal = InfluenceQueryStrategy(self.X_reference, self.y_reference,
                                          random_state=self.random_state)
            infl = isal.influence(learner, X_pool)
            pct = 1.0 - np.argsort(np.argsort(infl)) / max(len(infl) - 1, 1)  # 1 = most helpful
            emb = emb * np.sqrt(0.5 + 0.5 * pct)[:, None]
        elif self.weighted:
            isal = InfluenceQueryStrategy(self.X_reference, self.y_reference,
                                          random_state=self.random_state)
            helpful = np.clip(-isal.influence(learner, X_pool), 0, None)
            emb = emb * np.sqrt(helpful / (helpful.max() + 1e-300))[:, None]
        _, idx = kmeans_plusplus(emb, n_instances, random_state=self.random_state)
        return idx, np.zeros(len(idx))


def badge(context):
    return Badge(context.X_reference, context.y_reference, False, context.random_state)


def isal_badge(context):
    return Badge(context.X_reference, context.y_reference, True, context.random_state)


def isal_badge_rms(context):
    return Badge(context.X_reference, context.y_reference, "rms", context.random_state)


def isal_badge_rank(context):
    return Badge(context.X_reference, context.y_reference, "rank", context.random_state)
