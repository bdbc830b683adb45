"""The query strategies of ``research/influence_modes.md``, as ``skisal.experiments`` factories.

Name them ``research.strategies:<name>`` to ``python -m skisal.experiments --strategies`` (run
from the repository's root, so that ``research`` is importable) or through
``research/reproduce.py``, which holds every study of the document.

The study's variants are named ``base+option+option...``; any such name is a factory here.

base
    ``isal``: skisal's ``InfluenceQueryStrategy`` with the paper's defaults as the study ran
    them (conjugate gradient to a relative residual of 1e-5, damping 0.01, Gauss-Newton,
    top-1 UUIC; skisal's own default has since become ``inverse_hvp="pcg"``).
    ``marginscore``: the margin as the score, for the selection-rule controls.
options of ``isal``
    ``gradsim``         ``inverse_hvp="identity"`` (``s_test = grad l(R)``)
    ``damp<d>``         fixed damping ``d``
    ``spec<c>``         damping = ``c`` x lambda_max (Gauss-Newton of the labelled set), per query
    ``top<k>``          ``SkorchClassifierAdapter(top_k=k)``, the expected gradient over top k
    ``ref<k>``          ISAL's reference set is the first ``k`` rows of the run's reference set
                        (the study holds out a *bank*: 300 digits / 100 breast-cancer rows,
                        of which ISAL uses the first 100 / 50); default and ``refbig``: all rows
    ``refstrat``        the reference rows class-balanced (first rows of each class)
    ``eai``             expected absolute influence ``sum_y p_y |I(z, R, y)|`` as the score
options of the selection (any base)
    ``div_<emb>_m<m>``  the ``m n`` best by score, weighted KMeans into ``n`` clusters on the
                        embedding (``feat``: the input of the last ``nn.Linear``; ``badge``:
                        ``(p - onehot(argmax p)) (x) h``), the best-scored sample per cluster
    ``uncdiv_<emb>_m<m>`` the same on the ``m n`` smallest margins
    ``uncf_m<m>``       the ``m n`` smallest margins, then the ``n`` best by score
    ``hybrank``         score = rank(score) + rank(margin)

The lead's follow-up prototypes are the functions :func:`variance`, :func:`helpful`,
:func:`badge`, :func:`isal_badge`, :func:`isal_badge_rms` and :func:`isal_badge_rank`.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans, kmeans_plusplus

from research.probes import (
    badge_embedding,
    gn_top_eigenvalue,
    influence_per_label,
    logits_and_tangent,
    margins,
    outputs_and_features,
)
from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter
from skisal.experiments import StrategyContext

#: ISAL as every research record before 2026-12-03 ran it (then skisal's defaults).
PAPER_ISAL = {"inverse_hvp": "cg", "cg_tol": 1e-5}


def paper_isal(X_reference: Any, y_reference: Any, random_state: Any, **params: Any):
    """``InfluenceQueryStrategy`` with :data:`PAPER_ISAL`, overridden by ``params``."""
    params = {**PAPER_ISAL, **params}
    return InfluenceQueryStrategy(X_reference, y_reference, random_state=random_state, **params)


@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed variant name (see the module docstring)."""

    base: str
    isal: dict = dataclasses.field(default_factory=dict)
    spectral: float | None = None
    reference_rows: int | None = None
    stratified: bool = False
    eai: bool = False
    hybrank: bool = False
    rule: str = "top"
    embedding: str | None = None
    factor: int | None = None


_OPTIONS: list[tuple[str, Callable[[re.Match], dict]]] = [
    (r"gradsim", lambda m: {"isal": {"inverse_hvp": "identity"}}),
    (r"damp([\d.e+-]+)", lambda m: {"isal": {"damping": float(m[1])}}),
    (r"spec([\d.e+-]+)", lambda m: {"spectral": float(m[1])}),
    (r"top(\d+)", lambda m: {"isal": {"adapter": SkorchClassifierAdapter(top_k=int(m[1]))}}),
    (r"ref(\d+)", lambda m: {"reference_rows": int(m[1])}),
    (r"refbig", lambda m: {"reference_rows": None}),
    (r"refstrat", lambda m: {"stratified": True}),
    (r"eai", lambda m: {"eai": True}),
    (r"hybrank", lambda m: {"hybrank": True}),
    (r"div_(feat|badge)_m(\d+)", lambda m: {"rule": "div", "embedding": m[1], "factor": int(m[2])}),
    (
        r"uncdiv_(feat|badge)_m(\d+)",
        lambda m: {"rule": "uncdiv", "embedding": m[1], "factor": int(m[2])},
    ),
    (r"uncf_m(\d+)", lambda m: {"rule": "uncf", "factor": int(m[1])}),
]
_ISAL_ONLY = {"isal", "spectral", "reference_rows", "stratified", "eai"}


