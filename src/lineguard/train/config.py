"""What each task trains with: one typed config per task, whose defaults are the only defaults.

torch-free, so the command line can show these defaults in its help and validate options before
anything heavy is imported. The CLI builds a config from its options, ``lineguard.train.train``
takes it, and the model saves it in ``model.json`` (``config``), so a model says exactly what it
was trained with. Unknown keys are errors: a misspelt setting is never silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lineguard.augment.config import FLIPS, AugmentConfig
from lineguard.detections import DetectionSettings

# (height, width) of the network input, in pixels.
Size = tuple[Annotated[int, Field(ge=16, le=8192)], Annotated[int, Field(ge=16, le=8192)]]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Probability = Annotated[float, Field(gt=0.0, le=1.0)]


class TrainingConfig(BaseModel):
    """Settings every task has: the seed of its split, initialisation and sampling."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    task: ClassVar[str]

    seed: int = 0

    def changed(self) -> dict[str, Any]:
        """The settings that differ from the defaults (what a user would have to say)."""
        return self.model_dump(mode="json", exclude_defaults=True)


class SupervisedConfig(TrainingConfig):
    """Transfer learning of a supervised model (AdamW, cosine schedule, early stopping)."""

    backbone: str = "efficientnet_lite0"
    image_size: Size | None  # None: chosen from the data (segment: short side 256, aspect kept)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=2)  # BatchNorm needs two samples
    lr: float = Field(gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    patience: int = Field(ge=0)  # epochs without improvement before stopping
    augment: AugmentConfig = AugmentConfig()
    # Fixed decision thresholds on the defect probability until fit calibrates them on the
    # validation split's good parts.
    review_probability: Probability
    ng_probability: Probability
    val_fraction: Fraction  # held out for early stopping and calibration
    test_fraction: Fraction  # held out for `lineguard evaluate`

    @model_validator(mode="after")
    def _check(self) -> SupervisedConfig:
        if self.review_probability > self.ng_probability:
            raise ValueError(
                f"review_probability ({self.review_probability}) must not exceed ng_probability "
                f"({self.ng_probability})"
            )
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction ({self.val_fraction} + {self.test_fraction}) leave "
                "nothing to train on"
            )
        return self


class ClassifyConfig(SupervisedConfig):
    task: ClassVar[str] = "classify"

    image_size: Size | None = (224, 224)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0.0)
    patience: int = Field(5, ge=0)
    review_probability: Probability = 0.2
    ng_probability: Probability = 0.5
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.2
    good_classes: tuple[str, ...] | None = None  # None: good/ok/pass/normal


class _DefectMapConfig(SupervisedConfig):
    """What detection and segmentation share: they locate defects, which have no up or left
    (both flips), are few (longer training, smaller batches) and are calibrated on good parts."""

    epochs: int = Field(40, ge=1)
    batch_size: int = Field(8, ge=2)
    patience: int = Field(8, ge=0)
    augment: AugmentConfig = FLIPS
    review_probability: Probability = 0.3
    ng_probability: Probability = 0.5


class DetectConfig(_DefectMapConfig):
    task: ClassVar[str] = "detect"

    image_size: Size | None = (256, 256)
    lr: float = Field(5e-4, gt=0.0)
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.2
    width: int = Field(128, ge=8)  # FPN channels
    head_convs: int = Field(3, ge=1)
    detection: DetectionSettings = DetectionSettings()


class SegmentConfig(_DefectMapConfig):
    task: ClassVar[str] = "segment"

    image_size: Size | None = None
    lr: float = Field(1e-3, gt=0.0)
    val_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.3
    defect_oversampling: float = Field(3.0, ge=1.0)  # defective images shown this much more often
    synthetic: int = Field(0, ge=0)  # extra synthetic defective training images
    defect_fraction: float = Field(1.0, gt=0.0, le=1.0)  # train on this share of the real defects


# Without labelled defects, this many synthetic ones rank the candidates and estimate the escapes.
SYNTHETIC_DEFECTS = 60


class AnomalyConfig(TrainingConfig):
    """``lineguard fit``: good parts only; "auto" choices are settled by validation when it can
    rank them (``lineguard.train.fit.candidate_configs``). Model settings that only one kind takes
    are passed to that kind alone."""

    task: ClassVar[str] = "anomaly"

    model: Literal["auto", "padim", "patchcore"] = "auto"
    backbone: str = "auto"
    image_size: Size | None = None  # None: short side 256 (or 192 when validation prefers it)
    select: bool = True
    top_fraction: float = Field(0.01, ge=0.0, le=1.0)  # 0: the single highest patch score
    tile_size: Size | None = None  # PatchCore in overlapping tiles of this network input size
    tile_overlap: int | None = Field(None, ge=0)  # None: an eighth of a tile
    coreset_ratio: float = Field(0.01, gt=0.0, le=1.0)
    reweight_neighbours: int = Field(0, ge=0)
    good_class: str | None = None
    calibration_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    target_frr: float = Field(0.005, gt=0.0, lt=1.0)
    review_rate: float = Field(0.02, ge=0.0, lt=1.0)
    target_sensitivity: float = Field(0.99, gt=0.0, le=1.0)
    synthetic_defects: int = Field(SYNTHETIC_DEFECTS, ge=0)
    review_on_synthetic: bool = False
    test_fraction: float | None = Field(None, ge=0.0, lt=1.0)  # None: the format's own default
    max_train: int | None = Field(None, ge=1)
    device: str = "cpu"

    @model_validator(mode="after")
    def _check(self) -> AnomalyConfig:
        if self.tile_size is not None and self.model == "padim":
            raise ValueError("tiles need a position-free model: model patchcore")
        if self.reweight_neighbours and self.model == "padim":
            raise ValueError("reweight_neighbours applies to model patchcore")
        if self.reweight_neighbours and self.top_fraction:
            raise ValueError("reweight_neighbours re-weights the highest patch score: set top_fraction to 0")
        return self


CONFIGS: dict[str, type[TrainingConfig]] = {
    c.task: c for c in (AnomalyConfig, ClassifyConfig, DetectConfig, SegmentConfig)
}


def default(config: type[TrainingConfig], name: str) -> Any:
    """A setting's default: for help texts and for the models' own parameters."""
    return config.model_fields[name].default


def config_error(exc: ValidationError, where: str = "") -> str:
    """A validation error as one line per bad setting, named as the user wrote it."""
    lines = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or "config"
        lines.append(f"{where}{name}: {error['msg']}")
    return "; ".join(lines)
