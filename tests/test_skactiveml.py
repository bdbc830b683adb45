"""InfluenceSampling against scikit-activeml's contract for pool query strategies.

The checks follow ``TemplateSingleAnnotatorPoolQueryStrategy`` of
scikit-activeml's repository (not shipped in its wheel): every constructor and
query parameter is validated, the classifier is left unchanged, the same
``random_state`` gives the same result, queries with 0 and 1 labelled samples
work, an oversized batch warns and returns every candidate, utilities are NaN
exactly where a sample is not a candidate. Beyond the template: the utilities
are the negated influences that :class:`~skisal.InfluenceQueryStrategy`
computes on the same network, and labels of any type are encoded as the
classifier encodes them.
"""

from __future__ import annotations

import copy
import inspect
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("skactiveml", reason="scikit-activeml needs scikit-learn >= 1.6")

from skactiveml.classifier import SklearnClassifier, SkorchClassifier
from skactiveml.utils import MISSING_LABEL
from sklearn.naive_bayes import GaussianNB

from skisal import InfluenceQueryStrategy, resolve_adapter
from skisal.adapters import SkactivemlSkorchAdapter
from skisal.engine.balance import balanced_order
from skisal.skactiveml import _FORWARDED, InfluenceSampling


class Net(torch.nn.Module):
    def __init__(self, n_classes: int = 3, with_features: bool = False) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, n_classes)
        self.with_features = with_features

    def forward(self, x: torch.Tensor):
        h = torch.tanh(self.hidden(x))
        return (self.out(h), h) if self.with_features else self.out(h)


def make_clf(
    classes=(0, 1, 2), missing_label=MISSING_LABEL, net_params=(), **kwargs
) -> SkorchClassifier:
    return SkorchClassifier(
        Net,
        classes=list(classes),
        missing_label=missing_label,
        random_state=0,
        neural_net_param_dict=dict(
            max_epochs=5, lr=0.1, train_split=None, verbose=0, **dict(net_params)
        ),
        **kwargs,
    )


X_ALL = np.random.RandomState(0).randn(40, 4).astype(np.float32)
Y_TRUE = (X_ALL[:, 0] > 0).astype(int) + (X_ALL[:, 1] > 0.5).astype(int)


@pytest.fixture
def data():
    """query()'s arguments: 40 samples, the first 12 labelled, 3 classes."""
    y = np.full(40, MISSING_LABEL)
    y[:12] = Y_TRUE[:12]
    return {"X": X_ALL.copy(), "y": y, "clf": make_clf()}


def query(qs=None, **overrides):
    return (qs or InfluenceSampling(random_state=0)).query(**overrides)


def state(clf) -> dict:
    """What a query must leave unchanged: attributes and, when fitted, every weight."""
    out = {"keys": sorted(vars(clf))}
    if hasattr(clf, "neural_net_"):
        out["weights"] = {k: v.clone() for k, v in clf.neural_net_.module_.state_dict().items()}
        out["training"] = clf.neural_net_.module_.training
    return out


def assert_same_state(before: dict, after: dict) -> None:
    assert before["keys"] == after["keys"]
    if "weights" in before:
        assert before["training"] == after["training"]
        for k, v in before["weights"].items():
            torch.testing.assert_close(after["weights"][k], v, rtol=0, atol=0)


# -- every parameter is checked -------------------------------------------------
QUERY_CASES = {
    "X": [("string", (ValueError, TypeError)), (None, (ValueError, TypeError))],
    "y": [(np.nan, TypeError)],
    "clf": [
        (np.nan, TypeError),
        ("state", TypeError),
        (GaussianNB(), TypeError),
        (SklearnClassifier(GaussianNB()), TypeError),
    ],
    "fit_clf": [(np.nan, TypeError), ("state", TypeError)],
    "sample_weight": [
        (np.nan, (ValueError, TypeError)),
        ("weights", (ValueError, TypeError)),
        (np.ones(41), ValueError),
        (np.r_[np.full(39, 1.0), np.inf], ValueError),
        (np.arange(40.0), ValueError),  # not uniform over the labelled samples
    ],
    "candidates": [(np.nan, ValueError), ([99], ValueError), (np.zeros((2, 3)), ValueError)],
    "batch_size": [(0, ValueError), (1.2, TypeError)],
    "return_utilities": [("string", TypeError)],
}

