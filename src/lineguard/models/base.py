"""The contract every anomaly model follows: fit(good) -> predict -> save/load.

Models take decoded images (numpy, any size, grey or RGB, 8/16 bit) and do the
shared preprocessing themselves, so callers cannot feed a differently
normalised image by accident. The torch module inside (``self.module``) maps a
normalised batch to (scores, maps) and is what gets exported.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn

from lineguard.backbones import get_backbone_spec
from lineguard.decision import Calibration, DecisionThresholds, calibrate
from lineguard.errors import ModelFileError
from lineguard.model_files import (
    ANOMALY_FORMAT,
    CONFIG_FILE,
    STATE_FILE,
    load_state,
    read_document,
    restore_module,
    save_model,
)
from lineguard.models.layers import top_k_pixels
from lineguard.preprocess import Preprocessing, Tiling, merge_tiles
from lineguard.results import AnomalyPrediction
from lineguard.train.config import AnomalyConfig, default


def batched(images: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for image in images:
        batch.append(image)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class CalibrationSet:
    """Held-out images that ``fit`` sets the decision thresholds on: good parts (the false-reject
    target) and, when known, defects (the REVIEW band, the expected escapes, the validation AUROC)."""

    good: Iterable[np.ndarray]
    n_good: int | None = None  # for the progress bar when ``good`` is a generator
    defects: Sequence[np.ndarray] = ()
    defect_source: str = "labelled"  # or "synthetic"
    widen: bool = True  # widen the REVIEW band to catch the defects
    target_frr: float = default(AnomalyConfig, "target_frr")
    review_rate: float = default(AnomalyConfig, "review_rate")
    target_sensitivity: float = default(AnomalyConfig, "target_sensitivity")
    note: str = ""  # a warning the thresholds carry (how they were set)


_MODEL_KINDS: dict[str, type[AnomalyModel]] = {}


class AnomalyModel(ABC):
    task: ClassVar[str] = "anomaly"  # its entry in lineguard.tasks
    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _MODEL_KINDS[cls.kind] = cls

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        image_size: tuple[int, int] = (256, 256),
        *,
        top_fraction: float | None = default(AnomalyConfig, "top_fraction"),
        tiling: Tiling | dict[str, Any] | None = None,
        seed: int = 0,
        batch_size: int = 8,
        device: str = "cpu",
    ) -> None:
        spec = get_backbone_spec(backbone)
        self.backbone = backbone
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.top_fraction = top_fraction
        self.tiling = Tiling.from_dict(tiling) if isinstance(tiling, dict) else tiling
        if self.tiling and (self.tiling.tile_height, self.tiling.tile_width) != self.image_size:
            raise ValueError(
                f"tiles ({self.tiling.tile_width}x{self.tiling.tile_height}) must be the network input "
                f"size ({self.image_size[1]}x{self.image_size[0]})"
            )
        self.seed = seed
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.preprocessing = Preprocessing(*self.image_size, mean=spec.mean, std=spec.std)
        self.module: nn.Module | None = None
        self.calibration: Calibration | None = None
        self.metadata: dict[str, Any] = {}

    # -- the contract ---------------------------------------------------------------------------
    @abstractmethod
    def _model_config(self) -> dict[str, Any]:
        """This model's own constructor arguments (JSON-serialisable)."""

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this model (JSON-serialisable)."""
        return {
            "backbone": self.backbone,
            "image_size": list(self.image_size),
            "top_fraction": self.top_fraction,
            "tiling": self.tiling.to_dict() if self.tiling else None,
            "seed": self.seed,
            "batch_size": self.batch_size,
            **self._model_config(),
        }

    @property
    def map_size(self) -> tuple[int, int]:
        """(H, W) of the anomaly maps predict() returns: the working size when tiling."""
        return (self.tiling.height, self.tiling.width) if self.tiling else self.image_size

    @property
    def part_top_k(self) -> int:
        """Pixels averaged for a part score over the whole (merged) map; 0 = the highest patch."""
        return top_k_pixels(self.top_fraction, self.map_size)

    @property
    def network_top_k(self) -> int:
        """The same share of one network input's pixels: the score the torch module computes."""
        return top_k_pixels(self.top_fraction, self.image_size)

    def network_inputs(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Normalised network inputs: one per image, or each image's tiles in order."""
        if self.tiling is None:
            return self.preprocessing.batch(list(images))
        normalize = self.preprocessing.normalize
        return np.stack([normalize(tile) for image in images for tile in self.tiling.prepare(image)])

    @abstractmethod
    def _build_module(self, pretrained: bool, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
        """A module of the right shape: for fitting, or (state given) for loading one."""

    @abstractmethod
    def _fit_module(self, images: Iterable[np.ndarray], total: int | None, progress: bool) -> None:
        """Learn from good images and set ``self.module``."""

    def fit(
        self,
        images: Iterable[np.ndarray],
        *,
        total: int | None = None,
        progress: bool = False,
        calibration: CalibrationSet | None = None,
    ) -> Self:
        """Learn good parts from ``images``; with ``calibration``, set the decision thresholds on
        its held-out images too (``self.calibration``; else there are none until a later fit)."""
        torch.manual_seed(self.seed)
        start = time.perf_counter()
        if total is None and isinstance(images, Sequence):
            total = len(images)
        self._fit_module(images, total, progress)
        self.metadata["fit_seconds"] = round(time.perf_counter() - start, 3)
        self.calibration = None
        if calibration is not None:
            self._calibrate(calibration, progress)
        return self

    def _calibrate(self, held_out: CalibrationSet, progress: bool) -> None:
        """Thresholds from the held-out good parts (NG at the false-reject target, a REVIEW band
        below it, widened to catch the defects when there are any), and the validation AUROC of
        good against defects that ranks candidate models."""
        from lineguard.spc.drift import input_statistics, reference_of

        statistics: list[dict[str, float]] = []

        def observed(images: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
            for image in images:  # the drift reference, in the same pass as the scores
                statistics.append(input_statistics(self.preprocessing, image))
                yield image

        good = self.predict(observed(held_out.good), total=held_out.n_good, progress=progress).scores
        # What the station compares its parts with (the bundle's drift section).
        self.metadata["drift_reference"] = reference_of(statistics, good) if len(good) >= 2 else None
        defects = list(held_out.defects)
        defect_scores = self.predict(defects, total=len(defects)).scores if defects else None
        calibration = calibrate(
            good,
            target_frr=held_out.target_frr,
            review_rate=held_out.review_rate,
            defect_scores=defect_scores,
            target_sensitivity=held_out.target_sensitivity,
            defect_source=held_out.defect_source,
            widen=held_out.widen,
        )
        if held_out.note:
            calibration = replace(calibration, warnings=(*calibration.warnings, held_out.note))
        self.calibration = calibration
        validation = None
        if defect_scores is not None:
            from sklearn.metrics import roc_auc_score

            labels = np.r_[np.zeros(len(good)), np.ones(len(defect_scores))]
            validation = {
                "image_auroc": float(roc_auc_score(labels, np.r_[good, defect_scores])),
                "n_good": len(good),
                "n_defect": len(defect_scores),
                "defects": held_out.defect_source,
            }
        # Held-out good parts against the labelled (or, without them, synthetic) calibration
        # defects; null without either.
        self.metadata["validation"] = validation

    @property
    def is_fitted(self) -> bool:
        return self.module is not None

    @property
    def thresholds(self) -> DecisionThresholds | None:
        return self.calibration.thresholds if self.calibration else None

    @torch.inference_mode()
    def predict(
        self, images: Iterable[np.ndarray], *, total: int | None = None, progress: bool = False
    ) -> AnomalyPrediction:
        if self.module is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load()")
        if total is None and isinstance(images, Sequence):
            total = len(images)
        scores: list[np.ndarray] = []
        maps: list[np.ndarray] = []
        batches = batched(images, self.batch_size)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc="predict", unit="img", leave=False)
        for batch in batches:
            x = torch.from_numpy(self.network_inputs(batch)).to(self.device)
            s, m = self.module(x)
            s, m = s.float().cpu().numpy(), m.float().cpu().numpy()
            if self.tiling is not None:
                s, m = merge_tiles(self.tiling, s, m, self.part_top_k)
            scores.append(s)
            maps.append(m)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        if not scores:
            h, w = self.map_size
            return AnomalyPrediction(np.zeros(0, np.float32), np.zeros((0, h, w), np.float32))
        return AnomalyPrediction(np.concatenate(scores), np.concatenate(maps))

    def _embed(
        self,
        images: Iterable[np.ndarray],
        total: int | None,
        progress: bool,
        embed: Callable[[torch.Tensor], torch.Tensor],
    ) -> Iterator[torch.Tensor]:
        """Yield the embedding of each batch (used by the fit loops)."""
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc="features", unit="img", leave=False)
        with torch.inference_mode():
            for batch in batched(images, self.batch_size):
                x = torch.from_numpy(self.network_inputs(batch)).to(self.device)
                yield embed(x)
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()

    # -- persistence (lineguard.model_files: JSON + safetensors, never pickle) ------------------
    def save(self, path: str | Path) -> Path:
        if self.module is None:
            raise RuntimeError("cannot save a model that is not fitted")
        return save_model(
            path,
            self.module,
            {
                "format": ANOMALY_FORMAT,
                "kind": self.kind,
                "config": self.get_params(),
                "preprocessing": self.preprocessing.to_dict(),
                "calibration": self.calibration.to_dict() if self.calibration else None,
                "metadata": self.metadata,
            },
        )

    @staticmethod
    def load(path: str | Path, device: str = "cpu") -> AnomalyModel:
        path = Path(path)
        doc = read_document(path, ANOMALY_FORMAT, "anomaly model")
        cls = _MODEL_KINDS.get(doc.kind)
        if cls is None:
            raise ModelFileError(f"{path}: unknown model kind {doc.kind!r}")
        try:
            model = cls(**doc.config, device=device)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path / CONFIG_FILE}: config: {exc}") from None
        state = load_state(path, doc)
        try:
            module = model._build_module(pretrained=False, state=state)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ModelFileError(f"{path / STATE_FILE}: does not match the model: {exc}") from None
        model.module = restore_module(path, module, state).to(model.device).eval()
        if doc.calibration:
            model.calibration = Calibration.from_dict(doc.calibration)
        model.metadata = doc.metadata.model_dump(exclude_unset=True)
        return model
