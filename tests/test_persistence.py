"""Saving and reloading a strategy and its last query (docs/guide/persistence.md).

A fitted :class:`~skisal.InfluenceQueryStrategy` round-trips through pickle, joblib and
``torch.save``: its parameters (the reference arrays included), every attribute of the last
query, and the selections it makes afterwards. A modAL learner holding it does too, in this
process and in a fresh one.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from test_strategy_attributes import documented_attributes

from conftest import learner_on_labelled, make_net
from skisal import InfluenceDiagnostics, InfluenceQueryStrategy, SolverReport

ROOT = Path(__file__).resolve().parents[1]

# What a query sets, as the class documents it (tests/test_strategy_attributes.py checks the
# documentation against a query and pins the set; here: all of them survive a round trip).
FITTED = documented_attributes(InfluenceQueryStrategy)


def _learner(digits, strategy: InfluenceQueryStrategy) -> ActiveLearner:
    """A modAL learner on the fixture's labelled digits, its network seeded."""
    torch.manual_seed(0)
    return learner_on_labelled(digits, make_net(max_epochs=5), strategy)


def _pickle(obj):
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _joblib(obj, path: Path):
    joblib.dump(obj, path / "strategy.joblib")
    return joblib.load(path / "strategy.joblib")


def assert_same(a, b, where: str = "", skip: tuple[str, ...] = ()) -> None:
    """``a`` and ``b`` hold equal values (arrays and tensors bit for bit), recursively.

    ``skip``: dataclass fields not compared (the seconds of ``diagnostics_.timings``).
    """
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, torch.Tensor):
        assert (a.dtype, a.device, a.shape) == (b.dtype, b.device, b.shape), where
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]", skip)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]", skip)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            if f.name not in skip:
                assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}", skip)
    elif isinstance(a, np.random.RandomState):
        assert_same(a.get_state(), b.get_state(), f"{where}.get_state()")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    elif a is None or isinstance(a, bool | int | float | str | np.generic):
        assert a == b, f"{where}: {a!r} != {b!r}"
    else:  # an object of skisal's or the user's: compare what it holds
        assert_same(vars(a), vars(b), f"{where}.__dict__", skip)


@pytest.fixture
def queried(digits):
    """A strategy after a real query of 5 samples on a fitted digits net, and the net."""
    torch.manual_seed(0)
    net = make_net(max_epochs=5).fit(digits["X_labeled"], digits["y_labeled"])
    strategy = InfluenceQueryStrategy(
        digits["X_reference"],
        digits["y_reference"],
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
        random_state=0,
        return_scores=False,
    )
    strategy(net, digits["X_pool"], n_instances=5)
    return strategy, net


@pytest.mark.parametrize("how", ["pickle", "joblib"])
def test_a_queried_strategy_round_trips_with_every_attribute(queried, tmp_path, how):
    strategy, _ = queried
    copy = _pickle(strategy) if how == "pickle" else _joblib(strategy, tmp_path)

    assert copy is not strategy
    assert_same(strategy.get_params(deep=False), copy.get_params(deep=False), "get_params")
    assert FITTED <= set(vars(copy))
    assert_same(vars(strategy), vars(copy), "vars")  # fitted and private attributes alike
    assert isinstance(copy.diagnostics_, InfluenceDiagnostics)
    assert isinstance(copy.diagnostics_.solver, SolverReport)
    assert str(copy.diagnostics_) == str(strategy.diagnostics_)
    assert all(t.device.type == "cpu" for t in copy.s_test_.values())


def test_the_explanation_of_the_last_query_survives(queried):
    pd = pytest.importorskip("pandas")
    strategy, _ = queried
    pd.testing.assert_frame_equal(_pickle(strategy).explain(), strategy.explain())


@pytest.mark.parametrize("random_state", [0, "instance"])
def test_a_reloaded_strategy_selects_as_the_original(queried, digits, random_state):
    """A new query, on a pool the first one did not see: the same selection and scores.

    With a RandomState instance, the pickle carries its state: both copies draw the same.
    """
    strategy, net = queried
    if random_state == "instance":
        strategy.set_params(random_state=np.random.RandomState(0), hessian_subsample=60)
    copy = _pickle(strategy)
    pool = digits["X_pool"][::-1][:150]

    picked = strategy(net, pool, n_instances=10)
    picked_again = copy(net, pool, n_instances=10)

    np.testing.assert_array_equal(picked_again, picked)
    # the new query's attributes too (but the seconds it took)
    assert_same(vars(strategy), vars(copy), "vars", skip=("timings",))
    assert np.unique(copy.scores_).size == len(pool)  # a real scoring, no ties


