"""Detection models by name: torchvision's builders, and small CPU-sized variants.

torchvision's detectors are built from their builder functions with
``weights=None, weights_backbone=None`` (skisal never downloads anything). The
``*_small`` names build the same three families -- FCOS, RetinaNet, Faster
R-CNN, with torchvision's own heads, losses and post-processing -- over a
four-stage convolutional backbone with a three-level feature pyramid (strides
8, 16, 32): about 1% of ResNet-50-FPN's compute, for tests, examples and
small images on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torchvision.models import detection as tvd
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import MultiScaleRoIAlign

__all__ = [
    "DETECTOR_NAMES",
    "SMALL_IMAGE_SIZE",
    "build_detector",
    "detector_num_classes",
    "small_backbone",
]

_TORCHVISION_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fcos_resnet50_fpn": tvd.fcos_resnet50_fpn,
    "retinanet_resnet50_fpn": tvd.retinanet_resnet50_fpn,
    "retinanet_resnet50_fpn_v2": tvd.retinanet_resnet50_fpn_v2,
    "fasterrcnn_resnet50_fpn": tvd.fasterrcnn_resnet50_fpn,
    "fasterrcnn_resnet50_fpn_v2": tvd.fasterrcnn_resnet50_fpn_v2,
    "fasterrcnn_mobilenet_v3_large_fpn": tvd.fasterrcnn_mobilenet_v3_large_fpn,
    "fasterrcnn_mobilenet_v3_large_320_fpn": tvd.fasterrcnn_mobilenet_v3_large_320_fpn,
}


def _block(cin: int, cout: int) -> nn.Sequential:
    """A stride-2 stage: two 3x3 convolutions, GroupNorm (batch-size independent)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
        nn.GroupNorm(8, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(8, cout),
        nn.ReLU(inplace=True),
    )


def small_backbone(width: int = 16, out_channels: int = 64) -> BackboneWithFPN:
    """A four-stage CNN with a three-level FPN (strides 8, 16, 32), for small images.

    Parameters
    ----------
    width : int, default=16
        Channels of the first stage; each later stage doubles them. A
        multiple of 8 (GroupNorm uses 8 groups).
    out_channels : int, default=64
        Channels of every pyramid level. A multiple of 32 for FCOS and
        RetinaNet heads, whose GroupNorm uses 32 groups.

    Returns
    -------
    torchvision.models.detection.backbone_utils.BackboneWithFPN
        Returns the feature maps ``"0"``, ``"1"``, ``"2"``.

    Raises
    ------
    ValueError
        If ``width`` is not a positive multiple of 8 or ``out_channels`` not
        a positive multiple of 32.

    Examples
    --------
    >>> import torch
    >>> features = small_backbone()(torch.zeros(1, 3, 64, 64))
    >>> {name: tuple(f.shape[-2:]) for name, f in features.items()}
    {'0': (8, 8), '1': (4, 4), '2': (2, 2)}
    """
    if not isinstance(width, int) or width < 8 or width % 8:
        raise ValueError(f"width must be a positive multiple of 8, got {width!r}.")
    if not isinstance(out_channels, int) or out_channels < 32 or out_channels % 32:
        raise ValueError(f"out_channels must be a positive multiple of 32, got {out_channels!r}.")
    body = nn.Sequential()
    body.add_module("stem", _block(3, width))  # stride 2
    body.add_module("layer1", _block(width, width))  # 4
    body.add_module("layer2", _block(width, 2 * width))  # 8
    body.add_module("layer3", _block(2 * width, 4 * width))  # 16
    body.add_module("layer4", _block(4 * width, 8 * width))  # 32
    backbone = BackboneWithFPN(
        body,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=[2 * width, 4 * width, 8 * width],
        out_channels=out_channels,
    )
    backbone.fpn.extra_blocks = None  # three levels, no extra max-pool level
    return backbone


def _fcos_small(num_classes: int, **kwargs: Any) -> nn.Module:
    """FCOS over :func:`small_backbone`: one anchor per location, a two-layer head."""
    backbone = small_backbone()
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,)), aspect_ratios=((1.0,),) * 3)
    head = FCOSHead(backbone.out_channels, 1, num_classes, num_convs=2)
    return tvd.FCOS(backbone, num_classes, anchor_generator=anchors, head=head, **kwargs)


def _retinanet_small(num_classes: int, **kwargs: Any) -> nn.Module:
    """RetinaNet over :func:`small_backbone`: nine anchors per location."""
    backbone = small_backbone()
    sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in (16, 32, 64))
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * 3)
    head = RetinaNetHead(backbone.out_channels, 9, num_classes)
    return tvd.RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head, **kwargs)


