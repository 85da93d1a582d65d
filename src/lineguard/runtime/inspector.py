"""Run a bundle with ONNX Runtime: image in, score + decision + anomaly map out.

Only numpy, OpenCV and onnxruntime are imported here, never torch: a line PC
runs inspections without a training stack.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lineguard.decision import Decision
from lineguard.errors import ModelFileError
from lineguard.preprocess import merge_tiles
from lineguard.results import AnomalyPrediction, Detections
from lineguard.runtime.manifest import BundleManifest, SearchSection, read_manifest, unpack_bundle

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
    """One part's result. ``anomaly_map`` is at the model's input resolution (the working
    size of the whole part when the bundle tiles); None for classifiers, which name a class."""

    score: float
    decision: Decision
    anomaly_map: np.ndarray | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    label: str | None = None  # classifiers: the winning class; detectors: the top detection's
    confidence: float | None = None  # its calibrated probability / confidence
    detections: Detections | None = None  # detectors: the boxes at or above REVIEW, image pixels
    classes: tuple[str, ...] = ()  # detectors: the names of their class indices

    def describe(self, limit: int = 3) -> str:
        """What the model named, for the record: the class (classifiers) or the boxes found."""
        if self.detections is not None:
            found = self.detections.to_list(self.classes)
            shown = "; ".join(
                f"{d['class']} {d['confidence']:.3f} at {[round(v) for v in d['box_xyxy']]}"
                for d in found[:limit]
            )
            more = f" (+{len(found) - limit} more)" if len(found) > limit else ""
            return f"{len(found)} found" + (f": {shown}{more}" if found else "")
        return f"{self.label} {self.confidence:.3f}" if self.label is not None else ""


def session_options(providers: Sequence[str] | str | None, threads: int | None):
    """ONNX Runtime session options and the execution providers to ask for (checked available)."""
    import onnxruntime as ort

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
    return options, wanted


class BundleRuntime:
    """What every opened bundle shares: where it came from, its manifest and preprocessing, and an
    ONNX Runtime session on its graph. Each task's runtime adds its outputs and decision."""

    def __init__(
        self,
        bundle: Path,
        manifest: BundleManifest,
        providers: Sequence[str] | str | None = None,
        threads: int | None = None,
    ) -> None:
        """``providers``: ONNX Runtime execution providers in order; None = CPU, "auto" =
        the fastest this machine offers (TensorRT, CUDA, OpenVINO, then CPU)."""
        import onnxruntime as ort

        self.path = bundle  # the bundle folder, or its zip (opened from a temporary copy)
        self.source = bundle  # what the user named: the folder, or the zip it was unpacked from
        self.manifest = manifest
        self.task = manifest.task
        self.preprocessing = manifest.preprocessing
        self.thresholds = manifest.decision.thresholds
        # What `evaluate` reads from a model folder's fit record, the seen images by content.
        self.metadata: dict[str, Any] = {
            **manifest.provenance.training,
            "seen_sha256": list(manifest.provenance.seen_images_sha256),
        }
        self.session_options, self.wanted_providers = session_options(providers, threads)
        self.graph = manifest.graph
        self.session = ort.InferenceSession(
            str(bundle / self.graph.file), self.session_options, providers=self.wanted_providers
        )
        self.input_name = self.graph.input
        self.providers = self.session.get_providers()
        self._configure(bundle, threads)

    def _configure(self, bundle: Path, threads: int | None) -> None:
        """The task's own outputs and settings from ``self.manifest``."""

    def inspect(self, image: np.ndarray) -> InspectionResult:
        """One part: its score, decision and what the task shows (map, label, boxes)."""
        raise NotImplementedError(f"{type(self).__name__} does not inspect parts")

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 8) -> Any:
        """A batch, as the training side's model predicts it (for parity and evaluation)."""
        raise NotImplementedError(f"{type(self).__name__} does not predict batches")


