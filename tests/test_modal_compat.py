"""skisal.modal_compat: unchanged modAL scripts run on current scikit-learn and pandas."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import modAL.utils.data
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from modAL.models import ActiveLearner
from sklearn.linear_model import LogisticRegression
from sklearn.utils import validation

from conftest import requires_modal_041, run_with_modal_041
from skisal import modal_compat

SKLEARN_DROPPED_FORCE_ALL_FINITE = (
    "force_all_finite" not in inspect.signature(validation.check_X_y).parameters
)
PANDAS_DROPPED_APPEND = not hasattr(pd.DataFrame, "append")

# An unchanged modAL script: ActiveLearner and Committee on DataFrames, and skisal's
# strategy on a skorch net. It leaves its findings in ``out``.
LOOPS = """
import warnings
import numpy as np, pandas as pd, torch
from modAL.disagreement import vote_entropy_sampling
from modAL.models import ActiveLearner, Committee
from modAL.uncertainty import uncertainty_sampling
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from skorch import NeuralNetClassifier
from skisal import InfluenceQueryStrategy

warnings.filterwarnings("error", message=".*force_all_finite.*")  # renamed in sklearn 1.6
X, y = load_digits(return_X_y=True)
X = (X / 16).astype(np.float32)
frame = pd.DataFrame(X[:400], columns=[f"px{i}" for i in range(64)],
                     index=np.arange(1000, 1400))  # not 0..n-1: the index must be kept
labels = y[:400]
out = {}

def loop(learner, pool, pool_y, rounds):
    for _ in range(rounds):
        idx, X_sel = learner.query(pool, n_instances=5)
        assert isinstance(X_sel, type(pool)), type(X_sel)
        learner.teach(X_sel, pool_y[idx])
        keep = np.setdiff1d(np.arange(len(pool)), idx)
        pool = pool.iloc[keep] if isinstance(pool, pd.DataFrame) else pool[keep]
        pool_y = pool_y[keep]

learner = ActiveLearner(LogisticRegression(max_iter=300), query_strategy=uncertainty_sampling,
                        X_training=frame.iloc[:30], y_training=labels[:30])
loop(learner, frame.iloc[30:], labels[30:], 3)
Xt = learner.X_training
out["learner"] = [type(Xt).__name__, len(Xt), len(learner.y_training),
                  bool(Xt.index.is_unique), bool(Xt.equals(frame.loc[Xt.index])),
                  float(learner.score(frame.iloc[300:], labels[300:]))]

members = [
    ActiveLearner(LogisticRegression(max_iter=300), X_training=frame.iloc[:30],
                  y_training=labels[:30]),
    ActiveLearner(RandomForestClassifier(n_estimators=5, random_state=0),
                  X_training=frame.iloc[:30], y_training=labels[:30]),
]
committee = Committee(learner_list=members, query_strategy=vote_entropy_sampling)
loop(committee, frame.iloc[30:], labels[30:], 2)
out["committee"] = [[type(m.X_training).__name__, len(m.X_training),
                     bool(m.X_training.equals(frame.loc[m.X_training.index]))]
                    for m in committee.learner_list]

torch.manual_seed(0)
net = NeuralNetClassifier(torch.nn.Linear, module__in_features=64, module__out_features=10,
                          criterion=torch.nn.CrossEntropyLoss, max_epochs=3,
                          train_split=None, verbose=0)
isal = ActiveLearner(net, query_strategy=InfluenceQueryStrategy(X[400:450], y[400:450],
                                                                random_state=0),
                     X_training=X[:60], y_training=y[:60])
loop(isal, X[60:300], y[60:300], 2)
out["isal"] = [type(isal.X_training).__name__, len(isal.X_training), len(isal.y_training)]
"""


def check_loops(out: dict) -> None:
    name, n_x, n_y, unique, same_rows, accuracy = out["learner"]
    assert (name, n_x, n_y, unique, same_rows) == ("DataFrame", 45, 45, True, True)
    assert accuracy > 0.5  # it really learnt from what it was taught
    assert out["committee"] == [["DataFrame", 40, True]] * 2
    assert out["isal"] == ["ndarray", 70, 70]


@pytest.fixture
def compat():
    """The layer, put back in its applied state whatever the test did."""
    yield modal_compat
    modal_compat.remove()
    modal_compat.apply()


def _run(body: str, env: dict | None = None) -> str:
    """Run ``body`` in a fresh interpreter; return its stdout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _learner(n: int = 30) -> tuple[ActiveLearner, np.ndarray, np.ndarray]:
    X, y = _digits()
    learner = ActiveLearner(LogisticRegression(max_iter=300), X_training=X[:n], y_training=y[:n])
    return learner, X, y


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:200] / 16, y[:200]


