"""One check of a recipe: undistort, align, crop the ROI, run the bundle, and say what happened."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lineguard.data.image_io import read_image
from lineguard.decision import CheckOutcome
from lineguard.errors import ModelFileError
from lineguard.preprocess import CameraCalibration
from lineguard.preprocess.align import Aligner, AlignmentError
from lineguard.runtime import Inspector, load_bundle
from lineguard.runtime.manifest import manifest_sha256
from lineguard.station.config import CheckConfig


@dataclass
class CheckRun:
    """What a check produced: the outcome, plus what the record may keep."""

    outcome: CheckOutcome
    image: np.ndarray | None = None  # the region the model judged
    anomaly_map: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The image as acquired (encoded bytes or pixels) when the check could not run on it
    # (overload): a fail-safe part still keeps the image that was read.
    unjudged: bytes | np.ndarray | None = None


class CheckRunner:
    def __init__(
        self,
        config: CheckConfig,
        providers: list[str] | str | None = None,
        threads: int | None = 1,
        inspector: Inspector | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.inspector = inspector or load_bundle(config.bundle, providers=providers, threads=threads)
        self.bundle_sha256 = manifest_sha256(self.inspector.path)
        if config.bundle_sha256 is not None and config.bundle_sha256 != self.bundle_sha256:
            raise ModelFileError(
                f"{config.bundle}: check {config.name!r} pins manifest sha256 {config.bundle_sha256}, "
                f"this bundle's is {self.bundle_sha256}: it was changed or replaced since the recipe "
                f"was validated (thresholds edited?); validate the new bundle and update the pin"
            )
        manifest = self.inspector.manifest
        backbone = getattr(manifest.model, "backbone", "?")
        self.model_version = f"{manifest.model.kind}/{backbone}@{manifest.provenance.created}"[:64]
        self.thresholds = {
            "review": float(self.inspector.thresholds.review),
            "ng": float(self.inspector.thresholds.ng),
        }
        self.calibration = (
            CameraCalibration.load(config.camera_calibration) if config.camera_calibration else None
        )
        self.aligner = (
            Aligner(read_image(config.align_to), motion=config.align_motion) if config.align_to else None
        )

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Undistort the whole frame, align it to the reference, then crop the ROI."""
        if self.calibration is not None:
            image = self.calibration.undistort(image)
        if self.aligner is not None:
            image = self.aligner.align(image)
        if self.config.roi is not None:
            x, y, w, h = self.config.roi
            height, width = image.shape[:2]
            if x + w > width or y + h > height:
                raise ValueError(f"ROI {self.config.roi} reaches outside the {width}x{height} image")
            image = image[y : y + h, x : x + w]
        return image

    def run(self, image: np.ndarray) -> CheckRun:
        """Never raises for a bad part: every failure becomes a failed outcome with its reason."""
        start = time.perf_counter()
        try:
            prepared = self.prepare(image)
        except (AlignmentError, ValueError) as exc:
            return CheckRun(CheckOutcome(self.name, None, None, f"preprocessing failed: {exc}"))
        prepared_at = time.perf_counter()
        try:
            result = self.inspector.inspect(prepared)
        except Exception as exc:  # a model error is this part's failure, not the station's
            return CheckRun(CheckOutcome(self.name, None, None, f"model error: {type(exc).__name__}: {exc}"))
        timings = dict(result.timings_ms)
        timings["prepare"] = 1e3 * (prepared_at - start)
        if not np.isfinite(result.score):
            return CheckRun(CheckOutcome(self.name, None, None, "model gave no finite score"), prepared)
        # Classifiers and detectors name what they saw; it goes into the record with the decision.
        outcome = CheckOutcome(self.name, result.decision, float(result.score), result.describe())
        return CheckRun(outcome, prepared, result.anomaly_map, timings)