class Inspector(BundleRuntime):
    """A loaded anomaly (or segmenter) bundle. Create it with :func:`load_bundle`."""

    def _configure(self, bundle: Path, threads: int | None) -> None:
        import onnxruntime as ort

        manifest = self.manifest
        # Anomaly bundles carry their threshold calibration; segmenters may have fixed thresholds.
        self.calibration = manifest.decision.calibration
        self.tiling = getattr(manifest, "tiling", None)
        self.part_top_k = getattr(manifest, "part_top_k", 0)
        self.search = getattr(manifest, "search", None)
        outputs = self.graph.outputs
        if self.search:
            self.output_names = [outputs["embedding"]]
            self.head = ort.InferenceSession(
                str(bundle / self.search.head_file), self.session_options, providers=self.wanted_providers
            )
            head = self.search.head_outputs
            self.head_output_names = [head["score"], head["anomaly_map"]]
            self.index = build_index(bundle, self.search, threads)
        else:
            self.output_names = [outputs["score"], outputs["anomaly_map"]]

    @property
    def map_size(self) -> tuple[int, int]:
        """(H, W) of the anomaly maps: the working size when tiling, else the network input."""
        if self.tiling:
            return self.tiling.height, self.tiling.width
        return self.preprocessing.height, self.preprocessing.width

    def network_input(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """What the graph takes for these parts: one resized image each, or every tile of each."""
        if self.tiling is None:
            return np.stack([self.preprocessing.resized_rgb(im) for im in images])
        return np.concatenate([self.tiling.prepare(im) for im in images])

    def _run(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        start = time.perf_counter()
        batch = self.network_input(images)
        prepared = time.perf_counter()
        if self.search:
            (embedding,) = self.session.run(self.output_names, {self.input_name: batch})
            embedded = time.perf_counter()
            n, h, w, c = embedding.shape
            squared, _ = self.index.search(np.ascontiguousarray(embedding.reshape(-1, c)), 1)
            grid = np.sqrt(np.maximum(squared[:, 0], 0.0)).reshape(n, h, w).astype(np.float32)
            searched = time.perf_counter()
            scores, maps = self.head.run(self.head_output_names, {self.search.head_input: grid})
            done = time.perf_counter()
            timings = {
                "preprocess": 1e3 * (prepared - start),
                "embed": 1e3 * (embedded - prepared),
                "search": 1e3 * (searched - embedded),
                "map": 1e3 * (done - searched),
            }
        else:
            scores, maps = self.session.run(self.output_names, {self.input_name: batch})
            done = time.perf_counter()
            timings = {"preprocess": 1e3 * (prepared - start), "infer": 1e3 * (done - prepared)}
        if self.tiling is not None:
            merge_start = time.perf_counter()
            scores, maps = merge_tiles(self.tiling, scores, maps, self.part_top_k)
            timings["merge_tiles"] = 1e3 * (time.perf_counter() - merge_start)
        return scores.astype(np.float32), maps.astype(np.float32), timings

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 8) -> AnomalyPrediction:
        """Scores and maps for many images (the same contract as a trained model)."""
        scores, maps = [], []
        for i in range(0, len(images), batch_size):
            s, m, _ = self._run(images[i : i + batch_size])
            scores.append(s)
            maps.append(m)
        if not scores:
            h, w = self.map_size
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


def build_index(bundle: Path, search: SearchSection, threads: int | None):
    """A faiss index over the bundle's memory bank: exact (flat) or approximate (HNSW)."""
    try:
        import faiss
    except ImportError:
        raise ModelFileError(
            f"{bundle}: searches its memory bank with faiss; pip install 'lineguard[search]'"
        ) from None
    from safetensors.numpy import load_file

    bank = np.ascontiguousarray(load_file(str(bundle / search.memory_bank_file))["memory_bank"])
    if threads:
        faiss.omp_set_num_threads(int(threads))
    if search.kind == "faiss-flat":
        index: Any = faiss.IndexFlatL2(bank.shape[1])
    else:  # faiss-hnsw: the manifest admits no other kind
        index = faiss.IndexHNSWFlat(bank.shape[1], search.hnsw_m)
        index.hnsw.efSearch = search.hnsw_ef_search
    index.add(bank)
    return index


def load_bundle(
    path: str | Path, providers: Sequence[str] | str | None = None, threads: int | None = None
) -> BundleRuntime:
    """Verify a bundle (schema, sha256 of every file) and open it with ONNX Runtime.

    ``path`` is a bundle folder or its .zip; a zip is unpacked into a private temporary
    folder only while it is opened: everything is in memory afterwards, so a process killed
    with -9 leaves nothing behind in the temp folder.
    """
    bundle = Path(path)
    if bundle.is_file():
        with tempfile.TemporaryDirectory(prefix="lineguard-bundle-") as unpacked:
            folder = unpack_bundle(bundle, Path(unpacked))
            inspector = _open(folder, read_manifest(folder), providers, threads)
        inspector.path = inspector.source = bundle
        return inspector
    return _open(bundle, read_manifest(bundle), providers, threads)


def _open(folder: Path, manifest: BundleManifest, providers, threads) -> BundleRuntime:
    """The runtime the task registry names for the bundle's task."""
    from lineguard.tasks import get_task

    runtime = get_task(manifest.task, folder).resolve("runtime")
    return runtime(folder, manifest, providers, threads)
