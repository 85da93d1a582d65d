"""Defect segmentation by transfer learning: the offline backbone with a small FPN-style decoder.

The network maps an image to a defect-probability map (stride 8, upsampled to the
input size) and a part score (the highest probability after a 3x3 average, so a
single noisy pixel does not reject a part). Trained with BCE + soft Dice on pixel
masks; defective images are oversampled so a few labelled defects still weigh.
Early stopping on the validation split's image-level average precision (ties:
lower loss). Same contract, persistence and resumable checkpoints as the classifier.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lineguard import __version__
from lineguard.augment.transforms import AugmentConfig, augment_sample, build_augmentation
from lineguard.backbones import get_backbone_spec
from lineguard.checksums import file_sha256, read_versioned_json
from lineguard.decision import DecisionThresholds
from lineguard.errors import ModelFileError
from lineguard.metrics.anomaly import resize_mask
from lineguard.preprocess import Preprocessing, to_uint8_scale
from lineguard.preprocess.transforms import as_rgb
from lineguard.results import AnomalyPrediction
from lineguard.supervised.checkpoint import load_checkpoint, save_checkpoint, state_to_cpu
from lineguard.supervised.classifier import (
    CONFIG_FILE,
    STATE_FILE,
    SUPERVISED_FORMAT,
    SUPERVISED_SCHEMA_VERSION,
)


class SegmenterNet(nn.Module):
    """Backbone → stride-16 features upsampled onto stride-8 ones → two 3x3 convs → defect logits.

    Returns (part score, probability map at the input size)."""

    def __init__(self, backbone: nn.Module, width: int = 96) -> None:
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


class DefectSegmenter:
    task = "segment"
    kind = "segmenter"

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        image_size: tuple[int, int] = (256, 256),
        *,
        seed: int = 0,
        epochs: int = 40,
        batch_size: int = 8,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 8,
        augment: AugmentConfig | dict[str, Any] | None = None,
        defect_oversampling: float = 3.0,
        review_probability: float = 0.3,
        ng_probability: float = 0.5,
        device: str = "cpu",
    ) -> None:
        spec = get_backbone_spec(backbone)
        self.backbone = backbone
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.classes = ("good", "defect")
        self.seed, self.epochs, self.batch_size = seed, epochs, batch_size
        self.lr, self.weight_decay, self.patience = lr, weight_decay, patience
        self.defect_oversampling = defect_oversampling
        if augment is None:
            augment = AugmentConfig(hflip=0.5, vflip=0.5, brightness=0.1, contrast=0.1)
        self.augment = augment if isinstance(augment, AugmentConfig) else AugmentConfig.from_dict(augment)
        self.thresholds = DecisionThresholds(review_probability, ng_probability)
        self.device = torch.device(device)
        self.preprocessing = Preprocessing(*self.image_size, mean=spec.mean, std=spec.std)
        self.module: SegmenterNet | None = None
        self.metadata: dict[str, Any] = {}

    def config(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "image_size": list(self.image_size),
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "patience": self.patience,
            "augment": self.augment.to_dict(),
            "defect_oversampling": self.defect_oversampling,
            "review_probability": self.thresholds.review,
            "ng_probability": self.thresholds.ng,
        }

    def _build(self, pretrained: bool) -> SegmenterNet:
        from lineguard.backbones import create_backbone

        backbone = create_backbone(self.backbone, pretrained=pretrained)
        for p in backbone.parameters():
            p.requires_grad_(True)
        return SegmenterNet(backbone)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        resized = np.rint(self.preprocessing.resize(to_uint8_scale(image)))
        return np.ascontiguousarray(as_rgb(np.clip(resized, 0, 255).astype(np.uint8), image.shape))

    def prepare_mask(self, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            return np.zeros(self.image_size, np.uint8)
        return resize_mask(mask, self.image_size).astype(np.uint8)

    def _normalise(self, batch: np.ndarray) -> torch.Tensor:
        """NHWC uint8 (training cache) or float32 0..255 (inference) -> normalised NCHW."""
        x = torch.from_numpy(np.ascontiguousarray(batch)).float().permute(0, 3, 1, 2)
        mean = torch.tensor(self.preprocessing.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocessing.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

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
        from tqdm.auto import tqdm

        torch.manual_seed(self.seed)
        train_x = np.stack([self.prepare(im) for im in train_images])
        train_m = np.stack([self.prepare_mask(m) for m in train_masks])
        val_x = np.stack([self.prepare(im) for im in val_images])
        val_m = np.stack([self.prepare_mask(m) for m in val_masks])
        train_defect = train_m.reshape(len(train_m), -1).any(axis=1)
        val_defect = val_m.reshape(len(val_m), -1).any(axis=1)
        if not train_defect.any():
            raise ValueError("segmentation needs defective training images with masks")
        self.module = self._build(pretrained=True).to(self.device)
        optimizer = torch.optim.AdamW(self.module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, self.epochs) / self.epochs))
        )
        augment = build_augmentation(self.augment)
        # Defects are few: each epoch shows every image once and each defective one `oversampling` times.
        repeats = np.where(train_defect, max(1, round(self.defect_oversampling)), 1)
        pool = np.repeat(np.arange(len(train_x)), repeats)
        state = {
            "epoch": 0,
            "best_score": [-1.0, -math.inf],
            "best_epoch": -1,
            "bad_epochs": 0,
            "history": [],
        }
        best_weights = state_to_cpu(self.module)
        checkpoint = Path(checkpoint_dir) if checkpoint_dir else None
        if resume and checkpoint is not None and (checkpoint / "last.json").is_file():
            state, best_weights = load_checkpoint(checkpoint, self.module, optimizer, schedule)
        start = time.perf_counter()
        for epoch in range(state["epoch"], self.epochs):
            if state["bad_epochs"] > self.patience:
                break
            rng = np.random.default_rng([self.seed, epoch])
            torch.manual_seed(self.seed * 100_003 + epoch)
            order = rng.permutation(pool)
            self.module.train()
            losses = []
            bar = tqdm(
                range(0, len(order), self.batch_size),
                desc=f"epoch {epoch + 1}/{self.epochs}",
                disable=not progress,
                leave=False,
            )
            for i in bar:
                idx = order[i : i + self.batch_size]
                if len(idx) < 2:
                    continue
                pairs = [augment_sample(augment, train_x[j], mask=train_m[j]) for j in idx]
                x = self._normalise(np.stack([p[0] for p in pairs]))
                target = torch.from_numpy(np.stack([p[3] for p in pairs]).astype(np.float32))[:, None]
                logits = self.module.logits(x)
                # Targets at the logits' stride-8 grid: a cell is defect by its covered share (soft).
                target8 = F.adaptive_avg_pool2d(target, logits.shape[-2:]).to(self.device)
                loss = F.binary_cross_entropy_with_logits(logits, target8) + dice_loss(logits, target8)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{np.mean(losses):.3f}")
            schedule.step()
            scores, _ = self._predict_prepared(val_x)
            ap = float(average_precision_score(val_defect, scores)) if val_defect.any() else float("nan")
            val_loss = self._val_loss(val_x, val_m)
            record = {
                "epoch": epoch + 1,
                "train_loss": float(np.mean(losses)),
                "val_loss": val_loss,
                "val_image_ap": ap,
                "lr": float(optimizer.param_groups[0]["lr"]),
            }
            state["history"].append(record)
            key = [0.0 if math.isnan(ap) else ap, -val_loss]
            if key > state["best_score"]:
                state.update(best_score=key, best_epoch=epoch + 1, bad_epochs=0)
                best_weights = state_to_cpu(self.module)
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            if checkpoint is not None:
                save_checkpoint(checkpoint, self.module, optimizer, schedule, state, best_weights)
            if on_epoch is not None:
                on_epoch(record)
        self.module.load_state_dict(best_weights)
        self.module.eval()
        self.metadata.update(
            n_train=len(train_x),
            n_train_defect=int(train_defect.sum()),
            n_val=len(val_x),
            n_val_defect=int(val_defect.sum()),
            best_epoch=state["best_epoch"],
            epochs_run=state["epoch"],
            history=state["history"],
            fit_seconds=round(time.perf_counter() - start, 2),
        )
        return self

    @torch.inference_mode()
    def _val_loss(self, prepared: np.ndarray, masks: np.ndarray, batch_size: int = 16) -> float:
        assert self.module is not None
        self.module.eval()
        total = []
        for i in range(0, len(prepared), batch_size):
            logits = self.module.logits(self._normalise(prepared[i : i + batch_size]))
            target = torch.from_numpy(masks[i : i + batch_size].astype(np.float32))[:, None]
            target8 = F.adaptive_avg_pool2d(target, logits.shape[-2:])
            total.append(
                float(F.binary_cross_entropy_with_logits(logits, target8) + dice_loss(logits, target8))
            )
        return float(np.mean(total))

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

    def save(self, path: str | Path) -> Path:
        if self.module is None:
            raise RuntimeError("cannot save a segmenter that is not fitted")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(state_to_cpu(self.module), str(path / STATE_FILE))
        doc = {
            "format": SUPERVISED_FORMAT,
            "schema_version": SUPERVISED_SCHEMA_VERSION,
            "task": self.task,
            "kind": self.kind,
            "config": self.config(),
            "preprocessing": self.preprocessing.to_dict(),
            "metadata": self.metadata,
            "files": {STATE_FILE: {"sha256": file_sha256(path / STATE_FILE)}},
            "versions": {
                "lineguard": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (path / CONFIG_FILE).write_text(json.dumps(doc, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> DefectSegmenter:
        path = Path(path)
        doc = read_versioned_json(
            path / CONFIG_FILE, SUPERVISED_FORMAT, SUPERVISED_SCHEMA_VERSION, "supervised model"
        )
        if doc.get("task") != cls.task:
            raise ModelFileError(f"{path}: a {doc.get('task')} model, not a segmenter")
        model = cls(**doc["config"], device=device)
        if not (path / STATE_FILE).is_file():
            raise ModelFileError(f"{path / STATE_FILE}: file not found")
        if file_sha256(path / STATE_FILE) != doc["files"][STATE_FILE]["sha256"]:
            raise ModelFileError(f"{path / STATE_FILE}: sha256 differs from model.json (damaged or replaced)")
        try:
            module = model._build(pretrained=False)
            module.load_state_dict(load_file(str(path / STATE_FILE)), strict=True)
        except (RuntimeError, SafetensorError) as exc:
            raise ModelFileError(f"{path / STATE_FILE}: does not match the model: {exc}") from None
        model.module = module.to(model.device).eval()
        model.metadata = dict(doc.get("metadata") or {})
        return model