# -- unchanged modAL scripts ---------------------------------------------------------------
def test_modal_loops_on_the_installed_stack():
    namespace: dict = {}
    exec(compile(LOOPS, "modal_loops", "exec"), namespace)
    check_loops(namespace["out"])


@requires_modal_041
def test_modal_041_loops(tmp_path: Path):
    stdout = run_with_modal_041(
        tmp_path,
        LOOPS
        + """
import json
from skisal import modal_compat
import modAL.models.base
out["applied"] = modal_compat.applied()
print(json.dumps(out))
""",
    )
    out = json.loads(stdout.strip().splitlines()[-1])
    check_loops(out)
    # 0.4.1 calls check_X_y in modAL.models.base (0.4.2.x: modAL.models.learners).
    if SKLEARN_DROPPED_FORCE_ALL_FINITE:
        assert "modAL.models.base.check_X_y" in out["applied"]
    if PANDAS_DROPPED_APPEND:
        assert "modAL.models.base.data_vstack" in out["applied"]
        assert "modAL.utils.data.data_vstack" in out["applied"]


# -- the layer fixes what breaks, and only that --------------------------------------------
@pytest.mark.skipif(not SKLEARN_DROPPED_FORCE_ALL_FINITE, reason="scikit-learn < 1.8")
def test_teach_fails_without_the_layer_and_works_with_it(compat):
    learner, X, y = _learner()
    compat.remove()
    with pytest.raises(TypeError, match="force_all_finite"):
        learner.teach(X[30:35], y[30:35])
    assert compat.apply()
    learner.teach(X[30:35], y[30:35])
    assert len(learner.X_training) == 35


@pytest.mark.skipif(not PANDAS_DROPPED_APPEND, reason="pandas < 2")
def test_dataframe_stacking_fails_without_the_layer_and_works_with_it(compat):
    frame = pd.DataFrame({"a": [1.0, 2.0]}, index=[7, 3])
    compat.remove()
    with pytest.raises(AttributeError, match="append"):
        modAL.utils.data.data_vstack((frame, frame))
    compat.apply()
    stacked = modAL.utils.data.data_vstack((frame, frame))
    assert list(stacked.index) == [7, 3, 7, 3]  # kept, as DataFrame.append did


def test_no_modal_module_calls_the_raw_functions(compat):
    """Every loaded modAL module that looks the names up gets the replacement."""
    compat.apply()
    modules = [m for name, m in sys.modules.items() if m and name.split(".")[0] == "modAL"]
    raw_vstack = modal_compat._original(modAL.utils.data.data_vstack)
    if SKLEARN_DROPPED_FORCE_ALL_FINITE:
        assert not [m for m in modules if m.__dict__.get("check_X_y") is validation.check_X_y]
    if PANDAS_DROPPED_APPEND:
        assert raw_vstack is not modAL.utils.data.data_vstack
        assert not [m for m in modules if m.__dict__.get("data_vstack") is raw_vstack]


def test_apply_is_idempotent(compat):
    first = compat.apply()
    objects = {name: _lookup(name) for name in first}
    assert compat.apply() == first == compat.applied()
    for name, obj in objects.items():
        assert _lookup(name) is obj  # the very same replacement, not a wrapper of it
        original = obj.__skisal_modal_compat_original__
        assert not hasattr(original, "__skisal_modal_compat_original__")


def test_remove_restores_the_originals(compat):
    names = compat.apply()
    if SKLEARN_DROPPED_FORCE_ALL_FINITE and PANDAS_DROPPED_APPEND:
        assert any(n.endswith(".check_X_y") for n in names)
        assert "modAL.utils.data.data_vstack" in names
    originals = {n: _lookup(n).__skisal_modal_compat_original__ for n in names}
    assert compat.remove() == names
    assert compat.applied() == () == compat.remove()
    for name, original in originals.items():
        assert _lookup(name) is original
        if name.endswith(".check_X_y"):
            assert original is validation.check_X_y


def _lookup(dotted: str):
    module, _, attr = dotted.rpartition(".")
    return getattr(sys.modules[module], attr)


