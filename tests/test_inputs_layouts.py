"""No silent garbage (issue 15, item 6).

(a) A criterion that reads the module's outputs as (log-)probabilities over a
module that returns logits is refused, naming the fix.
(b) Pools, reference and labelled sets in any memory layout -- reversed,
strided, read-only, Fortran-ordered numpy arrays, pandas DataFrames over them,
mixed float dtypes -- score exactly like the equivalent C-ordered array,
without a warning, and are never modified.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from skorch import NeuralNet

from conftest import MLP, assert_module_unchanged, make_net, snapshot_module
from skisal import InfluenceQueryStrategy, SkorchClassifierAdapter
from skisal._validation import check_data, rows_as_array


@contextmanager
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def read_only(arr: np.ndarray) -> np.ndarray:
    arr = arr.copy()
    arr.flags.writeable = False
    return arr


@pytest.fixture(scope="module")
def net(digits):
    """conftest's ``fitted_net``, fitted once: no test here changes it."""
    torch.manual_seed(0)
    return make_net().fit(digits["X_labeled"], digits["y_labeled"])


def strategy_for(digits, **kwargs) -> InfluenceQueryStrategy:
    data = dict(
        X_reference=digits["X_reference"],
        y_reference=digits["y_reference"],
        X_labeled=digits["X_labeled"],
        y_labeled=digits["y_labeled"],
        random_state=0,
    )
    data.update(kwargs)
    X_ref, y_ref = data.pop("X_reference"), data.pop("y_reference")
    return InfluenceQueryStrategy(X_ref, y_ref, **data)


