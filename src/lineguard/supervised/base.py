"""What every supervised model shares: configuration, input preparation, the training loop (AdamW,
cosine schedule, early stopping, per-epoch checkpoints, seeded epochs) and persistence.

A subclass builds its network (``_build``), says how a batch's loss and the validation score are
computed, and adds its own fields to the saved document.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from lineguard.backbones import get_backbone_spec
from lineguard.backbones.registry import FeatureExtractor
from lineguard.decision import DecisionThresholds
from lineguard.errors import ModelFileError
from lineguard.model_files import (
    CONFIG_FILE,
    SUPERVISED_FORMAT,
    ModelDocument,
    load_state,
    peek_document,
    read_document,
    restore_module,
    save_model,
)
from lineguard.preprocess import Preprocessing, to_uint8_scale
from lineguard.preprocess.transforms import as_rgb
from lineguard.supervised.checkpoint import load_checkpoint, save_checkpoint, state_to_cpu
from lineguard.train.config import SupervisedConfig, config_error


def supervised_task(path: str | Path) -> str | None:
    """ "classify" / "segment" / "detect" for a supervised model folder, None for anything else."""
    doc = peek_document(path)
    return doc.get("task") if doc and doc.get("format") == SUPERVISED_FORMAT else None


def is_supervised_model(path: str | Path) -> bool:
    return supervised_task(path) is not None


class SupervisedModel:
    task: ClassVar[str]
    kind: ClassVar[str]
    config_type: ClassVar[type[SupervisedConfig]]
    classes: tuple[str, ...]

    def __init__(
        self, config: SupervisedConfig, *, image_size: tuple[int, int] | None = None, device: str = "cpu"
    ) -> None:
        """``config``: the settings as the user gave them (kept as they are, saved in model.json);
        ``image_size``: the network input when the config leaves it to the data (None there)."""
        size = image_size or config.image_size
        if size is None:
            raise ValueError(
                f"{self.kind}: the config leaves the input size to the data; pass image_size "
                "(lineguard.train.train chooses it from the training images)"
            )
        self.config = config
        self.image_size = (int(size[0]), int(size[1]))
        spec = get_backbone_spec(config.backbone)
        # The thresholds in force: the config's fixed probabilities until fit calibrates them on
        # the validation split.
        self.thresholds = DecisionThresholds(config.review_probability, config.ng_probability)
        self.device = torch.device(device)
        self.preprocessing = Preprocessing(*self.image_size, mean=spec.mean, std=spec.std)
        self.module: nn.Module | None = None
        self.metadata: dict[str, Any] = {}

    def get_params(self) -> dict[str, Any]:
        """The config with the input size in force and the classes (a bundle's model section)."""
        params = self.config.model_dump(mode="json")
        return {**params, "image_size": list(self.image_size), "classes": list(self.classes)}

    @property
    def backbone(self) -> str:
        return self.config.backbone

    @property
    def seed(self) -> int:
        return self.config.seed

    def _build(self, pretrained: bool) -> nn.Module:
        raise NotImplementedError

    def _trainable_backbone(self, pretrained: bool) -> FeatureExtractor:
        from lineguard.backbones import create_backbone

        backbone = create_backbone(self.config.backbone, pretrained=pretrained)
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
        c = self.config
        optimizer = torch.optim.AdamW(self.module.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, c.epochs) / c.epochs))
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
        for epoch in range(state["epoch"], c.epochs):
            if state["bad_epochs"] > c.patience:
                break
            # Each epoch's shuffling, augmentation and dropout depend on the seed and the epoch only,
            # so a resumed run repeats exactly what an uninterrupted one would have done.
            rng = np.random.default_rng([self.seed, epoch])
            torch.manual_seed(self.seed * 100_003 + epoch)
            order = rng.permutation(pool)
            self.module.train()
            losses = []
            bar = tqdm(
                range(0, len(order), c.batch_size),
                desc=f"epoch {epoch + 1}/{c.epochs}",
                disable=not progress,
                leave=False,
            )
            for i in bar:
                idx = order[i : i + c.batch_size]
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

    def _calibrate(self, scores: np.ndarray, defective: np.ndarray, prepared: np.ndarray) -> None:
        """Thresholds from the validation split, as for the anomaly models: NG where the held-out good
        parts' false-reject target sits, the REVIEW band down to the score that catches 99 % of the
        held-out defects. Without good validation images the fixed probabilities stand.
        ``prepared``: the validation images at the network input (the drift reference's)."""
        from lineguard.decision import calibrate

        self._drift_reference(prepared, scores, ~defective)
        if (~defective).sum() == 0:
            return
        calibration = calibrate(
            scores[~defective], defect_scores=scores[defective] if defective.any() else None
        )
        self.thresholds = calibration.thresholds
        self.metadata["threshold_calibration"] = calibration.to_dict()

    def _drift_reference(self, prepared: np.ndarray, scores: np.ndarray, good: np.ndarray) -> None:
        """What the station compares its parts with: the good validation images' statistics at the
        network input, and their scores (the bundle's drift section); none under two good images."""
        from lineguard.spc.drift import image_statistics, reference_of

        good_images = prepared[good]
        self.metadata["drift_reference"] = (
            reference_of([image_statistics(im) for im in good_images], scores[good])
            if len(good_images) >= 2
            else None
        )

    # -- persistence (lineguard.model_files) ----------------------------------------------------

    def _document_extra(self) -> dict[str, Any]:
        """Learned fields of the saved document beyond the common ones (e.g. the temperature)."""
        return {}

    def _restore(self, doc: ModelDocument) -> None:
        """Read back what ``_document_extra`` saved."""

    def save(self, path: str | Path) -> Path:
        if self.module is None:
            raise RuntimeError(f"cannot save a {self.kind} that is not fitted")
        return save_model(
            path,
            self.module,
            {
                "format": SUPERVISED_FORMAT,
                "task": self.task,
                "kind": self.kind,
                "config": self.config.model_dump(mode="json"),
                "input_size": self.image_size,
                "classes": self.classes,
                "preprocessing": self.preprocessing.to_dict(),
                "thresholds": self.thresholds.to_dict(),  # learned by fit (or the fixed ones)
                **self._document_extra(),
                "metadata": self.metadata,
            },
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Self:
        path = Path(path)
        doc = read_document(path, SUPERVISED_FORMAT, "supervised model")
        if doc.task != cls.task:
            raise ModelFileError(f"{path}: a {doc.task} model, not a {cls.kind}")
        raw = dict(doc.config)
        classes = doc.classes or tuple(raw.pop("classes", ()))  # older models kept them in config
        try:
            config = cls.config_type.model_validate(raw)
        except ValidationError as exc:
            raise ModelFileError(f"{path / CONFIG_FILE}: {config_error(exc, 'config.')}") from None
        model = cls._from_document(config, classes, doc.input_size, device)
        state = load_state(path, doc)
        model.module = restore_module(path, model._build(pretrained=False), state).to(model.device).eval()
        model.metadata = doc.metadata.model_dump(exclude_unset=True)
        if doc.thresholds is not None:  # older models saved the calibrated thresholds as the config's
            model.thresholds = DecisionThresholds.from_dict(doc.thresholds)
        model._restore(doc)
        return model

    @classmethod
    def _from_document(
        cls, config: Any, classes: tuple[str, ...], input_size: tuple[int, int] | None, device: str
    ) -> Self:
        return cls(config, image_size=input_size, device=device)


def stack_prepared(model: SupervisedModel, images: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([model.prepare(im) for im in images])
