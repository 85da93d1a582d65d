"""Defect segmentation by transfer learning: the offline backbone with a small FPN-style decoder.

The network maps an image to a defect-probability map (stride 8, upsampled to the
input size) and a part score (the highest probability after a 3x3 average, so a
single noisy pixel does not reject a part). Trained with BCE + soft Dice on pixel
masks; defective images are oversampled so a few labelled defects still weigh.
Early stopping on the validation split's image-level average precision (ties:
lower loss). Training, checkpoints and persistence: :mod:`lineguard.supervised.base`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lineguard.augment.transforms import augment_sample, build_augmentation
from lineguard.backbones.registry import FeatureExtractor
from lineguard.metrics.anomaly import resize_mask
from lineguard.results import AnomalyPrediction
from lineguard.supervised.base import SupervisedModel, stack_prepared
from lineguard.train.config import SegmentConfig


class SegmenterNet(nn.Module):
    """Backbone → stride-16 features upsampled onto stride-8 ones → two 3x3 convs → defect logits.

    Returns (part score, probability map at the input size)."""

    def __init__(self, backbone: FeatureExtractor, width: int = 96) -> None:
        super().__init__()
        self.backbone = backbone
        c8, c16 = backbone.channels
        self.lateral8 = nn.Conv2d(c8, width, 1)
        self.lateral16 = nn.Conv2d(c16, width, 1)
        self.decode = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 1, 1),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H/8, W/8) defect logits."""
        f8, f16 = self.backbone(x)
        up = F.interpolate(self.lateral16(f16), size=f8.shape[-2:], mode="bilinear", align_corners=False)
        return self.decode(self.lateral8(f8) + up)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probability = torch.sigmoid(self.logits(x))
        score = F.avg_pool2d(probability, 3, stride=1, padding=1, count_include_pad=False).amax(dim=(1, 2, 3))
        full = F.interpolate(probability, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return score, full[:, 0]


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    return (1 - (2 * inter + eps) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + eps)).mean()


