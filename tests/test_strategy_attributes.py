"""The fitted attributes a query sets are the ones the class's Attributes section documents."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from conftest import learner_on_labelled
from skisal import InfluenceQueryStrategy
from skisal.baselines import CoresetSampling, RandomSampling


def documented_attributes(cls: type) -> set[str]:
    """The names of the numpydoc Attributes section of ``cls``'s docstring."""
    lines = inspect.getdoc(cls).splitlines()
    if "Attributes" not in lines:
        return set()
    section = lines[lines.index("Attributes") + 2 :]  # past the underline
    names = set()
    for line, following in zip(section, [*section[1:], ""], strict=True):
        if following and set(following) == {"-"}:  # the next section's title
            break
        if line and not line[0].isspace():  # "name : type"; descriptions are indented
            names.update(name.strip() for name in line.split(" : ")[0].split(","))
    return names


def set_attributes(estimator: object) -> set[str]:
    """scikit-learn's fitted attributes: public names ending in an underscore."""
    return {k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")}


def test_the_parser_reads_a_numpydoc_attributes_section():
    class Documented:
        """Summary.

        Attributes
        ----------
        a_, b_ : int
            Two.
        c_ : ndarray of shape (n,)
            Described : on an indented line.

        Examples
        --------
        >>> 1
        1
        """

    assert documented_attributes(Documented) == {"a_", "b_", "c_"}


def _strategies(digits):
    labelled = dict(X_labeled=digits["X_labeled"], y_labeled=digits["y_labeled"])
    return {
        "InfluenceQueryStrategy": InfluenceQueryStrategy(
            digits["X_reference"], digits["y_reference"], random_state=0, **labelled
        ),
        "RandomSampling": RandomSampling(random_state=0),
        "CoresetSampling": CoresetSampling(X_labeled=digits["X_labeled"]),
    }


@pytest.mark.parametrize("name", ["InfluenceQueryStrategy", "RandomSampling", "CoresetSampling"])
def test_a_query_sets_exactly_the_documented_attributes(digits, fitted_net, name):
    strategy = _strategies(digits)[name]
    learner = learner_on_labelled(digits, fitted_net, strategy)
    learner.query(digits["X_pool"], n_instances=3)
    assert set_attributes(strategy) == documented_attributes(type(strategy))


def test_the_influence_strategy_documents_every_result_of_a_query():
    # Guards the test above from passing on an empty section.
    assert documented_attributes(InfluenceQueryStrategy) == {
        "scores_",
        "s_test_",
        "reference_gradient_",
        "parameter_names_",
        "diagnostics_",
        "annotation_costs_",
        "deferred_",
        "query_cost_",
    }


def test_influence_sets_the_documented_attributes_but_the_selection_cost(digits, fitted_net):
    strategy = _strategies(digits)["InfluenceQueryStrategy"]
    strategy.influence(fitted_net, digits["X_pool"])
    assert set_attributes(strategy) == documented_attributes(InfluenceQueryStrategy) - {
        "query_cost_"
    }
    n_pool = len(digits["X_pool"])
    np.testing.assert_array_equal(strategy.annotation_costs_, np.ones(n_pool))
    np.testing.assert_array_equal(strategy.deferred_, np.zeros(n_pool, dtype=bool))
