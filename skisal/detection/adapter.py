"""``DetectionAdapter``: ISAL's loss and pseudo-labels for torchvision detectors.

The engine needs per-image losses that are functions of the network's
outputs. For a detector those outputs are the raw head outputs (per-anchor
class logits and box regressions, before any post-processing): the adapter
turns them into pseudo-boxes with the model's own post-processing, and into a
loss with the model's own training-loss code, one image at a time.

With only head layers tracked (the default), the backbone and feature
pyramid run once per batch without gradients (:meth:`DetectionAdapter.encode`)
and their features are cached over the labelled set while ``s_test`` is
solved: every Hessian-vector product then costs a head pass only.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.detection.transform import resize_boxes

from .._validation import check_constraints, is_non_negative_real
from ..adapters.base import ModelAdapter
from ._validation import check_images, check_targets

__all__ = ["HEAD_LAYERS", "DetectionAdapter"]

#: The final prediction layers tracked by default, per family (weights and biases).
HEAD_LAYERS: dict[str, tuple[str, ...]] = {
    "FCOS": (
        "head.classification_head.cls_logits",
        "head.regression_head.bbox_reg",
        "head.regression_head.bbox_ctrness",
    ),
    "RetinaNet": ("head.classification_head.cls_logits", "head.regression_head.bbox_reg"),
    "FasterRCNN": (
        "rpn.head.cls_logits",
        "rpn.head.bbox_pred",
        "roi_heads.box_predictor.cls_score",
        "roi_heads.box_predictor.bbox_pred",
    ),
}
_ALL_HEAD_LAYERS = tuple(dict.fromkeys(n for names in HEAD_LAYERS.values() for n in names))
#: What ``encode`` computes once, without gradients, per family (tracked parameters there
#: are refused while features are frozen): the backbone with its FPN and, for the one-stage
#: detectors, the head's convolution towers below the final prediction layers.
_FROZEN: dict[str, tuple[str, ...]] = {
    "FCOS": ("backbone.", "head.classification_head.conv.", "head.regression_head.conv."),
    "RetinaNet": ("backbone.", "head.classification_head.conv.", "head.regression_head.conv."),
    "FasterRCNN": ("backbone.",),
}
_SAMPLER_SEED = 0  # Faster R-CNN's anchor/RoI samplers, seeded so the loss is a fixed function
_EMPTY_IMAGES = ("last", "score")
_CONSTRAINTS = {
    "score_threshold": (lambda v: is_non_negative_real(v) and v < 1, "a real in [0, 1)"),
    "empty_images": (lambda v: v in _EMPTY_IMAGES, f"one of {_EMPTY_IMAGES}"),
    "freeze_features": (lambda v: isinstance(v, bool), "a bool"),
    "feature_cache_mb": (is_non_negative_real, "a real >= 0"),
}


def _is_head_parameter(name: str, _param: Any = None) -> bool:
    """Whether a parameter is tracked by default: it belongs to one of :data:`HEAD_LAYERS`.

    Parameters
    ----------
    name : str
        The parameter's name in the module.
    _param : torch.nn.Parameter, optional
        Not used (the signature of the strategy's ``parameters`` callables).

    Returns
    -------
    bool
        True for the weights and biases of a final prediction layer.

    Examples
    --------
    >>> from skisal.detection import DetectionAdapter
    >>> DetectionAdapter.default_parameters("head.classification_head.cls_logits.weight")
    True
    >>> DetectionAdapter.default_parameters("backbone.body.0.weight")
    False
    """
    return any(name == layer or name.startswith(layer + ".") for layer in _ALL_HEAD_LAYERS)


def _family(module: nn.Module) -> str:
    if isinstance(module, FCOS):
        return "FCOS"
    if isinstance(module, RetinaNet):
        return "RetinaNet"
    if isinstance(module, FasterRCNN):
        roi = module.roi_heads
        if roi.has_mask() or roi.has_keypoint():
            raise TypeError(
                "Mask R-CNN and Keypoint R-CNN are not supported: their extra losses need "
                "mask/keypoint targets. Use a Faster R-CNN."
            )
        return "FasterRCNN"
    raise TypeError(
        "DetectionAdapter supports torchvision FCOS, RetinaNet and Faster R-CNN models, "
        f"got {type(module).__name__}."
    )


@dataclass(eq=False)
class _Context:
    """What a batch's loss and post-processing need besides the head outputs.

    Per image, in batch order. Not a tensor, so the engine passes it through
    untouched.
    """

    image_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]
    anchors: list[torch.Tensor]
    anchors_per_level: list[list[int]]
    proposals: list[torch.Tensor] | None = None  # Faster R-CNN
    # Post-processed detections of this forward pass by score threshold, computed once: the
    # UUIC loss (pseudo-boxes) and the summary (box counts) both need them. Not an init
    # field, so that ``replace`` gives a new context an empty cache.
    detections: dict[float, list[dict[str, torch.Tensor]]] = field(
        default_factory=dict, init=False, repr=False
    )


@dataclass(eq=False)
class _Group:
    """Images of a batch run through the backbone together (one each: see ``_trunk``)."""

    positions: list[int]
    image_list: ImageList
    features: list[torch.Tensor]
    # One-stage heads, when frozen: the classification and regression towers per level.
    towers: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None


@dataclass(eq=False)
class _Batch:
    """A batch of images and, once encoded, its backbone features by group."""

    images: list[torch.Tensor]
    groups: list[_Group] | None = None
    context: _Context | None = None


@contextlib.contextmanager
def _seeded(device: torch.device) -> Iterator[None]:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_SAMPLER_SEED)
        yield


class DetectionAdapter(ModelAdapter):
    """ISAL for torchvision FCOS, RetinaNet and Faster R-CNN detectors.

    Resolved automatically for a :class:`~skisal.detection.TorchvisionDetector`
    (in a modAL learner or bare) and for a bare torchvision detector module.

    Pseudo-labels (the paper's UUIC for detection) are the model's own
    detections -- its post-processing and non-maximum suppression -- with a
    score of at least ``score_threshold``; ``G_z`` is the gradient of the
    model's own training loss against them. Influence is taken over the final
    prediction layers by default (:data:`HEAD_LAYERS`: FCOS's ``cls_logits``,
    ``bbox_reg`` and ``bbox_ctrness``; RetinaNet's ``cls_logits`` and
    ``bbox_reg``; Faster R-CNN's RPN ``cls_logits``/``bbox_pred`` and RoI
    ``cls_score``/``bbox_pred``); the strategy's ``parameters=`` overrides it.

    Per-image losses are torchvision's own, computed image by image. For
    Faster R-CNN the RoI loss runs over the inference proposals (training also
    appends the ground-truth boxes as proposals, which would make the head's
    outputs depend on the targets), and the anchor and RoI samplers are seeded
    so that the loss is a fixed function of the outputs.

    Parameters
    ----------
    score_threshold : float, default=0.1
        Minimum detection score of a pseudo-box (the reference code used 0.1
        for FCOS). Lower: more, noisier pseudo-boxes.
    empty_images : {"last", "score"}, default="last"
        Images without any detection above the threshold. "last" (the
        reference code): ranked after every image with one (among themselves
        by their influence with an all-background pseudo-target), so they are
        picked only when the pool runs short. "score": ranked by that
        influence like any other image.
    freeze_features : bool, default=True
        Compute once per image, without gradients, everything below the
        final prediction layers that the default parameters track: the
        backbone with its FPN and, for FCOS and RetinaNet, the head's
        convolution towers. Tracked parameters must then lie outside them.
        False runs the whole network for every product (needed to track
        backbone or tower parameters).
    feature_cache_mb : float, default=1024
        Memory (on the model's device) for backbone features of the labelled
        set, reused by every Hessian-vector product of the solver's full
        passes. Beyond it, features are recomputed.

    Notes
    -----
    After a query, the strategy's ``annotation_costs_`` holds the pseudo-box
    count of every pool image, and its ``deferred_`` flags the images without
    one. The methods below are the :class:`~skisal.adapters.ModelAdapter`
    hooks the engine calls; users set the parameters above and leave them to
    the strategy.

    Examples
    --------
    >>> from skisal import InfluenceQueryStrategy
    >>> from skisal.detection import DetectionAdapter
    >>> strategy = InfluenceQueryStrategy(adapter=DetectionAdapter(score_threshold=0.2))
    >>> strategy.adapter.score_threshold, strategy.adapter.empty_images
    (0.2, 'last')
    """

    default_parameters = staticmethod(_is_head_parameter)
    #: Focal and GIoU losses are not convex in the outputs: Gauss-Newton is indefinite.
    default_curvature = "fisher"
    #: K-FAC fits a head shared across feature levels poorly: on a small FCOS (make_shapes, 30
    #: labelled images), PCG to a residual of 0.2 gave pool scores correlating 0.88 with a
    #: converged solve's where CG to 0.2 gave 0.99, and to 1e-3 PCG took 58 iterations, CG 35.
    default_inverse_hvp = "cg"

    def __init__(
        self,
        score_threshold: float = 0.1,
        empty_images: str = "last",
        freeze_features: bool = True,
        feature_cache_mb: float = 1024,
    ) -> None:
        self.score_threshold = score_threshold
        self.empty_images = empty_images
        self.freeze_features = freeze_features
        self.feature_cache_mb = feature_cache_mb

    @property
    def input_cache_bytes(self) -> int:  # type: ignore[override]
        """Bytes of encoded labelled batches kept for the solver's passes.

        ``feature_cache_mb`` in bytes; 0 when ``freeze_features`` is False
        (nothing is encoded then).

        Examples
        --------
        >>> from skisal.detection import DetectionAdapter
        >>> DetectionAdapter(feature_cache_mb=2).input_cache_bytes
        2097152
        >>> DetectionAdapter(freeze_features=False).input_cache_bytes
        0
        """
        return int(self.feature_cache_mb * 2**20) if self.freeze_features else 0

    # -- estimator ---------------------------------------------------------------
    def check_estimator(self, estimator: Any) -> None:
        """Check this adapter's parameters and that ``estimator`` is a fitted detector.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            A fitted :class:`~skisal.detection.TorchvisionDetector`, or a
            torchvision FCOS, RetinaNet or Faster R-CNN module.

        Raises
        ------
        ValueError
            For an invalid parameter of the adapter, named.
        TypeError
            If ``estimator`` is neither, or is a Mask/Keypoint R-CNN.
        sklearn.exceptions.NotFittedError
            If the detector is not fitted.

        Examples
        --------
        >>> from skisal.detection import DetectionAdapter, TorchvisionDetector
        >>> DetectionAdapter().check_estimator(TorchvisionDetector("fcos_small", num_classes=4))
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        sklearn.exceptions.NotFittedError: This TorchvisionDetector instance is not fitted yet...
        >>> DetectionAdapter(score_threshold=1.5).check_estimator(None)
        Traceback (most recent call last):
        ...
        ValueError: score_threshold must be a real in [0, 1); got 1.5.
        """
        check_constraints(self, _CONSTRAINTS)
        if not isinstance(estimator, nn.Module):
            from sklearn.utils.validation import check_is_fitted

            if not hasattr(estimator, "_skisal_adapter"):
                raise TypeError(
                    "DetectionAdapter scores a skisal TorchvisionDetector or a torchvision "
                    f"detection module, got {type(estimator).__name__}."
                )
            check_is_fitted(estimator, "module_")
        _family(self.get_module(estimator))

    def get_module(self, estimator: Any) -> nn.Module:
        """The torchvision module: ``estimator.module_``, or ``estimator`` itself.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector.

        Returns
        -------
        torch.nn.Module
            Not a copy.

        Examples
        --------
        >>> from skisal.detection import DetectionAdapter, build_detector
        >>> module = build_detector("fcos_small", num_classes=4)
        >>> DetectionAdapter().get_module(module) is module
        True
        """
        return estimator if isinstance(estimator, nn.Module) else estimator.module_

    def check_parameters(self, estimator: Any, names: list[str]) -> None:
        """Refuse parameters of the frozen part while features are frozen.

        The frozen part is the backbone with its FPN, and for FCOS and
        RetinaNet also the head's convolution towers (``head.*.conv``).

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector, for its family.
        names : list of str
            The tracked parameters' names.

        Raises
        ------
        ValueError
            If a name lies in ``backbone`` and ``freeze_features`` is True.

        Examples
        --------
        >>> from skisal.detection import DetectionAdapter, build_detector
        >>> fcos = build_detector("fcos_small", num_classes=4)
        >>> DetectionAdapter().check_parameters(fcos, ["head.classification_head.cls_logits.bias"])
        >>> tower = "head.regression_head.conv.0.0.weight"
        >>> DetectionAdapter().check_parameters(fcos, [tower])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: parameters include frozen parameters (['head.regression_head.conv...])...
        """
        if not self.freeze_features:
            return
        frozen = _FROZEN[_family(self.get_module(estimator))]
        trunk = [n for n in names if n.startswith(frozen)]
        if trunk:
            raise ValueError(
                f"parameters include frozen parameters ({trunk[:3]}): "
                "DetectionAdapter(freeze_features=True) computes the backbone, the FPN and "
                "(FCOS, RetinaNet) the head's convolution towers once, without gradients; pass "
                "adapter=DetectionAdapter(freeze_features=False) to track them."
            )

    # -- data --------------------------------------------------------------------
    def check_inputs(self, estimator: Any, X: Any, argument: str) -> np.ndarray:
        """Check a sequence of images (see :func:`~skisal.detection.check_images`).

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector (not used).
        X : sequence of images
            Float ``(3, H, W)`` tensors or arrays; sizes may differ.
        argument : str
            The argument's name, for error messages.

        Returns
        -------
        ndarray of object
            The images, as a 1-D object array.

        Raises
        ------
        ValueError, TypeError
            Naming ``argument``, for an empty sequence or an invalid image.

        Examples
        --------
        >>> import torch
        >>> from skisal.detection import DetectionAdapter
        >>> DetectionAdapter().check_inputs(None, [torch.zeros(3, 8, 9)], "X_pool").shape
        (1,)
        >>> DetectionAdapter().check_inputs(None, [], "X_pool")
        Traceback (most recent call last):
        ...
        ValueError: X_pool is empty: it must hold at least one image.
        """
        return check_images(X, argument)

    def check_compatible(self, X: Any, argument: str, reference: Any, reference_name: str) -> None:
        """Accept any two image sets: images of any size go through the same detector.

        Parameters
        ----------
        X, reference : sequence of images
            Two image sets.
        argument, reference_name : str
            Their names.

        Examples
        --------
        >>> import torch
        >>> from skisal.detection import DetectionAdapter
        >>> DetectionAdapter().check_compatible(
        ...     [torch.zeros(3, 8, 8)], "X_pool", [torch.zeros(3, 20, 12)], "X_reference")
        """
        return None

    def check_targets(
        self, estimator: Any, y: Any, argument: str, probe_outputs: Any, X: Any = None
    ) -> np.ndarray:
        """Check target dicts against the images and the detector's classes.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector, for its number of classes.
        y : sequence of dict
            One ``{"boxes": (k, 4) xyxy pixels, "labels": (k,)}`` per image.
        argument : str
            The argument's name, for error messages.
        probe_outputs : object
            Not used (the classes come from the module).
        X : sequence of images, optional
            The images ``y`` belongs to: counts and boxes are checked against them.

        Returns
        -------
        ndarray of object
            The targets, as a 1-D object array.

        Raises
        ------
        ValueError, TypeError
            Naming ``argument``: a missing key, a degenerate or out-of-image box,
            a label outside ``1..num_classes - 1``, or a count that differs from ``X``.

        Examples
        --------
        >>> import torch
        >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
        >>> module = build_detector("fcos_small", num_classes=4)
        >>> X, y = make_shapes(2, image_size=(32, 48), random_state=0)
        >>> DetectionAdapter().check_targets(module, y, "y_reference", None, X).shape
        (2,)
        >>> bad = [{"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]])}, y[1]]
        >>> DetectionAdapter().check_targets(module, bad, "y_reference", None, X)
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: y_reference[0] ... 'labels'...
        """
        from .estimator import detector_num_classes

        num_classes = detector_num_classes(self.get_module(estimator))
        return check_targets(y, X, argument, num_classes)

    def get_inputs(
        self, estimator: Any, X: Any, indices: np.ndarray, device: torch.device
    ) -> _Batch:
        """The images ``X[indices]`` on ``device``, in the module's dtype, as a batch.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector, for its dtype.
        X : sequence of images
            Checked images.
        indices : ndarray of int
            Which images.
        device : torch.device
            Where the batch goes.

        Returns
        -------
        object
            The batch, for :meth:`encode` and :meth:`forward` (its ``images``
            attribute is the list of tensors).

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
        >>> module = build_detector("fcos_small", num_classes=4)
        >>> X, _ = make_shapes(3, image_size=(32, 48), random_state=0)
        >>> batch = DetectionAdapter().get_inputs(module, X, np.array([2, 0]), torch.device("cpu"))
        >>> [tuple(image.shape) == tuple(X[i].shape) for i, image in zip([2, 0], batch.images)]
        [True, True]
        """
        dtype = next(self.get_module(estimator).parameters()).dtype
        images = [torch.as_tensor(X[int(i)]).to(device=device, dtype=dtype) for i in indices]
        return _Batch(images=images)

    def get_targets(
        self, estimator: Any, y: Any, indices: np.ndarray, device: torch.device
    ) -> list[dict[str, torch.Tensor]]:
        """The target dicts ``y[indices]`` as tensors on ``device``.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector (not used).
        y : sequence of dict
            Checked targets.
        indices : ndarray of int
            Which targets.
        device : torch.device
            Where they go.

        Returns
        -------
        list of dict
            ``{"boxes": float tensor (k, 4), "labels": int64 tensor (k,)}`` per image.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.detection import DetectionAdapter, make_shapes
        >>> _, y = make_shapes(2, image_size=(32, 48), random_state=0)
        >>> targets = DetectionAdapter().get_targets(None, y, np.array([1]), torch.device("cpu"))
        >>> len(targets), targets[0]["labels"].dtype
        (1, torch.int64)
        """
        from .estimator import _target_to

        return [_target_to(y[int(i)], device) for i in indices]

    # -- model -------------------------------------------------------------------
    def encode(self, estimator: Any, module: nn.Module, inputs: _Batch) -> _Batch:
        """Run what no tracked parameter touches: transform, backbone, FPN, anchors.

        For FCOS and RetinaNet also the head's convolution towers, so that a
        pass over encoded inputs runs the final prediction layers only. The
        engine calls it without gradients, once per batch (and once per
        labelled batch for the whole solve, within ``feature_cache_mb``). With
        ``freeze_features=False`` the batch is returned as it is and
        :meth:`forward` runs the whole network.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector.
        module : torch.nn.Module
            Its module.
        inputs : object
            A batch from :meth:`get_inputs`.

        Returns
        -------
        object
            The batch with its features.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
        >>> _ = torch.manual_seed(0)
        >>> module = build_detector("fcos_small", num_classes=4, min_size=32, max_size=64).eval()
        >>> X, y = make_shapes(2, image_size=(32, 48), random_state=0)
        >>> adapter = DetectionAdapter(score_threshold=0.0)
        >>> batch = adapter.get_inputs(module, X, np.arange(2), torch.device("cpu"))
        >>> with torch.no_grad():
        ...     encoded = adapter.encode(module, module, batch)
        >>> adapter.encoded_nbytes(encoded) > 0
        True
        """
        if not self.freeze_features:
            return inputs
        return self._trunk(module, inputs.images, towers=not isinstance(module, FasterRCNN))

    def encoded_nbytes(self, encoded: _Batch) -> int:
        """Bytes of an encoded batch's features and anchors (counted against the cache).

        Parameters
        ----------
        encoded : object
            A batch from :meth:`encode`.

        Returns
        -------
        int
            0 for a batch that was not encoded.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
        >>> _ = torch.manual_seed(0)
        >>> module = build_detector("fcos_small", num_classes=4, min_size=32, max_size=64).eval()
        >>> X, y = make_shapes(2, image_size=(32, 48), random_state=0)
        >>> adapter = DetectionAdapter(score_threshold=0.0)
        >>> batch = adapter.get_inputs(module, X, np.arange(2), torch.device("cpu"))
        >>> adapter.encoded_nbytes(batch)  # not encoded: no features yet
        0
        """
        tensors = [f for g in encoded.groups or [] for f in g.features]
        tensors += [t for g in encoded.groups or [] for level in g.towers or () for t in level]
        tensors += encoded.context.anchors if encoded.context else []
        return sum(t.numel() * t.element_size() for t in tensors)

    @staticmethod
    def _trunk(module: nn.Module, images: list[torch.Tensor], towers: bool = False) -> _Batch:
        """Transform, backbone and anchors (and the one-stage head's towers, with ``towers``).

        Each image goes through on its own, as a batch of one. torchvision
        pads a batch to its largest image, which changes the others' features
        and anchors; and even equal-size batches change the last bits of a
        convolution, which matters here: a pseudo-box equals the prediction
        it came from, where the GIoU loss has a kink, so which one-sided
        gradient autograd takes depends on those bits. One image at a time,
        an image's influence does not depend on its batch.
        """
        is_two_stage = isinstance(module, FasterRCNN)
        generator = module.rpn.anchor_generator if is_two_stage else module.anchor_generator
        n = len(images)
        by_shape: dict[tuple[int, ...], list[tuple[int, ImageList]]] = {}
        for position, image in enumerate(images):
            image_list, _ = module.transform([image])
            by_shape[(position,)] = [(position, image_list)]
        anchors: list[Any] = [None] * n
        per_level: list[Any] = [None] * n
        sizes: list[Any] = [None] * n
        groups = []
        for members in by_shape.values():
            positions = [p for p, _ in members]
            image_list = ImageList(
                torch.cat([il.tensors for _, il in members]),
                [il.image_sizes[0] for _, il in members],
            )
            features = list(module.backbone(image_list.tensors).values())
            group_anchors = generator(image_list, features)
            counts = [
                f.shape[-2] * f.shape[-1] * a
                for f, a in zip(features, generator.num_anchors_per_location(), strict=True)
            ]
            for j, position in enumerate(positions):
                anchors[position] = group_anchors[j]
                per_level[position] = counts
                sizes[position] = tuple(int(v) for v in image_list.image_sizes[j])
            tower_outputs = None
            if towers:  # the towers' outputs: what the final prediction layers read
                head = module.head
                tower_outputs = (
                    [head.classification_head.conv(f) for f in features],
                    [head.regression_head.conv(f) for f in features],
                )
            groups.append(_Group(positions, image_list, features, tower_outputs))
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        context = _Context(sizes, original_sizes, anchors, per_level)
        return _Batch(images=images, groups=groups, context=context)

    def forward(self, estimator: Any, module: nn.Module, inputs: _Batch) -> dict[str, Any]:
        """The raw head outputs of a batch, before any post-processing.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector.
        module : torch.nn.Module
            Its module, with the engine's parameters swapped in.
        inputs : object
            A batch from :meth:`get_inputs`, encoded or not.

        Returns
        -------
        dict
            Per-anchor outputs by name (FCOS: ``cls_logits``,
            ``bbox_regression``, ``bbox_ctrness``), each of shape
            ``(n_images, most anchors, ...)`` with zero padding, and
            ``"context"``: what the losses and the post-processing need
            besides them.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
        >>> _ = torch.manual_seed(0)
        >>> module = build_detector("fcos_small", num_classes=4, min_size=32, max_size=64).eval()
        >>> X, y = make_shapes(2, image_size=(32, 48), random_state=0)
        >>> adapter = DetectionAdapter(score_threshold=0.0)
        >>> batch = adapter.get_inputs(module, X, np.arange(2), torch.device("cpu"))
        >>> with torch.no_grad():
        ...     outputs = adapter.forward(module, module, batch)
        >>> sorted(k for k in outputs if k != "context"), outputs["cls_logits"].shape[-1]
        (['bbox_ctrness', 'bbox_regression', 'cls_logits'], 4)
        """
        batch = inputs if inputs.groups is not None else self._trunk(module, inputs.images)
        if isinstance(module, FasterRCNN):
            return self._two_stage_forward(module, batch)
        per_image: dict[str, list[Any]] = {}
        for group in batch.groups:
            if group.towers is None:
                head_outputs = module.head(group.features)
            else:
                head_outputs = _head_from_towers(module, *group.towers)
            for key, value in head_outputs.items():
                slots = per_image.setdefault(key, [None] * len(batch.images))
                for j, position in enumerate(group.positions):
                    slots[position] = value[j]
        # (N, most anchors, ...): padding rows take no part in any loss
        outputs = {k: _pad(v) for k, v in per_image.items()}
        # A context per forward pass: encoded batches are reused with other parameters.
        return {**outputs, "context": replace(batch.context)}

    @staticmethod
    def _two_stage_forward(module: nn.Module, batch: _Batch) -> dict[str, Any]:
        rpn, roi = module.rpn, module.roi_heads
        context = batch.context
        n = len(batch.images)
        slots: dict[str, list[Any]] = {
            k: [None] * n for k in ("objectness", "rpn_deltas", "class_logits", "box_regression")
        }
        proposals: list[Any] = [None] * n
        for group in batch.groups:
            m = len(group.positions)
            objectness, deltas = rpn.head(group.features)
            # levels concatenated in the order torchvision's RPN uses: (H, W, anchor)
            objectness = torch.cat([o.permute(0, 2, 3, 1).reshape(m, -1) for o in objectness], 1)
            deltas = torch.cat(
                [
                    d.view(m, -1, 4, d.shape[-2], d.shape[-1])
                    .permute(0, 3, 4, 1, 2)
                    .reshape(m, -1, 4)
                    for d in deltas
                ],
                dim=1,
            )
            sizes = [context.image_sizes[p] for p in group.positions]
            with torch.no_grad():  # proposals are constants of the loss, as in training
                anchors = [context.anchors[p] for p in group.positions]
                boxes = rpn.box_coder.decode(deltas.detach().reshape(-1, 4), anchors).view(m, -1, 4)
                group_proposals, _ = rpn.filter_proposals(
                    boxes,
                    objectness.detach().reshape(-1, 1),
                    sizes,
                    context.anchors_per_level[group.positions[0]],
                )
            features = {str(i): f for i, f in enumerate(group.features)}
            pooled = roi.box_roi_pool(features, group_proposals, sizes)
            class_logits, box_regression = roi.box_predictor(roi.box_head(pooled))
            counts = [len(p) for p in group_proposals]
            for j, (position, logits, regression) in enumerate(
                zip(
                    group.positions,
                    class_logits.split(counts),
                    box_regression.split(counts),
                    strict=True,
                )
            ):
                slots["objectness"][position] = objectness[j]
                slots["rpn_deltas"][position] = deltas[j]
                slots["class_logits"][position] = logits
                slots["box_regression"][position] = regression
                proposals[position] = group_proposals[j]
        outputs = {k: _pad(v) for k, v in slots.items()}
        return {**outputs, "context": replace(context, proposals=proposals)}

    # -- pseudo-labels -----------------------------------------------------------
    def _detections(self, estimator: Any, outputs: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
        """The model's detections above ``score_threshold``, in the transformed frame.

        Computed once per forward pass (cached in its context): every tensor of ``outputs``
        holds that pass's values, whatever copy or dtype the engine hands over.
        """
        context: _Context = outputs["context"]
        cached = context.detections.get(self.score_threshold)
        if cached is not None:
            return cached
        module = self.get_module(estimator)
        keys = [k for k in outputs if k != "context"]
        detections = []
        with torch.no_grad():
            for i, size in enumerate(context.image_sizes):
                if isinstance(module, FasterRCNN):
                    roi = copy.copy(module.roi_heads)  # shallow: the user's keeps its threshold
                    roi.score_thresh = self.score_threshold
                    k = len(context.proposals[i])
                    boxes, scores, labels = roi.postprocess_detections(
                        outputs["class_logits"][i, :k].float(),
                        outputs["box_regression"][i, :k].float(),
                        [context.proposals[i].float()],
                        [size],
                    )
                    detections.append({"boxes": boxes[0], "scores": scores[0], "labels": labels[0]})
                    continue
                post = copy.copy(module)
                post.score_thresh = self.score_threshold
                levels = context.anchors_per_level[i]
                split = {
                    key: [t[None] for t in outputs[key][i, : sum(levels)].float().split(levels)]
                    for key in keys
                }
                anchors = [list(context.anchors[i].split(levels))]
                detections.extend(post.postprocess_detections(split, anchors, [size]))
        context.detections[self.score_threshold] = detections
        return detections

    def pseudo_targets(self, estimator: Any, outputs: dict[str, Any]) -> list[dict[str, Any]]:
        """Pseudo-boxes and labels per image: the model's detections above ``score_threshold``.

        The model's own post-processing (score threshold, top candidates,
        non-maximum suppression, ``detections_per_img``), in the frame of the
        resized images the head saw. Computed once per forward pass.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector.
        outputs : dict
            Detached outputs of :meth:`forward`.

        Returns
        -------
        list of dict
            ``{"boxes": (k, 4), "labels": (k,)}`` per image; ``k`` may be 0.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
        >>> _ = torch.manual_seed(0)
        >>> module = build_detector("fcos_small", num_classes=4, min_size=32, max_size=64).eval()
        >>> X, y = make_shapes(2, image_size=(32, 48), random_state=0)
        >>> adapter = DetectionAdapter(score_threshold=0.0)
        >>> batch = adapter.get_inputs(module, X, np.arange(2), torch.device("cpu"))
        >>> with torch.no_grad():
        ...     outputs = adapter.forward(module, module, batch)
        >>> targets = adapter.pseudo_targets(module, outputs)
        >>> len(targets), sorted(targets[0]), targets[0]["boxes"].shape[1]
        (2, ['boxes', 'labels'], 4)
        """
        return [
            {"boxes": d["boxes"], "labels": d["labels"]}
            for d in self._detections(estimator, outputs)
        ]

    def pseudo_label_summary(self, estimator: Any, outputs: dict[str, Any]) -> dict[str, Any]:
        """Each image's pseudo-box count (its annotation cost) and whether it has none.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector.
        outputs : dict
            Detached outputs of :meth:`forward`.

        Returns
        -------
        dict
            ``"cost"``: float64 pseudo-box counts, shape ``(n,)``;
            ``"deferred"``: bool, shape ``(n,)``, True for images without a
            pseudo-box when ``empty_images="last"`` (ranked last), all False
            with ``"score"``.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
        >>> _ = torch.manual_seed(0)
        >>> module = build_detector("fcos_small", num_classes=4, min_size=32, max_size=64).eval()
        >>> X, y = make_shapes(2, image_size=(32, 48), random_state=0)
        >>> adapter = DetectionAdapter(score_threshold=0.0)
        >>> batch = adapter.get_inputs(module, X, np.arange(2), torch.device("cpu"))
        >>> with torch.no_grad():
        ...     outputs = adapter.forward(module, module, batch)
        >>> summary = adapter.pseudo_label_summary(module, outputs)
        >>> counts = [len(t["boxes"]) for t in adapter.pseudo_targets(module, outputs)]
        >>> summary["cost"].tolist() == counts
        True
        >>> summary["deferred"].tolist() == [c == 0 for c in counts]
        True
        """
        counts = torch.tensor(
            [len(t["boxes"]) for t in self.pseudo_targets(estimator, outputs)],
            dtype=torch.float64,
        )
        deferred = counts == 0 if self.empty_images == "last" else torch.zeros_like(counts).bool()
        return {"cost": counts, "deferred": deferred}

    def pseudo_label_loss(self, estimator: Any, outputs: dict[str, Any]) -> torch.Tensor:
        """Each image's training loss against its own pseudo-boxes (UUIC for detection).

        The pseudo-boxes come from detached outputs, so the gradient of this
        loss is ``G_z`` at fixed pseudo-labels; an image without one is
        scored against an all-background target.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector.
        outputs : dict
            Outputs of :meth:`forward` (with gradients or dual tangents).

        Returns
        -------
        torch.Tensor of shape (n,)
            The sum of torchvision's loss terms, per image.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
        >>> _ = torch.manual_seed(0)
        >>> module = build_detector("fcos_small", num_classes=4, min_size=32, max_size=64).eval()
        >>> X, y = make_shapes(2, image_size=(32, 48), random_state=0)
        >>> adapter = DetectionAdapter(score_threshold=0.0)
        >>> batch = adapter.get_inputs(module, X, np.arange(2), torch.device("cpu"))
        >>> with torch.no_grad():
        ...     outputs = adapter.forward(module, module, batch)
        >>> loss = adapter.pseudo_label_loss(module, outputs)
        >>> loss.shape, bool(torch.isfinite(loss).all())
        (torch.Size([2]), True)
        """
        detached = {
            k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in outputs.items()
        }
        return self._loss(estimator, outputs, self.pseudo_targets(estimator, detached))

    def per_sample_loss(
        self, estimator: Any, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]
    ) -> torch.Tensor:
        """Each image's torchvision training loss against its annotated boxes.

        The same loss as the detector's training mode (tested against it), one
        image at a time: its mean is the objective whose curvature ISAL
        inverts, and over the reference set it is ``l(R)``.

        Parameters
        ----------
        estimator : TorchvisionDetector or torch.nn.Module
            The detector.
        outputs : dict
            Outputs of :meth:`forward`.
        targets : list of dict
            From :meth:`get_targets`, boxes in the original images' pixels.

        Returns
        -------
        torch.Tensor of shape (n,)
            The sum of torchvision's loss terms, per image.

        Examples
        --------
        >>> import numpy as np, torch
        >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
        >>> _ = torch.manual_seed(0)
        >>> module = build_detector("fcos_small", num_classes=4, min_size=32, max_size=64).eval()
        >>> X, y = make_shapes(2, image_size=(32, 48), random_state=0)
        >>> adapter = DetectionAdapter(score_threshold=0.0)
        >>> batch = adapter.get_inputs(module, X, np.arange(2), torch.device("cpu"))
        >>> targets = adapter.get_targets(module, y, np.arange(2), torch.device("cpu"))
        >>> with torch.no_grad():
        ...     outputs = adapter.forward(module, module, batch)
        >>> loss = adapter.per_sample_loss(module, outputs, targets)
        >>> loss.shape, bool((loss > 0).all())
        (torch.Size([2]), True)
        """
        context: _Context = outputs["context"]
        resized = [
            {
                "boxes": resize_boxes(t["boxes"], original, size),
                "labels": t["labels"],
            }
            for t, original, size in zip(
                targets, context.original_sizes, context.image_sizes, strict=True
            )
        ]
        return self._loss(estimator, outputs, resized)

    def _loss(
        self, estimator: Any, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]
    ) -> torch.Tensor:
        """torchvision's training loss of each image against ``targets`` (transformed frame)."""
        module = self.get_module(estimator)
        context: _Context = outputs["context"]
        keys = [k for k in outputs if k != "context"]
        # Matching (anchors against boxes) stays in the model's dtype even when the
        # engine contracts in float64: its strict comparisons must not flip.
        losses = []
        for i, target in enumerate(targets):
            target = {
                "boxes": target["boxes"].reshape(-1, 4),
                "labels": target["labels"].long(),
            }
            anchors = context.anchors[i]
            rows = {
                k: len(anchors)
                for k in (
                    "cls_logits",
                    "bbox_regression",
                    "bbox_ctrness",
                    "objectness",
                    "rpn_deltas",
                )
            }
            if context.proposals is not None:
                rows["class_logits"] = rows["box_regression"] = len(context.proposals[i])
            head = {k: outputs[k][i : i + 1, : rows[k]] for k in keys}  # without padding
            if isinstance(module, FCOS):
                parts = module.compute_loss([target], head, [anchors], context.anchors_per_level[i])
            elif isinstance(module, RetinaNet):
                parts = module.compute_loss([target], head, [anchors])
            else:
                parts = self._two_stage_loss(module, head, context, i, anchors, target)
            losses.append(sum(parts.values()))
        return torch.stack(losses)

    @staticmethod
    def _two_stage_loss(
        module: nn.Module,
        head: dict[str, torch.Tensor],
        context: _Context,
        i: int,
        anchors: torch.Tensor,
        target: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        rpn, roi = module.rpn, module.roi_heads
        proposals = context.proposals[i].to(anchors.dtype)
        with _seeded(anchors.device):
            labels, matched = rpn.assign_targets_to_anchors([anchors], [target])
            regression_targets = rpn.box_coder.encode(matched, [anchors])
            loss_objectness, loss_rpn = rpn.compute_loss(
                head["objectness"].reshape(-1, 1),
                head["rpn_deltas"].reshape(-1, 4),
                labels,
                regression_targets,
            )
            matched_idxs, roi_labels = roi.assign_targets_to_proposals(
                [proposals], [target["boxes"]], [target["labels"]]
            )
            keep = roi.subsample(roi_labels)[0]
        gt = target["boxes"] if len(target["boxes"]) else proposals.new_zeros(1, 4)
        matched_boxes = gt[matched_idxs[0][keep]]
        regression = roi.box_coder.encode([matched_boxes], [proposals[keep]])
        loss_classifier, loss_box = fastrcnn_loss(
            head["class_logits"][0][keep],
            head["box_regression"][0][keep],
            [roi_labels[0][keep]],
            regression,
        )
        return {
            "loss_objectness": loss_objectness,
            "loss_rpn_box_reg": loss_rpn,
            "loss_classifier": loss_classifier,
            "loss_box_reg": loss_box,
        }


def _head_from_towers(
    module: nn.Module, classification: list[torch.Tensor], regression: list[torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A one-stage head's outputs from its towers' outputs: its final layers only.

    The final layers and the layout of torchvision's ``FCOSHead`` and
    ``RetinaNetHead`` (per level ``(N, A * K, H, W)`` to ``(N, HWA, K)``, levels
    concatenated); tested equal to the whole head.
    """

    def flat(t: torch.Tensor, k: int) -> torch.Tensor:
        n, _, h, w = t.shape
        return t.view(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k)

    cls_head, reg_head = module.head.classification_head, module.head.regression_head
    outputs = {
        "cls_logits": torch.cat(
            [flat(cls_head.cls_logits(t), cls_head.num_classes) for t in classification], dim=1
        )
    }
    if isinstance(module, FCOS):
        outputs["bbox_regression"] = torch.cat(
            [flat(nn.functional.relu(reg_head.bbox_reg(t)), 4) for t in regression], dim=1
        )
        outputs["bbox_ctrness"] = torch.cat(
            [flat(reg_head.bbox_ctrness(t), 1) for t in regression], dim=1
        )
    else:
        outputs["bbox_regression"] = torch.cat(
            [flat(reg_head.bbox_reg(t), 4) for t in regression], dim=1
        )
    return outputs


def _pad(rows: list[torch.Tensor]) -> torch.Tensor:
    """Per-image tensors of different lengths stacked as ``(n, longest, ...)``, zero-padded."""
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