# -- (b) layouts -------------------------------------------------------------------------------
def _mixed_dtypes(X: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(X)
    return frame.astype({c: np.float64 for c in frame.columns[::3]})


def _wide(X: np.ndarray) -> np.ndarray:
    """Every column twice: ``_wide(X)[:, ::2]`` is ``X``, strided."""
    return np.repeat(X, 2, axis=1)


#: name -> (layout of X, the C-ordered array it must score exactly like)
LAYOUTS = {
    "numpy reversed": (lambda X: X[::-1], lambda X: X[::-1].copy()),
    "numpy read-only": (read_only, lambda X: X),
    "numpy read-only reversed": (lambda X: read_only(X)[::-1], lambda X: X[::-1].copy()),
    "numpy fortran": (np.asfortranarray, lambda X: X),
    "numpy strided columns": (lambda X: _wide(X)[:, ::2], lambda X: X),
    "numpy strided rows": (lambda X: np.repeat(X, 2, axis=0)[::2], lambda X: X),
    "numpy reversed columns": (lambda X: X[:, ::-1], lambda X: X[:, ::-1].copy()),
    "numpy float64": (lambda X: X.astype(np.float64), lambda X: X),
    "frame": (pd.DataFrame, lambda X: X),
    "frame reversed": (lambda X: pd.DataFrame(X).iloc[::-1], lambda X: X[::-1].copy()),
    "frame over reversed array": (lambda X: pd.DataFrame(X[::-1]), lambda X: X[::-1].copy()),
    "frame column subset": (
        lambda X: pd.DataFrame(_wide(X)).pipe(lambda f: f[f.columns[::2]]),
        lambda X: X,
    ),
    "frame over strided array": (lambda X: pd.DataFrame(_wide(X)[:, ::2]), lambda X: X),
    "frame over read-only array": (
        lambda X: pd.DataFrame(read_only(X), copy=False),
        lambda X: X,
    ),
    "frame fortran": (lambda X: pd.DataFrame(np.asfortranarray(X)), lambda X: X),
    "frame mixed float dtypes": (_mixed_dtypes, lambda X: X),
    "frame mixed float dtypes reversed": (
        lambda X: _mixed_dtypes(X).iloc[::-1],
        lambda X: X[::-1].copy(),
    ),
}


def _snapshot(X):
    """A copy of ``X`` and its flags, to check it is never modified."""
    if isinstance(X, pd.DataFrame):
        return X.copy(deep=True), None
    return X.copy(), (X.flags.writeable, X.strides)


def _assert_unmodified(X, snapshot) -> None:
    copy, flags = snapshot
    if isinstance(X, pd.DataFrame):
        pd.testing.assert_frame_equal(X, copy)
    else:
        np.testing.assert_array_equal(X, copy)
        assert (X.flags.writeable, X.strides) == flags


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_pool_in_any_layout_scores_exactly_like_its_c_array(digits, net, layout):
    make, equivalent = LAYOUTS[layout]
    X_pool = make(digits["X_pool"])
    expected_pool = equivalent(digits["X_pool"])
    assert expected_pool.flags.c_contiguous
    strategy = strategy_for(digits)
    expected = strategy.influence(net, expected_pool)
    snapshot = _snapshot(X_pool)
    with no_warnings():
        scores = strategy.influence(net, X_pool)
    np.testing.assert_array_equal(scores, expected)
    _assert_unmodified(X_pool, snapshot)


@pytest.mark.parametrize(
    "layout", ["numpy reversed", "numpy read-only", "frame reversed", "frame mixed float dtypes"]
)
def test_query_with_a_pool_in_any_layout(digits, net, layout):
    """The modAL call (selection included) as well as influence()."""
    make, equivalent = LAYOUTS[layout]
    strategy = strategy_for(digits, return_scores=True)
    expected_idx, expected = strategy(net, equivalent(digits["X_pool"]), n_instances=5)
    with no_warnings():
        idx, scores = strategy(net, make(digits["X_pool"]), n_instances=5)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_array_equal(scores, expected)


@pytest.mark.parametrize(
    "layout",
    [
        "numpy reversed",
        "numpy read-only reversed",
        "numpy fortran",
        "frame reversed",
        "frame column subset",
        "frame mixed float dtypes reversed",
    ],
)
@pytest.mark.parametrize("labels", ["numpy", "series"])
def test_reference_and_labelled_sets_in_any_layout(digits, net, layout, labels):
    make, equivalent = LAYOUTS[layout]
    reverses = "reversed" in layout

    def targets(y):
        if labels == "series":  # reversed: index and all
            series = pd.Series(y)
            return series.iloc[::-1] if reverses else series
        return y[::-1] if reverses else y  # reversed: a view with a negative stride

    def equivalent_targets(y):
        return np.ascontiguousarray(y[::-1] if reverses else y)

    expected_strategy = strategy_for(
        digits,
        X_reference=equivalent(digits["X_reference"]),
        y_reference=equivalent_targets(digits["y_reference"]),
        X_labeled=equivalent(digits["X_labeled"]),
        y_labeled=equivalent_targets(digits["y_labeled"]),
    )
    expected = expected_strategy.influence(net, digits["X_pool"])
    X_ref, y_ref = make(digits["X_reference"]), targets(digits["y_reference"])
    X_lab, y_lab = make(digits["X_labeled"]), targets(digits["y_labeled"])
    snapshots = [_snapshot(X_ref), _snapshot(X_lab)]
    strategy = strategy_for(
        digits, X_reference=X_ref, y_reference=y_ref, X_labeled=X_lab, y_labeled=y_lab
    )
    with no_warnings():
        scores = strategy.influence(net, digits["X_pool"])
    np.testing.assert_array_equal(scores, expected)
    for name, value in strategy.s_test_.items():
        assert torch.equal(value, expected_strategy.s_test_[name]), name
    _assert_unmodified(X_ref, snapshots[0])
    _assert_unmodified(X_lab, snapshots[1])


def test_reversed_series_labels_keep_their_positions(digits, net):
    """Labels are read by position: a reversed Series pairs with the reversed samples."""
    X_ref, y_ref = digits["X_reference"], digits["y_reference"]
    expected = strategy_for(digits).influence(net, digits["X_pool"])
    y_series = pd.Series(y_ref[::-1].copy()).iloc[::-1]  # index 59..0, values y_ref
    strategy = strategy_for(digits, X_reference=pd.DataFrame(X_ref), y_reference=y_series)
    with no_warnings():
        np.testing.assert_array_equal(strategy.influence(net, digits["X_pool"]), expected)


def test_pipeline_step_with_pandas_output(digits):
    """A transformer's DataFrame output (read-only under copy-on-write) reaches the net."""
    torch.manual_seed(0)
    to_float32 = FunctionTransformer(lambda X: X.astype(np.float32))
    pipe = make_pipeline(StandardScaler(), to_float32, make_net(max_epochs=3))
    pipe.fit(digits["X_labeled"], digits["y_labeled"])
    strategy = strategy_for(digits)
    expected = strategy.influence(pipe, digits["X_pool"])
    pipe[0].set_output(transform="pandas")
    with no_warnings():
        scores = strategy.influence(pipe, pd.DataFrame(digits["X_pool"]).iloc[::-1])
    pipe[0].set_output(transform="default")
    expected_reversed = strategy.influence(pipe, digits["X_pool"][::-1].copy())
    np.testing.assert_array_equal(scores, expected_reversed)
    np.testing.assert_allclose(scores[::-1], expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_check_data_accepts_any_layout_without_a_warning(digits, layout):
    X = LAYOUTS[layout][0](digits["X_pool"])
    with no_warnings():
        assert check_data(X, "X_pool") is X


@pytest.mark.parametrize("layout", ["numpy reversed", "frame reversed", "numpy fortran"])
def test_check_data_finds_non_finite_rows_in_any_layout(layout):
    X = np.arange(20, dtype=np.float32).reshape(5, 4)
    X[1, 2] = np.nan
    bad_row = 3 if "reversed" in layout else 1
    with pytest.raises(ValueError, match=rf"first rows: \[{bad_row}\]"):
        check_data(LAYOUTS[layout][0](X), "X_pool")


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_adapter_batches_are_c_ordered_and_writable(digits, net, layout):
    X = LAYOUTS[layout][0](digits["X_pool"])
    expected = LAYOUTS[layout][1](digits["X_pool"])
    adapter = SkorchClassifierAdapter()
    for indices in (np.arange(len(expected)), np.array([5, 0, 199])):
        with no_warnings():
            batch = adapter.get_inputs(net, X, indices, torch.device("cpu"))
        assert batch.is_contiguous() and batch.dtype == torch.float32
        assert torch.equal(batch, torch.as_tensor(expected[indices]))


def test_rows_as_array_copies_only_when_needed():
    fresh = np.zeros((3, 2))
    assert rows_as_array(fresh) is fresh
    base = read_only(np.arange(6.0).reshape(3, 2))
    for view in (base, base[::-1], np.asfortranarray(base), pd.DataFrame(base)):
        arr = rows_as_array(view)
        assert arr.flags.c_contiguous and arr.flags.writeable
        assert not np.shares_memory(arr, base)
        np.testing.assert_array_equal(arr, np.asarray(view))
    assert not base.flags.writeable


# -- (a) criterion against outputs -------------------------------------------------------------
def _influence(digits, net):
    return strategy_for(digits).influence(net, digits["X_pool"])


def test_nan_trained_logits_net_with_default_nll_loss_is_refused(digits):
    """The silent-garbage case: NLLLoss over logits trains to NaN; skisal must say so."""
    torch.manual_seed(0)
    net = make_net(criterion=torch.nn.NLLLoss).fit(digits["X_labeled"], digits["y_labeled"])
    assert np.isnan(net.history[-1, "train_loss"])
    with pytest.raises(ValueError, match=r"criterion=torch\.nn\.CrossEntropyLoss") as info:
        _influence(digits, net)
    message = str(info.value)
    assert "NeuralNetClassifier trains with NLLLoss" in message
    assert "must return probabilities" in message
    assert "values outside [0, 1]" in message or "NaN" in message


def test_logits_module_with_nll_loss_in_neural_net_classifier_is_refused(digits):
    torch.manual_seed(0)
    net = make_net(criterion=torch.nn.NLLLoss).initialize()
    with pytest.raises(ValueError, match=r"rows sum to .*, not 1.*CrossEntropyLoss"):
        _influence(digits, net)


def test_softmax_module_with_nll_loss_in_neural_net_classifier_works(digits):
    torch.manual_seed(0)
    net = make_net(module__softmax=True, criterion=torch.nn.NLLLoss)
    net.fit(digits["X_labeled"], digits["y_labeled"])
    assert np.isfinite(net.history[-1, "train_loss"])
    with no_warnings():
        scores = _influence(digits, net)
    assert np.isfinite(scores).all() and not np.allclose(scores, 0)


class LogSoftmaxMLP(MLP):
    def forward(self, x):
        return super().forward(x).log_softmax(dim=1)


def _plain_net(module) -> NeuralNet:
    return NeuralNet(module, criterion=torch.nn.NLLLoss, max_epochs=5, train_split=None, verbose=0)


def test_log_softmax_module_with_nll_loss_in_plain_neural_net_works(digits):
    torch.manual_seed(0)
    net = _plain_net(LogSoftmaxMLP).fit(digits["X_labeled"], digits["y_labeled"])
    with no_warnings():
        scores = _influence(digits, net)
    assert np.isfinite(scores).all() and not np.allclose(scores, 0)


def test_logits_module_with_nll_loss_in_plain_neural_net_is_refused(digits):
    torch.manual_seed(0)
    net = _plain_net(MLP).fit(digits["X_labeled"], digits["y_labeled"])
    with pytest.raises(ValueError, match=r"must be log-probabilities") as info:
        _influence(digits, net)
    message = str(info.value)
    assert "NeuralNet trains with NLLLoss" in message
    assert "criterion=torch.nn.CrossEntropyLoss" in message
    assert "values above 0" in message or "exponentials of a row sum to" in message


def test_softmax_module_with_nll_loss_in_plain_neural_net_is_refused(digits):
    """Probabilities are no log-probabilities: a plain NeuralNet hands them to NLLLoss as is."""
    torch.manual_seed(0)
    net = _plain_net(MLP(softmax=True)).initialize()
    with pytest.raises(ValueError, match=r"exponentials of a row sum to"):
        _influence(digits, net)


def test_cross_entropy_accepts_any_outputs(net):
    adapter = SkorchClassifierAdapter()
    adapter.check_outputs(net, torch.tensor([[-30.0, 5.0, 1e4]]))


class SoftmaxWhereFirstFeatureIsSet(MLP):
    """Probabilities for samples whose first feature is > 0.5, logits for the others."""

    def forward(self, x):
        logits = super().forward(x)
        return torch.where(x[:, :1] > 0.5, logits.softmax(dim=1), logits)


def test_reference_and_labelled_outputs_are_checked_too(digits):
    """One pool sample may look right; the first rows of the reference set are checked too."""
    torch.manual_seed(0)
    net = make_net(module=SoftmaxWhereFirstFeatureIsSet, criterion=torch.nn.NLLLoss).initialize()

    def first_feature(X, value):
        X = X.copy()
        X[:, 0] = value  # 1: the module returns probabilities; 0: logits
        return X

    X_pool = first_feature(digits["X_pool"], 1.0)
    good = dict(
        X_reference=first_feature(digits["X_reference"], 1.0),
        X_labeled=first_feature(digits["X_labeled"], 1.0),
    )
    for name in good:
        bad = dict(good, **{name: first_feature(digits[name], 0.0)})
        with pytest.raises(ValueError, match=rf"outputs on the first 4 samples of {name}"):
            strategy_for(digits, **bad).influence(net, X_pool)
    assert np.isfinite(strategy_for(digits, **good).influence(net, X_pool)).all()


def test_output_check_leaves_the_module_untouched(digits):
    """The extra forward pass runs in eval mode, without gradients, modes restored."""
    torch.manual_seed(0)
    net = make_net(module__softmax=True, criterion=torch.nn.NLLLoss)
    net.fit(digits["X_labeled"], digits["y_labeled"])
    module = net.module_
    module.train()
    module.dropout.eval()
    before = snapshot_module(module)
    _influence(digits, net)
    assert_module_unchanged(before, module)


def _in_precision(logits: torch.Tensor, function: str) -> list[torch.Tensor]:
    """``logits.softmax(dim=1)`` (or log_softmax) computed in the logits' dtype, where torch can.

    torch 2.1 (the oldest supported) has no float16 softmax on the CPU, so a module cannot
    produce such outputs there: nothing to check.
    """
    try:
        return [getattr(logits, function)(dim=1)]
    except RuntimeError as exc:
        if "not implemented for 'Half'" not in str(exc):
            raise
        return []


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("n_classes", [2, 10, 1000])
def test_low_precision_outputs_are_accepted(dtype, n_classes):
    from skorch import NeuralNetClassifier

    gen = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(64, n_classes, generator=gen)
    adapter = SkorchClassifierAdapter()
    classifier = NeuralNetClassifier(
        torch.nn.Linear, module__in_features=2, module__out_features=n_classes
    ).initialize()
    adapter.check_outputs(classifier, logits.softmax(dim=1).to(dtype))
    for computed in _in_precision(logits.to(dtype), "softmax"):
        adapter.check_outputs(classifier, computed)
    plain = NeuralNet(
        torch.nn.Linear,
        module__in_features=2,
        module__out_features=n_classes,
        criterion=torch.nn.NLLLoss,
    ).initialize()
    adapter.check_outputs(plain, logits.log_softmax(dim=1).to(dtype))
    for computed in _in_precision(logits.to(dtype), "log_softmax"):
        adapter.check_outputs(plain, computed)
    with pytest.raises(ValueError):
        adapter.check_outputs(classifier, logits.to(dtype))
    with pytest.raises(ValueError):
        adapter.check_outputs(plain, logits.to(dtype))


def test_log_probabilities_of_zero_are_accepted():
    plain = NeuralNet(
        torch.nn.Linear, module__in_features=2, module__out_features=3, criterion=torch.nn.NLLLoss
    ).initialize()
    SkorchClassifierAdapter().check_outputs(plain, torch.tensor([[0.0, -torch.inf, -torch.inf]]))
    with pytest.raises(ValueError, match="NaN"):
        SkorchClassifierAdapter().check_outputs(plain, torch.tensor([[0.0, torch.nan, -1.0]]))
