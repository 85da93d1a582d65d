"""Run a detector bundle with ONNX Runtime: image in, defect boxes with classes and a decision out.

The graph gives per-location boxes and class scores; thresholds, top-k and per-class
NMS are :func:`lineguard.detections.select_detections` (numpy), the same function
training uses. The part is decided on its most confident detection with the
bundle's REVIEW and NG thresholds. numpy, OpenCV and onnxruntime only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lineguard.detections import select_detections
from lineguard.results import Detections
from lineguard.runtime.inspector import BundleRuntime, InspectionResult
from lineguard.runtime.manifest import DetectManifest


class DetectorInspector(BundleRuntime):
    manifest: DetectManifest

    def _configure(self, bundle: Path, threads: int | None) -> None:
        self.classes = self.manifest.classes
        self.settings = self.manifest.detection
        self.output_names = [self.graph.outputs["boxes"], self.graph.outputs["scores"]]

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessing.height, self.preprocessing.width

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detections per image, boxes in that image's pixels."""
        if not len(images):
            return []
        batch = np.stack([self.preprocessing.resized_rgb(im) for im in images])
        boxes, scores = self.session.run(self.output_names, {self.input_name: batch})
        return [
            select_detections(b, s, self.settings, self.input_size, im.shape[:2])
            for b, s, im in zip(boxes, scores, images, strict=True)
        ]

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 16) -> list[Detections]:
        return [d for i in range(0, len(images), batch_size) for d in self.detect(images[i : i + batch_size])]

    def inspect(self, image: np.ndarray) -> InspectionResult:
        start = time.perf_counter()
        (found,) = self.detect([image])
        score = found.top_score
        return InspectionResult(
            score=score,
            decision=self.thresholds.decide(score),
            anomaly_map=None,
            timings_ms={"total": 1e3 * (time.perf_counter() - start)},
            label=self.classes[int(found.class_id[0])] if len(found) else None,
            confidence=score if len(found) else None,
            detections=found.above(self.thresholds.review),  # what moved the decision
            classes=self.classes,
        )
