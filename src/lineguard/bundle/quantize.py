"""INT8 static quantisation of a bundle, behind an accuracy guard.

What is quantised: the feature network only (convolutions with their ReLU6
clips, "SAME" pads and residual adds; per-channel int8 weights, uint8
activations, QDQ format), which holds almost all the compute, except its first
convolution, which sees the image itself. The anomaly-map smoothing, the
memory-bank distances and the Mahalanobis products stay float: quantised with
ranges calibrated on good parts, they clip every defect to the same value.

Quantisation noise shifts the feature statistics, so INT8 scores come out on a
different scale. A positive affine map, fitted by least squares from the INT8
to the fp32 scores of good parts the model was not fitted on (its threshold
hold-out), is appended to the graph's score and map outputs: the bundle keeps
the fp32 thresholds and reports scores that stay comparable on control charts.
Being monotone, the map cannot change AUROC.

The guard scores a labelled validation set with both bundles and refuses INT8
(writing the fp32 bundle instead, with the report) when image AUROC drops by
more than ``max_auroc_drop`` or more than ``max_decision_change`` of the
OK / REVIEW / NG decisions differ.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lineguard.bundle.files import file_entries, write_manifest
from lineguard.metrics import image_auroc
from lineguard.runtime import Inspector, load_bundle
from lineguard.runtime.manifest import AnomalyManifest, QuantizationSection, ScoreAffine, read_manifest

INT8_GRAPH_FILE = "model.int8.onnx"
REPORT_FILE = "quantization_report.json"
# Node types of the feature network that run in int8 (the rest stays float).
QUANTIZED_OPS = ("Conv", "Clip", "Pad", "Add")
FEATURE_SCOPE = "/backbone/"


@dataclass(frozen=True)
class QuantizationReport:
    """What the guard measured, and whether the INT8 bundle was kept."""

    accepted: bool
    reasons: tuple[str, ...]
    n_calibration: int
    n_validation: int
    n_validation_defect: int
    fp32_image_auroc: float | None
    int8_image_auroc: float | None
    decisions_changed: float
    score_scale: float
    score_offset: float
    fp32_ms_median: float
    int8_ms_median: float
    threads: int
    limits: dict[str, float] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.fp32_ms_median / self.int8_ms_median if self.int8_ms_median > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        doc = {**asdict(self), "reasons": list(self.reasons), "speedup": self.speedup}
        # Not measured (the INT8 graph was refused before the guard ran): null, not NaN, in JSON.
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in doc.items()}

    def summary(self) -> str:
        auroc = (
            f"image AUROC fp32 {self.fp32_image_auroc:.4f} -> int8 {self.int8_image_auroc:.4f}, "
            if self.fp32_image_auroc is not None and self.int8_image_auroc is not None
            else ""
        )
        refused = "INT8 refused (" + "; ".join(self.reasons) + "), fp32 kept"
        verdict = "INT8 kept" if self.accepted else refused
        if math.isnan(self.decisions_changed):
            return verdict
        return (
            f"{verdict}: {auroc}{self.decisions_changed:.2%} of {self.n_validation} decisions changed, "
            f"{self.fp32_ms_median:.1f} -> {self.int8_ms_median:.1f} ms/part on {self.threads} thread(s) "
            f"(x{self.speedup:.2f})"
        )


def guard_reasons(
    fp32_auroc: float | None,
    int8_auroc: float | None,
    decisions_changed: float,
    max_auroc_drop: float,
    max_decision_change: float,
) -> list[str]:
    """Why the INT8 graph is refused; empty when it is kept. AUROC counts only where
    the validation set has both good and defective parts."""
    reasons = []
    if fp32_auroc is not None and int8_auroc is not None and fp32_auroc - int8_auroc > max_auroc_drop:
        reasons.append(f"image AUROC drops {fp32_auroc - int8_auroc:.4f} (limit {max_auroc_drop})")
    if decisions_changed > max_decision_change:
        reasons.append(f"{decisions_changed:.2%} of decisions change (limit {max_decision_change:.2%})")
    return reasons


def _median_ms(inspector: Inspector, images: Sequence[np.ndarray], repeats: int = 2) -> float:
    inspector.predict(list(images[:1]))  # warm-up: first run allocates
    times = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            inspector.predict([image])
            times.append(1e3 * (time.perf_counter() - start))
    return float(np.median(times))


def _quantize_graph(source: Path, target: Path, inspector: Inspector, images: Sequence[np.ndarray]) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        """Feeds the network input of each calibration image (every tile when tiling)."""

        def __init__(self) -> None:
            self._batches = (inspector.network_input([im]) for im in images)
            self._pending: list[np.ndarray] = []

        def get_next(self) -> dict[str, np.ndarray] | None:
            if not self._pending:
                batch = next(self._batches, None)
                if batch is None:
                    return None
                self._pending = list(batch)
            return {inspector.input_name: self._pending.pop(0)[None]}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Folds the shape arithmetic of the "SAME" pads into constants, so pads quantise too.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        channels_in = {t.name: t.dims[1] for t in graph.initializer if len(t.dims) == 4}
        # The first convolution sees the 3-channel image: in int8 it loses the most
        # accuracy and, with so few input channels, gains no speed (measured on KolektorSDD).
        nodes = [
            n.name
            for n in graph.node
            if FEATURE_SCOPE in n.name and not (n.op_type == "Conv" and _sees_image(n, channels_in))
        ]
        if not nodes:
            raise ValueError(f"{source}: no feature-network nodes (named {FEATURE_SCOPE}...) to quantise")
        # onnxruntime logs through the root logger and advises the pre-processing done above.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_static(
                str(prepared),
                str(target),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(QUANTIZED_OPS),
                nodes_to_quantize=nodes,
                calibrate_method=CalibrationMethod.MinMax,
            )
        finally:
            root.setLevel(level)


def _sees_image(conv, channels_in: dict[str, int]) -> bool:
    groups = next((a.i for a in conv.attribute if a.name == "group"), 1)
    return groups == 1 and channels_in.get(conv.input[1], 99) <= 3


def _refused_unmappable(
    bundle: Path, out: Path, reason: str, n_calibration: int, labels: np.ndarray, threads: int
) -> QuantizationReport:
    """The INT8 graph's scores cannot be put on the fp32 scale: keep fp32, say why."""
    report = QuantizationReport(
        accepted=False,
        reasons=(reason,),
        n_calibration=n_calibration,
        n_validation=len(labels),
        n_validation_defect=int(labels.sum()),
        fp32_image_auroc=None,
        int8_image_auroc=None,
        decisions_changed=float("nan"),
        score_scale=float("nan"),
        score_offset=float("nan"),
        fp32_ms_median=float("nan"),
        int8_ms_median=float("nan"),
        threads=threads,
    )
    _write_out(bundle, out, report)
    return report


