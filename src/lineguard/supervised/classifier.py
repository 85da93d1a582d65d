"""Image classifier by transfer learning: an offline ImageNet backbone fine-tuned end to end.

Contract as for the anomaly models: ``fit(train, val)`` → ``predict(images)`` →
``save``/``load`` (safetensors + JSON, no pickle). The torch module inside maps a
normalised batch to logits and is what gets exported. Confidences are calibrated
by temperature scaling on the validation split; class imbalance is handled by
class-balanced loss weights. Training, checkpoints and persistence: :mod:`lineguard.supervised.base`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lineguard.augment.transforms import augment_sample, build_augmentation
from lineguard.backbones.registry import FeatureExtractor
from lineguard.data.samples import GOOD_CLASS_NAMES
from lineguard.errors import ModelFileError
from lineguard.metrics.calibration import expected_calibration_error, fit_temperature, softmax
from lineguard.model_files import ModelDocument
from lineguard.results import ClassPrediction
from lineguard.supervised.base import SupervisedModel, stack_prepared
from lineguard.train.config import ClassifyConfig


class ClassifierNet(nn.Module):
    """Backbone (stride 8 + 16 features) → pooled stride-8 features ⊕ pooled 1x1-conv neck of the
    stride-16 features → linear logits."""

    def __init__(
        self, backbone: FeatureExtractor, num_classes: int, neck: int = 256, dropout: float = 0.2
    ) -> None:
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


class ImageClassifier(SupervisedModel):
    task = "classify"
    kind = "classifier"

    config_type = ClassifyConfig
    config: ClassifyConfig

    def __init__(
        self,
        config: ClassifyConfig | None = None,
        classes: Sequence[str] = (),
        *,
        image_size: tuple[int, int] | None = None,
        device: str = "cpu",
    ) -> None:
        config = config or ClassifyConfig()
        super().__init__(config, image_size=image_size, device=device)
        self.classes = tuple(classes)
        good_classes = config.good_classes
        if good_classes is None:
            good_classes = tuple(c for c in self.classes if c.lower() in GOOD_CLASS_NAMES)
        unknown = sorted(set(good_classes) - set(self.classes))
        if unknown:
            raise ValueError(f"good classes {unknown} are not among the classes {list(self.classes)}")
        self.good_classes = tuple(good_classes)
        self.temperature = 1.0

    @classmethod
    def _from_document(cls, config, classes, input_size, device):
        return cls(config, classes, image_size=input_size, device=device)

    def _build(self, pretrained: bool) -> ClassifierNet:
        if len(self.classes) < 2:
            raise ValueError(f"a classifier needs at least two classes, got {list(self.classes)}")
        return ClassifierNet(self._trainable_backbone(pretrained), len(self.classes))

    def _document_extra(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def _restore(self, doc: ModelDocument) -> None:
        if doc.temperature is None:
            raise ModelFileError("model.json: temperature: missing (a classifier saves its calibration)")
        self.temperature = float(doc.temperature)

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
        """Fine-tune; early stopping on validation accuracy (ties: lower validation loss); the best
        epoch's weights are kept, then the temperature is fitted on the validation split."""
        torch.manual_seed(self.config.seed)
        train_x, val_x = stack_prepared(self, train_images), stack_prepared(self, val_images)
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
        self.module = net = self._build(pretrained=True).to(self.device)
        augment = build_augmentation(self.config.augment)

        def batch_loss(idx: np.ndarray) -> torch.Tensor:
            batch = np.stack([augment_sample(augment, train_x[j])[0] for j in idx])
            logits = net(self._normalise(batch))
            return F.cross_entropy(logits, torch.from_numpy(train_y[idx]).to(self.device), weight=weights)

        def validate() -> tuple[dict[str, float], list[float]]:
            logits = self._logits(val_x)
            loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(val_y)))
            accuracy = float((logits.argmax(1) == val_y).mean())
            return {"val_loss": loss, "val_accuracy": accuracy}, [accuracy, -loss]

        state = self._train(
            np.arange(len(train_y)), batch_loss, validate, checkpoint_dir, resume, progress, on_epoch
        )
        val_logits = self._logits(val_x)
        self.temperature = fit_temperature(val_logits, val_y)
        good = np.isin(val_y, [self.classes.index(c) for c in self.good_classes])
        scores = self.defect_probability(softmax(val_logits, self.temperature))
        self._drift_reference(val_x, scores, good)
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
            fit_seconds=state["seconds"],
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
        # The runtime rounds the resized image the same way (prepare): bundle parity.
        prepared = stack_prepared(self, images) if len(images) else np.zeros((0, 1, 1, 3), np.uint8)
        probabilities = softmax(self._logits(prepared, batch_size), self.temperature).astype(np.float32)
        return ClassPrediction(probabilities, probabilities.argmax(1), self.defect_probability(probabilities))
