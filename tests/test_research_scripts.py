"""The research scripts (``research/``) still run through ``skisal.experiments``, at tiny sizes.

Each study of ``research/reproduce.py`` is checked to be a valid configuration; the studies
that together use every research strategy run one seed of one query, and the diagnostics
scripts (replay, per-query logs, spectrum) run on those records.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("modAL")
pytest.importorskip("scipy")

from research import (
    probes,
    query_logs,
    replay,
    reproduce,
    spectrum,
    strategies,
    tables,
    weak_model,
)
from skisal import InfluenceQueryStrategy
from skisal.experiments import StrategyContext, load_dataset
from skisal.experiments.strategies import strategy_factory

#: Studies that, with the digits-only variants below, run every strategy of the studies.
RUN = [
    "digits-contenders",
    "breast_cancer-variants",
    "breast_cancer-posterior",
    "breast_cancer-badge",
    "solver-breast_cancer",
    "subsample-breast_cancer",
    "digits-margin",
]


def _tiny_args(name: str) -> list[str]:
    """One seed, one query of 2, one epoch; the test set takes all but 40 pool samples."""
    study = reproduce.STUDIES[name]
    dataset = load_dataset(study.dataset)
    reference = study.sizes.get("reference_size", dataset.reference_size)
    test_size = len(dataset.y) - reference - 10 - 40
    sizes = ["--steps", "1", "--epochs", "1", "--query-size", "2", "--initial-size", "10"]
    return [name, "--seeds", "1", *sizes, "--test-size", str(test_size)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Study -> (its run folder, its table)."""
    result = {}
    for name in RUN:
        out = tmp_path_factory.mktemp(name)
        result[name] = (out, reproduce.main([*_tiny_args(name), "--out", str(out)]))
    return result


@pytest.mark.parametrize("name", list(reproduce.STUDIES))
def test_every_study_is_a_valid_configuration(name):
    study = reproduce.STUDIES[name]
    config = reproduce.config_of(study)
    config.validate(len(load_dataset(study.dataset).y))  # imports every strategy factory
    assert len(config.seeds) == len(study.seeds)
    assert len(set(config.strategies)) == len(study.strategies)


def test_each_study_tabulates_every_strategy(runs):
    for name, (out, text) in runs.items():
        assert (out / "table.md").read_text() == text + "\n"
        for label in reproduce.STUDIES[name].strategies:
            assert f"| `{label}` |" in text, (name, label)


def test_the_study_variants_reference_the_bank_as_published():
    names = reproduce.STUDIES["digits-variants"].recorded_names()
    assert names["isal+eai"] == "research.strategies:isal+eai+ref100"
    assert names["isal+refbig"] == "research.strategies:isal+refbig"  # the whole bank
    assert names["margin"] == "margin"
    lead = reproduce.STUDIES["digits-badge"].recorded_names()
    assert lead["isal"] == "research.strategies:isal"  # CG, not skisal's current default


def test_replay_rebuilds_the_recorded_learner(runs):
    for name, strategy in [
        ("digits-contenders", "research.strategies:isal+eai+div_feat_m3+ref100"),
        ("breast_cancer-variants", "research.strategies:isal+spec0.1+ref50"),
    ]:
        out = runs[name][0]
        for step in (0, 1):
            rebuilt = replay.learner_at(out, strategy, seed=0, step=step)
            assert rebuilt.test_score() == rebuilt.score
        assert rebuilt.next_selected is None and len(rebuilt.pool) == 38
    with pytest.raises(ValueError, match="no record of strategy 'margin', seed 0, step 2"):
        replay.learner_at(runs["digits-margin"][0], "margin", 0, 2)


def test_digits_only_variants_select_best_first(runs):
    """The variants only digits-variants runs, one query each on the CNN, best score first."""
    names = reproduce.STUDIES["digits-variants"].recorded_names()
    ran = {*reproduce.STUDIES["digits-contenders"].strategies}
    ran |= {*reproduce.STUDIES["breast_cancer-variants"].strategies}
    rebuilt = replay.learner_at(runs["digits-contenders"][0], "margin", seed=0, step=0)
    assert len(set(names) - ran) == 6
    for label in set(names) - ran:
        strategy = strategy_factory(names[label])(rebuilt.context)
        index, scores = strategy(rebuilt.learner, rebuilt.X_pool, n_instances=3)
        assert len(set(index)) == 3 and np.all(np.diff(scores) >= 0), label
        assert np.array_equal(scores, strategy.scores_[index]), label


def test_query_logs_repeat_the_recorded_selection(runs, capsys):
    out = runs["breast_cancer-variants"][0]
    args = ["breast_cancer-variants", "isal+spec0.1", "marginscore+div_feat_m3", "isal+eai"]
    text = query_logs.main([*args, "--out", str(out), "--seeds", "1", "--queries", "1"])
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 3 and all(row.endswith("| 1/1 |") for row in rows)
    spec = rows[0].split(" | ")
    assert float(spec[-2]) > 0 and float(spec[-3]) == pytest.approx(0.1 * float(spec[-2]), rel=0.01)