INIT_CASES = {
    "missing_label": [(object, TypeError)],
    "random_state": [(np.nan, ValueError), ("state", ValueError)],
    "X_reference": [("string", (ValueError, TypeError))],
    "y_reference": [(np.zeros(3), ValueError)],  # without X_reference
    "scoring_batch_size": [(0, ValueError), (2.5, ValueError)],
    "inverse_hvp": [("newton", ValueError)],
    "damping": [(-1.0, ValueError)],
    "curvature": [("exact", ValueError)],
    "lissa_depth": [(0, ValueError)],
    "lissa_repeats": [(0, ValueError)],
    "lissa_scale": [(-1.0, ValueError)],
    "lissa_tol": [(-1.0, ValueError)],
    "hessian_batch_size": [(0, ValueError)],
    "cg_max_iter": [(0, ValueError)],
    "cg_tol": [(0.0, ValueError)],
    "lanczos_rank": [(0, ValueError)],
    "hessian_subsample": [(0, ValueError), (2.5, ValueError)],
    "parameters": [(["no_such_layer"], ValueError)],
    "adapter": [("skorch", TypeError)],
    "selection": [("best", ValueError)],
    "min_reference_accuracy": [(1.5, ValueError), ("half", (ValueError, TypeError))],
    "device": [(42, (TypeError, RuntimeError, ValueError))],
    "scoring": [("sideways", ValueError)],
    "progress": [("yes", ValueError)],
    "autocast": [("half", ValueError)],
}


def test_every_parameter_has_a_test():
    init = set(inspect.signature(InfluenceSampling.__init__).parameters) - {"self"}
    assert init == set(INIT_CASES)
    assert set(_FORWARDED) | {"X_reference", "y_reference", "scoring_batch_size"} == init - {
        "missing_label",
        "random_state",
    }
    query_params = set(inspect.signature(InfluenceSampling.query).parameters) - {"self"}
    assert query_params == set(QUERY_CASES)
    # scikit-activeml's pool strategies share this signature (UncertaintySampling adds
    # utility_weight); Badge's is the same as ours.
    from skactiveml.pool import Badge

    assert list(inspect.signature(Badge.query).parameters) == list(
        inspect.signature(InfluenceSampling.query).parameters
    )


@pytest.mark.parametrize(
    "name,value,error", [(n, v, e) for n, cases in QUERY_CASES.items() for v, e in cases]
)
def test_invalid_query_parameter_is_refused(data, name, value, error):
    with pytest.raises(error):
        query(**{**data, name: value})


@pytest.mark.parametrize(
    "name,value,error", [(n, v, e) for n, cases in INIT_CASES.items() for v, e in cases]
)
def test_invalid_init_parameter_is_refused_at_query_time(data, name, value, error):
    qs = InfluenceSampling(**{"random_state": 0, name: value})  # __init__ only stores
    assert getattr(qs, name) is value
    with pytest.raises(error):
        qs.query(**data)


def test_init_stores_every_parameter_unchanged():
    params = {name: object() for name in INIT_CASES}
    qs = InfluenceSampling(**params)
    assert all(getattr(qs, k) is v for k, v in params.items())
    assert qs.get_params(deep=False).keys() == params.keys()


def test_valid_values_of_query_parameters(data):
    query(**data, fit_clf=True, sample_weight=np.ones(40), return_utilities=True)
    query(**data, sample_weight=np.r_[np.full(12, 2.0), np.arange(28.0)])  # uniform on labels
    idx = query(**data, candidates=[20], batch_size=1)
    np.testing.assert_array_equal(idx, [20])


# -- the classifier and the caller's state are left alone ----------------------------
@pytest.mark.parametrize("fit_clf", [True, False])
def test_clf_unchanged(data, fit_clf):
    clf = data["clf"]
    if not fit_clf:
        torch.manual_seed(0)
        clf = copy.deepcopy(clf).fit(data["X"], data["y"])
    before = state(clf)
    rng_before = torch.random.get_rng_state()
    query(**{**data, "clf": clf, "fit_clf": fit_clf, "batch_size": 3})
    assert_same_state(before, state(clf))
    assert torch.equal(rng_before, torch.random.get_rng_state())


def test_unfitted_clf_with_fit_clf_false_says_so(data):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="fit_clf=True"):
        query(**data, fit_clf=False)