def test_data_vstack_matches_modal_for_every_other_type(compat):
    compat.apply()
    stack = modAL.utils.data.data_vstack
    original = modal_compat._original(stack)
    a, b = np.arange(6.0).reshape(3, 2), np.ones((1, 2))
    cases = [
        (a, b),
        [a, b],
        (sp.csr_matrix(a), sp.csr_matrix(b)),
        (a, sp.csr_matrix(b)),
        (pd.DataFrame(a), sp.csr_matrix(b)),  # modAL checks for sparse first
        ([[1, 2]], [[3, 4]]),
        (torch.ones(2, 2), torch.zeros(1, 2)),
        ("not", "data"),
    ]
    for blocks in cases:
        assert _outcome(stack, blocks) == _outcome(original, blocks), blocks


def _outcome(func, blocks):
    try:
        result = func(blocks)
    except Exception as exc:
        return type(exc)
    if sp.issparse(result):
        result = result.toarray()
    if isinstance(result, torch.Tensor):
        return ("tensor", result.tolist())
    return (type(result).__name__, np.asarray(result).tolist())


@pytest.mark.skipif(not PANDAS_DROPPED_APPEND, reason="pandas < 2")
def test_data_vstack_on_dataframes_as_dataframe_append(compat):
    compat.apply()
    top = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]}, index=pd.Index([10, 11], name="id"))
    rows = pd.DataFrame({"a": [5.0], "b": [6]}, index=pd.Index([2], name="id"))
    stacked = modAL.utils.data.data_vstack((top, rows, rows))
    pd.testing.assert_frame_equal(stacked, pd.concat([top, rows, rows]))
    assert list(stacked.index) == [10, 11, 2, 2]
    # add_row with a Series row (DataFrame.append([series]) took its name as index).
    added = modAL.utils.data.add_row(top, top.iloc[0])
    assert list(added.index) == [10, 11, 10] and added.index.name == "id"
    np.testing.assert_array_equal(added.to_numpy(), [[1.0, 3], [2.0, 4], [1.0, 3]])
    with pytest.raises(TypeError):  # a DataFrame and an array did not stack in pandas 1 either
        modAL.utils.data.data_vstack((top, np.ones((1, 2))))


def test_each_fix_is_applied_only_where_needed(compat):
    old_style = lambda X, y, force_all_finite=True, **kw: (X, y)  # noqa: E731 (sklearn < 1.6)
    assert not modal_compat._has_ensure_all_finite(old_style)
    assert modal_compat._has_ensure_all_finite(validation.check_X_y) is (
        "ensure_all_finite" in inspect.signature(validation.check_X_y).parameters
    )
    compat.remove()
    holders = [
        m
        for name, m in sys.modules.items()
        if m and name.split(".")[0] == "modAL" and m.__dict__.get("check_X_y") is not None
    ]
    assert holders
    try:
        with pytest.MonkeyPatch.context() as mp:
            # a scikit-learn without ensure_all_finite, a pandas with DataFrame.append
            mp.setattr(validation, "check_X_y", old_style)
            for module in holders:
                mp.setattr(module, "check_X_y", old_style)
            mp.setattr(pd.DataFrame, "append", lambda self, other: None, raising=False)
            assert compat.apply() == ()
            assert all(m.check_X_y is old_style for m in holders)
    finally:
        compat.remove()
    assert compat.apply() == compat.applied()


# -- the switch, and modAL missing ---------------------------------------------------------
def test_environment_variable_turns_it_off():
    stdout = _run(
        """
        import inspect, sys
        from sklearn.utils import validation
        import skisal
        from skisal import modal_compat
        assert "modAL" not in sys.modules, "modAL imported"  # not even imported
        assert modal_compat.applied() == ()
        import modAL.models
        assert modal_compat.applied() == ()
        holders = [m for n, m in sys.modules.items()
                   if n.startswith("modAL") and m and m.__dict__.get("check_X_y")]
        assert holders and all(m.check_X_y is validation.check_X_y for m in holders)
        assert modal_compat.apply() == modal_compat.applied()  # by hand it still works
        print("OFF", len(modal_compat.applied()))
        """,
        env={"SKISAL_MODAL_COMPAT": "0"},
    )
    n = int(stdout.split()[-1])
    assert n >= SKLEARN_DROPPED_FORCE_ALL_FINITE + PANDAS_DROPPED_APPEND


def test_without_modal_nothing_happens():
    stdout = _run(
        """
        import sys
        sys.modules["modAL"] = None  # importing modAL fails
        import skisal
        from skisal import modal_compat
        print("NONE", modal_compat.apply(), modal_compat.applied(), modal_compat.remove())
        """
    )
    assert "NONE () () ()" in stdout