def _fasterrcnn_small(num_classes: int, **kwargs: Any) -> nn.Module:
    """Faster R-CNN over :func:`small_backbone`, with proposal counts for small images."""
    backbone = small_backbone()
    anchors = AnchorGenerator(sizes=((16,), (32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),) * 3)
    pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2)
    representation = 256
    # Proposal counts sized for small images (torchvision's are for 800 px).
    sizes = {
        "rpn_pre_nms_top_n_train": 300,
        "rpn_post_nms_top_n_train": 150,
        "rpn_pre_nms_top_n_test": 150,
        "rpn_post_nms_top_n_test": 100,
        "box_batch_size_per_image": 64,
    }
    return tvd.FasterRCNN(
        backbone,
        rpn_anchor_generator=anchors,
        box_roi_pool=pool,
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes),
        **{**sizes, **kwargs},
    )


#: The resize bounds the small models get unless told otherwise: their anchors (8 to 64 px)
#: are for small images, which torchvision's default (800 px) would blow up 6 to 12 times.
SMALL_IMAGE_SIZE: dict[str, int] = {"min_size": 128, "max_size": 128}

_SMALL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fcos_small": _fcos_small,
    "retinanet_small": _retinanet_small,
    "fasterrcnn_small": _fasterrcnn_small,
}

#: Every model name :func:`build_detector` accepts.
DETECTOR_NAMES: tuple[str, ...] = (*_TORCHVISION_BUILDERS, *_SMALL_BUILDERS)


def build_detector(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build an untrained detector by name.

    Parameters
    ----------
    name : str
        One of :data:`DETECTOR_NAMES`: torchvision's ``fcos_resnet50_fpn``,
        ``retinanet_resnet50_fpn`` (and ``_v2``), ``fasterrcnn_resnet50_fpn``
        (and ``_v2``), ``fasterrcnn_mobilenet_v3_large_fpn`` (and ``_320_fpn``),
        or skisal's CPU-sized ``fcos_small``, ``retinanet_small`` and
        ``fasterrcnn_small``.
    num_classes : int
        Number of classes *including* the background label 0 (torchvision's
        convention).
    **kwargs
        Passed to the builder or the model class: ``min_size``, ``max_size``,
        ``score_thresh``, ``detections_per_img``, ... The small models resize
        to :data:`SMALL_IMAGE_SIZE` (longer side 128 px) unless given
        ``min_size`` and ``max_size``; torchvision's builders to 800 px.

    Returns
    -------
    torch.nn.Module
        The detector, randomly initialised from torch's global RNG (seed it
        first for a reproducible model); torchvision builders get
        ``weights=None, weights_backbone=None``.

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``num_classes`` is not an integer >= 2.

    Examples
    --------
    >>> model = build_detector("fcos_small", num_classes=4, min_size=64, max_size=128)
    >>> type(model).__name__
    'FCOS'
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an integer >= 2 (background included), got {num_classes!r}."
        )
    if name in _SMALL_BUILDERS:
        return _SMALL_BUILDERS[name](num_classes, **{**SMALL_IMAGE_SIZE, **kwargs})
    if name in _TORCHVISION_BUILDERS:
        builder = _TORCHVISION_BUILDERS[name]
        return builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    raise ValueError(f"model={name!r} is not a known detector; expected one of {DETECTOR_NAMES}.")


def detector_num_classes(module: nn.Module) -> int:
    """Classes (background included) a torchvision FCOS, RetinaNet or Faster R-CNN predicts.

    Parameters
    ----------
    module : torch.nn.Module
        The detector.

    Returns
    -------
    int
        Its number of classes, the background label 0 included.

    Raises
    ------
    TypeError
        If the module is none of those families.

    Examples
    --------
    >>> from skisal.detection import build_detector, detector_num_classes
    >>> detector_num_classes(build_detector("retinanet_small", num_classes=5))
    5
    """
    head = getattr(module, "head", None)
    if head is not None and hasattr(head, "classification_head"):
        return int(head.classification_head.num_classes)
    predictor = getattr(getattr(module, "roi_heads", None), "box_predictor", None)
    if predictor is not None and hasattr(predictor, "cls_score"):
        return int(predictor.cls_score.out_features)
    raise TypeError(
        "model must be a torchvision FCOS, RetinaNet or Faster R-CNN (or a model name), "
        f"got {type(module).__name__}."
    )
