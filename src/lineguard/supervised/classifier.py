"""Image classifier by transfer learning: an offline ImageNet backbone fine-tuned end to end.

Contract as for the anomaly models: ``fit(train, val)`` → ``predict(images)`` →
``save``/``load`` (safetensors + JSON, no pickle). The torch module inside maps a
normalised batch to logits and is what gets exported. Confidences are calibrated
by temperature scaling on the validation split; class imbalance is handled by
class-balanced loss weights. Training writes a checkpoint after every epoch and
resumes from it bit for bit (the shuffling and augmentation of each epoch are
seeded from the seed and the epoch number).
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
from lineguard.preprocess import Preprocessing, to_uint8_scale
from lineguard.preprocess.transforms import as_rgb
from lineguard.results import ClassPrediction
from lineguard.supervised.calibration import expected_calibration_error, fit_temperature, softmax
from lineguard.supervised.checkpoint import load_checkpoint, save_checkpoint, state_to_cpu

SUPERVISED_FORMAT = "lineguard-supervised-model"
SUPERVISED_SCHEMA_VERSION = 1
CONFIG_FILE = "model.json"
STATE_FILE = "state.safetensors"
GOOD_CLASS_NAMES = ("good", "ok", "pass", "normal")


class ClassifierNet(nn.Module):
    """Backbone (stride 8 + 16 features) → pooled stride-8 features ⊕ pooled 1x1-conv neck of the
    stride-16 features → linear logits."""

    def __init__(self, backbone: nn.Module, num_classes: int, neck: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = backbone
        c8, c16 = backbone.channels
        self.neck = nn.Sequential(nn.Conv2d(c16, neck, 1, bias=False), nn.BatchNorm2d(neck), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c8 + neck, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8, f16 = self.backbone(x)
        z = torch.cat([f8.mean(dim=(2, 3)), self.neck(f16).mean(dim=(2, 3))], dim=1)
        return self.head(self.dropout(z))


class ImageClassifier:
    task = "classify"
    kind = "classifier"

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        image_size: tuple[int, int] = (224, 224),
        classes: Sequence[str] = (),
        *,
        good_classes: Sequence[str] | None = None,
        seed: int = 0,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 5,
        augment: AugmentConfig | dict[str, Any] | None = None,
        review_probability: float = 0.2,
        ng_probability: float = 0.5,
        device: str = "cpu",
    ) -> None:
        spec = get_backbone_spec(backbone)
        self.backbone = backbone
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.classes = tuple(classes)
        if good_classes is None:
            good_classes = [c for c in self.classes if c.lower() in GOOD_CLASS_NAMES]
        unknown = sorted(set(good_classes) - set(self.classes))
        if unknown:
            raise ValueError(f"good classes {unknown} are not among the classes {list(self.classes)}")
        self.good_classes = tuple(good_classes)
        self.seed, self.epochs, self.batch_size = seed, epochs, batch_size
        self.lr, self.weight_decay, self.patience = lr, weight_decay, patience
        self.augment = augment if isinstance(augment, AugmentConfig) else AugmentConfig.from_dict(augment)
        self.thresholds = DecisionThresholds(review_probability, ng_probability)
        self.device = torch.device(device)
        self.preprocessing = Preprocessing(*self.image_size, mean=spec.mean, std=spec.std)
        self.module: ClassifierNet | None = None
        self.temperature = 1.0
        self.metadata: dict[str, Any] = {}

    # -- configuration ------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "image_size": list(self.image_size),
            "classes": list(self.classes),
            "good_classes": list(self.good_classes),
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "patience": self.patience,
            "augment": self.augment.to_dict(),
            "review_probability": self.thresholds.review,
            "ng_probability": self.thresholds.ng,
        }

    def _build(self, pretrained: bool) -> ClassifierNet:
        from lineguard.backbones import create_backbone

        if len(self.classes) < 2:
            raise ValueError(f"a classifier needs at least two classes, got {list(self.classes)}")
        backbone = create_backbone(self.backbone, pretrained=pretrained)
        for p in backbone.parameters():
            p.requires_grad_(True)  # fine-tuned end to end
        return ClassifierNet(backbone, len(self.classes))

    # -- data ---------------------------------------------------------------------------------

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Any decoded image → HxWx3 uint8 at the network input size (what training caches and
        augments; the runtime rounds the same way)."""
        resized = np.rint(self.preprocessing.resize(to_uint8_scale(image)))
        return np.ascontiguousarray(as_rgb(np.clip(resized, 0, 255).astype(np.uint8), image.shape))

    def _normalise(self, batch_uint8: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(batch_uint8).float().permute(0, 3, 1, 2)
        mean = torch.tensor(self.preprocessing.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocessing.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    # -- training -----------------------------------------------------------------------------

    def fit(
        self,
        train_images: Sequence[np.ndarray],
        train_labels: Sequence[int],
        val_images: Sequence[np.ndarray],
        val_labels: Sequence[int],
        *,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = False,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> ImageClassifier:
        """Fine-tune on (already :meth:`prepare`-d or raw) images; early stopping on validation accuracy
        (ties: lower validation loss); the best epoch's weights are kept, then the temperature is fitted."""
        torch.manual_seed(self.seed)
        train_x = np.stack([self.prepare(im) for im in train_images])
        val_x = np.stack([self.prepare(im) for im in val_images])
        train_y = np.asarray(train_labels, np.int64)
        val_y = np.asarray(val_labels, np.int64)
        if len(val_y) == 0:
            raise ValueError("a validation split is needed for early stopping and calibration")
        counts = np.bincount(train_y, minlength=len(self.classes)).astype(np.float64)
        if (counts == 0).any():
            empty = [c for c, n in zip(self.classes, counts, strict=True) if n == 0]
            raise ValueError(f"no training images for classes {empty}")
        # Class-balanced loss: each class weighs as much as the others, whatever its count.
        weights = torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32, device=self.device)
        self.module = self._build(pretrained=True).to(self.device)
        optimizer = torch.optim.AdamW(self.module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, self.epochs) / self.epochs))
        )
        augment = build_augmentation(self.augment)
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
        from tqdm.auto import tqdm

        for epoch in range(state["epoch"], self.epochs):
            if state["bad_epochs"] > self.patience:
                break
            rng = np.random.default_rng([self.seed, epoch])
            torch.manual_seed(self.seed * 100_003 + epoch)
            order = rng.permutation(len(train_y))
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
                    continue  # BatchNorm needs two samples
                batch = np.stack([augment_sample(augment, train_x[j])[0] for j in idx])
                logits = self.module(self._normalise(batch))
                loss = F.cross_entropy(logits, torch.from_numpy(train_y[idx]).to(self.device), weight=weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{np.mean(losses):.3f}")
            schedule.step()
            val_logits = self._logits(val_x)
            val_loss = float(F.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(val_y)))
            val_acc = float((val_logits.argmax(1) == val_y).mean())
            record = {
                "epoch": epoch + 1,
                "train_loss": float(np.mean(losses)),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": float(optimizer.param_groups[0]["lr"]),
            }
            state["history"].append(record)
            if [val_acc, -val_loss] > state["best_score"]:
                state.update(best_score=[val_acc, -val_loss], best_epoch=epoch + 1, bad_epochs=0)
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
        val_logits = self._logits(val_x)
        self.temperature = fit_temperature(val_logits, val_y)
        self.metadata.update(
            n_train=len(train_y),
            n_val=len(val_y),
            class_counts_train={c: int(n) for c, n in zip(self.classes, counts, strict=True)},
            best_epoch=state["best_epoch"],
            epochs_run=state["epoch"],
            history=state["history"],
            temperature=self.temperature,
            val_ece_before=expected_calibration_error(softmax(val_logits), val_y),
            val_ece_after=expected_calibration_error(softmax(val_logits, self.temperature), val_y),
            fit_seconds=round(time.perf_counter() - start, 2),
        )
        return self

    # -- inference ----------------------------------------------------------------------------

    @torch.inference_mode()
    def _logits(self, prepared: np.ndarray, batch_size: int = 64) -> np.ndarray:
        assert self.module is not None
        self.module.eval()
        out = [
            self.module(self._normalise(prepared[i : i + batch_size])).cpu().numpy()
            for i in range(0, len(prepared), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def defect_probability(self, probabilities: np.ndarray) -> np.ndarray:
        good = [self.classes.index(c) for c in self.good_classes]
        return 1.0 - probabilities[:, good].sum(axis=1) if good else np.ones(len(probabilities))

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 64) -> ClassPrediction:
        if self.module is None:
            raise RuntimeError("the classifier is not fitted")
        prepared = (
            np.stack([self.prepare(im) for im in images]) if len(images) else np.zeros((0, 1, 1, 3), np.uint8)
        )
        probabilities = softmax(self._logits(prepared, batch_size), self.temperature).astype(np.float32)
        return ClassPrediction(probabilities, probabilities.argmax(1), self.defect_probability(probabilities))

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        if self.module is None:
            raise RuntimeError("cannot save a classifier that is not fitted")
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
            "temperature": self.temperature,
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
    def load(cls, path: str | Path, device: str = "cpu") -> ImageClassifier:
        path = Path(path)
        doc = read_versioned_json(
            path / CONFIG_FILE, SUPERVISED_FORMAT, SUPERVISED_SCHEMA_VERSION, "supervised model"
        )
        if doc.get("task") != cls.task:
            raise ModelFileError(f"{path}: a {doc.get('task')} model, not a classifier")
        model = cls(**doc["config"], device=device)
        expected = doc["files"][STATE_FILE]["sha256"]
        if not (path / STATE_FILE).is_file():
            raise ModelFileError(f"{path / STATE_FILE}: file not found")
        if file_sha256(path / STATE_FILE) != expected:
            raise ModelFileError(f"{path / STATE_FILE}: sha256 differs from model.json (damaged or replaced)")
        try:
            module = model._build(pretrained=False)
            module.load_state_dict(load_file(str(path / STATE_FILE)), strict=True)
        except (RuntimeError, SafetensorError) as exc:
            raise ModelFileError(f"{path / STATE_FILE}: does not match the model: {exc}") from None
        model.module = module.to(model.device).eval()
        model.temperature = float(doc["temperature"])
        model.metadata = dict(doc.get("metadata") or {})
        return model


def supervised_task(path: str | Path) -> str | None:
    """ "classify" / "segment" for a supervised model folder, None for anything else."""
    try:
        doc = json.loads((Path(path) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc.get("task") if isinstance(doc, dict) and doc.get("format") == SUPERVISED_FORMAT else None


def is_supervised_model(path: str | Path) -> bool:
    return supervised_task(path) is not None
