"""Hostile and careless inputs to the strategies: a clear error or a meaningful result.

Each test is the regression test of one finding of the adversarial review (issue 16),
numbered as there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from modAL.models import ActiveLearner
from skorch import NeuralNetClassifier

from conftest import NaNAbove
from skisal import InfluenceQueryStrategy, NonFiniteScoreError
from skisal._device import check_device
from skisal.baselines import CoresetSampling
from skisal.engine.model import module_on
from skisal.experiments import load_records

RNG = np.random.RandomState(0)
X = RNG.randn(160, 4).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
X_LAB, Y_LAB, X_REF, Y_REF, X_POOL = X[:50], Y[:50], X[50:80], Y[50:80], X[80:]


def _net(module, X_fit=X_LAB, y_fit=Y_LAB, **kwargs):
    torch.manual_seed(0)
    return NeuralNetClassifier(
        module,
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=3,
        lr=0.1,
        train_split=None,
        verbose=0,
        **kwargs,
    ).fit(X_fit, y_fit)


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


@pytest.fixture(scope="module")
def net():
    return _net(_mlp)


def _strategy(**kwargs):
    options = dict(X_labeled=X_LAB, y_labeled=Y_LAB, return_scores=True, random_state=0)
    options.update(kwargs)
    return InfluenceQueryStrategy(X_REF, Y_REF, **options)


def _with_nan_rows(data, rows):
    data = data.copy()
    data[rows, 0] = 5.0
    return data


# -- 2: NaN outputs never become scores, in either scoring mode -------------------------
@pytest.mark.parametrize("scoring", ["forward", "reverse"])
@pytest.mark.parametrize("selection", ["top", "diverse"])
def test_2_nan_outputs_on_pool_rows_are_named_in_every_scoring_mode(scoring, selection):
    net = _net(NaNAbove)
    pool = _with_nan_rows(X_POOL, [3, 17])
    with pytest.raises(
        NonFiniteScoreError, match=r"2 sample\(s\) of X_pool \(first rows: \[3, 17\]"
    ):
        _strategy(scoring=scoring, selection=selection)(net, pool, n_instances=5)


# -- 3 and 9: modAL's retry neither transforms an interrupt nor leaves a stale error ------
class CountingModule(torch.nn.Module):
    """Counts forward calls; raises KeyboardInterrupt at call ``interrupt_at``."""

    def __init__(self):
        super().__init__()
        self.net = _mlp()
        self.calls = 0
        self.interrupt_at = None

    def forward(self, x):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.net(x)


def test_3_ctrl_c_in_a_modal_query_reaches_the_caller_without_a_recompute():
    net = _net(CountingModule)
    learner = ActiveLearner(
        estimator=net,
        query_strategy=_strategy(X_labeled=None, y_labeled=None),
        X_training=X_LAB,
        y_training=Y_LAB,
    )
    module = learner.estimator.module_
    module.calls, module.interrupt_at = 0, 3  # inside s_test
    with pytest.raises(KeyboardInterrupt):
        learner.query(X_POOL, n_instances=2)
    assert module.calls == 3  # modAL's retry did not run the query again


def test_3_an_error_in_a_modal_query_is_raised_once_and_unchanged():
    net = _net(_mlp)
    learner = ActiveLearner(
        estimator=net,
        query_strategy=_strategy(X_labeled=None, y_labeled=None),
        X_training=X_LAB,
        y_training=Y_LAB,
    )
    with pytest.raises(ValueError, match="X_pool holds NaN"):
        learner.query(_with_nan_rows(X_POOL, [0]) * np.nan, n_instances=2)


def test_9_a_fixed_pool_is_scored_not_the_stale_error_reraised(net):
    strategy = _strategy(X_labeled=None, y_labeled=None)
    learner = SimpleNamespace(
        estimator=net, query_strategy=strategy, X_training=X_LAB, y_training=Y_LAB
    )
    pool = X_POOL.copy()
    pool[2, 1] = np.nan
    with pytest.raises(ValueError, match="X_pool holds NaN"):
        strategy(learner, pool, n_instances=3)
    pool[2, 1] = 0.0  # fixed in place: same object, same ids
    idx, scores = strategy(learner, pool, n_instances=3)
    assert len(idx) == 3 and np.isfinite(scores).all()


def test_9_a_retry_inside_the_users_except_block_runs(net):
    strategy = _strategy(X_labeled=None, y_labeled=None)
    learner = SimpleNamespace(
        estimator=net, query_strategy=strategy, X_training=X_LAB, y_training=Y_LAB
    )
    pool = X_POOL.copy()
    pool[2, 1] = np.inf
    try:
        strategy(learner, pool, n_instances=3)
    except ValueError:
        pool[2, 1] = 0.0
        idx, _ = strategy(learner, pool, n_instances=3)
    assert len(idx) == 3


# -- 7 and 18: pools of the wrong rank or kind are refused by name -----------------------
@pytest.mark.parametrize(
    ("pool", "error", "match"),
    [
        (X_POOL[0], ValueError, r"X_pool has samples of shape \(\).*reshape\(1, -1\)"),
        (X_POOL.astype(np.int64), TypeError, "X_pool holds int64 values"),
        (X_POOL > 0, TypeError, "X_pool holds bool values"),
        (torch.from_numpy(X_POOL > 0), TypeError, "X_pool holds torch.bool values"),
    ],
    ids=["1-D", "int", "bool", "bool tensor"],
)
@pytest.mark.parametrize("strategy", ["isal", "coreset"])
def test_7_18_pools_of_the_wrong_rank_or_kind_are_refused(net, pool, error, match, strategy):
    if strategy == "coreset":
        query = CoresetSampling(X_labeled=X_LAB, return_scores=True)
    else:
        query = _strategy()
    with pytest.raises(error, match=match):
        query(net, pool, n_instances=1)


def test_7_a_network_failure_on_the_pool_names_x_pool(net):
    wide = torch.from_numpy(np.zeros((5, 7), dtype=np.float32))
    strategy = InfluenceQueryStrategy(inverse_hvp="identity", random_state=0)
    # No reference or labelled data to compare shapes with: the network's own error, named.
    with pytest.raises(ValueError, match=r"network cannot take the samples of X_pool"):
        strategy.influence(net, wide, X_labeled=wide[:2], y_labeled=np.array([0, 1]))


def test_7_pandas_pools_of_any_layout_score_like_the_array_without_warnings(net):
    expected = _strategy().influence(net, X_POOL)
    frame = pd.DataFrame(X_POOL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = _strategy().influence(net, frame)
        reversed_ = _strategy().influence(net, frame.iloc[::-1])
    np.testing.assert_allclose(plain, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(reversed_, expected[::-1], rtol=1e-6, atol=1e-9)


def test_18_coreset_without_centres_scores_its_first_pick_by_a_finite_distance(net):
    _, distances = CoresetSampling(random_state=0, return_scores=True)(net, X_POOL, 4)
    assert np.isfinite(distances).all()
    assert distances[0] == distances[1]  # the farthest point from the random start
    assert np.all(np.diff(distances) <= 0)


class NaNHidden(torch.nn.Module):
    """An MLP whose hidden features are NaN for inputs with feature 0 above 3."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)

    def forward(self, x):
        h = torch.tanh(self.hidden(x))
        return self.out(torch.where(x[:, :1] > 3.0, torch.full_like(h, float("nan")), h))