def test_same_random_state_same_result(data):
    qs = InfluenceSampling(random_state=np.random.RandomState(0))
    id1, u1 = qs.query(**data, batch_size=4, return_utilities=True)
    id2, u2 = qs.query(**data, batch_size=4, return_utilities=True)
    np.testing.assert_array_equal(id1, id2)
    np.testing.assert_allclose(u1, u2)
    assert u1.shape == (4, 40)
    id3, u3 = InfluenceSampling(random_state=0).query(**data, batch_size=4, return_utilities=True)
    id4, u4 = InfluenceSampling(random_state=0).query(**data, batch_size=4, return_utilities=True)
    np.testing.assert_array_equal(id3, id4)
    np.testing.assert_array_equal(u3, u4)


# -- utilities ----------------------------------------------------------------------
def test_utilities_are_negated_influences_of_the_fitted_network(data):
    torch.manual_seed(0)
    clf = copy.deepcopy(data["clf"]).fit(data["X"], data["y"])
    qs = InfluenceSampling(inverse_hvp="exact", random_state=0)
    idx, utilities = qs.query(**{**data, "clf": clf, "fit_clf": False}, return_utilities=True)
    labeled = np.arange(12)
    # The same influence through the plain skorch net inside the wrapper, labels as indices.
    reference = InfluenceQueryStrategy(inverse_hvp="exact").influence(
        clf.neural_net_,
        data["X"][12:],
        X_labeled=data["X"][labeled],
        y_labeled=data["y"][labeled].astype(int),
    )
    np.testing.assert_allclose(utilities[0, 12:], -reference, rtol=1e-10)
    assert np.isnan(utilities[0, :12]).all()
    assert idx[0] == 12 + np.argmin(reference)
    np.testing.assert_allclose(-qs.influence_strategy_.scores_, utilities[0, 12:])


@pytest.mark.parametrize("selection", ["top", "auto", "diverse"])
def test_batch_masks_previous_picks_and_nan_at_labelled_samples(data, selection):
    qs = InfluenceSampling(selection=selection, random_state=0)
    idx, utilities = qs.query(**data, batch_size=5, return_utilities=True)
    assert len(set(idx)) == 5 and all(i >= 12 for i in idx)
    for b in range(5):
        assert np.isnan(utilities[b]).sum() == 12 + b
        assert np.isnan(utilities[b, idx[:b]]).all()
        if selection == "top":  # the others are the strategy's own picks, not the argmax
            assert idx[b] == np.nanargmax(utilities[b])


def test_oversized_batch_warns_and_returns_every_candidate(data):
    for selection in ("top", "auto", "diverse"):
        qs = InfluenceSampling(selection=selection, random_state=0)
        with pytest.warns(UserWarning, match="larger than number of candidate"):
            idx = qs.query(**data, batch_size=29)
        assert sorted(idx) == list(range(12, 40))


def test_candidates_as_indices_and_as_samples(data):
    _, u_all = query(**data, return_utilities=True)
    _, u_idx = query(**data, candidates=np.arange(12, 40), return_utilities=True)
    np.testing.assert_allclose(u_all, u_idx)
    _, u_one = query(**data, candidates=[20], return_utilities=True)
    expected = np.full(40, np.nan)
    expected[20] = u_one[0, 20]
    np.testing.assert_allclose(u_one[0], expected)
    idx, u_samples = query(**data, candidates=data["X"][12:], return_utilities=True)
    assert u_samples.shape == (1, 28)
    np.testing.assert_allclose(u_samples[0], u_all[0, 12:])
    assert idx[0] == np.argmax(u_all[0, 12:])


@pytest.mark.parametrize("right", [True, False])
def test_auto_selection_is_the_strategys_class_balanced_rule(data, right):
    clf = data["clf"].fit(data["X"], data["y"])
    X_ref = X_ALL[:12]
    predicted = clf.predict(X_ref)
    y_ref = predicted if right else (predicted + 1) % 3  # accuracy 1 or 0
    qs = InfluenceSampling(X_reference=X_ref, y_reference=y_ref, random_state=0)
    assert qs.selection == "auto"
    idx = qs.query(**{**data, "clf": clf}, fit_clf=False, batch_size=6)
    strategy = qs.influence_strategy_
    if right:
        assert strategy.diagnostics_.selection == "diverse"
        diverse = InfluenceSampling(
            X_reference=X_ref, y_reference=y_ref, selection="diverse", random_state=0
        )
        expected = diverse.query(**{**data, "clf": clf}, fit_clf=False, batch_size=6)
        np.testing.assert_array_equal(idx, expected)
        return
    assert strategy.diagnostics_.selection == "margin"
    proba = clf.predict_proba(data["X"][12:])
    top2 = np.sort(proba, axis=1)[:, ::-1]
    margins, labels = top2[:, 0] - top2[:, 1], proba.argmax(axis=1)
    np.testing.assert_array_equal(idx, 12 + balanced_order(margins, labels, 6))


