"""Run a classifier bundle with ONNX Runtime: image in, calibrated class probabilities and a decision out.

The decision is taken on the probability that the part shows a defect class
(1 − the probability of the bundle's good classes), with the bundle's REVIEW and
NG thresholds; numpy, OpenCV and onnxruntime only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lineguard.results import ClassPrediction
from lineguard.runtime.inspector import BundleRuntime, InspectionResult
from lineguard.runtime.manifest import ClassifyManifest


class ClassifierInspector(BundleRuntime):
    manifest: ClassifyManifest

    def _configure(self, bundle: Path, threads: int | None) -> None:
        self.classes = self.manifest.classes
        self.good_classes = self.manifest.decision.good_classes
        self.temperature = self.manifest.temperature
        self.output_name = self.graph.outputs["probabilities"]
        self._good = [self.classes.index(c) for c in self.good_classes]

    def network_input(self, images: Sequence[np.ndarray]) -> np.ndarray:
        # The same resize as training (uint8 at the input size), as float for the graph.
        return np.stack([np.rint(self.preprocessing.resized_rgb(im)) for im in images]).astype(np.float32)

    def classify(self, images: Sequence[np.ndarray]) -> ClassPrediction:
        if not len(images):
            n = len(self.classes)
            return ClassPrediction(
                np.zeros((0, n), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
            )
        (probabilities,) = self.session.run([self.output_name], {self.input_name: self.network_input(images)})
        scores = 1.0 - probabilities[:, self._good].sum(axis=1) if self._good else np.ones(len(probabilities))
        return ClassPrediction(probabilities, probabilities.argmax(axis=1), scores.astype(np.float32))

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 32) -> ClassPrediction:
        parts = [self.classify(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        if not parts:
            return self.classify([])
        return ClassPrediction(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("probabilities", "labels", "scores"))
        )

    def inspect(self, image: np.ndarray) -> InspectionResult:
        start = time.perf_counter()
        prediction = self.classify([image])
        score = float(prediction.scores[0])
        label = int(prediction.labels[0])
        return InspectionResult(
            score=score,
            decision=self.thresholds.decide(score),
            anomaly_map=None,
            timings_ms={"total": 1e3 * (time.perf_counter() - start)},
            label=self.classes[label],
            confidence=float(prediction.probabilities[0, label]),
        )
