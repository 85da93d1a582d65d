"""A check's preparation — undistortion, alignment or pattern fixture, ROI — read from its
configuration; and the same preparation applied to a labelled dataset, so a model is trained (and
evaluated) on the crop the station will feed it (`lineguard fit/train --check-from`)."""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from lineguard.data.image_io import read_image, read_mask
from lineguard.errors import DataError, LineGuardError
from lineguard.preprocess import CameraCalibration
from lineguard.preprocess.align import Aligner, AlignmentError
from lineguard.preprocess.pattern import PatternFixture
from lineguard.preprocess.prepare import CheckPreparation
from lineguard.station.config import CheckConfig, ConfigError, load_config
from lineguard.tools.config import MeasureToolConfig

# The keys of a check that say how its image is prepared (what a model trained for it records).
PREPARATION_KEYS = ("roi", "camera_calibration", "align_to", "align_motion", "fixture")

Sample = TypeVar("Sample")


def check_preparation(config: CheckConfig) -> CheckPreparation:
    """A check's undistortion, alignment or fixture, and ROI, read and validated (start-up errors
    name the check): what the station does to each frame, and what training on the check's crop
    does to each training image."""
    calibration = CameraCalibration.load(config.camera_calibration) if config.camera_calibration else None
    aligner = fixture = None
    reference: np.ndarray | None = None
    if config.align_to is not None:
        reference = read_image(config.align_to)
        aligner = Aligner(reference, motion=config.align_motion)
    if config.fixture is not None:
        f = config.fixture
        try:
            reference = read_image(f.reference)
            fixture = PatternFixture(reference, f.pattern, f.angle_range, f.min_score)
        except (LineGuardError, ValueError) as exc:
            raise ConfigError(f"check {config.name!r}: fixture: {exc}") from None
    if reference is not None:
        _check_roi_fits(
            config, reference.shape[:2], config.align_to or getattr(config.fixture, "reference", "")
        )
    return CheckPreparation(calibration, aligner, fixture, config.roi)


def _check_roi_fits(config: CheckConfig, shape: tuple[int, ...], reference: object) -> None:
    """With a reference image the frame size is known: a ROI outside it fails at start-up."""
    height, width = shape[:2]
    if config.roi is not None:
        x, y, w, h = config.roi
        if x + w > width or y + h > height:
            raise ConfigError(
                f"check {config.name!r}: roi {config.roi} reaches outside the {width}x{height} "
                f"reference image {reference}"
            )
    elif isinstance(config.tool, MeasureToolConfig):
        x0, y0, x1, y1 = config.tool.extent
        if x0 < 0 or y0 < 0 or x1 > width - 1 or y1 > height - 1:
            raise ConfigError(
                f"check {config.name!r}: tool calipers reach ({x0:g}, {y0:g})..({x1:g}, {y1:g}), "
                f"outside the {width}x{height} reference image {reference}"
            )


def preparation_keys(config: CheckConfig) -> dict[str, Any]:
    """The check's keys that say how its image is prepared, as the model's record keeps them."""
    return config.model_dump(mode="json", include=set(PREPARATION_KEYS))