def test_18_coreset_refuses_non_finite_features_by_row():
    net = _net(NaNHidden)
    with pytest.raises(NonFiniteScoreError, match=r"of X_pool \(first rows: \[4\]\)"):
        CoresetSampling(X_labeled=X_LAB)(net, _with_nan_rows(X_POOL, [4]), n_instances=2)


# -- 10: non-finite outputs on the labelled or reference set are named there -------------
@pytest.mark.parametrize("inverse_hvp", ["cg", "identity"])
def test_10_nan_outputs_on_reference_rows_name_the_reference_set(inverse_hvp):
    net = _net(NaNAbove)
    strategy = InfluenceQueryStrategy(
        _with_nan_rows(X_REF, [6]), Y_REF, X_labeled=X_LAB, y_labeled=Y_LAB, inverse_hvp=inverse_hvp
    )
    with pytest.raises(NonFiniteScoreError, match=r"of X_reference \(first rows: \[6\]\)"):
        strategy(net, X_POOL, n_instances=2)


def test_10_nan_outputs_on_labelled_rows_name_the_labelled_set_even_when_subsampled():
    net = _net(NaNAbove)
    X_lab = _with_nan_rows(X_LAB, [11])
    # hessian_subsample may leave row 11 out of the curvature: it is refused all the same.
    strategy = _strategy(X_labeled=X_lab, hessian_subsample=5, inverse_hvp="cg")
    with pytest.raises(NonFiniteScoreError, match=r"of X_labeled \(first rows: \[11\]\)"):
        strategy(net, X_POOL, n_instances=2)


