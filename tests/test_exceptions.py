"""skisal's own exceptions: one base, SkisalError, beside the built-in each one also is."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier

import skisal.exceptions
from conftest import NaNAbove
from skisal import InfluenceQueryStrategy
from skisal.baselines import CoresetSampling, RandomSampling
from skisal.exceptions import (
    InvalidParameterError,
    NonFiniteScoreError,
    SkisalError,
    SolverDivergenceError,
)

PACKAGE = Path(skisal.exceptions.__file__).parent
EXCEPTIONS = [
    obj
    for _, obj in inspect.getmembers(skisal.exceptions, inspect.isclass)
    if issubclass(obj, BaseException) and obj.__module__ == "skisal.exceptions"
]

RNG = np.random.RandomState(0)
X = RNG.randn(70, 4).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)
X_LAB, Y_LAB, X_REF, Y_REF, X_POOL = X[:20], Y[:20], X[20:30], Y[20:30], X[30:]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return NeuralNetClassifier(
        torch.nn.Linear,
        module__in_features=4,
        module__out_features=2,
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=3,
        train_split=None,
        verbose=0,
    ).fit(X_LAB, Y_LAB)


def _query(net, **params):
    options = dict(X_labeled=X_LAB, y_labeled=Y_LAB, return_scores=True, random_state=0)
    options.update(params)
    strategy = InfluenceQueryStrategy(**{"X_reference": X_REF, "y_reference": Y_REF, **options})
    return strategy(net, X_POOL, n_instances=2)


# -- the hierarchy ------------------------------------------------------------------------
def test_the_module_defines_the_four_exceptions():
    assert set(EXCEPTIONS) == {
        InvalidParameterError,
        NonFiniteScoreError,
        SkisalError,
        SolverDivergenceError,
    }
    assert set(skisal.exceptions.__all__) == {cls.__name__ for cls in EXCEPTIONS}


@pytest.mark.parametrize(
    ("cls", "builtins"),
    [
        (SkisalError, (Exception,)),
        (InvalidParameterError, (SkisalError, ValueError, TypeError)),
        (SolverDivergenceError, (SkisalError, ArithmeticError)),
        (NonFiniteScoreError, (SkisalError, ArithmeticError)),
    ],
)
def test_each_exception_keeps_its_builtin_bases(cls, builtins):
    for base in builtins:
        assert issubclass(cls, base), f"{cls.__name__} is not a {base.__name__}"


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: c.__name__)
def test_except_skisal_error_catches_each_exception(cls):
    with pytest.raises(SkisalError) as info:
        try:
            raise cls("the message")
        except SkisalError as exc:  # what a user writes
            assert str(exc) == "the message"
            raise
    assert type(info.value) is cls


def _exception_classes_defined_in(path: Path) -> list[str]:
    """Public classes whose bases' names end in Error or Exception (an AST scan: no import)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = [ast.unparse(base) for base in node.bases]
            if any(base.endswith(("Error", "Exception")) for base in bases):
                found.append(node.name)
    return found


def test_every_public_exception_of_skisal_lives_in_skisal_exceptions():
    elsewhere = {
        str(path.relative_to(PACKAGE.parent)): _exception_classes_defined_in(path)
        for path in PACKAGE.rglob("*.py")
        if path.name != "exceptions.py"
    }
    assert {k: v for k, v in elsewhere.items() if v} == {}, (
        "define skisal's exceptions in skisal/exceptions.py, deriving from SkisalError"
    )
    assert _exception_classes_defined_in(PACKAGE / "exceptions.py") == [
        "SkisalError",
        "InvalidParameterError",
        "SolverDivergenceError",
        "NonFiniteScoreError",
    ]