def find_check(spec: str) -> CheckConfig:
    """``STATION.yaml:recipe/check`` (or ``STATION.yaml:check`` when one recipe holds it)."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise ConfigError(f"{spec!r}: name a check as STATION.yaml:recipe/check")
    config = load_config(path)
    recipe, _, check = name.rpartition("/")
    recipes = {recipe: config.recipes.get(recipe)} if recipe else config.recipes
    if recipe and recipes[recipe] is None:
        raise ConfigError(f"{path}: no recipe {recipe!r} (recipes: {', '.join(config.recipes)})")
    found = [c for r in recipes.values() if r is not None for c in r.checks if c.name == check]
    if not found:
        where = f"recipe {recipe!r}" if recipe else "any recipe"
        raise ConfigError(f"{path}: no check {check!r} in {where}")
    if len(found) > 1:
        raise ConfigError(f"{path}: check {check!r} is in several recipes: name it as recipe/{check}")
    return found[0]


@dataclass(frozen=True)
class PreparedCheck:
    """A station check's preparation, applied to a dataset's images, masks and boxes. ``record``:
    what the trained model keeps (the check it was trained for and its preparation keys, paths
    absolute), from which `evaluate` prepares the test images the same way."""

    preparation: CheckPreparation
    record: dict[str, Any]

    @classmethod
    def from_station(cls, spec: str) -> PreparedCheck:
        config = find_check(spec)
        record = {"check": spec, "name": config.name, "preparation": preparation_keys(config)}
        return cls(check_preparation(config), record)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PreparedCheck:
        """What ``record`` says; a reference or calibration file it names must still be there."""
        try:
            config = CheckConfig.model_validate(
                {"name": record["name"], "source": "-", "bundle": "-", **record["preparation"]}
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the model's check_from record is unreadable: {exc}") from None
        return cls(check_preparation(config), record)

    def samples(self, samples: Sequence[Sample], folder: Path, progress: bool = False) -> tuple[Sample, ...]:
        """Each sample's image (and mask, boxes) prepared and written as PNG into ``folder``; a
        sample whose image cannot be prepared is an error naming it (never silently dropped)."""
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        iterator: Any = samples
        if progress and len(samples) > 20:
            from tqdm.auto import tqdm

            iterator = tqdm(samples, desc=f"prepare ({self.record['name']})", unit="img", leave=False)
        for i, sample in enumerate(iterator):
            out.append(self._sample(sample, folder / f"{i:06d}-{Path(sample.path).stem}"))
        return tuple(out)

    def _sample(self, sample: Any, stem: Path) -> Any:
        image = read_image(sample.path)  # an unreadable file: its own DataError, naming it
        try:
            prepared, placement = self.preparation.place(image)
        except (AlignmentError, ValueError) as exc:
            raise DataError(sample.path, f"check {self.record['name']!r} cannot prepare it: {exc}") from None
        changes: dict[str, Any] = {"path": _write(stem.with_suffix(".png"), prepared)}
        if getattr(sample, "mask_path", None) is not None:
            mask = self.preparation.place_mask(read_mask(sample.mask_path, image.shape[:2]), placement)
            changes["mask_path"] = _write(
                stem.with_name(stem.name + "-mask.png"), mask.astype(np.uint8) * 255
            )
        boxes = getattr(sample, "boxes", None)
        if boxes is not None and len(boxes):
            moved, kept = self.preparation.place_boxes(boxes, placement)
            changes.update(boxes=moved, box_labels=sample.box_labels[kept])
        return dataclasses.replace(sample, **changes)

    def split(self, split: Any, progress: bool = False, only: tuple[str, ...] | None = None) -> Any:
        """Every tuple of samples in a split (train / val / test / calibration defects; ``only``
        these) prepared, into a temporary folder removed when the process ends."""
        folder = prepared_folder()
        changes = {}
        for f in dataclasses.fields(split):
            value = getattr(split, f.name)
            if only is not None and f.name not in only:
                continue
            if isinstance(value, tuple) and value and hasattr(value[0], "path"):
                changes[f.name] = self.samples(value, folder / f.name, progress)
        return dataclasses.replace(split, **changes)


def prepared_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="lineguard-prepared-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _write(path: Path, image: np.ndarray) -> Path:
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr):
        raise DataError(path, "cannot write the prepared image")
    return path


def preparation_mismatch(config: CheckConfig, record: dict[str, Any]) -> list[str]:
    """Where a check prepares its image differently from the check a model was trained for (its
    ``check_from`` record): the crop's geometry, not where the files lie on this machine."""
    trained = record.get("preparation") or {}
    here = preparation_keys(config)
    differences = []
    for key in ("camera_calibration", "align_to", "fixture"):
        if (trained.get(key) is None) != (here.get(key) is None):
            differences.append(f"{key} {'given' if here.get(key) is not None else 'not given'} here")
    if trained.get("roi") != here.get("roi"):
        differences.append(f"roi {here.get('roi')} here, {trained.get('roi')} in training")
    if here.get("align_to") is not None and trained.get("align_motion") != here.get("align_motion"):
        differences.append(
            f"align_motion {here['align_motion']} here, {trained.get('align_motion')} in training"
        )
    if here.get("fixture") is not None and trained.get("fixture") is not None:
        for key in ("pattern", "angle_range"):
            if trained["fixture"].get(key) != here["fixture"].get(key):
                differences.append(
                    f"fixture.{key} {here['fixture'][key]} here, {trained['fixture'].get(key)} in training"
                )
    return differences
