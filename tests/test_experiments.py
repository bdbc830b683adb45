"""Experiments: datasets, strategies, the resumable runner, reports and the command line."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from skisal.baselines import RandomSampling
from skisal.experiments import (
    DATASETS,
    STRATEGIES,
    Dataset,
    ExperimentConfig,
    StepRecord,
    StrategyContext,
    aulc,
    format_summary,
    labels_to_reach,
    load_dataset,
    load_records,
    make_strategy,
    run_experiment,
    split_indices,
    summarise,
    write_report,
)
from skisal.experiments import strategies as strategies_module
from skisal.experiments.cli import main, parse_args

CONFIG = ExperimentConfig.for_dataset(
    "wine", ["random", "uncertainty", "isal"], [0, 1], steps=2, epochs=5
)


def _key(record: StepRecord) -> tuple:
    """Everything but the timings."""
    return (
        record.strategy,
        record.seed,
        record.step,
        record.n_labeled,
        record.score,
        record.selected,
    )


@pytest.fixture(scope="module")
def wine() -> Dataset:
    return load_dataset("wine")


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, wine):
    """The reference run: uninterrupted, in its own folder."""
    out = tmp_path_factory.mktemp("run_a")
    records = run_experiment(CONFIG, out, dataset=wine)
    return out, records


# -- datasets and strategies ---------------------------------------------------------------


def test_split_indices_partition_the_dataset():
    config = CONFIG
    split = split_indices(178, config, seed=0)
    parts = [split.test, split.reference, split.initial, split.pool]
    assert [len(p) for p in parts] == [58, 30, 10, 80]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(178))
    again = split_indices(178, config, seed=0)
    np.testing.assert_array_equal(again.pool, split.pool)
    assert not np.array_equal(split_indices(178, config, seed=1).test, split.test)


def custom_dataset() -> Dataset:
    return dataclasses.replace(load_dataset("wine"), name="my_wine")


def not_a_dataset():
    return 42


def test_load_dataset_builtin_custom_and_errors():
    wine = load_dataset("wine")
    assert wine.X.shape == (178, 13) and wine.X.dtype == np.float32
    assert wine.y.dtype == np.int64 and set(wine.y.tolist()) == {0, 1, 2}
    assert load_dataset(f"{__name__}:custom_dataset").name == "my_wine"
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(ValueError, match="cannot load dataset"):
        load_dataset("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="cannot load dataset"):
        load_dataset(f"{__name__}:missing_function")
    with pytest.raises(TypeError, match="not a Dataset"):
        load_dataset(f"{__name__}:not_a_dataset")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_builtin_estimators_know_every_class(name):
    dataset = load_dataset(name)
    n_classes = int(dataset.y.max()) + 1
    labelled = np.flatnonzero(dataset.y != 0)[:30]  # class 0 missing from the labelled set
    estimator = dataset.make_estimator(1).fit(dataset.X[labelled], dataset.y[labelled])
    proba = estimator.predict_proba(dataset.X[:5])
    assert proba.shape == (5, n_classes)
    n = len(dataset.y)
    assert (
        dataset.test_size
        + dataset.reference_size
        + dataset.initial_size
        + (dataset.steps * dataset.query_size)
        <= n
    )


def custom_strategy(context: StrategyContext):
    return RandomSampling(random_state=context.random_state + 1000)


def test_make_strategy_builtin_custom_and_unknown(wine):
    context = StrategyContext(wine.X[:10], wine.y[:10], random_state=7)
    for name in STRATEGIES:
        assert callable(make_strategy(name, context)), name
    isal = make_strategy("isal", context)
    assert isal.random_state == 7 and isal.X_reference is context.X_reference
    assert make_strategy("gradient_similarity", context).inverse_hvp == "identity"
    assert make_strategy("random", context).random_state == 7
    assert make_strategy(f"{__name__}:custom_strategy", context).random_state == 1007
    with pytest.raises(ValueError, match="unknown strategy 'bogus'"):
        make_strategy("bogus", context)
    with pytest.raises(ValueError, match="cannot load strategy"):
        make_strategy("no_such_module_xyz:f", context)


# -- runner --------------------------------------------------------------------------------


def test_runner_records_and_their_invariants(run_a, wine):
    out, records = run_a
    steps, q = CONFIG.steps, CONFIG.query_size
    assert len(records) == len(CONFIG.strategies) * len(CONFIG.seeds) * (steps + 1)
    # (seed, strategy, step) order.
    expected_order = [
        (seed, name, step)
        for seed in CONFIG.seeds
        for name in CONFIG.strategies
        for step in range(steps + 1)
    ]
    assert [(r.seed, r.strategy, r.step) for r in records] == expected_order
    for seed in CONFIG.seeds:
        split = split_indices(len(wine.y), CONFIG, seed)
        forbidden = set(np.concatenate([split.test, split.reference, split.initial]).tolist())
        pool = set(split.pool.tolist())
        step0 = set()
        for name in CONFIG.strategies:
            run = [r for r in records if (r.strategy, r.seed) == (name, seed)]
            chosen: list[int] = []
            for r in run:
                assert r.n_labeled == CONFIG.initial_size + r.step * q
                assert 0.0 <= r.score <= 1.0 and r.fit_seconds >= 0
                if r.step == 0:
                    assert r.selected == () and r.query_seconds is None
                    step0.add(r.score)
                else:
                    assert len(r.selected) == q and r.query_seconds >= 0
                    assert set(r.selected) <= pool and not set(r.selected) & forbidden
                chosen.extend(r.selected)
            assert len(chosen) == len(set(chosen)) == steps * q  # never chosen twice
        assert len(step0) == 1, f"seed {seed}: strategies start from different networks"
    # On disk: the same records, and the configuration.
    assert [_key(r) for r in load_records(out)] == [_key(r) for r in records]
    assert json.loads((out / "config.json").read_text())["strategies"] == list(CONFIG.strategies)


def test_rerunning_a_finished_folder_does_no_work(run_a, wine):
    out, records = run_a
    before = (out / "records.jsonl").read_bytes()

    def no_training(epochs):
        raise AssertionError("a finished run was trained again")

    again = run_experiment(
        CONFIG, out, dataset=dataclasses.replace(wine, make_estimator=no_training)
    )
    assert again == records
    assert (out / "records.jsonl").read_bytes() == before


@pytest.mark.parametrize("kept", [1, 7, 13])
def test_resume_from_a_cut_records_file(run_a, wine, tmp_path, kept):
    out_a, records_a = run_a
    lines = (out_a / "records.jsonl").read_text().splitlines(keepends=True)
    shutil.copy(out_a / "config.json", tmp_path / "config.json")
    half = lines[kept][: len(lines[kept]) // 2]  # a write cut short
    (tmp_path / "records.jsonl").write_text("".join(lines[:kept]) + half)
    assert len(load_records(tmp_path)) == kept

    resumed = run_experiment(CONFIG, tmp_path, dataset=wine)
    assert [_key(r) for r in resumed] == [_key(r) for r in records_a]
    on_disk = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(on_disk) == len(records_a)
    assert [_key(r) for r in load_records(tmp_path)] == [_key(r) for r in records_a]
    # The finished steps were kept as they were, not rerun.
    assert on_disk[:kept] == [line.rstrip("\n") for line in lines[:kept]]


def test_resume_after_keyboard_interrupt(run_a, wine, tmp_path, monkeypatch):
    _, records_a = run_a
    config = dataclasses.replace(CONFIG, strategies=("random", "uncertainty"), seeds=(0,))
    expected = [_key(r) for r in records_a if r.seed == 0 and r.strategy in config.strategies]
    calls: list[int] = []

    class Interrupted(RandomSampling):
        def __call__(self, classifier, X_pool, n_instances=1):
            calls.append(1)
            if len(calls) >= 2:  # from the 2nd query on (modAL 0.4.2 calls again on error)
                raise KeyboardInterrupt
            return super().__call__(classifier, X_pool, n_instances)

    monkeypatch.setitem(
        STRATEGIES, "random", lambda context: Interrupted(random_state=context.random_state)
    )
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path, dataset=wine)
    assert len(calls) >= 2
    # Steps 0 and 1 of the first run are on disk, nothing else.
    assert [_key(r) for r in load_records(tmp_path)] == expected[:2]

    monkeypatch.undo()
    assert not isinstance(
        strategies_module.STRATEGIES["random"](StrategyContext(None, None, 0)), Interrupted
    )
    resumed = run_experiment(config, tmp_path, dataset=wine)
    assert [_key(r) for r in resumed] == expected
    assert [_key(r) for r in load_records(tmp_path)] == expected


def test_resume_reseeds_a_stateful_strategy(wine, tmp_path, monkeypatch):
    """A strategy drawing from a RandomState instance still resumes to the same choices."""
    monkeypatch.setitem(
        STRATEGIES,
        "stateful",
        lambda context: RandomSampling(random_state=np.random.RandomState(context.random_state)),
    )
    config = dataclasses.replace(CONFIG, strategies=("stateful",), seeds=(0,), steps=3)
    full = run_experiment(config, tmp_path / "full", dataset=wine)
    (tmp_path / "cut").mkdir()
    shutil.copy(tmp_path / "full" / "config.json", tmp_path / "cut")
    lines = (tmp_path / "full" / "records.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "cut" / "records.jsonl").write_text("".join(lines[:2]))
    resumed = run_experiment(config, tmp_path / "cut", dataset=wine)
    assert [_key(r) for r in resumed] == [_key(r) for r in full]


def test_existing_folder_with_another_configuration_is_refused(run_a, wine):
    out, _ = run_a
    before = (out / "records.jsonl").read_bytes()
    other = dataclasses.replace(CONFIG, steps=3)
    with pytest.raises(ValueError, match=r"another configuration.*steps"):
        run_experiment(other, out, dataset=wine)
    assert (out / "records.jsonl").read_bytes() == before


def test_every_builtin_strategy_runs(wine, tmp_path):
    config = ExperimentConfig.for_dataset("wine", list(STRATEGIES), [3], steps=1, epochs=3)
    records = run_experiment(config, tmp_path, dataset=wine)
    assert len(records) == 2 * len(STRATEGIES)
    split = split_indices(len(wine.y), config, 3)
    for r in records:
        if r.step == 1:
            assert len(set(r.selected)) == config.query_size, r.strategy
            assert set(r.selected) <= set(split.pool.tolist()), r.strategy
    assert len({r.score for r in records if r.step == 0}) == 1


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (dict(query_size=0), "query_size must be a positive integer"),
        (dict(initial_size=-1), "initial_size must be a positive integer"),
        (dict(test_size=True), "test_size must be a positive integer"),
        (dict(reference_size=2.5), "reference_size must be a positive integer"),
        (dict(steps=17), r"initial_size \+ steps x query_size = 95 labels.*only 90"),
        (dict(initial_size=86), r"initial_size \+ steps x query_size = 96"),
        (dict(strategies=()), "strategies"),
        (dict(seeds=(0, 0)), "seeds"),
        (dict(seeds=()), "seeds"),
    ],
)
def test_validate_names_the_fields(changes, match, tmp_path):
    config = dataclasses.replace(CONFIG, **changes)
    with pytest.raises(ValueError, match=match):
        config.validate(178)
    with pytest.raises(ValueError, match=match):
        run_experiment(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_validate_accepts_exact_fit(wine, tmp_path):
    # 10 + 16 x 5 = 90 = 178 - 58 - 30: the last query takes the pool's last samples.
    config = dataclasses.replace(CONFIG, strategies=("random",), seeds=(0,), steps=16, epochs=1)
    assert config.validate(len(wine.y)) is None
    records = run_experiment(config, tmp_path, dataset=wine)
    assert [r.n_labeled for r in records] == list(range(10, 91, 5))
    pool = split_indices(len(wine.y), config, seed=0).pool
    assert sorted(i for r in records for i in r.selected) == sorted(pool.tolist())


def test_for_dataset_defaults_and_unknown_size():
    config = ExperimentConfig.for_dataset("wine", ["random"], [0, 1], query_size=3)
    assert (config.query_size, config.steps, config.test_size, config.epochs) == (3, 10, 58, 100)
    assert config.seeds == (0, 1) and config.strategies == ("random",)
    with pytest.raises(TypeError, match="unknown sizes"):
        ExperimentConfig.for_dataset("wine", ["random"], [0], step=3)


def test_for_dataset_does_not_replace_explicit_zero():
    config = ExperimentConfig.for_dataset("wine", ["random"], [0], steps=0, epochs=0)
    assert (config.steps, config.epochs) == (0, 0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        config.validate(178)
    config = ExperimentConfig.for_dataset("wine", ["random"], [0], epochs=0)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        config.validate(178)


# -- report --------------------------------------------------------------------------------


def test_aulc_hand_computed():
    assert aulc([10, 20, 30], [0.5, 0.7, 0.9]) == pytest.approx(0.7)
    # Uneven spacing: (0.5 x 10 + 1 x 30) / 40.
    assert aulc([0, 10, 40], [0.0, 1.0, 1.0]) == pytest.approx(0.875)
    assert aulc([5, 15, 25, 45], [0.3] * 4) == pytest.approx(0.3)
    assert aulc([7], [0.42]) == 0.42


def test_labels_to_reach_hand_computed():
    assert labels_to_reach([100, 200, 300], [0.8, 0.9, 0.95], 0.85) == pytest.approx(150.0)
    assert labels_to_reach([100, 200, 300], [0.8, 0.9, 0.95], 0.8) == 100.0  # first point
    assert labels_to_reach([100, 200, 300], [0.8, 0.9, 0.95], 0.5) == 100.0
    assert labels_to_reach([100, 200, 300], [0.8, 0.9, 0.95], 0.9) == pytest.approx(200.0)
    assert math.isnan(labels_to_reach([100, 200], [0.8, 0.9], 0.95))
    # The first crossing counts, not a later one: 10 + (0.7 - 0.5) / (0.9 - 0.5) x 10.
    assert labels_to_reach([10, 20, 30, 40], [0.5, 0.9, 0.6, 0.95], 0.7) == pytest.approx(15.0)
    assert labels_to_reach([10, 20, 40], [0.25, 0.5, 1.0], 0.75) == pytest.approx(30.0)


def _records(curves: dict[tuple[str, int], list[float]], n0=10, q=10) -> list[StepRecord]:
    out = []
    for (name, seed), scores in curves.items():
        for step, score in enumerate(scores):
            out.append(
                StepRecord(
                    name,
                    seed,
                    step,
                    n0 + q * step,
                    score,
                    None if step == 0 else 0.5 * step,
                    1.0,
                    () if step == 0 else tuple(range(step * q, step * q + q)),
                )
            )
    return out


SYNTHETIC = {
    ("random", 0): [0.25, 0.5, 0.5],
    ("random", 1): [0.25, 0.5, 0.625],
    ("A", 0): [0.25, 0.75, 0.875],
    ("A", 1): [0.25, 0.5, 0.875],
    ("A", 2): [0.0, 0.0, 0.0],  # seed 2: random unfinished, so left out
    ("random", 2): [0.0, 0.0],
}


def test_summarise_hand_computed():
    summary = summarise(_records(SYNTHETIC))
    assert list(summary) == ["random", "A"]
    r, a = summary["random"], summary["A"]
    assert r["seeds"] == a["seeds"] == [0, 1]
    assert a["n_labeled"] == [10, 20, 30]
    np.testing.assert_allclose(r["score_mean"], [0.25, 0.5, 0.5625])
    np.testing.assert_allclose(r["score_std"], [0, 0, 0.0625])
    np.testing.assert_allclose(a["score_mean"], [0.25, 0.625, 0.875])
    assert (r["final_mean"], a["final_mean"]) == (0.5625, 0.875)
    # A's AULCs: (5 + 8.125) / 20 and (3.75 + 6.875) / 20.
    assert a["aulc_mean"] == pytest.approx((0.65625 + 0.53125) / 2)
    assert a["aulc_std"] == pytest.approx(0.0625)
    # A reaches random's 0.5625 at 10 + (0.5625 - 0.25) / (0.625 - 0.25) x 10 = 55/3 labels.
    assert a["labels_to_reach"]["random"] == pytest.approx(55 / 3)
    assert a["saved"]["random"] == pytest.approx(1 - (55 / 3) / 30)
    assert math.isnan(r["labels_to_reach"]["A"]) and math.isnan(r["saved"]["A"])
    assert r["labels_to_reach"]["random"] == 30 and r["saved"]["random"] == 0
    assert a["saved"]["A"] == 0
    assert (a["best_other"], r["best_other"]) == ("random", "A")
    assert a["query_seconds_mean"] == pytest.approx(0.75)  # steps 1 and 2 only
    text = format_summary(summary)  # A, not ISAL, is the best baseline: labels to its 87.5%
    rows = {line.split()[1]: line for line in text.splitlines() if line[:1].isdigit()}
    assert list(rows) == ["A", "random"]  # by AULC
    assert "30 (reference)" in rows["A"] and "not reached" in rows["random"]
    # AULC minus random's per seed: 65.625 - 43.75 and 53.125 - 46.875 points.
    assert "+14.06 ± 7.81" in rows["A"]


def test_summarise_without_a_common_finished_seed():
    with pytest.raises(ValueError, match="no seed"):
        summarise([])
    partial = {("random", 0): [0.5, 0.6], ("A", 0): [0.5]}
    with pytest.raises(ValueError, match="no seed"):
        summarise(_records(partial))


def test_write_report_files(tmp_path):
    records = _records(SYNTHETIC)
    summary = write_report(records, tmp_path, title="t")

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    text = (tmp_path / "summary.json").read_text()
    loaded = json.loads(text, parse_constant=no_constants)
    assert loaded["random"]["saved"]["A"] is None  # never reached: null, not NaN
    assert loaded["A"]["saved"]["random"] == pytest.approx(summary["A"]["saved"]["random"])
    with (tmp_path / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(records)
    assert rows[1]["selected"] == " ".join(map(str, records[1].selected))
    assert rows[0]["strategy"] == "random" and float(rows[2]["score"]) == 0.5
    png = (tmp_path / "learning_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    table = (tmp_path / "summary.md").read_text().split("\n\n")[0].splitlines()
    assert len(table) == 2 + len(summary)  # header, rule, one row per strategy
    row = next(line for line in table if line.startswith("| `A`"))
    aulc_cell = f"{100 * summary['A']['aulc_mean']:.2f} ± {100 * summary['A']['aulc_std']:.2f}"
    assert aulc_cell in row and "never" not in row


def test_report_of_a_real_run(run_a, tmp_path):
    _, records = run_a
    summary = write_report(records, tmp_path)
    assert set(summary) == set(CONFIG.strategies)
    for s in summary.values():
        assert s["seeds"] == [0, 1] and s["n_labeled"] == [10, 15, 20]
    json.loads((tmp_path / "summary.json").read_text(), parse_constant=lambda c: 1 / 0)


# -- command line --------------------------------------------------------------------------


def test_cli_quick_run_writes_the_report_and_resumes(tmp_path, capsys):
    argv = ["--dataset", "wine", "--quick", "--out", str(tmp_path), "--no-progress"]
    argv += ["--strategies", "random", "margin"]
    assert main(argv) == 0
    for name in ("config.json", "records.jsonl", "results.csv", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
    records = load_records(tmp_path)
    assert len(records) == 2 * (2 + 1)  # --quick: 1 seed, 2 steps
    assert {r.strategy for r in records} == {"random", "margin"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["seeds"], config["steps"], config["epochs"]) == ([0], 2, 10)
    printed = capsys.readouterr().out
    assert max(len(line) for line in printed.splitlines()) <= 100
    assert "Test accuracy in % (higher is better)" in printed and "vs random" in printed
    assert f"Wrote to {tmp_path}" in printed and "summary.md" in printed
    rows = [line.split()[1] for line in printed.splitlines() if line[:2] in ("1 ", "2 ")]
    assert sorted(rows) == ["margin", "random"]

    assert main(argv) == 0  # a second time: resumes, nothing to do
    assert "resuming from" in capsys.readouterr().out
    assert [_key(r) for r in load_records(tmp_path)] == [_key(r) for r in records]
    with pytest.raises(ValueError, match="another configuration"):
        main([*argv, "--steps", "3"])
    assert main([*argv, "--steps", "3", "--overwrite"]) == 0
    assert len(load_records(tmp_path)) == 2 * (3 + 1)


def test_cli_rejects_unknown_dataset_and_strategy(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        main(["--dataset", "nope", "--quick", "--out", str(tmp_path), "--no-progress"])
    argv = ["--dataset", "wine", "--quick", "--out", str(tmp_path / "b"), "--no-progress"]
    with pytest.raises(ValueError, match="unknown strategy 'bogus'"):
        main([*argv, "--strategies", "bogus"])


def test_unknown_strategy_is_refused_before_any_work(wine, tmp_path):
    config = dataclasses.replace(CONFIG, strategies=("random", "bogus"), seeds=(0,))
    with pytest.raises(ValueError, match="unknown strategy 'bogus'"):
        run_experiment(config, tmp_path, dataset=wine)
    assert load_records(tmp_path) == []
    assert not (tmp_path / "config.json").exists()


def test_cli_parse_args():
    args = parse_args(["--dataset", "wine", "--quick", "--steps", "4"])
    assert (args.seeds, args.steps, args.epochs) == (1, 4, 10)  # explicit beats --quick
    assert args.out == Path("results") / "wine"
    args = parse_args(["--dataset", "mypkg.data:load", "--strategies", "isal", "random", "isal"])
    assert args.strategies == ["isal", "random"] and args.seeds == 5
    assert args.out == Path("results") / "mypkg.data_load"
    with pytest.raises(SystemExit):
        parse_args(["--seeds", "0"])