def parse(name: str) -> Spec:
    """The :class:`Spec` of a variant name; ValueError naming the part at fault."""
    base, *options = name.split("+")
    if base not in ("isal", "marginscore"):
        raise ValueError(f"{name!r}: unknown base {base!r}; use 'isal' or 'marginscore'.")
    fields: dict[str, Any] = {"isal": {}}
    for option in options:
        found = [(m, meaning) for p, meaning in _OPTIONS if (m := re.fullmatch(p, option))]
        if not found:
            raise ValueError(f"{name!r}: unknown option {option!r} (see research/strategies.py).")
        match, meaning = found[0]
        for key, value in meaning(match).items():
            if key == "isal":
                fields["isal"].update(value)
            else:
                fields[key] = value
            if base != "isal" and key in _ISAL_ONLY:
                raise ValueError(f"{name!r}: option {option!r} needs the 'isal' base.")
    return Spec(base, **fields)


def reference_rows(X: np.ndarray, y: np.ndarray, rows: int | None, stratified: bool):
    """The first ``rows`` rows of the reference set (all: None), class-balanced if asked."""
    size = len(y) if rows is None else min(rows, len(y))
    if not stratified:
        return X[:size], y[:size]
    per = size // len(np.unique(y))
    chosen = [i for c in np.unique(y) for i in np.flatnonzero(y == c)[:per]]
    rest = [i for i in range(len(y)) if i not in set(chosen)]
    index = np.sort(np.array(chosen + rest[: size - len(chosen)], dtype=np.int64))
    return X[index], y[index]


def select_diverse(score, n, embedding, seed, helpfulness, candidates):
    """Weighted KMeans(n) of the candidates on ``embedding``; the best-scored per cluster."""
    weight = np.clip(helpfulness[candidates], 0, None)
    weight = weight + 1e-3 * (weight.max() if weight.max() > 0 else 1.0)  # all assignable
    with warnings.catch_warnings():  # BADGE embeddings of confident samples coincide
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        km = KMeans(n_clusters=n, n_init=3, random_state=seed)
        labels = km.fit(embedding[candidates], sample_weight=weight).labels_
    chosen = []
    for c in range(n):
        members = candidates[labels == c]
        if len(members):
            chosen.append(members[np.argmin(score[members])])
    rest = [i for i in candidates if i not in set(chosen)]  # empty clusters: the best left
    chosen = np.array(chosen + rest[: n - len(chosen)])
    return chosen[np.argsort(score[chosen], kind="stable")]


class Variant(BaseEstimator):
    """One variant of the study: a score (influence or margin), then a selection rule.

    After a query, ``scores_`` holds the pool's scores (lower = selected first) and
    ``log_`` the damping and lambda_max it used.
    """

    def __init__(self, name="isal", X_reference=None, y_reference=None, random_state=None):
        self.name = name
        self.X_reference = X_reference
        self.y_reference = y_reference
        self.random_state = random_state

    def __call__(self, learner: Any, X_pool: Any, n_instances: int = 1):
        spec, n = parse(self.name), int(n_instances)
        probs, features = outputs_and_features(learner.estimator, X_pool)
        margin = margins(probs)
        self.log_: dict[str, float] = {}
        if spec.base == "isal":
            score = self._influence(spec, learner, X_pool)
            helpful = -score
        else:
            score, helpful = margin.copy(), 1.0 - margin
        if spec.hybrank:
            score = rankdata(score) + rankdata(margin)
            helpful = score.max() - score
        by_margin = np.argsort(margin, kind="stable")
        if spec.rule == "top":
            index = np.argsort(score, kind="stable")[:n]
        elif spec.rule == "uncf":
            candidates = by_margin[: spec.factor * n]
            index = candidates[np.argsort(score[candidates], kind="stable")[:n]]
        else:
            embedding = features if spec.embedding == "feat" else badge_embedding(probs, features)
            candidates = np.argsort(score, kind="stable") if spec.rule == "div" else by_margin
            candidates = candidates[: spec.factor * n]
            index = select_diverse(score, n, embedding, self.random_state, helpful, candidates)
        self.scores_ = score
        return index, score[index]

    def _influence(self, spec: Spec, learner: Any, X_pool: Any) -> np.ndarray:
        params = dict(spec.isal)
        if spec.spectral is not None:
            lam = gn_top_eigenvalue(learner, self.random_state)
            params["damping"] = max(spec.spectral * lam, 1e-8)
            self.log_["lambda_max"] = lam
        X_ref, y_ref = reference_rows(
            self.X_reference, self.y_reference, spec.reference_rows, spec.stratified
        )
        isal = paper_isal(X_ref, y_ref, self.random_state, **params)
        score = isal.influence(learner, X_pool)
        self.log_["damping"] = float(isal.damping)
        if spec.eai:
            logits, tangent = logits_and_tangent(learner.estimator, X_pool, isal.s_test_)
            p = logits.softmax(1).numpy()
            score = -(p * np.abs(influence_per_label(logits, tangent).numpy())).sum(1)
        return score