def test_10_labelled_rows_the_solver_does_not_use_are_not_checked():
    net = _net(NaNAbove)
    strategy = _strategy(X_labeled=_with_nan_rows(X_LAB, [11]), inverse_hvp="identity")
    _, scores = strategy(net, X_POOL, n_instances=2)
    assert np.isfinite(scores).all()


# -- 12: scores that cannot rank the pool are said to be so ------------------------------
def test_12_saturated_outputs_warn_that_the_selection_is_pool_order():
    net = _net(torch.nn.Linear, module__in_features=4, module__out_features=2)
    with pytest.warns(UserWarning, match="every X_pool sample has the same influence"):
        _strategy()(net, X_POOL * 1e30, n_instances=3)


def test_12_an_ordinary_pool_does_not_warn(net):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        idx, scores = _strategy()(net, X_POOL, n_instances=3)
    assert len(idx) == 3 and np.ptp(scores) > 0  # a real ranking, not a tie


# -- 15 and 17: devices are checked by name, and "cuda" means the current CUDA device -----
@pytest.mark.parametrize("strategy", ["isal", "coreset"])
def test_15_a_device_that_is_not_one_is_named(net, strategy):
    query = (
        _strategy(device="nonsense") if strategy == "isal" else CoresetSampling(device="nonsense")
    )
    with pytest.raises(ValueError, match=r"device must name a torch device.*got 'nonsense'"):
        query(net, X_POOL, n_instances=1)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_15_cuda_without_a_gpu_is_refused_with_the_remedy(net):
    with pytest.raises(ValueError, match="device='cuda', but torch sees no CUDA device"):
        _strategy(device="cuda")(net, X_POOL, n_instances=1)


def test_17_cuda_resolves_to_the_current_device_so_the_module_is_not_copied(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    where = torch.device("cuda", 1)
    device = check_device("cuda", where)
    assert device == where
    module = torch.nn.Linear(2, 2)
    assert module_on(module, device, where) is module
    with pytest.raises(ValueError, match="device='cuda:2', but this machine has 2 CUDA"):
        check_device("cuda:2", where)


def test_17_query_cost_belongs_to_the_last_selection_only(net):
    strategy = _strategy()
    strategy(net, X_POOL, n_instances=4)
    assert strategy.query_cost_ == 4.0
    strategy.influence(net, X_POOL[:10])
    assert not hasattr(strategy, "query_cost_")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_3_ctrl_c_stops_the_cli_with_its_own_status_and_a_resume_hint(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "skisal.experiments", "--dataset", "wine", "--strategies"]
    command += ["isal", "--seeds", "1", "--steps", "10", "--no-progress", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # As at a terminal: a runner that starts the suite in the background (`cmd &` in a
    # script) leaves SIGINT ignored, and the child would inherit that.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    records = out / "records.jsonl"
    deadline = time.monotonic() + 120
    while not (records.exists() and len(records.read_text().splitlines()) >= 2):
        assert process.poll() is None and time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    stderr = stderr.decode()
    assert process.returncode in (-signal.SIGINT, 130), stderr
    assert "KeyboardInterrupt" in stderr and "TypeError" not in stderr
    assert "run the same command again to resume" in stderr
    kept = load_records(out)
    assert len(kept) >= 2 and [r.step for r in kept] == list(range(len(kept)))