class DefectSegmenter(SupervisedModel):
    task = "segment"
    kind = "segmenter"
    classes = ("good", "defect")

    config_type = SegmentConfig
    config: SegmentConfig
    module: SegmenterNet | None

    def __init__(
        self,
        config: SegmentConfig | None = None,
        *,
        image_size: tuple[int, int] | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__(config or SegmentConfig(), image_size=image_size, device=device)

    def _synthesize(self, images: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``synthetic`` extra defective training images made from the good ones: CutPaste, scar,
        Perlin patches, and copy-paste of the real defects (when there are any)."""
        from lineguard.augment import copy_paste, synthesize

        defective = masks.reshape(len(masks), -1).any(axis=1)
        good = np.flatnonzero(~defective)
        real = np.flatnonzero(defective)
        if self.config.synthetic <= 0 or good.size == 0:
            return images[:0], masks[:0]
        kinds = ["cutpaste", "scar", "perlin"] + (["copy_paste"] if real.size else [])
        rng = np.random.default_rng([self.config.seed, 7])
        out_images, out_masks = [], []
        for i in range(self.config.synthetic):
            base = images[rng.choice(good)]
            kind = kinds[i % len(kinds)]
            if kind == "copy_paste":
                donor = rng.choice(real)
                image, mask = copy_paste(base, images[donor], masks[donor] > 0, rng)
            else:
                image, mask = synthesize(base, kind, rng)
            out_images.append(image)
            out_masks.append(mask.astype(np.uint8))
        return np.stack(out_images), np.stack(out_masks)

    def _build(self, pretrained: bool) -> SegmenterNet:
        return SegmenterNet(self._trainable_backbone(pretrained))

    def prepare_mask(self, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            return np.zeros(self.image_size, np.uint8)
        return resize_mask(mask, self.image_size).astype(np.uint8)

    def _loss(self, logits: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
        # Targets at the logits' stride-8 grid: a cell is defect by its covered share (soft).
        target = torch.from_numpy(masks.astype(np.float32))[:, None]
        h, w = logits.shape[-2:]
        target8 = F.adaptive_avg_pool2d(target, (int(h), int(w))).to(logits.device)
        return F.binary_cross_entropy_with_logits(logits, target8) + dice_loss(logits, target8)

    def fit(
        self,
        train_images: Sequence[np.ndarray],
        train_masks: Sequence[np.ndarray | None],
        val_images: Sequence[np.ndarray],
        val_masks: Sequence[np.ndarray | None],
        *,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = False,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> DefectSegmenter:
        """Masks: boolean HxW per image (None for a good part)."""
        from sklearn.metrics import average_precision_score

        torch.manual_seed(self.config.seed)
        train_x, val_x = stack_prepared(self, train_images), stack_prepared(self, val_images)
        train_m = np.stack([self.prepare_mask(m) for m in train_masks])
        val_m = np.stack([self.prepare_mask(m) for m in val_masks])
        extra_x, extra_m = self._synthesize(train_x, train_m)
        n_real = len(train_x)
        train_x, train_m = np.concatenate([train_x, extra_x]), np.concatenate([train_m, extra_m])
        train_defect = np.asarray(train_m.reshape(len(train_m), -1).any(axis=1), dtype=bool)
        val_defect = np.asarray(val_m.reshape(len(val_m), -1).any(axis=1), dtype=bool)
        if not train_defect.any():
            raise ValueError("segmentation needs defective training images with masks (or --synthetic N)")
        self.module = net = self._build(pretrained=True).to(self.device)
        augment = build_augmentation(self.config.augment)
        # Defects are few: each epoch shows every image once and each defective one `oversampling` times.
        pool = np.repeat(
            np.arange(len(train_x)), np.where(train_defect, max(1, round(self.config.defect_oversampling)), 1)
        )

        def batch_loss(idx: np.ndarray) -> torch.Tensor:
            pairs = [augment_sample(augment, train_x[j], mask=train_m[j]) for j in idx]
            logits = net.logits(self._normalise(np.stack([p[0] for p in pairs])))
            return self._loss(logits, np.stack([p[3] for p in pairs if p[3] is not None]))

        def validate() -> tuple[dict[str, float], list[float]]:
            scores, _ = self._predict_prepared(val_x)
            ap = float(average_precision_score(val_defect, scores)) if val_defect.any() else float("nan")
            loss = self._val_loss(val_x, val_m)
            return {"val_loss": loss, "val_image_ap": ap}, [0.0 if math.isnan(ap) else ap, -loss]

        state = self._train(pool, batch_loss, validate, checkpoint_dir, resume, progress, on_epoch)
        # A probability of 0.5 says little when thin defects only partly cover a stride-8 cell:
        # the thresholds come from the validation parts' scores instead.
        self._calibrate(self._predict_prepared(val_x)[0], val_defect, val_x)
        self.metadata.update(
            n_train=n_real,
            n_train_defect=int(train_defect[:n_real].sum()),
            n_synthetic=len(extra_x),
            n_val=len(val_x),
            n_val_defect=int(np.count_nonzero(val_defect)),
            best_epoch=state["best_epoch"],
            epochs_run=state["epoch"],
            history=state["history"],
            fit_seconds=state["seconds"],
        )
        return self

    @torch.inference_mode()
    def _val_loss(self, prepared: np.ndarray, masks: np.ndarray, batch_size: int = 16) -> float:
        net = self.module
        assert net is not None
        net.eval()
        losses = [
            float(
                self._loss(
                    net.logits(self._normalise(prepared[i : i + batch_size])),
                    masks[i : i + batch_size],
                )
            )
            for i in range(0, len(prepared), batch_size)
        ]
        return float(np.mean(losses))

    @torch.inference_mode()
    def _predict_prepared(self, prepared: np.ndarray, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        assert self.module is not None
        self.module.eval()
        scores, maps = [], []
        for i in range(0, len(prepared), batch_size):
            s, m = self.module(self._normalise(prepared[i : i + batch_size]))
            scores.append(s.cpu().numpy())
            maps.append(m.cpu().numpy())
        return np.concatenate(scores), np.concatenate(maps)

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 16) -> AnomalyPrediction:
        """Part scores (highest defect probability) and probability maps at the input size."""
        if self.module is None:
            raise RuntimeError("the segmenter is not fitted")
        if not len(images):
            return AnomalyPrediction(np.zeros(0, np.float32), np.zeros((0, *self.image_size), np.float32))
        # Inference takes the runtime's exact input (resized, not rounded): bundle parity.
        inputs = np.stack([self.preprocessing.resized_rgb(im) for im in images])
        scores, maps = self._predict_prepared(inputs, batch_size)
        return AnomalyPrediction(scores.astype(np.float32), maps.astype(np.float32))