def test_spectrum_agrees_with_power_iteration(runs):
    out = runs["digits-margin"][0]
    records = spectrum.main(
        [str(out), "--seeds", "0", "--rounds", "0", "1", "--reference-rows", "20"]
    )
    assert [r["n_labeled"] for r in records] == [10, 12]
    for r in records:
        assert r["lambda_max_power_iteration"] == pytest.approx(r["lambda_max"], rel=0.02)
        shares = list(r["v_share_gt"].values())
        assert 1 >= shares[0] >= shares[1] >= shares[2] >= 0
    assert json.loads((out / "spectrum.json").read_text()) == records


def test_probes_recompute_skisal_uuic_scores():
    dataset = load_dataset("wine")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(dataset.y))
    labelled, reference, pool = order[:40], order[40:70], order[70:]
    X, y = dataset.X, dataset.y
    torch.manual_seed(0)
    estimator = dataset.make_estimator(30).fit(X[labelled], y[labelled])
    isal = strategies.paper_isal(X[reference], y[reference], 0)
    scores = isal.influence(estimator, X[pool], X_labeled=X[labelled], y_labeled=y[labelled])
    logits, tangent = probes.logits_and_tangent(estimator, X[pool], isal.s_test_)
    influence = probes.influence_per_label(logits, tangent).numpy()
    uuic = influence[np.arange(len(pool)), logits.argmax(1).numpy()]
    np.testing.assert_allclose(uuic, scores, atol=1e-4 * np.abs(scores).max())
    expected = (logits.softmax(1).numpy() * influence).sum(1)  # exactly 0 for softmax CE
    np.testing.assert_allclose(expected, 0, atol=1e-9 * np.abs(influence).max())


def test_variant_names_are_checked():
    spec = strategies.parse("isal+eai+uncdiv_badge_m3+ref100+damp0.5")
    assert (spec.eai, spec.rule, spec.embedding, spec.factor) == (True, "uncdiv", "badge", 3)
    assert (spec.reference_rows, spec.isal) == (100, {"damping": 0.5})
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        strategies.parse("isal+bogus")
    with pytest.raises(ValueError, match="option 'eai' needs the 'isal' base"):
        strategies.parse("marginscore+eai")
    with pytest.raises(ValueError, match=r"cannot load strategy .*unknown base 'nonsense'"):
        strategy_factory("research.strategies:nonsense")


def test_reference_rows_first_or_class_balanced():
    X, y = np.arange(12), np.array([0] * 8 + [1] * 4)
    assert strategies.reference_rows(X, y, 5, False)[0].tolist() == [0, 1, 2, 3, 4]
    assert strategies.reference_rows(X, y, None, False)[0].tolist() == list(range(12))
    assert strategies.reference_rows(X, y, 4, True)[0].tolist() == [0, 1, 8, 9]


def test_paired_statistics():
    d = tables.paired(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 2.0, 1.0, 5.0]), ddof=1)
    assert (d["mean"], d["wins"], d["ties"], d["losses"]) == (0.5, 2, 1, 1)
    assert d["std"] == pytest.approx(np.std([1.0, 0.0, 2.0, -1.0], ddof=1))


def _wine_learner():
    from modAL.models import ActiveLearner

    dataset = load_dataset("wine")
    order = np.random.default_rng(0).permutation(len(dataset.y))
    labelled, reference, pool = order[:40], order[40:70], order[70:]
    X, y = dataset.X, dataset.y
    torch.manual_seed(0)
    learner = ActiveLearner(
        estimator=dataset.make_estimator(30), X_training=X[labelled], y_training=y[labelled]
    )
    return learner, StrategyContext(X[reference], y[reference], random_state=0), X[pool]


@pytest.mark.parametrize(
    "name",
    [
        "influence_balanced",
        "margin_balanced",
        "random_balanced",
        "hybrid_balanced",
        "uncf_balanced",
        "gated_diverse",
        "gated_uncf",
    ],
)
def test_weak_model_candidates_select_distinct_pool_rows(name):
    learner, context, X_pool = _wine_learner()
    idx, _ = getattr(weak_model, name)(context)(learner, X_pool, n_instances=6)
    assert len(set(np.asarray(idx).tolist())) == 6 and max(idx) < len(X_pool)


def test_gated_diverse_is_what_shipped_as_selection_auto():
    learner, context, X_pool = _wine_learner()
    X_ref = context.X_reference
    wrong = (learner.predict(X_ref) + 1) % 3  # accuracy 0: class-balanced margin
    for y_ref, threshold, rule in [(context.y_reference, 0.0, "diverse"), (wrong, 0.5, "margin")]:
        gated = weak_model.Gated(X_ref, y_ref, "diverse", threshold, random_state=0)
        shipped = InfluenceQueryStrategy(
            X_ref, y_ref, min_reference_accuracy=threshold, random_state=0
        )
        expected = shipped(learner, X_pool, n_instances=6)[0]
        assert shipped.diagnostics_.selection == rule
        np.testing.assert_array_equal(gated(learner, X_pool, n_instances=6)[0], expected)
