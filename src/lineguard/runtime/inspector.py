"""Run a bundle with ONNX Runtime: image in, score + decision + anomaly map out.

Only numpy, OpenCV and onnxruntime are imported here, never torch: a line PC
runs inspections without a training stack.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lineguard.decision import Calibration, Decision, DecisionThresholds
from lineguard.errors import ModelFileError
from lineguard.preprocess import Preprocessing
from lineguard.results import AnomalyPrediction
from lineguard.runtime.manifest import read_manifest

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
# Fastest first; "auto" takes those of these that this onnxruntime build offers.
PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)


@dataclass(frozen=True)
class InspectionResult:
    """One part's result. ``anomaly_map`` is at the model's input resolution."""

    score: float
    decision: Decision
    anomaly_map: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class Inspector:
    """A loaded bundle. Create it with :func:`load_bundle`."""

    def __init__(
        self,
        bundle: Path,
        manifest: dict[str, Any],
        providers: Sequence[str] | str | None = None,
        threads: int | None = None,
    ) -> None:
        """``providers``: ONNX Runtime execution providers in order; None = CPU, "auto" =
        the fastest this machine offers (TensorRT, CUDA, OpenVINO, then CPU)."""
        import onnxruntime as ort

        self.path = bundle
        self.manifest = manifest
        self.preprocessing = Preprocessing.from_dict(manifest["preprocessing"])
        self.calibration = Calibration.from_dict(manifest["calibration"])
        self.metadata: dict[str, Any] = dict(manifest.get("metadata") or {})
        available = set(ort.get_available_providers())
        if providers == "auto":
            wanted = [p for p in PREFERRED_PROVIDERS if p in available]
        else:
            wanted = list(providers or DEFAULT_PROVIDERS)
        missing = [p for p in wanted if p not in available]
        if missing:
            raise ModelFileError(
                f"execution provider(s) {missing} not available here; available: {sorted(available)}"
            )
        options = ort.SessionOptions()
        # Explicit thread counts: the station shares its cores with cameras and I/O.
        options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        graph = manifest["graph"]
        self.session = ort.InferenceSession(str(bundle / graph["file"]), options, providers=wanted)
        self.input_name = graph["input"]
        self.output_names = [graph["outputs"]["score"], graph["outputs"]["anomaly_map"]]
        self.providers = self.session.get_providers()

    @property
    def thresholds(self) -> DecisionThresholds:
        return self.calibration.thresholds

    def _run(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        start = time.perf_counter()
        batch = np.stack([self.preprocessing.resized_rgb(im) for im in images])
        prepared = time.perf_counter()
        scores, maps = self.session.run(self.output_names, {self.input_name: batch})
        done = time.perf_counter()
        timings = {"preprocess": 1e3 * (prepared - start), "infer": 1e3 * (done - prepared)}
        return scores.astype(np.float32), maps.astype(np.float32), timings

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 8) -> AnomalyPrediction:
        """Scores and maps for many images (the same contract as a trained model)."""
        scores, maps = [], []
        for i in range(0, len(images), batch_size):
            s, m, _ = self._run(images[i : i + batch_size])
            scores.append(s)
            maps.append(m)
        if not scores:
            h, w = self.preprocessing.height, self.preprocessing.width
            return AnomalyPrediction(np.zeros(0, np.float32), np.zeros((0, h, w), np.float32))
        return AnomalyPrediction(np.concatenate(scores), np.concatenate(maps))

    def inspect(self, image: np.ndarray) -> InspectionResult:
        return self.inspect_batch([image])[0]

    def inspect_batch(self, images: Sequence[np.ndarray]) -> list[InspectionResult]:
        start = time.perf_counter()
        scores, maps, timings = self._run(images)
        results = []
        for score, amap in zip(scores, maps, strict=True):
            decision = self.thresholds.decide(float(score))
            results.append(InspectionResult(float(score), decision, amap, dict(timings)))
        total = 1e3 * (time.perf_counter() - start)
        for r in results:
            r.timings_ms["total"] = total
        return results


def load_bundle(
    path: str | Path, providers: Sequence[str] | str | None = None, threads: int | None = None
) -> Inspector:
    """Verify a bundle (schema, sha256 of every file) and open it with ONNX Runtime."""
    bundle = Path(path)
    return Inspector(bundle, read_manifest(bundle), providers, threads)
