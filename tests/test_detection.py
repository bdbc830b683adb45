"""ISAL on torchvision detectors: the estimator, the adapter, baselines, a modAL loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner

from conftest import (
    assert_module_unchanged,
    requires_modal_041,
    run_with_modal_041,
    snapshot_module,
)
from skisal import InfluenceQueryStrategy, RandomSampling
from skisal.detection import (
    DetectionAdapter,
    TorchvisionDetector,
    as_object_array,
    detection_uncertainty,
    make_shapes,
)

FAMILIES = ["fcos_small", "retinanet_small", "fasterrcnn_small"]


@pytest.fixture(scope="module")
def data():
    return make_shapes(70, image_size=(48, 80), random_state=0)


def _detector(name: str, **kw) -> TorchvisionDetector:
    params = dict(num_classes=4, min_size=64, max_size=96, epochs=3, random_state=0)
    return TorchvisionDetector(name, **{**params, **kw})


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return {name: _detector(name).fit(X[:30], y[:30]) for name in FAMILIES}


def _strategy(data, **kw) -> InfluenceQueryStrategy:
    X, y = data
    params = dict(X_labeled=X[:30], y_labeled=y[:30], return_scores=True, random_state=0)
    return InfluenceQueryStrategy(X[30:40], y[30:40], **{**params, **kw})


# -- the adapter's loss is torchvision's training loss ------------------------------


@pytest.mark.parametrize("name", ["fcos_small", "retinanet_small"])
def test_per_image_loss_is_the_models_own_training_loss(data, fitted, name):
    X, y = data
    detector = fitted[name]
    module, adapter = detector.module_, DetectionAdapter()
    from skisal.engine import BoundModel, ParameterSpace, evaluation_mode, select_parameters

    space = ParameterSpace(select_parameters(module, adapter.default_parameters))
    model = BoundModel(adapter, detector, module, space, torch.device("cpu"))
    with evaluation_mode(module), torch.no_grad():
        for i in (0, 3):
            ours = model.mean_loss(None, X, y, np.array([i]))
            # torchvision's own: training mode, one image (its transform is deterministic here)
            module.train()
            target = {k: torch.as_tensor(v) for k, v in y[i].items()}
            theirs = sum(module([X[i]], [target]).values())
            module.eval()
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


# -- forward mode against reverse mode, frozen features against unfrozen ---------------


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_mode_scores_equal_reverse_mode_dot_products(data, fitted, name):
    # In float64: a pseudo-box equals its prediction, where GIoU has a kink, so the
    # one-sided gradient autograd takes follows rounding; in one precision both agree.
    import copy

    X, y = data
    detector = copy.deepcopy(fitted[name])
    detector.module_.double()
    X = as_object_array([x.double() for x in X])
    data = (X, y)
    forward = _strategy(data, scoring="forward").influence(detector, X[40:52])
    reverse = _strategy(data, scoring="reverse").influence(detector, X[40:52])
    assert np.abs(forward).max() > 0
    np.testing.assert_allclose(forward, reverse, rtol=1e-7, atol=1e-9 * np.abs(reverse).max())


def test_influence_of_an_image_does_not_depend_on_its_batch(data, fitted):
    X, _ = data
    one = _strategy(data, batch_size=1).influence(fitted["fcos_small"], X[40:48])
    eight = _strategy(data, batch_size=8).influence(fitted["fcos_small"], X[40:48])
    np.testing.assert_allclose(one, eight, rtol=1e-4)


@pytest.mark.parametrize("name", FAMILIES)
def test_scores_of_a_pool_equal_its_images_scored_one_at_a_time(data, fitted, name):
    # Every image runs through the network alone, as a batch of one: its score is the same
    # to the last bit whatever else is in the pool (s_test = grad l(R) keeps this quick).
    X, _ = data
    strategy = _strategy(data, batch_size=4, inverse_hvp="identity")
    together = strategy.influence(fitted[name], X[40:45])
    alone = [strategy.influence(fitted[name], X[i : i + 1])[0] for i in range(40, 45)]
    assert np.abs(together).max() > 0
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("name", FAMILIES)
def test_frozen_features_give_the_same_influence_as_the_whole_network(data, fitted, name):
    # Frozen: backbone, FPN and (one-stage) head towers computed once; the final layers rerun.
    X, _ = data
    frozen = _strategy(data).influence(fitted[name], X[40:50])
    whole = _strategy(data, adapter=DetectionAdapter(freeze_features=False))
    np.testing.assert_allclose(frozen, whole.influence(fitted[name], X[40:50]), rtol=1e-4)


@pytest.mark.parametrize("name", ["fcos_small", "retinanet_small"])
def test_head_outputs_from_cached_towers_equal_the_whole_head(data, name):
    # Untrained: about half of the raw box regressions are negative, where FCOS clips them.
    from skisal.detection import build_detector

    torch.manual_seed(0)
    module = build_detector(name, num_classes=4, min_size=64, max_size=96).eval()
    X, _ = data
    frozen, whole = DetectionAdapter(), DetectionAdapter(freeze_features=False)
    batch = frozen.get_inputs(module, X, np.arange(3), torch.device("cpu"))
    with torch.no_grad():
        encoded = frozen.encode(module, module, batch)
        assert encoded.towers is not None and len(encoded.towers) == 3  # one per image
        ours = frozen.forward(module, module, encoded)
        theirs = whole.forward(module, module, batch)
    assert set(ours) == set(theirs)
    for key in ours.keys() - {"context"}:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6)


def test_encoded_batches_count_their_features_against_the_cache(data, fitted):
    X, _ = data
    module, adapter = fitted["fcos_small"].module_, DetectionAdapter(feature_cache_mb=2)
    assert adapter.input_cache_bytes == 2 * 2**20
    assert DetectionAdapter(freeze_features=False).input_cache_bytes == 0  # nothing encoded
    batch = adapter.get_inputs(module, X, np.arange(2), torch.device("cpu"))
    assert adapter.encoded_nbytes(batch) == 0
    with torch.no_grad():
        encoded = adapter.encode(module, module, batch)
    tensors = [f for levels in encoded.features for f in levels]
    tensors += [t for pair in encoded.towers for side in pair for t in side]
    tensors += encoded.context.anchors
    assert adapter.encoded_nbytes(encoded) == sum(t.numel() * 4 for t in tensors) > 0


def test_cached_features_give_the_same_s_test_as_recomputed_ones(data, fitted):
    X, _ = data
    cached = _strategy(data, random_state=1)
    cached.influence(fitted["fcos_small"], X[40:45])
    uncached = _strategy(data, random_state=1, adapter=DetectionAdapter(feature_cache_mb=0))
    uncached.influence(fitted["fcos_small"], X[40:45])
    for name, value in cached.s_test_.items():
        torch.testing.assert_close(value, uncached.s_test_[name])


def test_tracked_parameters_default_to_the_final_prediction_layers(data, fitted):
    strategy = _strategy(data)
    strategy.influence(fitted["fcos_small"], data[0][40:42])
    assert {n.rsplit(".", 1)[0] for n in strategy.parameter_names_} == {
        "head.classification_head.cls_logits",
        "head.regression_head.bbox_reg",
        "head.regression_head.bbox_ctrness",
    }


def test_backbone_parameters_need_unfrozen_features(data, fitted):
    X, _ = data
    for frozen in ("backbone.body.layer4", "head.classification_head.conv"):
        strategy = _strategy(data, parameters=[frozen])
        with pytest.raises(ValueError, match="freeze_features=False"):
            strategy.influence(fitted["fcos_small"], X[40:42])
    unfrozen = _strategy(
        data,
        parameters=["backbone.body.layer4", "head.classification_head.cls_logits"],
        adapter=DetectionAdapter(freeze_features=False),
        inverse_hvp="identity",
    )
    assert np.isfinite(unfrozen.influence(fitted["fcos_small"], X[40:42])).all()


# -- the user's model is untouched --------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_query_leaves_detector_and_pool_unchanged(data, fitted, name):
    X, _ = data
    module = fitted[name].module_
    module.roi_heads.train() if hasattr(module, "roi_heads") else module.head.train()  # mixed
    before = snapshot_module(module)
    score_thresh = getattr(module, "score_thresh", None)
    pool = X[40:50]
    pool_copy = [img.clone() for img in pool]
    try:
        _strategy(data)(fitted[name], pool, n_instances=3)
    finally:
        assert_module_unchanged(before, module)
        module.eval()
    assert getattr(module, "score_thresh", None) == score_thresh
    assert all(torch.equal(a, b) for a, b in zip(pool, pool_copy, strict=True))


def test_bare_torchvision_module_is_resolved_and_scored(data, fitted):
    X, _ = data
    module = fitted["retinanet_small"].module_
    ours = _strategy(data).influence(fitted["retinanet_small"], X[40:46])
    bare = _strategy(data).influence(module, X[40:46])
    np.testing.assert_allclose(ours, bare)


# -- pseudo-boxes, costs and budgets ------------------------------------------------


def test_explain_shows_each_images_most_confident_pseudo_box_and_its_cost(data, fitted):
    X, _ = data
    detector, threshold = fitted["fcos_small"], 0.3
    strategy = _strategy(data, adapter=DetectionAdapter(score_threshold=threshold))
    strategy.influence(detector, X[40:60])
    table = strategy.explain()
    module = detector.module_
    module.score_thresh, default = threshold, module.score_thresh
    try:
        predicted = detector.predict(X[40:60])
    finally:
        module.score_thresh = default
    for i, found in enumerate(predicted):
        row = table.loc[i]
        assert row["cost"] == len(found["boxes"])
        if len(found["boxes"]):
            best = int(found["scores"].argmax())
            assert row["pseudo_label"] == int(found["labels"][best])
            assert row["confidence"] == pytest.approx(float(found["scores"][best]), rel=1e-4)
        else:
            assert row["pseudo_label"] is None and np.isnan(row["confidence"])
    assert table["margin"].isna().all()


def test_costs_are_the_pseudo_box_counts_and_budget_selects_in_order(data, fitted):
    X, _ = data
    detector, threshold = fitted["fcos_small"], 0.3
    strategy = _strategy(data, adapter=DetectionAdapter(score_threshold=threshold))
    idx, _ = strategy(detector, X[40:60], n_instances=5)
    module = detector.module_
    module.score_thresh, default = threshold, module.score_thresh
    try:
        counts = [len(d["boxes"]) for d in detector.predict(X[40:60])]
    finally:
        module.score_thresh = default
    # the model's own post-processing in its own frame: the same boxes
    np.testing.assert_array_equal(strategy.annotation_costs_, counts)
    assert strategy.query_cost_ == sum(counts[i] for i in idx)

    budget = 2.5 * max(1, np.mean(counts))
    chosen, _ = strategy(detector, X[40:60], budget=budget)
    ranking = np.lexsort((strategy.scores_, strategy.deferred_))
    np.testing.assert_array_equal(chosen, ranking[: len(chosen)])
    spent = strategy.annotation_costs_[chosen].sum()
    assert spent <= budget or len(chosen) == 1
    if len(chosen) < 20:  # the next image would have broken the budget
        assert spent + strategy.annotation_costs_[ranking[len(chosen)]] > budget
    with pytest.raises(ValueError, match="not both"):
        strategy(detector, X[40:60], n_instances=2, budget=10)
    with pytest.raises(ValueError, match="budget must be"):
        strategy(detector, X[40:60], budget=-1)


def test_images_without_pseudo_boxes_are_ranked_last(data, fitted):
    X, _ = data
    detector = fitted["fcos_small"]
    # a blank image has no detection above a high threshold
    pool = as_object_array([*X[40:46], torch.zeros(3, 64, 64), torch.full((3, 50, 70), 0.5)])
    last = _strategy(data, adapter=DetectionAdapter(score_threshold=0.6))
    idx, _ = last(detector, pool, n_instances=len(pool))
    deferred = last.deferred_
    assert deferred[6] and deferred[7]
    assert np.all(np.diff(deferred[idx].astype(int)) >= 0)  # never a deferred one before another
    scored = _strategy(data, adapter=DetectionAdapter(score_threshold=0.6, empty_images="score"))
    order, _ = scored(detector, pool, n_instances=len(pool))
    assert not scored.deferred_.any()
    np.testing.assert_array_equal(order, np.argsort(scored.scores_, kind="stable"))
    # a detector's pseudo-labels have no accuracy: the default "auto" ranks as "top" does
    assert scored.selection == "auto" and scored.diagnostics_.selection == "top"
    assert scored.diagnostics_.reference_accuracy is None
    assert "gives no pseudo-label accuracy" in scored.diagnostics_.selection_reason


def test_post_processing_runs_once_per_scored_image(data, fitted, monkeypatch):
    # The UUIC loss (pseudo-boxes) and the annotation cost (box counts) share it.
    from torchvision.models.detection import FCOS

    calls = []
    original = FCOS.postprocess_detections

    def counting(self, head_outputs, anchors, image_sizes):
        calls.append(len(image_sizes))
        return original(self, head_outputs, anchors, image_sizes)

    monkeypatch.setattr(FCOS, "postprocess_detections", counting)
    _strategy(data).influence(fitted["fcos_small"], data[0][40:46])
    assert sum(calls) == 6


def test_pseudo_boxes_follow_the_parameters_of_each_forward_pass(data, fitted):
    # Encoded batches are reused by passes with other parameters: no stale pseudo-boxes.
    from skisal.engine import BoundModel, ParameterSpace, evaluation_mode, select_parameters

    X, _ = data
    detector, adapter = fitted["fcos_small"], DetectionAdapter()
    module = detector.module_
    space = ParameterSpace(select_parameters(module, adapter.default_parameters))
    model = BoundModel(adapter, detector, module, space, torch.device("cpu"))
    idx = np.arange(40, 44)

    def boxes(params):
        outputs = model.forward(params, model.inputs(X, idx, reuse=True))
        return sum(len(t["boxes"]) for t in adapter.pseudo_targets(detector, outputs))

    doubtful = {  # every class score pushed down: fewer detections above the threshold
        name: value - 5.0 if name.endswith("cls_logits.bias") else value
        for name, value in space.constants().items()
    }
    with evaluation_mode(module), torch.no_grad():
        before, after, again = boxes(None), boxes(doubtful), boxes(None)
    assert before == again > after


# -- baselines ---------------------------------------------------------------------


def test_uncertainty_baseline_ranks_by_aggregated_entropy(data, fitted):
    X, _ = data
    detector = fitted["fcos_small"]
    idx, scores = detection_uncertainty(detector, X[40:60], n_instances=4, return_scores=True)
    assert len(set(idx.tolist())) == 4 and np.all(np.diff(scores) <= 0)
    predictions = detector.predict(X[40:60])
    p = predictions[idx[0]]["scores"].double()
    expected = float((-(p * p.log() + (1 - p) * (1 - p).log())).max())
    assert scores[0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="aggregate"):
        detection_uncertainty(detector, X[40:60], aggregate="median")


# -- the estimator -------------------------------------------------------------------


def test_fit_is_reproducible_and_leaves_torch_rng_alone(data):
    X, y = data
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = _detector("fcos_small", epochs=1).fit(X[:8], y[:8])
    assert torch.equal(torch.get_rng_state(), state)
    b = _detector("fcos_small", epochs=1).fit(X[:8], y[:8])
    for (name, p), q in zip(a.module_.named_parameters(), b.module_.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert len(a.history_) == 1 and np.isfinite(a.history_[0]["loss"])


def test_score_is_torchmetrics_map(data, fitted, monkeypatch):
    X, y = data
    detector = fitted["fcos_small"]
    assert -1 <= detector.score(X[60:], y[60:]) <= 1
    perfect = [{**t, "scores": torch.ones(len(t["labels"]))} for t in y[60:]]
    monkeypatch.setattr(detector, "predict", lambda X: perfect)
    assert detector.score(X[60:], y[60:]) == pytest.approx(1.0)


def test_score_without_any_ground_truth_box_is_refused(data, fitted):
    # torchmetrics would report -1, a number that would be averaged unnoticed.
    X, _ = data
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    no_boxes = as_object_array([empty, empty])
    with pytest.raises(ValueError, match=r"y holds no ground-truth box .*COCO mAP is undefined"):
        fitted["fcos_small"].score(X[:2], no_boxes)


def test_small_models_resize_for_small_images_unless_told_otherwise():
    from skisal.detection import SMALL_IMAGE_SIZE, build_detector

    assert SMALL_IMAGE_SIZE == {"min_size": 128, "max_size": 128}
    for name in FAMILIES:
        transform = build_detector(name, num_classes=3).transform
        assert (transform.min_size, transform.max_size) == ((128,), 128)
    transform = _detector("fcos_small", min_size=64, max_size=96)._build()[0].transform
    assert (transform.min_size, transform.max_size) == ((64,), 96)


def test_module_given_by_the_user_is_copied_not_trained(data):
    from skisal.detection import build_detector

    X, y = data
    torch.manual_seed(0)
    module = build_detector("fcos_small", num_classes=4, min_size=64, max_size=64)
    before = snapshot_module(module)
    detector = TorchvisionDetector(module, epochs=1, random_state=0).fit(X[:4], y[:4])
    assert_module_unchanged(before, module)
    assert detector.num_classes_ == 4 and detector.module_ is not module
    with pytest.raises(ValueError, match="num_classes=3 but the model predicts 4"):
        TorchvisionDetector(module, num_classes=3).fit(X[:4], y[:4])


def test_weights_are_loaded_from_a_state_dict_file(data, fitted, tmp_path):
    X, y = data
    path = tmp_path / "weights.pt"
    torch.save(fitted["fcos_small"].module_.state_dict(), path)
    loaded = _detector("fcos_small", weights=path, lr=1e-12, epochs=1).fit(X[:2], y[:2])
    expected = fitted["fcos_small"].module_.head.classification_head.cls_logits.weight
    actual = loaded.module_.head.classification_head.cls_logits.weight
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


# -- bad input -----------------------------------------------------------------------


def _box(boxes, labels=(1,)):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}


@pytest.mark.parametrize(
    ("X", "y", "error", "match"),
    [
        ([], [], ValueError, "X is empty"),
        ([torch.zeros(3, 20, 20)], [{"boxes": torch.zeros(0, 4)}], ValueError, "has no 'labels'"),
        ([torch.zeros(3, 20, 20)], [_box([[5, 5, 5, 9]])], ValueError, "degenerate"),
        ([torch.zeros(3, 20, 20)], [_box([[5, 5, 30, 9]])], ValueError, "outside its 20x20 image"),
        ([torch.zeros(3, 20, 20)] * 2, [_box([[1, 1, 4, 4]])], ValueError, "1 target dicts but"),
        ([torch.zeros(3, 20, 20)], [_box([[1, 1, 4, 4]], (7,))], ValueError, r"outside 1\.\.3"),
        ([torch.zeros(1, 20, 20)], [_box([[1, 1, 4, 4]])], ValueError, r"shape \(3, H, W\)"),
        ([torch.zeros(3, 20, 20, dtype=torch.uint8)], [_box([[1, 1, 4, 4]])], TypeError, "floats"),
        ([torch.full((3, 9, 9), float("nan"))], [_box([[1, 1, 4, 4]])], ValueError, "NaN"),
        ("images", [], TypeError, "list, tuple or 1-D object array"),
        ([torch.zeros(3, 20, 20)], [[1, 2, 3, 4]], TypeError, r"y\[0\] must be a dict"),
    ],
)
def test_bad_input_is_refused_by_name(X, y, error, match):
    with pytest.raises(error, match=match):
        _detector("fcos_small", epochs=1).fit(X, y)


def test_bad_parameters_are_refused_by_name(data):
    X, y = data
    with pytest.raises(ValueError, match="model must be"):
        TorchvisionDetector("yolo_v8", num_classes=3).fit(X[:2], y[:2])
    with pytest.raises(ValueError, match="num_classes is required"):
        TorchvisionDetector("fcos_small").fit(X[:2], y[:2])
    with pytest.raises(ValueError, match="lr must be"):
        _detector("fcos_small", lr=-1).fit(X[:2], y[:2])
    with pytest.raises(ValueError, match="score_threshold"):
        _strategy(data, adapter=DetectionAdapter(score_threshold=2)).influence(
            _detector("fcos_small", epochs=1).fit(X[:2], y[:2]), X[40:42]
        )


def test_adapter_refuses_estimators_that_are_not_detectors(data, fitted):
    adapter = DetectionAdapter()
    with pytest.raises(TypeError, match="scores a skisal TorchvisionDetector or a torchvision"):
        adapter.check_estimator(RandomSampling())
    with pytest.raises(TypeError, match="supports torchvision FCOS, RetinaNet and Faster R-CNN"):
        adapter.check_estimator(torch.nn.Linear(2, 2))
    adapter.check_estimator(fitted["fasterrcnn_small"])
    adapter.check_estimator(fitted["fasterrcnn_small"].module_)


def test_query_refuses_bad_pools_and_unfitted_detectors(data, fitted):
    from sklearn.exceptions import NotFittedError

    X, _ = data
    with pytest.raises(ValueError, match="X_pool is empty"):
        _strategy(data)(fitted["fcos_small"], [], n_instances=1)
    with pytest.raises(NotFittedError):
        _strategy(data)(_detector("fcos_small"), X[40:45], n_instances=1)
    with pytest.raises(ValueError, match=r"y_reference\[0\] has no 'labels'"):
        InfluenceQueryStrategy(
            X[30:31], [{"boxes": torch.zeros(0, 4)}], X_labeled=X[:30], y_labeled=data[1][:30]
        )(fitted["fcos_small"], X[40:45])


# -- a real modAL loop ---------------------------------------------------------------


def test_two_query_teach_rounds_in_modal(data):
    X, y = data
    X_pool, y_pool = X[30:60], y[30:60]
    strategy = InfluenceQueryStrategy(X[60:], y[60:], random_state=0)
    learner = ActiveLearner(
        _detector("fcos_small", epochs=2),
        query_strategy=strategy,
        X_training=X[:20],
        y_training=y[:20],
        force_all_finite=False,  # modAL cannot look inside images; the detector checks them
    )
    for _ in range(2):
        idx, chosen = learner.query(X_pool, n_instances=4)
        assert len(set(idx.tolist())) == 4 and all(
            c is X_pool[i] for c, i in zip(chosen, idx, strict=True)
        )
        learner.teach(X_pool[idx], y_pool[idx])
        keep = np.setdiff1d(np.arange(len(X_pool)), idx)
        X_pool, y_pool = X_pool[keep], y_pool[keep]
    assert len(learner.X_training) == 28 and learner.estimator.n_images_seen_ == 28
    assert -1 <= learner.score(X[60:], y[60:]) <= 1
    random = ActiveLearner(
        _detector("fcos_small", epochs=1),
        query_strategy=RandomSampling(random_state=0),
        X_training=X[:10],
        y_training=y[:10],
        force_all_finite=False,
    )
    idx, _ = random.query(X_pool, n_instances=3)
    random.teach(X_pool[idx], y_pool[idx])
    assert len(random.X_training) == 13


@requires_modal_041
def test_query_teach_round_in_modal_041(tmp_path):
    out = run_with_modal_041(
        tmp_path,
        """
        from modAL.models import ActiveLearner
        from skisal import InfluenceQueryStrategy
        from skisal.detection import TorchvisionDetector, make_shapes, detection_uncertainty
        X, y = make_shapes(30, image_size=(48, 64), random_state=0)
        det = TorchvisionDetector("fcos_small", num_classes=4, min_size=64, max_size=64,
                                  epochs=1, random_state=0)
        for strategy in (InfluenceQueryStrategy(X[25:], y[25:], random_state=0),
                         detection_uncertainty):
            learner = ActiveLearner(det, query_strategy=strategy, X_training=X[:10],
                                    y_training=y[:10], force_all_finite=False)
            idx, _ = learner.query(X[10:25], n_instances=3)
            learner.teach(X[10:25][idx], y[10:25][idx])
            print(len(idx), len(learner.X_training))
        """,
    )
    assert out.split() == ["3", "13", "3", "13"]
