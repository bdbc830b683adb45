"""Losses and post-processing on a detector's raw head outputs, one image at a time.

:func:`detections` runs the model's own post-processing (score threshold,
top candidates, non-maximum suppression) on the outputs of
:func:`~skisal.detection._forward.head_outputs`; :func:`per_image_loss` runs
torchvision's own training-loss code against given targets.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.detection.transform import resize_boxes

from ._forward import Context

__all__ = ["detections", "per_image_loss", "resized_targets"]

_SAMPLER_SEED = 0  # Faster R-CNN's anchor/RoI samplers, seeded so the loss is a fixed function
# Output rows per anchor (the rest are per proposal): what is not padding in each image.
_PER_ANCHOR = ("cls_logits", "bbox_regression", "bbox_ctrness", "objectness", "rpn_deltas")


@contextlib.contextmanager
def _seeded(device: torch.device) -> Iterator[None]:
    """Seed torch's RNG (and ``device``'s) inside, leaving the caller's RNG state alone."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_SAMPLER_SEED)
        yield


def detections(
    module: nn.Module, outputs: dict[str, Any], score_threshold: float
) -> list[dict[str, torch.Tensor]]:
    """The model's detections above ``score_threshold``, in the transformed frame.

    Computed once per forward pass (cached in its context): every tensor of ``outputs``
    holds that pass's values, whatever copy or dtype the engine hands over. The module's
    own ``score_thresh`` is left as it is (a shallow copy gets the threshold).
    """
    context: Context = outputs["context"]
    cached = context.detections.get(score_threshold)
    if cached is not None:
        return cached
    keys = [k for k in outputs if k != "context"]
    found = []
    with torch.no_grad():
        for i, size in enumerate(context.image_sizes):
            if isinstance(module, FasterRCNN):
                roi = copy.copy(module.roi_heads)
                roi.score_thresh = score_threshold
                k = len(context.proposals[i])
                boxes, scores, labels = roi.postprocess_detections(
                    outputs["class_logits"][i, :k].float(),
                    outputs["box_regression"][i, :k].float(),
                    [context.proposals[i].float()],
                    [size],
                )
                found.append({"boxes": boxes[0], "scores": scores[0], "labels": labels[0]})
                continue
            post = copy.copy(module)
            post.score_thresh = score_threshold
            levels = context.anchors_per_level[i]
            split = {
                key: [t[None] for t in outputs[key][i, : sum(levels)].float().split(levels)]
                for key in keys
            }
            anchors = [list(context.anchors[i].split(levels))]
            found.extend(post.postprocess_detections(split, anchors, [size]))
    context.detections[score_threshold] = found
    return found


def resized_targets(
    targets: list[dict[str, torch.Tensor]], context: Context
) -> list[dict[str, torch.Tensor]]:
    """Annotated boxes moved from the original images' pixels to the resized images' frame."""
    return [
        {"boxes": resize_boxes(t["boxes"], original, size), "labels": t["labels"]}
        for t, original, size in zip(
            targets, context.original_sizes, context.image_sizes, strict=True
        )
    ]


def per_image_loss(
    module: nn.Module, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]
) -> torch.Tensor:
    """torchvision's training loss of each image against ``targets`` (transformed frame).

    The sum of the model's loss terms, per image, shape ``(n,)``. Matching (anchors
    against boxes) stays in the model's dtype even when the engine contracts in
    float64: its strict comparisons must not flip.
    """
    context: Context = outputs["context"]
    keys = [k for k in outputs if k != "context"]
    losses = []
    for i, target in enumerate(targets):
        target = {"boxes": target["boxes"].reshape(-1, 4), "labels": target["labels"].long()}
        anchors = context.anchors[i]
        rows = dict.fromkeys(_PER_ANCHOR, len(anchors))
        if context.proposals is not None:
            rows["class_logits"] = rows["box_regression"] = len(context.proposals[i])
        head = {k: outputs[k][i : i + 1, : rows[k]] for k in keys}  # without padding
        if isinstance(module, FCOS):
            parts = module.compute_loss([target], head, [anchors], context.anchors_per_level[i])
        elif isinstance(module, RetinaNet):
            parts = module.compute_loss([target], head, [anchors])
        else:
            parts = _two_stage_loss(module, head, context.proposals[i], anchors, target)
        losses.append(sum(parts.values()))
    return torch.stack(losses)


def _two_stage_loss(
    module: nn.Module,
    head: dict[str, torch.Tensor],
    proposals: torch.Tensor,
    anchors: torch.Tensor,
    target: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Faster R-CNN's four loss terms for one image, over its inference proposals.

    Training also appends the ground-truth boxes as proposals, which would make the
    head's outputs depend on the targets; the samplers are seeded so that the loss is
    a fixed function of the outputs.
    """
    rpn, roi = module.rpn, module.roi_heads
    proposals = proposals.to(anchors.dtype)
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