def test_diverse_selection_picks_distinct_candidates(data):
    qs = InfluenceSampling(selection="diverse", random_state=0)
    idx, utilities = qs.query(**data, batch_size=6, return_utilities=True)
    assert len(set(idx)) == 6 and all(i >= 12 for i in idx)
    assert idx[0] == np.nanargmax(utilities[0])  # k-means++ starts from the best sample
    for b in range(6):
        assert np.isnan(utilities[b, idx[:b]]).all()


# -- few labels ---------------------------------------------------------------------
def test_no_labelled_sample_without_reference_is_a_random_query_with_a_warning(data):
    y = np.full(40, MISSING_LABEL)
    with pytest.warns(UserWarning, match="no labelled sample and no X_reference"):
        idx, utilities = query(**{**data, "y": y}, batch_size=3, return_utilities=True)
    assert len(set(idx)) == 3
    np.testing.assert_array_equal(utilities[0], np.zeros(40))


def test_no_labelled_sample_with_reference_is_gradient_similarity_over_damping(data):
    y = np.full(40, MISSING_LABEL)
    X_ref, y_ref = data["X"][:6], Y_TRUE[:6]
    qs = InfluenceSampling(X_ref, y_ref, damping=0.5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, utilities = qs.query(**{**data, "y": y}, return_utilities=True)
    similarity = qs.influence_strategy_.scores_  # inverse_hvp="identity": -grad l(R)^T G_z
    np.testing.assert_allclose(utilities[0], -similarity / 0.5)
    assert qs.influence_strategy_.inverse_hvp == "identity"
    with pytest.raises(ValueError, match="damping=0"):
        InfluenceSampling(X_ref, y_ref, damping=0.0).query(**{**data, "y": y})


def test_one_labelled_sample(data):
    y = np.full(40, MISSING_LABEL)
    y[0] = Y_TRUE[0]
    idx, utilities = query(**{**data, "y": y}, batch_size=2, return_utilities=True)
    assert len(set(idx)) == 2 and 0 not in idx
    assert np.isnan(utilities[0, 0]) and np.isfinite(utilities[0, 1:]).all()


# -- labels of any type ---------------------------------------------------------------
@pytest.mark.parametrize(
    "missing_label,classes,dtype",
    [
        (np.nan, [1.0, 2.0, 3.0], float),
        (0, [1, 2, 3], int),
        (None, ["A", "B", "C"], object),
        ("", ["A", "B", "C"], str),
    ],
)
def test_labels_of_any_type_match_their_index_encoding(data, missing_label, classes, dtype):
    y = np.full(40, missing_label, dtype=dtype)
    y[:12] = np.asarray(classes, dtype=dtype)[Y_TRUE[:12]]
    X_ref = data["X"][12:20]
    y_ref = np.asarray(classes, dtype=dtype)[Y_TRUE[12:20]]
    common = dict(X=data["X"], batch_size=3, return_utilities=True)
    encoded = dict(y=np.r_[Y_TRUE[:12], np.full(28, -1)], clf=make_clf((0, 1, 2), missing_label=-1))
    kwargs = dict(inverse_hvp="exact", random_state=0)
    id1, u1 = InfluenceSampling(X_ref, y_ref, missing_label=missing_label, **kwargs).query(
        y=y, clf=make_clf(classes, missing_label=missing_label), **common
    )
    id2, u2 = InfluenceSampling(X_ref, Y_TRUE[12:20], missing_label=-1, **kwargs).query(
        **encoded, **common
    )
    np.testing.assert_array_equal(id1, id2)
    np.testing.assert_allclose(u1, u2, rtol=1e-6)


def test_reference_labels_outside_the_classes_are_named(data):
    qs = InfluenceSampling(data["X"][:4], np.array([0, 1, 2, 7]), random_state=0)
    with pytest.raises(ValueError, match="y_reference holds labels the SkorchClassifier"):
        qs.query(**data)


# -- the adapter ------------------------------------------------------------------------
def test_influence_query_strategy_resolves_a_skorch_classifier(data):
    torch.manual_seed(0)
    clf = copy.deepcopy(data["clf"]).fit(data["X"], data["y"])
    assert isinstance(resolve_adapter(clf), SkactivemlSkorchAdapter)
    scores = InfluenceQueryStrategy(random_state=0).influence(
        clf, data["X"][12:], X_labeled=data["X"][:12], y_labeled=data["y"][:12]
    )
    direct = InfluenceQueryStrategy(random_state=0).influence(
        clf.neural_net_,
        data["X"][12:],
        X_labeled=data["X"][:12],
        y_labeled=data["y"][:12].astype(int),
    )
    np.testing.assert_allclose(scores, direct, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="y_labeled holds the missing label"):
        InfluenceQueryStrategy().influence(
            clf, data["X"][12:], X_labeled=data["X"][:14], y_labeled=data["y"][:14]
        )


def test_multi_output_module_scores_the_criterion_output(data):
    clf = make_clf(
        net_params={"module__with_features": True},
        forward_outputs={"proba": (0, torch.nn.Softmax(dim=-1)), "emb": (1, None)},
    )
    idx, utilities = query(**{**data, "clf": clf}, batch_size=2, return_utilities=True)
    assert np.isfinite(utilities[0, 12:]).all() and len(set(idx)) == 2


def test_closed_form_derivative_applies_through_the_routing_criterion(data):
    """scikit-activeml's criterion subclass only routes outputs: the closed form must apply."""
    from skisal import ModelAdapter

    torch.manual_seed(0)
    clf = copy.deepcopy(data["clf"]).fit(data["X"], data["y"])
    adapter = resolve_adapter(clf)
    criterion = clf.neural_net_.criterion_
    assert type(criterion) is not torch.nn.CrossEntropyLoss  # scikit-activeml's subclass
    assert adapter._loss_class(criterion) is torch.nn.CrossEntropyLoss
    outputs = torch.randn(6, 3, dtype=torch.float64)
    tangents = torch.randn(6, 3, dtype=torch.float64)
    closed = adapter.pseudo_label_derivative(clf, outputs, tangents)
    by_autograd = ModelAdapter.pseudo_label_derivative(adapter, clf, outputs, tangents)
    torch.testing.assert_close(closed, by_autograd)


class EmbeddingFirst(torch.nn.Module):
    """Returns (embedding, logits): the loss is on the second element."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor):
        h = torch.tanh(self.hidden(x))
        return h, self.out(h)


def test_the_output_routed_to_the_loss_is_scored(data):
    clf = SkorchClassifier(
        EmbeddingFirst,
        classes=[0, 1, 2],
        forward_outputs={"emb": (0, None), "proba": (1, torch.nn.Softmax(dim=-1))},
        criterion_output_keys="proba",
        neural_net_param_dict=dict(max_epochs=5, lr=0.1, train_split=None, verbose=0),
    )
    torch.manual_seed(0)
    clf = clf.fit(data["X"], data["y"])
    adapter = resolve_adapter(clf)
    module = clf.neural_net_.module_
    x = torch.as_tensor(data["X"][:5])
    torch.testing.assert_close(adapter.forward(clf, module, x), module(x)[1])
    idx = query(**{**data, "clf": clf, "fit_clf": False}, batch_size=2)
    assert len(set(idx)) == 2


def test_explain_names_pseudo_labels_in_the_classifiers_own_labels():
    names = np.array(["low", "mid", "high"])
    torch.manual_seed(0)
    clf = make_clf(classes=names, missing_label="none").fit(X_ALL[:20], names[Y_TRUE[:20]])
    strategy = InfluenceQueryStrategy(
        X_ALL[20:30], names[Y_TRUE[20:30]], X_labeled=X_ALL[:20], y_labeled=names[Y_TRUE[:20]]
    )
    strategy.influence(clf, X_ALL[30:])
    table = strategy.explain()
    np.testing.assert_array_equal(table["pseudo_label"].to_numpy(), clf.predict(X_ALL[30:]))
    np.testing.assert_allclose(
        table["confidence"], clf.predict_proba(X_ALL[30:]).max(axis=1), rtol=1e-5
    )


def test_explain_of_the_inner_strategy_covers_the_candidates_in_order(data):
    qs = InfluenceSampling(selection="top", random_state=0)
    idx, utilities = qs.query(**data, batch_size=3, return_utilities=True)
    table = qs.influence_strategy_.explain()
    unlabelled = np.flatnonzero(np.isnan(data["y"]))
    assert len(table) == len(unlabelled)
    np.testing.assert_allclose(-table["influence"], utilities[0, unlabelled])
    # simple_batch picks the highest utilities: the table's first ranks
    np.testing.assert_array_equal(np.sort(idx), np.sort(unlabelled[table["rank"] <= 3]))
