"""Paired comparisons of strategies: who wins, ties or loses, computed rather than written.

Every strategy of an experiment runs on the same seeds (the same split, initial labels and
initial network), so two strategies are compared seed by seed. :func:`paired_comparison`
tests the per-seed AULC differences against a baseline with the Wilcoxon signed-rank test
(scipy, which scikit-learn already requires); :func:`per_step_comparison` gives the mean
difference at every labelled-set size, to see where a strategy falls below random sampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

__all__ = ["ALPHA", "paired_comparison", "per_step_comparison", "verdict", "wilcoxon_p"]

#: Two-sided significance level of the verdicts.
ALPHA = 0.05


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test that the differences centre on 0.

    Parameters
    ----------
    differences : sequence of float
        Paired differences, one per seed.

    Returns
    -------
    float
        The p-value (exact for small samples without ties or zeros, as scipy
        chooses); 1.0 when every difference is 0, NaN without any difference.

    Examples
    --------
    >>> from skisal.experiments.statistics import wilcoxon_p
    >>> round(wilcoxon_p([0.3, 0.1, 0.2, 0.5, 0.4, 0.6]), 4)  # 6 of 6 better: the least p
    0.0312
    >>> wilcoxon_p([0.0, 0.0, 0.0])
    1.0
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        return math.nan
    if not np.any(d):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def verdict(mean_difference: float, p_value: float, alpha: float = ALPHA) -> str:
    """``"wins"``, ``"loses"`` (significant at ``alpha``, by the sign) or ``"ties"``.

    Parameters
    ----------
    mean_difference : float
        Mean of strategy minus baseline.
    p_value : float
        From :func:`wilcoxon_p`.
    alpha : float, default=0.05
        Significance level.

    Returns
    -------
    str
        The verdict; "ties" means no significant difference, not equality.

    Examples
    --------
    >>> from skisal.experiments.statistics import verdict
    >>> verdict(0.4, 0.01), verdict(-0.4, 0.01), verdict(0.4, 0.3)
    ('wins', 'loses', 'ties')
    """
    if not p_value < alpha:  # NaN too
        return "ties"
    return "wins" if mean_difference > 0 else "loses" if mean_difference < 0 else "ties"


def _differences(
    summary: Mapping[str, Mapping[str, Any]], other: str, key: str, argument: str
) -> dict[str, np.ndarray]:
    """Each strategy's ``key`` minus ``other``'s, in points (x100), paired by seed."""
    if other not in summary:
        raise ValueError(
            f"{argument} {other!r} is not one of the strategies compared: {list(summary)}."
        )
    base = np.asarray(summary[other][key], dtype=np.float64)
    return {
        name: 100 * (np.asarray(s[key], dtype=np.float64) - base)
        for name, s in summary.items()
        if name != other
    }


def paired_comparison(
    summary: Mapping[str, Mapping[str, Any]], baseline: str, alpha: float = ALPHA
) -> dict[str, dict[str, Any]]:
    """Every strategy's AULC against ``baseline``'s, seed by seed, with a Wilcoxon test.

    Parameters
    ----------
    summary : dict
        Per strategy, its ``"aulc_per_seed"`` (as :func:`summarise` returns it).
    baseline : str
        The strategy to compare with.
    alpha : float, default=0.05
        Significance level of the verdicts.

    Returns
    -------
    dict
        Per strategy other than ``baseline``: ``"baseline"``, ``"difference_per_seed"``,
        ``"difference_mean"``, ``"difference_std"`` (AULC points, i.e. x100), ``"better"``,
        ``"worse"``, ``"equal"`` (seed counts), ``"p_value"`` and ``"verdict"``.

    Raises
    ------
    ValueError
        If ``baseline`` is not one of the strategies.

    Examples
    --------
    >>> from skisal.experiments.statistics import paired_comparison
    >>> summary = {"isal": {"aulc_per_seed": [0.91, 0.93, 0.90, 0.95, 0.92, 0.94]},
    ...            "margin": {"aulc_per_seed": [0.90, 0.92, 0.89, 0.93, 0.91, 0.92]}}
    >>> result = paired_comparison(summary, "margin")["isal"]
    >>> result["better"], round(result["difference_mean"], 2), result["verdict"]
    (6, 1.33, 'wins')
    """
    out = {}
    for name, d in _differences(summary, baseline, "aulc_per_seed", "baseline").items():
        p = wilcoxon_p(d)
        out[name] = {
            "baseline": baseline,
            "difference_per_seed": d.tolist(),
            "difference_mean": float(d.mean()),
            "difference_std": float(d.std()),
            "better": int((d > 0).sum()),
            "worse": int((d < 0).sum()),
            "equal": int((d == 0).sum()),
            "p_value": p,
            "verdict": verdict(float(d.mean()), p, alpha),
        }
    return out


def per_step_comparison(
    summary: Mapping[str, Mapping[str, Any]], reference: str = "random"
) -> dict[str, dict[str, Any]]:
    """Every strategy's score minus ``reference``'s at each labelled-set size, paired by seed.

    Parameters
    ----------
    summary : dict
        Per strategy, its ``"n_labeled"`` and ``"score_per_seed"``.
    reference : str, default="random"
        The strategy to compare with.

    Returns
    -------
    dict
        Per strategy other than ``reference``: ``"reference"``, ``"n_labeled"``,
        ``"difference_mean"`` and ``"difference_std"`` per step (points),
        ``"better"`` (seeds above the reference per step) and ``"below"``: the
        labelled-set sizes at which the mean is below the reference's.

    Raises
    ------
    ValueError
        If ``reference`` is not one of the strategies.

    Examples
    --------
    >>> from skisal.experiments.statistics import per_step_comparison
    >>> summary = {
    ...     "isal": {"n_labeled": [10, 20, 30], "score_per_seed": [[0.5, 0.55, 0.8]]},
    ...     "random": {"n_labeled": [10, 20, 30], "score_per_seed": [[0.5, 0.6, 0.7]]}}
    >>> step = per_step_comparison(summary)["isal"]
    >>> [round(x, 1) for x in step["difference_mean"]], step["below"]
    ([0.0, -5.0, 10.0], [20])
    """
    out = {}
    for name, d in _differences(summary, reference, "score_per_seed", "reference").items():
        s = summary[name]
        mean = d.mean(axis=0)
        out[name] = {
            "reference": reference,
            "n_labeled": list(s["n_labeled"]),
            "difference_mean": mean.tolist(),
            "difference_std": d.std(axis=0).tolist(),
            "better": (d > 0).sum(axis=0).astype(int).tolist(),
            "below": [n for n, m in zip(s["n_labeled"], mean, strict=True) if m < 0],
        }
    return out
