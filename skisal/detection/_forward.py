"""Forward plumbing: a torchvision detector's raw head outputs, one image at a time.

The detection adapter differentiates a detector's head outputs (per-anchor
class logits and box regressions, before any post-processing). This module
runs the network up to them: :func:`trunk` computes the transform, backbone,
feature pyramid and anchors (and, for one-stage detectors, the head's
convolution towers), :func:`head_outputs` the rest. Each image runs alone, as
a batch of one (see :func:`trunk`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet

__all__ = ["Batch", "Context", "family", "head_from_towers", "head_outputs", "trunk"]


def family(module: nn.Module) -> str:
    """``"FCOS"``, ``"RetinaNet"`` or ``"FasterRCNN"``: the supported detector ``module`` is.

    Raises
    ------
    TypeError
        For any other module, Mask R-CNN and Keypoint R-CNN included.
    """
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
class Context:
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
class Batch:
    """A batch of images and, once through :func:`trunk`, their features, per image."""

    images: list[torch.Tensor]
    # Per image, per pyramid level: the backbone's and FPN's output, (1, C, H, W).
    features: list[list[torch.Tensor]] | None = None
    # Per image, one-stage heads with frozen towers: the classification and regression
    # towers' outputs per level, which the final prediction layers read.
    towers: list[tuple[list[torch.Tensor], list[torch.Tensor]]] | None = None
    context: Context | None = None

    def nbytes(self) -> int:
        """Bytes of the features, towers and anchors (0 before :func:`trunk`)."""
        tensors = [f for levels in self.features or [] for f in levels]
        tensors += [t for pair in self.towers or [] for side in pair for t in side]
        tensors += self.context.anchors if self.context else []
        return sum(t.numel() * t.element_size() for t in tensors)


def trunk(module: nn.Module, images: list[torch.Tensor], towers: bool = False) -> Batch:
    """Transform, backbone and anchors (and the one-stage head's towers, with ``towers``).

    Each image goes through on its own, as a batch of one. torchvision pads a
    batch to its largest image, which changes the others' features and
    anchors; and even equal-size batches change the last bits of a
    convolution, which matters here: a pseudo-box equals the prediction it
    came from, where the GIoU loss has a kink, so which one-sided gradient
    autograd takes depends on those bits. One image at a time, an image's
    influence does not depend on its batch.
    """
    two_stage = isinstance(module, FasterRCNN)
    generator = module.rpn.anchor_generator if two_stage else module.anchor_generator
    features, tower_outputs = [], []
    anchors, per_level, sizes = [], [], []
    for image in images:
        image_list, _ = module.transform([image])
        levels = list(module.backbone(image_list.tensors).values())
        features.append(levels)
        anchors.extend(generator(image_list, levels))
        per_level.append(
            [
                f.shape[-2] * f.shape[-1] * a
                for f, a in zip(levels, generator.num_anchors_per_location(), strict=True)
            ]
        )
        sizes.append(tuple(int(v) for v in image_list.image_sizes[0]))
        if towers:
            head = module.head
            tower_outputs.append(
                (
                    [head.classification_head.conv(f) for f in levels],
                    [head.regression_head.conv(f) for f in levels],
                )
            )
    original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
    context = Context(sizes, original_sizes, anchors, per_level)
    return Batch(images, features, tower_outputs if towers else None, context)


def head_outputs(module: nn.Module, batch: Batch) -> dict[str, Any]:
    """The raw head outputs of a batch (run through :func:`trunk` if it was not).

    Each output is ``(n_images, most anchors, ...)``, zero-padded: padding
    rows take no part in any loss. ``"context"`` is a new :class:`Context`
    per call, since encoded batches are reused with other parameters.
    """
    if batch.features is None:
        batch = trunk(module, batch.images)
    if isinstance(module, FasterRCNN):
        return _two_stage_forward(module, batch)
    rows: dict[str, list[torch.Tensor]] = {}
    for i, features in enumerate(batch.features):
        if batch.towers is None:
            outputs = module.head(features)
        else:
            outputs = head_from_towers(module, *batch.towers[i])
        for key, value in outputs.items():
            rows.setdefault(key, []).append(value[0])
    return {**{k: _pad(v) for k, v in rows.items()}, "context": replace(batch.context)}


def _two_stage_forward(module: nn.Module, batch: Batch) -> dict[str, Any]:
    """Faster R-CNN's RPN outputs, its proposals (constants), and the RoI head's outputs."""
    rpn, roi = module.rpn, module.roi_heads
    context = batch.context
    rows: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("objectness", "rpn_deltas", "class_logits", "box_regression")
    }
    proposals = []
    for i, features in enumerate(batch.features):
        objectness, deltas = rpn.head(features)
        # levels concatenated in the order torchvision's RPN uses: (H, W, anchor)
        objectness = torch.cat([o.permute(0, 2, 3, 1).reshape(1, -1) for o in objectness], 1)
        deltas = torch.cat(
            [
                d.view(1, -1, 4, d.shape[-2], d.shape[-1]).permute(0, 3, 4, 1, 2).reshape(1, -1, 4)
                for d in deltas
            ],
            dim=1,
        )
        size = [context.image_sizes[i]]
        with torch.no_grad():  # proposals are constants of the loss, as in training
            boxes = rpn.box_coder.decode(deltas.detach().reshape(-1, 4), [context.anchors[i]])
            (image_proposals,), _ = rpn.filter_proposals(
                boxes.view(1, -1, 4),
                objectness.detach().reshape(-1, 1),
                size,
                context.anchors_per_level[i],
            )
        pooled = roi.box_roi_pool(
            {str(level): f for level, f in enumerate(features)}, [image_proposals], size
        )
        class_logits, box_regression = roi.box_predictor(roi.box_head(pooled))
        rows["objectness"].append(objectness[0])
        rows["rpn_deltas"].append(deltas[0])
        rows["class_logits"].append(class_logits)
        rows["box_regression"].append(box_regression)
        proposals.append(image_proposals)
    outputs = {k: _pad(v) for k, v in rows.items()}
    return {**outputs, "context": replace(context, proposals=proposals)}


def head_from_towers(
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