def test_a_strategy_saved_before_any_query_reloads_unfitted(digits):
    strategy = InfluenceQueryStrategy(digits["X_reference"], digits["y_reference"])
    blob = pickle.dumps(strategy)
    copy = pickle.loads(blob)

    assert not [k for k in vars(copy) if k.endswith("_")]
    with pytest.raises(NotFittedError, match="query"):
        copy.explain()
    assert_same(strategy.get_params(deep=False), copy.get_params(deep=False), "get_params")
    # The reference set is in the file: its size grows with X_reference.
    assert len(blob) > digits["X_reference"].nbytes + digits["y_reference"].nbytes


def test_clone_saves_the_configuration_without_the_last_query(queried):
    strategy, _ = queried
    configuration = pickle.loads(pickle.dumps(clone(strategy)))
    assert FITTED.isdisjoint(vars(configuration))
    assert len(pickle.dumps(clone(strategy))) < len(pickle.dumps(strategy))


def test_a_modal_learner_with_the_strategy_round_trips(digits):
    strategy = InfluenceQueryStrategy(digits["X_reference"], digits["y_reference"], random_state=0)
    learner = _learner(digits, strategy)
    pool, oracle = digits["X_pool"], digits["y_pool"]
    idx, _ = learner.query(pool, n_instances=5)
    learner.teach(pool[idx], oracle[idx])
    pool = np.delete(pool, idx, axis=0)

    copy = _pickle(learner)
    assert copy.query_strategy is not strategy
    assert_same(vars(strategy), vars(copy.query_strategy), "query_strategy")
    np.testing.assert_array_equal(copy.X_training, learner.X_training)

    idx_again, _ = copy.query(pool, n_instances=5)
    idx, _ = learner.query(pool, n_instances=5)
    np.testing.assert_array_equal(idx_again, idx)
    assert_same(vars(strategy), vars(copy.query_strategy), "query_strategy", skip=("timings",))


def test_a_learner_rebuilt_from_saved_parts_selects_the_same(digits, tmp_path):
    """The guide's other route: the net's parameters (skorch's save_params), the labelled set
    and the strategy saved apart; modAL retrains on construction, load_params undoes it."""
    strategy = InfluenceQueryStrategy(digits["X_reference"], digits["y_reference"], random_state=0)
    learner = _learner(digits, strategy)
    idx, _ = learner.query(digits["X_pool"], n_instances=5)
    learner.estimator.save_params(f_params=tmp_path / "model.pt")
    np.savez(tmp_path / "labelled.npz", X=learner.X_training, y=learner.y_training)
    joblib.dump(strategy, tmp_path / "strategy.joblib")

    labelled = np.load(tmp_path / "labelled.npz")
    torch.manual_seed(1)  # another initialisation: only load_params makes the nets equal
    rebuilt = ActiveLearner(
        estimator=make_net(max_epochs=5),
        query_strategy=joblib.load(tmp_path / "strategy.joblib"),
        X_training=labelled["X"],
        y_training=labelled["y"],
    )
    retrained, _ = rebuilt.query(digits["X_pool"], n_instances=5)
    rebuilt.estimator.load_params(f_params=tmp_path / "model.pt")
    idx_again, _ = rebuilt.query(digits["X_pool"], n_instances=5)

    np.testing.assert_array_equal(idx_again, idx)
    np.testing.assert_array_equal(rebuilt.query_strategy.scores_, strategy.scores_)
    assert not np.array_equal(retrained, idx)  # without load_params: another model


