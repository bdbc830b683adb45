"""``DetectionAdapter``: ISAL's loss and pseudo-labels for torchvision detectors.

The engine needs per-image losses that are functions of the network's
outputs. For a detector those outputs are the raw head outputs (per-anchor
class logits and box regressions, before any post-processing): the adapter
turns them into pseudo-boxes with the model's own post-processing, and into a
loss with the model's own training-loss code, one image at a time. This
module holds the adapter's hooks; the forward plumbing is in ``_forward``,
the losses and post-processing in ``_losses``.

With only head layers tracked (the default), the backbone and feature
pyramid run once per batch without gradients (:meth:`DetectionAdapter.encode`)
and their features are cached over the labelled set while ``s_test`` is
solved: every Hessian-vector product then costs a head pass only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torchvision.models.detection import FasterRCNN

from .._validation import check_constraints, is_non_negative_real
from ..adapters.base import ModelAdapter
from ._arrays import target_to
from ._forward import Batch, family, head_outputs, trunk
from ._losses import detections, per_image_loss, resized_targets
from ._validation import check_images, check_targets
from .estimator import TorchvisionDetector
from .models import detector_num_classes

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
    """
    return any(name == layer or name.startswith(layer + ".") for layer in _ALL_HEAD_LAYERS)


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
    one. The methods below are the :class:`~skisal.ModelAdapter`
    hooks the engine calls; users set the parameters above and leave them to
    the strategy.

    Examples
    --------
    >>> from skisal import InfluenceQueryStrategy
    >>> from skisal.detection import DetectionAdapter, build_detector, make_shapes
    >>> strategy = InfluenceQueryStrategy(adapter=DetectionAdapter(score_threshold=0.2))
    >>> strategy.adapter.score_threshold, strategy.adapter.empty_images
    (0.2, 'last')

    The hooks the engine calls, on an untrained detector and two images:

    >>> module = build_detector("fcos_small", num_classes=4, min_size=32, max_size=64).eval()
    >>> images, targets = make_shapes(2, image_size=(32, 48), random_state=0)
    >>> adapter = DetectionAdapter(score_threshold=0.0)
    >>> rows, cpu = np.arange(2), torch.device("cpu")
    >>> batch = adapter.get_inputs(module, images, rows, cpu)
    >>> with torch.no_grad():
    ...     outputs = adapter.forward(module, module, adapter.encode(module, module, batch))
    >>> sorted(k for k in outputs if k != "context")
    ['bbox_ctrness', 'bbox_regression', 'cls_logits']
    >>> boxes = adapter.get_targets(module, targets, rows, cpu)
    >>> adapter.per_sample_loss(module, outputs, boxes).shape
    torch.Size([2])
    >>> counts = [len(t["boxes"]) for t in adapter.pseudo_targets(module, outputs)]
    >>> adapter.pseudo_label_summary(module, outputs)["cost"].tolist() == counts
    True
    """

    default_parameters = staticmethod(_is_head_parameter)
    #: Focal and GIoU losses are not convex in the outputs: Gauss-Newton is indefinite.
    default_curvature = "fisher"
    #: K-FAC fits a head shared across feature levels poorly: conjugate gradients converge
    #: faster and closer here than K-FAC-preconditioned CG (see :doc:`/guide/detection`).
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
        """
        check_constraints(self, _CONSTRAINTS)
        if not isinstance(estimator, nn.Module):
            if not isinstance(estimator, TorchvisionDetector):
                raise TypeError(
                    "DetectionAdapter scores a skisal TorchvisionDetector or a torchvision "
                    f"detection module, got {type(estimator).__name__}."
                )
            check_is_fitted(estimator, "module_")
        family(self.get_module(estimator))

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
            If a name lies in the frozen part and ``freeze_features`` is True.
        """
        if not self.freeze_features:
            return
        frozen = _FROZEN[family(self.get_module(estimator))]
        trunk_names = [n for n in names if n.startswith(frozen)]
        if trunk_names:
            raise ValueError(
                f"parameters include frozen parameters ({trunk_names[:3]}): "
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
        """
        num_classes = detector_num_classes(self.get_module(estimator))
        return check_targets(y, X, argument, num_classes)

    def get_inputs(
        self, estimator: Any, X: Any, indices: np.ndarray, device: torch.device
    ) -> Batch:
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
        """
        dtype = next(self.get_module(estimator).parameters()).dtype
        images = [torch.as_tensor(X[int(i)]).to(device=device, dtype=dtype) for i in indices]
        return Batch(images=images)

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
        """
        return [target_to(y[int(i)], device) for i in indices]

    # -- model -------------------------------------------------------------------
    def encode(self, estimator: Any, module: nn.Module, inputs: Batch) -> Batch:
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
        """
        if not self.freeze_features:
            return inputs
        return trunk(module, inputs.images, towers=not isinstance(module, FasterRCNN))

    def encoded_nbytes(self, encoded: Batch) -> int:
        """Bytes of an encoded batch's features and anchors (counted against the cache).

        Parameters
        ----------
        encoded : object
            A batch from :meth:`encode`.

        Returns
        -------
        int
            0 for a batch that was not encoded.
        """
        return encoded.nbytes()

    def forward(self, estimator: Any, module: nn.Module, inputs: Batch) -> dict[str, Any]:
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
        """
        return head_outputs(module, inputs)

    # -- pseudo-labels -----------------------------------------------------------
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
        """
        found = detections(self.get_module(estimator), outputs, self.score_threshold)
        return [{"boxes": d["boxes"], "labels": d["labels"]} for d in found]

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
            with ``"score"``; ``"pseudo_label"`` and ``"confidence"``: the label
            and score of each image's most confident pseudo-box (-1 and NaN
            without one); ``"margin"``: NaN (it is a classifier's notion).
        """
        found = detections(self.get_module(estimator), outputs, self.score_threshold)
        counts = torch.tensor([len(d["boxes"]) for d in found], dtype=torch.float64)
        deferred = counts == 0 if self.empty_images == "last" else torch.zeros_like(counts).bool()
        labels, scores = [], []
        for d in found:  # on the detections' device: no host round trip per image
            if len(d["scores"]):
                best = d["scores"].argmax()
                labels.append(d["labels"][best].long())
                scores.append(d["scores"][best].double())
            else:
                labels.append(torch.tensor(-1, device=d["labels"].device))
                scores.append(
                    torch.tensor(float("nan"), dtype=torch.float64, device=d["scores"].device)
                )
        confidence = torch.stack(scores)
        return {
            "cost": counts,
            "deferred": deferred,
            "pseudo_label": torch.stack(labels),
            "confidence": confidence,
            "margin": torch.full_like(confidence, float("nan")),
        }

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
        """
        detached = {
            k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in outputs.items()
        }
        targets = self.pseudo_targets(estimator, detached)
        return per_image_loss(self.get_module(estimator), outputs, targets)

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
        """
        resized = resized_targets(targets, outputs["context"])
        return per_image_loss(self.get_module(estimator), outputs, resized)
