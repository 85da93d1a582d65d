"""What every supervised model shares: configuration, input preparation, the training loop (AdamW,
cosine schedule, early stopping, per-epoch checkpoints, seeded epochs) and persistence.

A subclass builds its network (``_build``), says how a batch's loss and the validation score are
computed, and adds its own fields to the saved document.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lineguard import __version__
from lineguard.augment.transforms import AugmentConfig
from lineguard.backbones import get_backbone_spec
from lineguard.checksums import file_sha256, read_versioned_json
from lineguard.decision import DecisionThresholds
from lineguard.errors import ModelFileError
from lineguard.preprocess import Preprocessing, to_uint8_scale
from lineguard.preprocess.transforms import as_rgb
from lineguard.supervised.checkpoint import load_checkpoint, save_checkpoint, state_to_cpu

SUPERVISED_FORMAT = "lineguard-supervised-model"
SUPERVISED_SCHEMA_VERSION = 1
CONFIG_FILE = "model.json"
STATE_FILE = "state.safetensors"


def supervised_task(path: str | Path) -> str | None:
    """ "classify" / "segment" / "detect" for a supervised model folder, None for anything else."""
    try:
        doc = json.loads((Path(path) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc.get("task") if isinstance(doc, dict) and doc.get("format") == SUPERVISED_FORMAT else None


def is_supervised_model(path: str | Path) -> bool:
    return supervised_task(path) is not None


class SupervisedModel:
    task: ClassVar[str]
    kind: ClassVar[str]

    def __init__(
        self,
        backbone: str,
        image_size: tuple[int, int],
        *,
        seed: int,
        epochs: int,
        batch_size: int,
        lr: float,
        weight_decay: float,
        patience: int,
        augment: AugmentConfig | dict[str, Any] | None,
        review_probability: float,
        ng_probability: float,
        device: str,
    ) -> None:
        spec = get_backbone_spec(backbone)
        self.backbone = backbone
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.seed, self.epochs, self.batch_size = seed, epochs, batch_size
        self.lr, self.weight_decay, self.patience = lr, weight_decay, patience
        self.augment = augment if isinstance(augment, AugmentConfig) else AugmentConfig.from_dict(augment)
        # Parameters as passed; ``thresholds`` are the ones in force: these fixed probabilities
        # until fit calibrates them on the validation split.
        self.review_probability, self.ng_probability = review_probability, ng_probability
        self.thresholds = DecisionThresholds(review_probability, ng_probability)
        self.device = torch.device(device)
        self.preprocessing = Preprocessing(*self.image_size, mean=spec.mean, std=spec.std)
        self.module: nn.Module | None = None
        self.metadata: dict[str, Any] = {}

    # -- configuration ------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this model (JSON-serialisable)."""
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
            "review_probability": self.review_probability,
            "ng_probability": self.ng_probability,
        }

    def _build(self, pretrained: bool) -> nn.Module:
        raise NotImplementedError

    def _trainable_backbone(self, pretrained: bool) -> nn.Module:
        from lineguard.backbones import create_backbone

        backbone = create_backbone(self.backbone, pretrained=pretrained)
        for p in backbone.parameters():
            p.requires_grad_(True)  # fine-tuned end to end
        return backbone

    # -- data ---------------------------------------------------------------------------------

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Any decoded image → HxWx3 uint8 at the network input size (what training caches and
        augments)."""
        resized = np.rint(self.preprocessing.resize(to_uint8_scale(image)))
        return np.ascontiguousarray(as_rgb(np.clip(resized, 0, 255).astype(np.uint8), image.shape))

    def _normalise(self, batch: np.ndarray) -> torch.Tensor:
        """NHWC uint8 (training cache) or float32 0..255 (inference) -> normalised NCHW."""
        x = torch.from_numpy(np.ascontiguousarray(batch)).float().permute(0, 3, 1, 2)
        mean = torch.tensor(self.preprocessing.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocessing.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    # -- training -----------------------------------------------------------------------------

    def _train(
        self,
        pool: np.ndarray,
        batch_loss: Callable[[np.ndarray], torch.Tensor],
        validate: Callable[[], tuple[dict[str, float], list[float]]],
        checkpoint_dir: str | Path | None,
        resume: bool,
        progress: bool,
        on_epoch: Callable[[dict[str, Any]], None] | None,
    ) -> dict[str, Any]:
        """The epoch loop. ``pool``: the training indices an epoch shows (repeats oversample);
        ``validate`` returns the epoch's validation record and its score (higher is better,
        compared as a list). Keeps the best epoch's weights in the module; returns the state."""
        from tqdm.auto import tqdm

        assert self.module is not None
        optimizer = torch.optim.AdamW(self.module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, self.epochs) / self.epochs))
        )
        state: dict[str, Any] = {
            "epoch": 0,
            "best_score": None,
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
            # Each epoch's shuffling, augmentation and dropout depend on the seed and the epoch only,
            # so a resumed run repeats exactly what an uninterrupted one would have done.
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
                    continue  # BatchNorm needs two samples
                loss = batch_loss(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{np.mean(losses):.3f}")
            schedule.step()
            values, score = validate()
            record = {
                "epoch": epoch + 1,
                "train_loss": float(np.mean(losses)),
                **values,
                "lr": float(optimizer.param_groups[0]["lr"]),
            }
            state["history"].append(record)
            if state["best_score"] is None or score > state["best_score"]:
                state.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0)
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
        state["seconds"] = round(time.perf_counter() - start, 2)
        return state

    def _calibrate(self, scores: np.ndarray, defective: np.ndarray) -> None:
        """Thresholds from the validation split, as for the anomaly models: NG where the held-out good
        parts' false-reject target sits, the REVIEW band down to the score that catches 99 % of the
        held-out defects. Without good validation images the fixed probabilities stand."""
        from lineguard.decision import calibrate

        if (~defective).sum() == 0:
            return
        calibration = calibrate(
            scores[~defective], defect_scores=scores[defective] if defective.any() else None
        )
        self.thresholds = calibration.thresholds
        self.metadata["threshold_calibration"] = calibration.to_dict()

    # -- persistence --------------------------------------------------------------------------

    def _document_extra(self) -> dict[str, Any]:
        """Fields of the saved document beyond the common ones (e.g. the temperature)."""
        return {}

    def _restore(self, doc: dict[str, Any]) -> None:
        """Read back what ``_document_extra`` saved."""

    def save(self, path: str | Path) -> Path:
        if self.module is None:
            raise RuntimeError(f"cannot save a {self.kind} that is not fitted")
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
            "thresholds": self.thresholds.to_dict(),  # learned by fit (or the fixed ones)
            **self._document_extra(),
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
    def load(cls, path: str | Path, device: str = "cpu") -> Self:
        path = Path(path)
        doc = read_versioned_json(
            path / CONFIG_FILE, SUPERVISED_FORMAT, SUPERVISED_SCHEMA_VERSION, "supervised model"
        )
        if doc.get("task") != cls.task:
            raise ModelFileError(f"{path}: a {doc.get('task')} model, not a {cls.kind}")
        model = cls(**doc["config"], device=device)
        state_file = path / STATE_FILE
        if not state_file.is_file():
            raise ModelFileError(f"{state_file}: file not found")
        if file_sha256(state_file) != doc["files"][STATE_FILE]["sha256"]:
            raise ModelFileError(f"{state_file}: sha256 differs from model.json (damaged or replaced)")
        try:
            module = model._build(pretrained=False)
            module.load_state_dict(load_file(str(state_file)), strict=True)
        except (RuntimeError, SafetensorError) as exc:
            raise ModelFileError(f"{state_file}: does not match the model: {exc}") from None
        model.module = module.to(model.device).eval()
        model.metadata = dict(doc.get("metadata") or {})
        if "thresholds" in doc:  # older models saved the calibrated thresholds as the config's
            model.thresholds = DecisionThresholds.from_dict(doc["thresholds"])
        model._restore(doc)
        return model


def stack_prepared(model: SupervisedModel, images: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([model.prepare(im) for im in images])
