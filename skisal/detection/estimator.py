"""``TorchvisionDetector``: a torchvision detection model as a scikit-learn estimator."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from torch import nn
from tqdm.auto import tqdm

from .._device import check_device
from .._validation import check_constraints, is_non_negative_real, is_positive_int, is_positive_real
from ..engine.model import batches, evaluation_mode
from ._arrays import target_to, to_tensor
from ._validation import check_images, check_targets
from .models import DETECTOR_NAMES, build_detector, detector_num_classes

# detector_num_classes lives in .models; still importable from here, where it was defined.
__all__ = ["TorchvisionDetector", "detector_num_classes"]

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = (None, "cosine")


_CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (
        lambda v: isinstance(v, nn.Module) or v in DETECTOR_NAMES,
        f"an nn.Module or one of {DETECTOR_NAMES}",
    ),
    "num_classes": (lambda v: v is None or (is_positive_int(v) and v >= 2), "None or an int >= 2"),
    "weights": (
        lambda v: v is None or isinstance(v, str | Path | dict),
        "None, a path to a state dict, or a state dict",
    ),
    "min_size": (lambda v: v is None or is_positive_int(v), "None or an int >= 1"),
    "max_size": (lambda v: v is None or is_positive_int(v), "None or an int >= 1"),
    "model_kwargs": (lambda v: v is None or isinstance(v, dict), "None or a dict"),
    "epochs": (is_positive_int, "an int >= 1"),
    "lr": (is_positive_real, "a real > 0"),
    "batch_size": (is_positive_int, "an int >= 1"),
    "optimizer": (lambda v: v in OPTIMIZERS or callable(v), f"one of {OPTIMIZERS} or a callable"),
    "momentum": (is_non_negative_real, "a real >= 0"),
    "weight_decay": (is_non_negative_real, "a real >= 0"),
    "lr_schedule": (lambda v: v in LR_SCHEDULES, f"one of {LR_SCHEDULES}"),
    "warmup_steps": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "an int >= 0",
    ),
    "max_grad_norm": (lambda v: v is None or is_positive_real(v), "None or a real > 0"),
    "progress": (lambda v: isinstance(v, bool), "a bool"),
}


class TorchvisionDetector(BaseEstimator):
    """A torchvision object detector that fits, predicts and scores like a scikit-learn estimator.

    It can sit in :class:`modAL.models.ActiveLearner`: ``fit`` retrains from
    the initial model on all the labelled images, ``predict`` returns the
    detections, ``score`` the COCO mAP. :class:`skisal.InfluenceQueryStrategy`
    scores it with :class:`~skisal.detection.DetectionAdapter` automatically.

    Images are float ``(3, H, W)`` tensors or arrays with values in [0, 1];
    sizes may differ. Pass them (and the target dicts) as 1-D object arrays
    (:func:`~skisal.detection.as_object_array`) so that modAL can index and
    stack them, and create the learner with ``force_all_finite=False`` (modAL's
    NaN check cannot look inside images; ``fit`` checks them itself).

    Parameters
    ----------
    model : str or torch.nn.Module, default="fcos_resnet50_fpn"
        A name from :data:`~skisal.detection.DETECTOR_NAMES` (built with
        ``weights=None``: nothing is downloaded), or a torchvision FCOS,
        RetinaNet or Faster R-CNN module, which ``fit`` copies and never
        changes.
    num_classes : int, optional
        Classes including the background label 0 (torchvision's convention:
        3 object classes -> ``num_classes=4``). Required with a model name;
        with a module it is read from the module (and must agree if given).
    weights : str, pathlib.Path or dict, optional
        A state dict (or a file holding one, read with
        ``torch.load(path, weights_only=True)``) loaded into the model before
        training, e.g. COCO weights saved from torchvision on a machine with
        internet. Its heads must match ``num_classes``.
    min_size, max_size : int, optional
        Resize bounds of torchvision's transform (the shorter side is scaled
        to ``min_size`` unless the longer would exceed ``max_size``).
        None keeps the model's own: 800 and 1333 for torchvision's builders
        (set them near your image size on a CPU), 128 and 128 for the
        ``*_small`` models.
    model_kwargs : dict, optional
        Extra keyword arguments for the builder (``score_thresh``,
        ``detections_per_img``, ``trainable_backbone_layers``, ...).
    epochs : int, default=10
        Passes over the labelled images per ``fit``.
    lr : float, default=0.01
        Peak learning rate.
    batch_size : int, default=4
        Images per optimiser step and per prediction batch.
    optimizer : {"sgd", "adam", "adamw"} or callable, default="sgd"
        The optimiser, or ``f(parameters, lr) -> torch.optim.Optimizer``.
    momentum : float, default=0.9
        SGD momentum.
    weight_decay : float, default=1e-4
        Weight decay.
    lr_schedule : {None, "cosine"}, default="cosine"
        Constant, or cosine decay to zero over all steps.
    warmup_steps : int, default=50
        Linear learning-rate warm-up steps (detectors trained from scratch
        diverge without it).
    max_grad_norm : float, optional, default=10.0
        Gradient-norm clipping; None disables it.
    device : str or torch.device, default="cpu"
        Where the model trains and predicts.
    random_state : int, RandomState instance or None, default=None
        Seeds the model's initialisation and the shuffling; torch's global
        RNG is left untouched.
    progress : bool, default=False
        Show a tqdm bar over epochs.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained detector (in eval mode).
    num_classes_ : int
        Classes including the background.
    history_ : list of dict
        Mean training losses per epoch (torchvision's loss terms and "loss").
    n_images_seen_ : int
        Labelled images of the last ``fit``.

    Examples
    --------
    >>> from skisal.detection import TorchvisionDetector, make_shapes
    >>> images, targets = make_shapes(8, random_state=0)
    >>> detector = TorchvisionDetector("fcos_small", num_classes=4, min_size=64,
    ...     max_size=128, epochs=1, random_state=0).fit(images, targets)
    >>> sorted(detector.history_[0])  # FCOS's loss terms and their sum, per epoch
    ['bbox_ctrness', 'bbox_regression', 'classification', 'loss']
    >>> detections = detector.predict(images[:2])
    >>> sorted(detections[0])
    ['boxes', 'labels', 'scores']
    >>> 0.0 <= detector.score(images, targets) <= 1.0  # COCO mAP@[.5:.95]
    True
    """

    def __init__(
        self,
        model: str | nn.Module = "fcos_resnet50_fpn",
        num_classes: int | None = None,
        *,
        weights: str | Path | dict | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        model_kwargs: dict | None = None,
        epochs: int = 10,
        lr: float = 0.01,
        batch_size: int = 4,
        optimizer: str | Callable[..., torch.optim.Optimizer] = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_schedule: str | None = "cosine",
        warmup_steps: int = 50,
        max_grad_norm: float | None = 10.0,
        device: str | torch.device = "cpu",
        random_state: Any = None,
        progress: bool = False,
    ) -> None:
        self.model = model
        self.num_classes = num_classes
        self.weights = weights
        self.min_size = min_size
        self.max_size = max_size
        self.model_kwargs = model_kwargs
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.warmup_steps = warmup_steps
        self.max_grad_norm = max_grad_norm
        self.device = device
        self.random_state = random_state
        self.progress = progress

    # -- fitting ------------------------------------------------------------------
    def _validate_params(self) -> None:
        """Check every parameter, naming the one at fault (at ``fit``, as scikit-learn does)."""
        check_constraints(self, _CONSTRAINTS)
        # the strategy's check: also refuses "cuda" where torch sees no GPU, before any work
        check_device(self.device, torch.device("cpu"))

    def _build(self) -> tuple[nn.Module, int]:
        """The initial model (from torch's RNG, seeded by the caller) and its class count."""
        if isinstance(self.model, nn.Module):
            module = copy.deepcopy(self.model)
            num_classes = detector_num_classes(module)
            if self.num_classes is not None and self.num_classes != num_classes:
                raise ValueError(
                    f"num_classes={self.num_classes} but the model predicts {num_classes} "
                    "classes (background included)."
                )
            if self.min_size is not None:
                module.transform.min_size = (self.min_size,)
            if self.max_size is not None:
                module.transform.max_size = self.max_size
        else:
            if self.num_classes is None:
                raise ValueError(
                    f"num_classes is required with model={self.model!r}: the number of object "
                    "classes plus one for the background."
                )
            kwargs = dict(self.model_kwargs or {})
            if self.min_size is not None:
                kwargs["min_size"] = self.min_size
            if self.max_size is not None:
                kwargs["max_size"] = self.max_size
            module = build_detector(self.model, self.num_classes, **kwargs)
            num_classes = self.num_classes
        if self.weights is not None:
            state = self.weights
            if not isinstance(state, dict):
                state = torch.load(state, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        return module, num_classes

    def _make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        """The optimiser ``optimizer`` names (or builds), over ``params``."""
        if callable(self.optimizer):
            return self.optimizer(params, lr=self.lr)
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        cls = torch.optim.Adam if self.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=self.lr, weight_decay=self.weight_decay)

    def _lr_factor(self, step: int, total: int) -> float:
        """The learning rate at ``step`` of ``total``, relative to ``lr``: warm-up and schedule."""
        factor = 1.0
        if self.lr_schedule == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))
        if step < self.warmup_steps:
            factor *= (step + 1) / self.warmup_steps
        return factor

    def fit(self, X: Any, y: Any, **fit_params: Any) -> TorchvisionDetector:
        """Train the detector from its initial state on ``X``, ``y``.

        Parameters
        ----------
        X : sequence of images
            Float ``(3, H, W)`` tensors or arrays in [0, 1]; sizes may differ.
        y : sequence of dict
            Per image, ``"boxes"`` ``(k, 4)`` in absolute ``(x1, y1, x2, y2)``
            pixels and ``"labels"`` ``(k,)`` in ``1 .. num_classes - 1``.
        **fit_params
            Only ``force_all_finite``, which modAL 0.4.2.x forwards from
            ``ActiveLearner(..., force_all_finite=False)``; it is ignored.

        Returns
        -------
        self

        Raises
        ------
        ValueError, TypeError
            For invalid parameters, images or targets (naming the argument
            and the image).
        FloatingPointError
            If the training loss becomes NaN or infinite (lower ``lr``).
        """
        unknown = set(fit_params) - {"force_all_finite"}
        if unknown:
            raise TypeError(f"fit() got unexpected keyword arguments {sorted(unknown)}.")
        self._validate_params()
        images = check_images(X, "X")
        device = torch.device(self.device)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the user's global RNG stays as it was
            torch.manual_seed(seed)
            module, num_classes = self._build()
            targets = check_targets(y, images, "y", num_classes)
            module.to(device)
            self.history_ = self._train(module, images, targets, device, seed)
        module.eval()
        self.module_ = module
        self.num_classes_ = num_classes
        self.n_images_seen_ = len(images)
        return self

    def _train(
        self,
        module: nn.Module,
        images: np.ndarray,
        targets: np.ndarray,
        device: torch.device,
        seed: int,
    ) -> list[dict[str, float]]:
        """Train ``module`` in place; the mean of each loss term per epoch."""
        rng = np.random.RandomState(seed)
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = self._make_optimizer(params)
        n = len(images)
        steps_per_epoch = math.ceil(n / self.batch_size)
        total = steps_per_epoch * self.epochs
        history = []
        module.train()
        step = 0
        for epoch in tqdm(range(self.epochs), desc="training", disable=not self.progress):
            sums: dict[str, float] = {}
            order = rng.permutation(n)
            for idx in batches(n, self.batch_size):
                chosen = order[idx]
                batch_images = [to_tensor(images[i], device) for i in chosen]
                batch_targets = [target_to(targets[i], device) for i in chosen]
                losses = module(batch_images, batch_targets)
                loss = sum(losses.values())
                if not bool(torch.isfinite(loss)):
                    raise FloatingPointError(
                        f"the training loss became {float(loss)} at epoch {epoch + 1}; "
                        f"lower lr (now {self.lr}) or raise warmup_steps."
                    )
                for group in optimizer.param_groups:
                    group["lr"] = self.lr * self._lr_factor(step, total)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
                optimizer.step()
                step += 1
                for key, value in {**losses, "loss": loss}.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(chosen)
            history.append({k: v / n for k, v in sums.items()})
        return history

    # -- prediction ---------------------------------------------------------------
    def _check_fitted(self) -> None:
        """Raise ``NotFittedError`` before ``fit``."""
        if not hasattr(self, "module_"):
            raise NotFittedError(
                "This TorchvisionDetector is not fitted yet: call fit(X, y) first."
            )

    def predict(self, X: Any) -> list[dict[str, torch.Tensor]]:
        """Detections for every image, in its own pixel coordinates.

        Parameters
        ----------
        X : sequence of images
            Float ``(3, H, W)`` images in [0, 1].

        Returns
        -------
        list of dict
            Per image, on the CPU: ``"boxes"`` ``(k, 4)`` float32 ``(x1, y1,
            x2, y2)``, ``"labels"`` ``(k,)`` int64 and ``"scores"`` ``(k,)``
            float32, by decreasing score (the model's ``score_thresh`` and
            ``detections_per_img`` apply). Images are run one at a time, so
            an image's detections do not depend on the others.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If ``fit`` has not been called.
        ValueError, TypeError
            For invalid images.
        """
        self._check_fitted()
        images = check_images(X, "X")
        device = next(self.module_.parameters()).device
        out: list[dict[str, torch.Tensor]] = []
        with evaluation_mode(self.module_), torch.no_grad():
            # One image at a time: torchvision pads a batch to its largest image,
            # which changes the others' detections; these match the ones the
            # detection adapter takes pseudo-boxes from, whatever the batch.
            for image in images:
                (detections,) = self.module_([to_tensor(image, device)])
                out.append({k: v.cpu() for k, v in detections.items()})
        return out

    def score(self, X: Any, y: Any) -> float:
        """COCO mAP@[.5:.95] of the detections on ``X`` against ``y`` (torchmetrics).

        Parameters
        ----------
        X : sequence of images
            Float ``(3, H, W)`` images in [0, 1].
        y : sequence of dict
            Ground-truth boxes and labels, as for :meth:`fit`.

        Returns
        -------
        float
            torchmetrics' ``MeanAveragePrecision(iou_type="bbox")`` "map"
            (COCO's 101-point interpolation, pycocotools backend).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If ``fit`` has not been called.
        ValueError, TypeError
            For invalid images or targets, or targets without any box (mAP
            is undefined then).
        """
        return float(self.evaluate(X, y)["map"])

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """Every COCO measure torchmetrics reports (map, map_50, map_75, mar_100, ...).

        Parameters
        ----------
        X : sequence of images
            Float ``(3, H, W)`` images in [0, 1].
        y : sequence of dict
            Ground-truth boxes and labels, as for :meth:`fit`.

        Returns
        -------
        dict of str to float
            torchmetrics' ``MeanAveragePrecision`` results (per-class entries
            left out).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If ``fit`` has not been called.
        ValueError, TypeError
            For invalid images or targets, or targets without any box (every
            measure is undefined then: torchmetrics would report -1).
        """
        self._check_fitted()
        images = check_images(X, "X")
        targets = check_targets(y, images, "y", self.num_classes_)
        if not any(len(t["boxes"]) for t in targets):
            # torchmetrics reports -1 then, a number that would be averaged unnoticed.
            raise ValueError(
                f"y holds no ground-truth box (all {len(targets)} targets are background): "
                "COCO mAP is undefined without any ground-truth box; evaluate on images "
                "that have annotated objects (e.g. hold out a test set that has some)."
            )
        from torchmetrics.detection import MeanAveragePrecision

        predictions = self.predict(images)
        metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
        metric.update(predictions, [target_to(t, torch.device("cpu")) for t in targets])
        results = metric.compute()
        return {k: float(v) for k, v in results.items() if v.numel() == 1 and k != "classes"}