def __getattr__(name: str) -> Callable[[StrategyContext], Variant]:
    """``research.strategies:<variant name>``: the factory of that variant."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        parse(name)
    except ValueError as exc:
        raise AttributeError(f"module {__name__!r} has no strategy {name!r}: {exc}") from None

    def factory(context: StrategyContext) -> Variant:
        return Variant(name, context.X_reference, context.y_reference, context.random_state)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"The study's variant {name!r} (see research/strategies.py)."
    return factory


# -- the lead's follow-up: influence over the posterior, BADGE-style diversity --------------
class PosteriorInfluence(BaseEstimator):
    """Top-n by a spread of ``I(z, R, y)`` over ``y ~ p``: ``mode`` "variance" (``E_p[I^2]``)
    or "helpful" (``E_p[max(-I, 0)]``, half the study's EAI). ``E_p[I] = 0`` exactly.
    """

    def __init__(self, X_reference=None, y_reference=None, mode="variance", random_state=None):
        self.X_reference = X_reference
        self.y_reference = y_reference
        self.mode = mode
        self.random_state = random_state

    def __call__(self, learner: Any, X_pool: Any, n_instances: int = 1):
        isal = paper_isal(self.X_reference, self.y_reference, self.random_state)
        isal.influence(learner, X_pool)
        logits, tangent = logits_and_tangent(learner.estimator, X_pool, isal.s_test_)
        influence, p = influence_per_label(logits, tangent), logits.softmax(1)
        if self.mode == "variance":
            utility = (p * influence**2).sum(1)
        elif self.mode == "helpful":
            utility = (p * (-influence).clamp(min=0)).sum(1)
        else:
            raise ValueError(f"mode={self.mode!r}: use 'variance' or 'helpful'.")
        self.utility_ = utility.numpy()
        order = np.argsort(-self.utility_, kind="stable")[:n_instances]
        return order, self.utility_[order]


class Badge(BaseEstimator):
    """k-means++ seeding (scikit-learn's) on last-layer UUIC gradients, optionally tilted.

    ``weighted``: False (plain BADGE); True (rows scaled by ``sqrt(max(-I, 0))``); "rms" (by
    the square root of the posterior RMS influence); "rank" (by ``sqrt(0.5 + 0.5 x``
    helpfulness percentile), which became ``InfluenceQueryStrategy(selection="diverse")``).
    """

    def __init__(self, X_reference=None, y_reference=None, weighted=False, random_state=None):
        self.X_reference = X_reference
        self.y_reference = y_reference
        self.weighted = weighted
        self.random_state = random_state

    def __call__(self, learner: Any, X_pool: Any, n_instances: int = 1):
        embedding = badge_embedding(*outputs_and_features(learner.estimator, X_pool))
        if self.weighted is not False:
            embedding = embedding * np.sqrt(self._weights(learner, X_pool))[:, None]
        _, index = kmeans_plusplus(embedding, n_instances, random_state=self.random_state)
        return index, np.zeros(len(index))

    def _weights(self, learner: Any, X_pool: Any) -> np.ndarray:
        if self.weighted == "rms":
            posterior = PosteriorInfluence(
                self.X_reference, self.y_reference, "variance", self.random_state
            )
            posterior(learner, X_pool)
            rms = np.sqrt(posterior.utility_)
            return rms / rms.max()
        isal = paper_isal(self.X_reference, self.y_reference, self.random_state)
        influence = isal.influence(learner, X_pool)
        if self.weighted == "rank":  # 1 = most helpful
            percentile = 1.0 - np.argsort(np.argsort(influence)) / max(len(influence) - 1, 1)
            return 0.5 + 0.5 * percentile
        helpful = np.clip(-influence, 0, None)
        return helpful / (helpful.max() + 1e-300)


def variance(context: StrategyContext) -> PosteriorInfluence:
    """Top-n by the posterior variance of the influence, ``E_p[I(z, R, y)^2]``."""
    return PosteriorInfluence(
        context.X_reference, context.y_reference, "variance", context.random_state
    )


def helpful(context: StrategyContext) -> PosteriorInfluence:
    """Top-n by the expected helpful influence, ``E_p[max(-I(z, R, y), 0)]``."""
    return PosteriorInfluence(
        context.X_reference, context.y_reference, "helpful", context.random_state
    )


def badge(context: StrategyContext) -> Badge:
    """Plain BADGE: k-means++ on ``(p - e_top) (x) h``, no influence."""
    return Badge(context.X_reference, context.y_reference, False, context.random_state)


def isal_badge(context: StrategyContext) -> Badge:
    """BADGE with rows scaled by ``sqrt(max(-I, 0))`` (no weight for unhelpful samples)."""
    return Badge(context.X_reference, context.y_reference, True, context.random_state)


def isal_badge_rms(context: StrategyContext) -> Badge:
    """BADGE with rows scaled by the square root of the posterior RMS influence."""
    return Badge(context.X_reference, context.y_reference, "rms", context.random_state)


def isal_badge_rank(context: StrategyContext) -> Badge:
    """BADGE with rows scaled by ``sqrt(0.5 + 0.5 x`` helpfulness percentile)."""
    return Badge(context.X_reference, context.y_reference, "rank", context.random_state)
