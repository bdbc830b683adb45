"""scikit-learn's estimator checks that apply to skisal's estimators.

Adapters and query strategies are scikit-learn estimators without ``fit``: they
take parameters, and compose with ``get_params``, ``set_params`` and ``clone``
(a strategy's ``adapter__top_k``). So they get the checks of that contract:
construction stores the parameters and nothing else, ``set_params`` validates
nothing, the repr and ``clone`` work.

The other checks do not apply: they fit the estimator on generated 2-D numeric
arrays and then call ``predict``/``transform``/``score`` (dtypes, NaN, sample
weights, pickling or idempotence of a fitted estimator, ``n_features_in_``, the
classifier and regressor checks). Adapters and strategies have no ``fit``, and
``TorchvisionDetector.fit`` takes lists of images and box targets, not such
arrays. Of the checks on an unfitted estimator, ``check_estimators_unfitted``
(``predict`` before ``fit`` raises ``NotFittedError``) applies to the detector,
the only one of these with a ``predict``.

Checks newer than the installed scikit-learn are not collected; the core ones exist in all.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import sklearn
from sklearn.base import BaseEstimator, clone
from sklearn.utils import estimator_checks


def _skorch_adapter(**params):
    from skisal import SkorchClassifierAdapter

    return SkorchClassifierAdapter(**params)


def _skactiveml_adapter():
    from skisal.adapters import SkactivemlSkorchAdapter

    return SkactivemlSkorchAdapter()


def _detection(name: str) -> Callable[[], BaseEstimator]:
    def make():
        pytest.importorskip("torchvision", reason="skisal.detection needs torchvision")
        from skisal import detection

        return getattr(detection, name)()

    return make


def _strategy(**params):
    from skisal import InfluenceQueryStrategy

    return InfluenceQueryStrategy(**params)


def _baseline(name: str) -> Callable[[], BaseEstimator]:
    def make():
        import skisal

        return getattr(skisal, name)()

    return make


def _influence_sampling():
    pytest.importorskip("skactiveml", reason="skisal.skactiveml needs scikit-activeml")
    from skisal.skactiveml import InfluenceSampling

    return InfluenceSampling()


#: id (how the estimator reads) -> a factory; instances are built in the test, so that a
#: missing optional dependency skips its estimator only.
ESTIMATORS: dict[str, Callable[[], BaseEstimator]] = {
    "SkorchClassifierAdapter()": _skorch_adapter,
    "SkorchClassifierAdapter(top_k=2)": lambda: _skorch_adapter(top_k=2),
    "SkactivemlSkorchAdapter()": _skactiveml_adapter,
    "DetectionAdapter()": _detection("DetectionAdapter"),
    "InfluenceQueryStrategy()": _strategy,
    "InfluenceQueryStrategy(adapter=SkorchClassifierAdapter(top_k=2))": (
        lambda: _strategy(adapter=_skorch_adapter(top_k=2))
    ),
    "RandomSampling()": _baseline("RandomSampling"),
    "CoresetSampling()": _baseline("CoresetSampling"),
    "TorchvisionDetector()": _detection("TorchvisionDetector"),
    "InfluenceSampling()": _influence_sampling,
}

#: The checks of construction and parameters (scikit-learn 1.9 runs them on every estimator
#: in ``_yield_api_checks`` and ``_yield_all_checks``); none fits the estimator.
API_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
]

#: In every scikit-learn skisal supports (>= 1.3): these always run.
CORE_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
]

# Checks newer than the installed scikit-learn are not collected (there is nothing to run);
# test_the_core_checks_exist_here makes sure the core ones always are.
CASES = [
    (estimator, check)
    for estimator in ESTIMATORS
    for check in API_CHECKS
    if hasattr(estimator_checks, check)
]
CASES.append(("TorchvisionDetector()", "check_estimators_unfitted"))


def test_the_core_checks_exist_here() -> None:
    assert set(CORE_CHECKS) <= set(API_CHECKS)
    needed = (*CORE_CHECKS, "check_estimators_unfitted")
    missing = [check for check in needed if not hasattr(estimator_checks, check)]
    assert not missing, f"scikit-learn {sklearn.__version__} lacks {missing}"


@pytest.mark.parametrize(("estimator", "check"), CASES)
def test_estimator_check(estimator: str, check: str) -> None:
    check_function = getattr(estimator_checks, check)
    instance = ESTIMATORS[estimator]()
    name = type(instance).__name__
    with warnings.catch_warnings():
        # check_set_params only warns when set_params validates (it must not: parameters
        # are checked at use time); as an error, that fails the test.
        warnings.simplefilter("error", UserWarning)
        # Every version takes (name, instance): scikit-learn 1.3's
        # check_parameters_default_constructible names its second argument Estimator
        # but reads the class from the instance.
        check_function(name, instance)


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_clone_round_trip(estimator: str) -> None:
    """``clone`` rebuilds an equal estimator; nested estimators are cloned, not shared."""
    original = ESTIMATORS[estimator]()
    cloned = clone(original)
    assert type(cloned) is type(original)
    assert cloned is not original
    assert repr(cloned) == repr(original) == estimator
    params, cloned_params = original.get_params(deep=True), cloned.get_params(deep=True)
    assert params.keys() == cloned_params.keys()
    for key, value in params.items():
        if isinstance(value, BaseEstimator):
            assert cloned_params[key] is not value
            assert repr(cloned_params[key]) == repr(value)
        else:
            assert cloned_params[key] is value or cloned_params[key] == value
