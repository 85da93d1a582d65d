"""One check of a recipe: undistort, align, crop the ROI, run the bundle or the tool, and say what
happened."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace

import numpy as np

from lineguard.decision import CheckOutcome, Decision
from lineguard.errors import ModelFileError
from lineguard.preprocess.align import AlignmentError
from lineguard.results import Measurement
from lineguard.runtime import Inspector, load_bundle
from lineguard.runtime.inspector import BundleRuntime, InspectionResult
from lineguard.runtime.manifest import DriftSection, manifest_sha256
from lineguard.spc.drift import SCORE, input_statistics
from lineguard.station.config import CheckConfig, ConfigError
from lineguard.station.preparation import check_preparation, preparation_mismatch
from lineguard.tools.checks import DefectSizer, Tool, build_tool
from lineguard.tools.config import DefectRules


@dataclass
class CheckRun:
    """What a check produced: the outcome, plus what the record may keep."""

    outcome: CheckOutcome
    image: np.ndarray | None = None  # the region the model or tool judged
    anomaly_map: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The image as acquired (encoded bytes or pixels) when the check could not run on it
    # (overload): a fail-safe part still keeps the image that was read.
    unjudged: bytes | np.ndarray | None = None
    measurements: tuple[Measurement, ...] = ()  # a tool's values
    overlay: np.ndarray | None = None  # a tool's picture of what it found (RGB), kept like a heatmap
    drift: dict[str, float] | None = None  # the part's image statistics and score (drift watched)


class CheckRunner:
    """One check, opened at start-up (a bad bundle or tool configuration fails there, not at the
    first part): the shared preparation (undistort, align to the fixture, crop the ROI), then
    the bundle or the tool judges."""

    def __init__(
        self,
        config: CheckConfig,
        providers: list[str] | str | None = None,
        threads: int | None = 1,
        inspector: Inspector | None = None,
        drift: bool = True,
    ) -> None:
        """``drift``: compute each part's drift statistics when the bundle carries a reference."""
        self.config = config
        self.name = config.name
        self.preparation = check_preparation(config)
        calibration = self.preparation.calibration
        mm_per_px = calibration.mm_per_px if calibration is not None else None  # tools' and defects' mm
        self.inspector: BundleRuntime | None = None
        self.tool: Tool | None = None
        if config.tool is not None:
            try:
                self.tool = build_tool(config.tool, mm_per_px, threads or 1)
            except ValueError as exc:
                raise ConfigError(f"check {config.name!r}: tool: {exc}") from None
            # What the record pins for a tool: its configuration, as the bundle's manifest for a model.
            document = json.dumps(config.tool.model_dump(mode="json"), sort_keys=True)
            self.bundle_sha256 = hashlib.sha256(document.encode()).hexdigest()
            self.model_version = f"tool:{config.tool.kind}"
            self.thresholds: dict[str, float] = {}
            self.drift_reference: DriftSection | str | None = "a tool: its values are charted by SPC"
            self.watch_drift = False
            return
        assert config.bundle is not None  # the configuration gives a bundle or a tool
        runtime = inspector or load_bundle(config.bundle, providers=providers, threads=threads)
        self.inspector = runtime
        self.bundle_sha256 = manifest_sha256(runtime.path)
        if config.bundle_sha256 is not None and config.bundle_sha256 != self.bundle_sha256:
            raise ModelFileError(
                f"{config.bundle}: check {config.name!r} pins manifest sha256 {config.bundle_sha256}, "
                f"this bundle's is {self.bundle_sha256}: it was changed or replaced since the recipe "
                f"was validated (thresholds edited?); validate the new bundle and update the pin"
            )
        trained_for = runtime.metadata.get("check_from")
        if trained_for:  # a model trained on a check's crop judges that crop only
            differences = preparation_mismatch(config, trained_for)
            if differences:
                raise ConfigError(
                    f"check {config.name!r}: {config.bundle} was trained on the crop of check "
                    f"{trained_for.get('check')!r}, which this check prepares differently: "
                    f"{'; '.join(differences)}. Train it with --check-from this check, or match its keys"
                )
        manifest = runtime.manifest
        self.drift_reference = manifest.drift
        self.watch_drift = drift and manifest.drift is not None
        backbone = getattr(manifest.model, "backbone", "?")
        self.model_version = f"{manifest.model.kind}/{backbone}@{manifest.provenance.created}"[:64]
        self.thresholds = {
            "review": float(runtime.thresholds.review),
            "ng": float(runtime.thresholds.ng),
        }
        # A segmenter's defects are counted and sized on every part; with rules they decide it.
        self.defects: DefectSizer | None = None
        if runtime.task == "segment":
            try:
                self.defects = DefectSizer(config.defects or DefectRules(), mm_per_px, **self.thresholds)
            except ValueError as exc:
                raise ConfigError(f"check {config.name!r}: defects: {exc}") from None
        elif config.defects is not None:
            raise ConfigError(
                f"check {config.name!r}: defects size a segmenter's defects; {config.bundle} is a "
                f"{runtime.task} bundle"
            )

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Undistort the whole frame, align it to the reference or the fixture, crop the ROI."""
        return self._prepare(image)[0]

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[Measurement, ...]]:
        """The prepared image, and where the fixture found its pattern (for the record)."""
        prepared, placement = self.preparation.place(image)
        found = placement.found
        if found is None:
            return prepared, ()
        return prepared, (
            Measurement("fixture.score", found.score),
            Measurement("fixture.x", found.x, "px"),
            Measurement("fixture.y", found.y, "px"),
            Measurement("fixture.angle", found.angle, "deg"),
        )

    def run(self, image: np.ndarray, part_id: str = "") -> CheckRun:
        """Never raises for a bad part: every failure becomes a failed outcome with its reason.
        ``part_id``: what a tool may verify against (OCR's ``{part_id}``)."""
        start = time.perf_counter()
        try:
            prepared, placed = self._prepare(image)
        except (AlignmentError, ValueError) as exc:
            return CheckRun(CheckOutcome(self.name, None, None, f"preprocessing failed: {exc}"))
        prepared_at = time.perf_counter()
        if self.tool is not None:
            run = self._run_tool(self.tool, prepared, part_id, 1e3 * (prepared_at - start))
            return replace(run, measurements=(*run.measurements, *placed))
        assert self.inspector is not None
        try:
            result = self.inspector.inspect(prepared)
        except Exception as exc:  # a model error is this part's failure, not the station's
            return CheckRun(CheckOutcome(self.name, None, None, f"model error: {type(exc).__name__}: {exc}"))
        timings = dict(result.timings_ms)
        timings["prepare"] = 1e3 * (prepared_at - start)
        if not np.isfinite(result.score):
            return CheckRun(CheckOutcome(self.name, None, None, "model gave no finite score"), prepared)
        drift = None
        if self.watch_drift:
            drift_start = time.perf_counter()
            drift = self._drift_values(prepared, float(result.score))
            timings["drift"] = 1e3 * (time.perf_counter() - drift_start)
        if self.defects is not None:
            run = self._size_defects(self.defects, prepared, result, timings, placed)
            return replace(run, drift=drift)
        # Classifiers and detectors name what they saw; it goes into the record with the decision.
        outcome = CheckOutcome(self.name, result.decision, float(result.score), result.describe())
        return CheckRun(outcome, prepared, result.anomaly_map, timings, measurements=placed, drift=drift)

    def _drift_values(self, prepared: np.ndarray, score: float) -> dict[str, float]:
        """What the drift monitor compares with the bundle's reference: the statistics of the
        part as the network saw it, and its score."""
        assert self.inspector is not None
        return {**input_statistics(self.inspector.preprocessing, prepared), SCORE: score}

    def _size_defects(
        self,
        sizer: DefectSizer,
        prepared: np.ndarray,
        result: InspectionResult,
        timings: dict[str, float],
        placed: tuple[Measurement, ...],
    ) -> CheckRun:
        """The segmenter's defects sized; with rules their decision replaces the part score's."""
        amap = result.anomaly_map
        if amap is None or not np.isfinite(amap).all():
            return CheckRun(CheckOutcome(self.name, None, None, "model gave no finite defect map"), prepared)
        sized = sizer.run(prepared, amap)
        decision: Decision | None = result.decision
        reason = sized.reason
        if sizer.judges:
            decision = sized.decision
        elif decision != Decision.OK:
            count, largest = sized.measurements[:2]
            reason = f"{count.value:.0f} defects, largest {largest.value:.4g} {largest.unit}"
        outcome = CheckOutcome(self.name, decision, float(result.score), reason)
        return CheckRun(
            outcome,
            prepared,
            amap,
            {**timings, **sized.timings_ms},
            measurements=(*sized.measurements, *placed),
            overlay=sized.overlay,
        )

    def _run_tool(self, tool: Tool, prepared: np.ndarray, part_id: str, prepare_ms: float) -> CheckRun:
        try:
            result = tool.run(prepared, part_id)
        except Exception as exc:  # a tool that cannot run on this part fails this check only
            reason = f"{tool.kind} tool error: {type(exc).__name__}: {exc}"
            return CheckRun(CheckOutcome(self.name, None, None, reason), prepared)
        timings = {"prepare": prepare_ms, **result.timings_ms}
        outcome = CheckOutcome(self.name, result.decision, result.score, result.reason)
        return CheckRun(
            outcome, prepared, None, timings, measurements=result.measurements, overlay=result.overlay
        )