def test_a_saved_learner_resumes_in_a_new_process(digits, tmp_path):
    """What a user does: save at the end of a session, load in the next, query on."""
    torch.manual_seed(0)
    net = make_net(
        module=torch.nn.Sequential(
            torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10)
        )
    )  # torch's own classes: importable wherever the file is loaded
    strategy = InfluenceQueryStrategy(digits["X_reference"], digits["y_reference"], random_state=0)
    learner = learner_on_labelled(digits, net, strategy)
    learner.query(digits["X_pool"], n_instances=5)
    with open(tmp_path / "learner.pkl", "wb") as f:
        pickle.dump(learner, f)
    np.save(tmp_path / "pool.npy", digits["X_pool"])
    code = textwrap.dedent(
        """
        import json, pickle, sys
        import numpy as np
        with open(sys.argv[1] + "/learner.pkl", "rb") as f:
            learner = pickle.load(f)
        strategy = learner.query_strategy
        before = strategy.scores_.tolist()
        idx, _ = learner.query(np.load(sys.argv[1] + "/pool.npy"), n_instances=5)
        print(json.dumps({"before": before, "idx": idx.tolist(), "line": str(strategy.diagnostics_.solver)}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])

    strategy = learner.query_strategy
    np.testing.assert_array_equal(out["before"], strategy.scores_)  # the last query, as saved
    idx, _ = learner.query(digits["X_pool"], n_instances=5)
    assert out["idx"] == idx.tolist()
    assert out["line"] == str(strategy.diagnostics_.solver)


def test_s_test_alone_round_trips_through_torch_save(queried, tmp_path):
    strategy, _ = queried
    torch.save(strategy.s_test_, tmp_path / "s_test.pt")
    # weights_only: a dict of tensors needs nothing else, and loads no code
    loaded = torch.load(tmp_path / "s_test.pt", map_location="cpu", weights_only=True)
    assert_same(strategy.s_test_, loaded, "s_test_")
    assert list(loaded) == strategy.parameter_names_


def test_torch_load_maps_every_tensor_of_a_whole_strategy(queried):
    """torch.save(strategy) then torch.load(map_location=...): the way to load, on a CPU, a
    strategy whose s_test_ was computed on a GPU (plain pickle restores tensors on the
    device they were saved from)."""
    strategy, _ = queried
    buffer = io.BytesIO()
    torch.save(strategy, buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError):  # weights_only refuses arbitrary objects
        torch.load(buffer, weights_only=True)

    mapped = []

    def to_cpu(storage, location):
        mapped.append(location)
        return storage.cpu()

    buffer.seek(0)
    copy = torch.load(buffer, map_location=to_cpu, weights_only=False)
    assert_same(vars(strategy), vars(copy), "vars")
    n_tensors = len(strategy.s_test_) + len(strategy.reference_gradient_)
    assert len(mapped) >= n_tensors and set(mapped) == {"cpu"}  # all through map_location


def test_no_version_is_recorded_in_the_file(queried):
    """Neither skisal nor scikit-learn (which records its own only for its estimators) puts a
    version in a strategy's file, so nothing warns on loading it under another version: the
    guide asks to keep the versions with the file."""
    strategy, _ = queried
    assert not [key for key in strategy.__getstate__() if "version" in key]


def test_pickling_moves_the_last_querys_tensors_to_the_cpu(queried, monkeypatch):
    """A strategy queried on a GPU must load on a machine without one: its pickled state holds
    s_test_ and reference_gradient_ as they come out of ``Tensor.cpu()``. (No GPU here: the test
    records the calls; the live attributes stay where they are.)"""
    strategy, _ = queried
    moved, original_cpu = [], torch.Tensor.cpu

    def recording_cpu(tensor, *args, **kwargs):
        moved.append(tensor.data_ptr())
        return original_cpu(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", recording_cpu)
    before = {k: t for k, t in strategy.s_test_.items()}
    state = strategy.__getstate__()
    expected = [t.data_ptr() for t in strategy.s_test_.values()]
    expected += [t.data_ptr() for t in strategy.reference_gradient_.values()]
    assert sorted(moved) == sorted(expected)
    assert all(state["s_test_"][k].device.type == "cpu" for k in state["s_test_"])
    assert all(strategy.s_test_[k] is t for k, t in before.items())  # the strategy is untouched
    copy = pickle.loads(pickle.dumps(strategy))
    assert_same(strategy.s_test_, copy.s_test_, "s_test_")
