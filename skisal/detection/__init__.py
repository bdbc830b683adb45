"""ISAL for object detection: torchvision detectors in modAL loops.

:class:`TorchvisionDetector` makes a torchvision FCOS, RetinaNet or Faster
R-CNN a scikit-learn estimator that a modAL ``ActiveLearner`` can query and
teach; :class:`DetectionAdapter` tells :class:`skisal.InfluenceQueryStrategy`
how to compute its loss and pseudo-boxes (importing this package registers it,
with :func:`skisal.adapters.register_adapter`, for both the estimator and bare
torchvision detectors); :func:`detection_uncertainty` and
:class:`skisal.RandomSampling` are the baselines; :func:`make_shapes` and
:func:`load_coco` give data.
"""

from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet

from ..adapters import register_adapter
from ._arrays import as_object_array
from ._validation import check_images, check_targets
from .adapter import HEAD_LAYERS, DetectionAdapter
from .baselines import detection_entropy, detection_uncertainty
from .datasets import load_coco, make_shapes
from .estimator import TorchvisionDetector
from .models import (
    DETECTOR_NAMES,
    SMALL_IMAGE_SIZE,
    build_detector,
    detector_num_classes,
    small_backbone,
)

__all__ = [
    "DETECTOR_NAMES",
    "HEAD_LAYERS",
    "SMALL_IMAGE_SIZE",
    "DetectionAdapter",
    "TorchvisionDetector",
    "as_object_array",
    "build_detector",
    "check_images",
    "check_targets",
    "detection_entropy",
    "detection_uncertainty",
    "detector_num_classes",
    "load_coco",
    "make_shapes",
    "small_backbone",
]

register_adapter((TorchvisionDetector, FCOS, RetinaNet, FasterRCNN), DetectionAdapter, default=True)