# -- a bad parameter: InvalidParameterError, a ValueError and a TypeError ----------------------
BAD_PARAMETERS = [
    ({"damping": -1.0}, "damping must be a finite real >= 0; got -1.0."),
    ({"selection": "best"}, "selection must be one of ('auto', 'top', 'diverse'); got 'best'."),
    ({"lissa_depth": 0}, "lissa_depth must be an integer >= 1; got 0."),
    ({"progress": "yes"}, "progress must be a bool; got 'yes'."),
    ({"return_scores": None}, "return_scores must be 'auto' or a bool; got None."),
    ({"y_reference": None}, "y_reference is required when X_reference is given."),
    ({"X_reference": None}, "X_reference is required when y_reference is given."),
    ({"y_reference": Y_REF[:5]}, "X_reference has 10 samples but y_reference has 5 labels."),
]


@pytest.mark.parametrize(("params", "message"), BAD_PARAMETERS)
def test_a_bad_parameter_raises_invalid_parameter_error(net, params, message):
    with pytest.raises(InvalidParameterError) as info:
        _query(net, **params)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, SkisalError)


@pytest.mark.parametrize("caught", [ValueError, TypeError, SkisalError])
def test_existing_handlers_of_a_bad_parameter_keep_working(net, caught):
    with pytest.raises(caught, match="damping must be"):
        _query(net, damping=float("nan"))


def test_bad_data_is_a_value_error_but_not_a_parameter_error(net):
    pool = X_POOL.copy()
    pool[3, 0] = np.nan
    strategy = InfluenceQueryStrategy(X_REF, Y_REF, X_labeled=X_LAB, y_labeled=Y_LAB)
    with pytest.raises(ValueError, match="X_pool holds NaN") as info:
        strategy(net, pool, n_instances=2)
    assert not isinstance(info.value, InvalidParameterError)


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (RandomSampling(return_scores="yes"), "return_scores must be 'auto' or a bool; got 'yes'."),
        (CoresetSampling(return_scores=1), "return_scores must be 'auto' or a bool; got 1."),
        (CoresetSampling(batch_size=0), "batch_size must be an integer >= 1; got 0."),
        (CoresetSampling(batch_size=True), "batch_size must be an integer >= 1; got True."),
    ],
)
def test_baselines_raise_invalid_parameter_error_with_the_same_messages(net, strategy, message):
    with pytest.raises(InvalidParameterError) as info:
        strategy(net, X_POOL, n_instances=2)
    assert str(info.value) == message


def test_coreset_takes_a_numpy_integer_batch_size_like_the_strategy(net):
    # The strategy's check accepts numpy integers; the baselines' now share it.
    by_numpy = CoresetSampling(batch_size=np.int64(7), X_labeled=X_LAB, return_scores=True)
    by_int = CoresetSampling(batch_size=7, X_labeled=X_LAB, return_scores=True)
    for got, expected in zip(by_numpy(net, X_POOL, 3), by_int(net, X_POOL, 3), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_skactiveml_scoring_batch_size_raises_invalid_parameter_error():
    pytest.importorskip("skactiveml")
    from skactiveml.classifier import SkorchClassifier

    from skisal.skactiveml import InfluenceSampling

    y = np.full(len(X), np.nan)
    y[:20] = Y_LAB
    clf = SkorchClassifier(
        torch.nn.Linear(4, 2),
        classes=[0.0, 1.0],
        neural_net_param_dict=dict(max_epochs=1, train_split=None, verbose=0),
    )
    with pytest.raises(InvalidParameterError, match="scoring_batch_size must be an integer >= 1"):
        InfluenceSampling(scoring_batch_size=0).query(X, y, clf)


# -- the numerical failures are SkisalErrors too, raised by a real query -----------------------
def test_a_non_finite_score_is_caught_as_skisal_error_and_arithmetic_error():
    torch.manual_seed(0)
    nan_net = NeuralNetClassifier(
        NaNAbove, criterion=torch.nn.CrossEntropyLoss, max_epochs=1, train_split=None, verbose=0
    ).fit(X_LAB, Y_LAB)
    pool = X_POOL.copy()
    pool[4, 0] = 5.0
    strategy = InfluenceQueryStrategy(X_REF, Y_REF, X_labeled=X_LAB, y_labeled=Y_LAB)
    for caught in (SkisalError, ArithmeticError):
        with pytest.raises(caught) as info:
            strategy(nan_net, pool, n_instances=2)
        assert type(info.value) is NonFiniteScoreError
