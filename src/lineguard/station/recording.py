"""A decided part's record: each check's fail-safe decision (``lineguard.decision.check_decision``,
the one rule), its score, thresholds and bundle, and the images and heatmaps the store policy keeps,
archived by content. Pure of threads: the station's decide thread calls it, then records."""

from __future__ import annotations

import cv2
import numpy as np

from lineguard.data.image_io import decode_image, image_format
from lineguard.decision import AssembledPart, check_decision
from lineguard.station.config import StoreConfig
from lineguard.station.parts import PartInFlight
from lineguard.store import CheckRecord, ImageArchive, PartRecord, keep_image
from lineguard.store.reviews import ReviewSampling


def heatmap_png(anomaly_map: np.ndarray, ng_threshold: float) -> np.ndarray:
    """A colour heatmap (RGB uint8) where the NG threshold sits at mid-scale."""
    scale = 127.5 / ng_threshold if ng_threshold > 0 else 1.0
    grey = np.clip(anomaly_map * scale, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


class PartRecorder:
    def __init__(
        self, station: str, archive: ImageArchive, store: StoreConfig, review: ReviewSampling | None = None
    ) -> None:
        """``review``: the parts drawn for review keep their images too (a reviewer must see them)."""
        self.station = station
        self.archive = archive
        self.store = store
        self.review = review
        self._ok_index = 0  # OK parts so far: every ``keep_ok_every``-th keeps its images

    def record_of(self, part: AssembledPart, flight: PartInFlight) -> PartRecord:
        recipe, runs = flight.recipe, flight.runs
        verdict = part.verdict.value
        keep = keep_image(verdict, self._ok_index, self.store.keep_ok_every) or (
            self.review is not None and self.review.drawn(verdict, part.uid)
        )
        if verdict == "OK":
            self._ok_index += 1
        reasons = [part.reason] if part.reason else []
        checks = []
        for runner in recipe.runners:
            if runner.name in part.skipped:
                continue  # cascade: the pre-screen passed the part; the detailed check was not needed
            outcome = part.outcomes.get(runner.name)
            run = runs.get(runner.name)
            decided, reason = check_decision(outcome, recipe.assembler.policy)  # the one fail-safe rule
            image_sha = heatmap_sha = None
            if keep and run is not None and run.image is None and run.unjudged is not None:
                try:
                    image_sha = self._archive_unjudged(run.unjudged)
                except (OSError, ValueError) as exc:
                    reasons.append(f"{runner.name}: image not archived ({exc})")
            if keep and run is not None and run.image is not None:
                try:
                    image_sha = self.archive.put_image(run.image)
                    if run.anomaly_map is not None and self.store.keep_heatmaps:
                        heatmap_sha = self.archive.put_image(
                            heatmap_png(run.anomaly_map, runner.thresholds["ng"])
                        )
                    elif run.overlay is not None and self.store.keep_heatmaps:
                        heatmap_sha = self.archive.put_image(run.overlay)  # a tool's overlay
                except (OSError, ValueError) as exc:
                    reasons.append(f"{runner.name}: image not archived ({exc})")
            checks.append(
                CheckRecord(
                    check=runner.name,
                    decision=decided.value,
                    score=outcome.score if outcome is not None and outcome.valid else None,
                    reason=reason,
                    bundle_sha256=runner.bundle_sha256,
                    model_version=runner.model_version,
                    thresholds=runner.thresholds,
                    timings_ms=run.timings_ms if run is not None else {},
                    image_sha256=image_sha,
                    heatmap_sha256=heatmap_sha,
                    measurements=run.measurements if run is not None else (),
                )
            )
        return PartRecord(
            station=self.station,
            uid=part.uid,
            part_id=part.part_id,
            verdict=verdict,
            checks=tuple(checks),
            reason="; ".join(reasons),
            recipe=recipe.name,
        )

    def _archive_unjudged(self, image: bytes | np.ndarray) -> str:
        """The acquired image of a check that could not run: PNG bytes as they are, else as PNG."""
        if isinstance(image, bytes):
            if image_format(image) == "PNG":
                return self.archive.put_png(image)
            image = decode_image(image, "acquired image")
        return self.archive.put_image(image)
