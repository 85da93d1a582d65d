"""Defect detection by transfer learning: FCOS (torchvision, BSD-3) on the offline backbones.

The backbone's stride-8 and stride-16 features feed a feature pyramid (P3, P4) with two
extra levels made by stride-2 convolutions (strides 32 and 64), so the backbone
contract stays the one every model uses. torchvision's FCOS head and loss (focal
loss, GIoU, centre-ness, centre sampling) train it; no AGPL code is involved.

The exported graph stops before thresholds and NMS: it gives, per location, the
decoded box in input pixels and the per-class score sqrt(sigmoid(class) ·
sigmoid(centre-ness)) as torchvision's FCOS does. :func:`lineguard.detections.select_detections`
(numpy) turns those into detections on both sides, so training and the line agree.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lineguard.augment.transforms import augment_sample, build_augmentation
from lineguard.backbones.registry import FeatureExtractor
from lineguard.detections import DetectionSettings, select_detections
from lineguard.results import Detections
from lineguard.supervised.base import SupervisedModel, stack_prepared
from lineguard.train.config import DetectConfig

LEVEL_STRIDES = (8, 16, 32, 64)


class PyramidFeatures(nn.Module):
    """Backbone (stride 8, 16) → FPN P3, P4 → P5, P6 by stride-2 convs; ``out_channels`` as torchvision
    detectors expect."""

    def __init__(self, backbone: FeatureExtractor, width: int) -> None:
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7

        super().__init__()
        self.body = backbone
        self.fpn = FeaturePyramidNetwork(
            list(backbone.channels), width, extra_blocks=LastLevelP6P7(width, width)
        )
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        f8, f16 = self.body(x)
        return self.fpn(OrderedDict([("p3", f8), ("p4", f16)]))


def location_anchors(grid_sizes: Sequence[tuple[int, int]], strides: Sequence[int]) -> torch.Tensor:
    """FCOS 'anchors': one square of the level's stride at each location, centred on (x·s, y·s),
    row-major per level as the head flattens its outputs (torchvision's convention)."""
    out = []
    for (gh, gw), s in zip(grid_sizes, strides, strict=True):
        ys, xs = torch.meshgrid(torch.arange(gh) * s, torch.arange(gw) * s, indexing="ij")
        cx, cy = xs.reshape(-1).float(), ys.reshape(-1).float()
        out.append(torch.stack([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], dim=1))
    return torch.cat(out)


def _smooth_regression_head(width: int, head_convs: int) -> nn.Module:
    """torchvision's FCOS regression head with softplus instead of ReLU on the box distances.

    With ReLU, a distance output pushed below zero everywhere gets no gradient again: trained with
    AdamW on NEU-DET, the bottom-edge channel died within the first epochs and every box ended at
    its location's row (validation mAP@0.5 stuck near 0.13). Softplus keeps every distance trainable."""
    from torchvision.models.detection.fcos import FCOSRegressionHead

    class SmoothRegressionHead(FCOSRegressionHead):
        def forward(self, x: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            boxes, centreness = [], []
            for features in x:
                hidden = self.conv(features)
                n, _, h, w = features.shape
                # (N, 4, H, W) → (N, HW, 4) and (N, 1, H, W) → (N, HW, 1): one location per row.
                boxes.append(F.softplus(self.bbox_reg(hidden)).permute(0, 2, 3, 1).reshape(n, h * w, 4))
                centreness.append(self.bbox_ctrness(hidden).permute(0, 2, 3, 1).reshape(n, h * w, 1))
            return torch.cat(boxes, dim=1), torch.cat(centreness, dim=1)

    return SmoothRegressionHead(width, 1, head_convs)


class DetectorNet(nn.Module):
    """FCOS on :class:`PyramidFeatures` at a fixed input size. ``forward`` (what is exported):
    normalised NCHW → boxes (N, A, 4) xyxy in input pixels and scores (N, A, classes)."""

    anchors: torch.Tensor

    def __init__(
        self,
        backbone: FeatureExtractor,
        num_classes: int,
        image_size: tuple[int, int],
        width: int = 128,
        head_convs: int = 3,
    ) -> None:
        from torchvision.models.detection import FCOS
        from torchvision.models.detection.fcos import FCOSHead

        super().__init__()
        features = PyramidFeatures(backbone, width)
        head = FCOSHead(width, 1, num_classes, num_convs=head_convs)
        head.regression_head = _smooth_regression_head(width, head_convs)
        height, width_px = image_size
        # FCOS holds the head, the box coder and the target assignment + loss we train with; its
        # own resize/normalise transform is never used (inputs come normalised at the fixed size).
        self.fcos = FCOS(features, num_classes, min_size=min(image_size), max_size=max(image_size), head=head)
        with torch.no_grad():
            was_training = features.training
            features.eval()
            grids = [tuple(f.shape[-2:]) for f in features(torch.zeros(1, 3, height, width_px)).values()]
            features.train(was_training)
        self.num_anchors_per_level = [h * w for h, w in grids]
        self.register_buffer(
            "anchors", location_anchors(grids, LEVEL_STRIDES[: len(grids)]), persistent=False
        )

    def head_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fcos.head(list(self.fcos.backbone(x).values()))

    def loss(self, x: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        out = self.head_outputs(x)
        anchors = [self.anchors] * x.shape[0]
        losses = self.fcos.compute_loss(targets, out, anchors, self.num_anchors_per_level)
        return sum(losses.values())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head_outputs(x)
        anchors = self.anchors.unsqueeze(0).expand(x.shape[0], -1, -1)
        boxes = self.fcos.box_coder.decode(out["bbox_regression"], anchors)
        scores = torch.sqrt(torch.sigmoid(out["cls_logits"]) * torch.sigmoid(out["bbox_ctrness"]))
        return boxes, scores


class DefectDetector(SupervisedModel):
    """Named defects located by boxes. Part score: the most confident detection; the part is NG when
    it reaches the NG probability, REVIEW from the REVIEW probability (calibrated on good validation
    images when there are any)."""

    task = "detect"
    kind = "detector"

    config_type = DetectConfig
    config: DetectConfig
    module: DetectorNet | None

    def __init__(
        self,
        config: DetectConfig | None = None,
        classes: Sequence[str] = (),
        *,
        image_size: tuple[int, int] | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__(config or DetectConfig(), image_size=image_size, device=device)
        if not classes:
            raise ValueError("a detector needs its class names")
        self.classes = tuple(classes)

    @property
    def detection(self) -> DetectionSettings:
        return self.config.detection

    @classmethod
    def _from_document(cls, config, classes, input_size, device):
        return cls(config, classes, image_size=input_size, device=device)

    def _build(self, pretrained: bool) -> DetectorNet:
        return DetectorNet(
            self._trainable_backbone(pretrained),
            len(self.classes),
            self.image_size,
            self.config.width,
            self.config.head_convs,
        )

    def prepare_boxes(self, boxes: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
        """Boxes in image pixels → network-input pixels."""
        sy, sx = self.image_size[0] / image_shape[0], self.image_size[1] / image_shape[1]
        return (
            np.asarray(boxes, np.float32).reshape(-1, 4) * np.asarray([sx, sy, sx, sy], np.float32)
        ).astype(np.float32)

    def fit(
        self,
        train_images: Sequence[np.ndarray],
        train_boxes: Sequence[np.ndarray],
        train_labels: Sequence[np.ndarray],
        val_images: Sequence[np.ndarray],
        val_boxes: Sequence[np.ndarray],
        val_labels: Sequence[np.ndarray],
        *,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = False,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> DefectDetector:
        """Boxes: (K, 4) xyxy in each image's pixels (K may be 0: a good part); labels: (K,) class
        indices into ``classes``. Early stopping on the validation split's mAP@0.5 (then mAP@0.5:0.95)."""
        from lineguard.metrics.detection import detection_map

        torch.manual_seed(self.config.seed)
        train_x, val_x = stack_prepared(self, train_images), stack_prepared(self, val_images)
        train_b = [self.prepare_boxes(b, im.shape) for b, im in zip(train_boxes, train_images, strict=True)]
        val_b = [self.prepare_boxes(b, im.shape) for b, im in zip(val_boxes, val_images, strict=True)]
        train_l = [np.asarray(v, np.int64).reshape(-1) for v in train_labels]
        val_l = [np.asarray(v, np.int64).reshape(-1) for v in val_labels]
        if not any(len(b) for b in train_b):
            raise ValueError("detection needs training images with labelled boxes")
        self.module = net = self._build(pretrained=True).to(self.device)
        augment = build_augmentation(self.config.augment)

        def batch_loss(idx: np.ndarray) -> torch.Tensor:
            images, targets = [], []
            for j in idx:
                image, boxes, labels, _ = augment_sample(
                    augment, train_x[j], boxes=train_b[j], labels=train_l[j]
                )
                images.append(image)
                targets.append(
                    {
                        "boxes": torch.from_numpy(np.asarray(boxes).reshape(-1, 4)).to(self.device),
                        "labels": torch.from_numpy(np.asarray(labels)).to(self.device),
                    }
                )
            return net.loss(self._normalise(np.stack(images)), targets)

        def validate() -> tuple[dict[str, float], list[float]]:
            found = self._detect_prepared(val_x)
            result = detection_map(found, val_b, val_l, len(self.classes))
            record = {"val_map50": result["map50"], "val_map": result["map"]}
            return record, [result["map50"], result["map"]]

        pool = np.arange(len(train_x))
        state = self._train(pool, batch_loss, validate, checkpoint_dir, resume, progress, on_epoch)
        val_scores = np.asarray([d.top_score for d in self._detect_prepared(val_x)])
        self._calibrate(val_scores, np.asarray([len(b) > 0 for b in val_b]), val_x)
        self.metadata.update(
            n_train=len(train_x),
            n_train_boxes=int(sum(len(b) for b in train_b)),
            n_val=len(val_x),
            n_val_boxes=int(sum(len(b) for b in val_b)),
            best_epoch=state["best_epoch"],
            epochs_run=state["epoch"],
            history=state["history"],
            fit_seconds=state["seconds"],
        )
        return self

    @torch.inference_mode()
    def raw_outputs(self, prepared: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, W, 3) 0..255 at the input size → boxes (N, A, 4), scores (N, A, C)."""
        assert self.module is not None
        self.module.eval()
        boxes, scores = [], []
        for i in range(0, len(prepared), batch_size):
            b, s = self.module(self._normalise(prepared[i : i + batch_size]))
            boxes.append(b.cpu().numpy())
            scores.append(s.cpu().numpy())
        return np.concatenate(boxes), np.concatenate(scores)

    def _detect_prepared(self, prepared: np.ndarray) -> list[Detections]:
        boxes, scores = self.raw_outputs(prepared)
        return [
            select_detections(b, s, self.detection, self.image_size)
            for b, s in zip(boxes, scores, strict=True)
        ]

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 16) -> list[Detections]:
        """Detections per image, boxes in that image's pixels."""
        if self.module is None:
            raise RuntimeError("the detector is not fitted")
        if not len(images):
            return []
        # Inference takes the runtime's exact input (resized, not rounded): bundle parity.
        inputs = np.stack([self.preprocessing.resized_rgb(im) for im in images])
        boxes, scores = self.raw_outputs(inputs, batch_size)
        return [
            select_detections(b, s, self.detection, self.image_size, im.shape[:2])
            for b, s, im in zip(boxes, scores, images, strict=True)
        ]