def _write_out(chosen: Path, out: Path, report: QuantizationReport) -> None:
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(chosen, out)
    (out / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2))


def append_affine(path: Path, outputs: Sequence[str], scale: float, offset: float) -> None:
    """Rewrite the ONNX file so each named output becomes ``scale * output + offset``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(scale, np.float32), "int8_score_scale"),
            numpy_helper.from_array(np.asarray(offset, np.float32), "int8_score_offset"),
        ]
    )
    for name in outputs:
        raw = f"{name}_before_affine"
        for node in graph.node:
            node.output[:] = [raw if o == name else o for o in node.output]
            node.input[:] = [raw if i == name else i for i in node.input]
        graph.node.extend(
            [
                helper.make_node("Mul", [raw, "int8_score_scale"], [f"{name}_scaled"]),
                helper.make_node("Add", [f"{name}_scaled", "int8_score_offset"], [name]),
            ]
        )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _alike(scores: np.ndarray) -> bool:
    """No spread beyond float noise (ONNX Runtime may score one image a few ulps apart by batch)."""
    scores = scores.astype(np.float64)
    return len(scores) < 2 or np.ptp(scores) <= 1e-6 * max(1.0, float(np.abs(scores).max()))


def _fit_affine(int8_scores: np.ndarray, fp32_scores: np.ndarray) -> tuple[float, float]:
    for name, scores in (("INT8", int8_scores), ("fp32", fp32_scores)):
        if _alike(scores):
            raise ValueError(f"the {name} graph scores every calibration image alike; it cannot be mapped")
    scale, offset = np.polyfit(int8_scores.astype(np.float64), fp32_scores.astype(np.float64), 1)
    return float(scale), float(offset)


def quantize_bundle(
    bundle: str | Path,
    out: str | Path,
    calibration_images: Sequence[np.ndarray],
    validation_images: Sequence[np.ndarray],
    validation_labels: Sequence[int],
    *,
    max_auroc_drop: float = 0.005,
    max_decision_change: float = 0.005,
    score_images: Sequence[np.ndarray] | None = None,
    threads: int = 1,
    timing_parts: int = 30,
) -> QuantizationReport:
    """Write to ``out`` the INT8 bundle when it passes the guard, else a copy of the fp32 one.

    ``calibration_images``: good parts (the training kind) that set the activation
    ranges. ``score_images``: good parts the model was not fitted on (its threshold
    hold-out), on which INT8 scores are mapped onto the fp32 scale; the scores of
    fitted images sit low and would skew the map where the thresholds lie.
    Default: the calibration images. ``validation_images``/``labels`` (0 good,
    1 defect): parts the model was not fitted on, for the guard. The report is
    written to ``out/quantization_report.json`` either way.
    """
    bundle, out = Path(bundle), Path(out)
    if out.resolve() == bundle.resolve():
        raise ValueError("write the quantised bundle to a new folder, not over its source")
    if len(calibration_images) < 2:
        raise ValueError("INT8 quantisation needs at least 2 calibration images (good parts)")
    labels = np.asarray(validation_labels, dtype=np.int64)
    if len(validation_images) != len(labels) or not len(labels):
        raise ValueError("validation images and labels must be non-empty and of equal length")
    manifest = read_manifest(bundle)
    if not isinstance(manifest, AnomalyManifest):
        raise ValueError(f"{bundle}: INT8 export covers anomaly bundles, not {manifest.task!r}")
    if manifest.graph.precision == "int8":
        raise ValueError(f"{bundle}: already INT8")
    fp32 = load_bundle(bundle, threads=threads)
    assert isinstance(fp32, Inspector)  # an anomaly manifest opens as one
    calibration = list(calibration_images)
    validation = list(validation_images)
    mapped = list(score_images) if score_images is not None else calibration
    if len(mapped) < 2:
        raise ValueError("mapping INT8 scores needs at least 2 good images (score_images)")

    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "candidate"
        shutil.copytree(bundle, candidate)
        source_graph = manifest.graph.file
        _quantize_graph(bundle / source_graph, candidate / INT8_GRAPH_FILE, fp32, calibration)
        (candidate / source_graph).unlink()
        files = [INT8_GRAPH_FILE, *(name for name in manifest.files if name != source_graph)]
        unmapped = manifest.model_copy(
            update={
                "graph": manifest.graph.model_copy(update={"file": INT8_GRAPH_FILE}),
                "files": file_entries(candidate, files),
            }
        )
        write_manifest(candidate, unmapped)

        # The affine goes on whichever graph outputs score and map: the head when faiss searches.
        raw = load_bundle(candidate, threads=threads)
        assert isinstance(raw, Inspector)
        try:
            scale, offset = _fit_affine(raw.predict(mapped).scores, fp32.predict(mapped).scores)
        except ValueError as exc:
            return _refused_unmappable(bundle, out, str(exc), len(calibration), labels, threads)
        if not scale > 0:
            reason = f"INT8 scores fall as fp32 scores rise (slope {scale:.3g})"
            return _refused_unmappable(bundle, out, reason, len(calibration), labels, threads)
        search = manifest.search
        scored_file = search.head_file if search else INT8_GRAPH_FILE
        outputs = search.head_outputs if search else manifest.graph.outputs
        append_affine(candidate / scored_file, [outputs["score"], outputs["anomaly_map"]], scale, offset)
        quantization = QuantizationSection(
            method="onnxruntime static QDQ, MinMax calibration",
            quantized_ops=tuple(QUANTIZED_OPS),
            scope="feature network",
            weights="int8 per channel",
            activations="uint8 per tensor",
            n_calibration_images=len(calibration),
            score_affine=ScoreAffine(
                scale=scale, offset=offset, fitted_on_images=len(mapped), applied_in=scored_file
            ),
            fp32_graph_sha256=manifest.files[source_graph].sha256,
        )
        int8_manifest = unmapped.model_copy(
            update={
                "graph": unmapped.graph.model_copy(update={"precision": "int8"}),
                "quantization": quantization,
                "files": file_entries(candidate, files),
            }
        )
        write_manifest(candidate, int8_manifest)
        int8 = load_bundle(candidate, threads=threads)
        assert isinstance(int8, Inspector)

        s32 = fp32.predict(validation).scores
        s8 = int8.predict(validation).scores
        thresholds = fp32.thresholds
        d32, d8 = thresholds.decide_many(s32), thresholds.decide_many(s8)
        changed = float(np.mean([a != b for a, b in zip(d32, d8, strict=True)]))
        has_both = 0 < labels.sum() < len(labels)
        auc32 = image_auroc(labels, s32) if has_both else None
        auc8 = image_auroc(labels, s8) if has_both else None
        reasons = guard_reasons(auc32, auc8, changed, max_auroc_drop, max_decision_change)
        timing_set = validation[:timing_parts]
        report = QuantizationReport(
            accepted=not reasons,
            reasons=tuple(reasons),
            n_calibration=len(calibration),
            n_validation=len(labels),
            n_validation_defect=int(labels.sum()),
            fp32_image_auroc=auc32,
            int8_image_auroc=auc8,
            decisions_changed=changed,
            score_scale=scale,
            score_offset=offset,
            fp32_ms_median=_median_ms(fp32, timing_set),
            int8_ms_median=_median_ms(int8, timing_set),
            threads=threads,
            limits={"max_auroc_drop": max_auroc_drop, "max_decision_change": max_decision_change},
        )
        _write_out(candidate if report.accepted else bundle, out, report)
    return report
