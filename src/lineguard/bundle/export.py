"""Write a bundle: the model as one ONNX graph plus a manifest of everything around it.

The graph takes the resized RGB image on the 0..255 scale (NHWC, float32) and
carries the normalisation, the network, the anomaly map and the part score,
so no step between image and score can be forgotten or done differently on
the line. Resizing is the shared numpy/OpenCV step both sides already call.
"""

from __future__ import annotations

import platform
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lineguard import __version__
from lineguard.bundle.files import file_entries, write_manifest
from lineguard.bundle.graph_passes import fold_constants, fold_pads_into_convs
from lineguard.models import AnomalyModel
from lineguard.runtime.manifest import (
    AnomalyManifest,
    ClassifyDecision,
    ClassifyManifest,
    DecisionSection,
    DetectManifest,
    GraphSection,
    ModelSection,
    Provenance,
    SearchSection,
    SegmentManifest,
)

GRAPH_FILE = "model.onnx"
HEAD_FILE = "head.onnx"
BANK_FILE = "memory_bank.safetensors"
OPSET = 17


class NormalizedModel(nn.Module):
    """(N, H, W, 3) RGB 0..255 -> normalise -> the model's (scores, maps)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, module: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (image.permute(0, 3, 1, 2) - self.mean) / self.std
        return self.module(x)


class PatchEmbedder(nn.Module):
    """PatchCore's first half for an external search: (N, H, W, 3) 0..255 -> (N, h, w, C)."""

    def __init__(self, module: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.normalized = NormalizedModel(module.embedding, mean, std)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.normalized(image).permute(0, 2, 3, 1)


class MapAndScore(nn.Module):
    """PatchCore's second half: nearest-neighbour distance grid (N, h, w) -> (scores, maps)."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.head: nn.Module = module.head
        self.score: nn.Module = module.score

    def forward(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        amap = self.head(grid)
        return self.score(grid, amap), amap


def _to_onnx(module: nn.Module, example: torch.Tensor, path: Path, inputs: list[str], outputs: list[str]):
    with torch.inference_mode(), warnings.catch_warnings():
        # The tracer warns about shapes it freezes: the input size is fixed by design.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.to("cpu").eval(),
            (example,),
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in inputs + outputs},
            opset_version=OPSET,
            dynamo=False,
        )
    fold_constants(path)
    fold_pads_into_convs(path)


SEARCHES = ("graph", "faiss-flat", "faiss-hnsw")


class CalibratedClassifier(nn.Module):
    """(N, H, W, 3) RGB 0..255 -> normalise -> logits / temperature -> class probabilities."""

    def __init__(self, module: nn.Module, mean, std, temperature: float) -> None:
        super().__init__()
        self.normalized = NormalizedModel(module, mean, std)
        self.temperature = float(temperature)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.normalized(image) / self.temperature, dim=1)


def _provenance(model: Any) -> Provenance:
    """The fit record without the training machine's file lists (they stay in model.json); the
    images it saw travel as content digests, so `evaluate` on the bundle can refuse them."""
    metadata = dict(model.metadata)
    seen = metadata.pop("seen_sha256", ())
    for local in ("seen_files", "calibration_files", "threshold_calibration", "drift_reference"):
        metadata.pop(local, None)  # drift_reference: the manifest's own drift section
    return Provenance(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions={"lineguard": __version__, "torch": torch.__version__, "python": platform.python_version()},
        training=metadata,
        seen_images_sha256=tuple(seen),
    )


def _graph(outputs: list[str], file: str = GRAPH_FILE) -> GraphSection:
    return GraphSection(file=file, opset=OPSET, input="image", outputs={name: name for name in outputs})


def _common(model: Any, out: Path, files: list[str]) -> dict[str, Any]:
    """The sections every task's manifest shares."""
    return {
        "model": ModelSection(kind=model.kind, **model.get_params()),
        "preprocessing": model.preprocessing,
        "provenance": _provenance(model),
        "files": file_entries(out, files),
        "drift": model.metadata.get("drift_reference"),
    }


def _supervised_calibration(model: Any):
    from lineguard.decision import Calibration

    record = model.metadata.get("threshold_calibration")
    return Calibration.from_dict(record) if record else None


def _export_supervised(
    model: Any, out: str | Path, graph_module: nn.Module | None, outputs: list[str], manifest, search: str
):
    """The graph and manifest of a supervised model's bundle (one graph, image in);
    ``manifest(common, graph)`` builds the task's typed manifest."""
    if search != "graph":
        raise ValueError(f"search applies to PatchCore's memory bank, not to a {model.kind}")
    if model.module is None or graph_module is None:
        raise ValueError(f"the {model.kind} is not fitted")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pre = model.preprocessing
    _to_onnx(graph_module, torch.zeros(1, pre.height, pre.width, 3), out / GRAPH_FILE, ["image"], outputs)
    model.module.to(model.device)
    write_manifest(out, manifest(_common(model, out, [GRAPH_FILE]), _graph(outputs)))
    return out


def _normalized_graph(model: Any) -> nn.Module | None:
    """The model's network behind its input normalisation (None while unfitted)."""
    pre = model.preprocessing
    return NormalizedModel(model.module.to("cpu").eval(), pre.mean, pre.std) if model.module else None


def export_segmenter_bundle(model: Any, out: str | Path, search: str = "graph") -> Path:
    """A fitted :class:`~lineguard.supervised.DefectSegmenter` as a bundle with the anomaly graph's
    contract (part score + map, here the defect-probability map), so the same runtime runs it."""
    decision = DecisionSection(
        thresholds=model.thresholds,
        score="highest defect probability after a 3x3 mean, over the part",
        calibration=_supervised_calibration(model),
    )
    return _export_supervised(
        model,
        out,
        _normalized_graph(model),
        ["score", "anomaly_map"],
        lambda common, graph: SegmentManifest(
            **common, graph=graph, decision=decision, classes=tuple(model.classes)
        ),
        search,
    )


def export_classifier_bundle(model: Any, out: str | Path, search: str = "graph") -> Path:
    """A fitted :class:`~lineguard.supervised.ImageClassifier` as a bundle: one graph from image to
    calibrated probabilities, and the classes, good classes and decision thresholds in the manifest."""
    pre = model.preprocessing
    graph = (
        CalibratedClassifier(model.module.to("cpu").eval(), pre.mean, pre.std, model.temperature)
        if model.module
        else None
    )
    decision = ClassifyDecision(
        thresholds=model.thresholds,
        score="probability of a defect class (1 - probability of the good classes)",
        calibration=_supervised_calibration(model),
        good_classes=tuple(model.good_classes),
    )
    return _export_supervised(
        model,
        out,
        graph,
        ["probabilities"],
        lambda common, graph: ClassifyManifest(
            **common,
            graph=graph,
            decision=decision,
            classes=tuple(model.classes),
            temperature=model.temperature,
        ),
        search,
    )


def export_detector_bundle(model: Any, out: str | Path, search: str = "graph") -> Path:
    """A fitted :class:`~lineguard.supervised.detector.DefectDetector` as a bundle: one graph from
    image to per-location boxes and class scores; the score threshold, NMS and top-k settings and
    the classes in the manifest (the runtime applies them with the same numpy code as training)."""
    decision = DecisionSection(
        thresholds=model.thresholds,
        score="confidence of the most confident detection (0 when none)",
        calibration=_supervised_calibration(model),
    )
    return _export_supervised(
        model,
        out,
        _normalized_graph(model),
        ["boxes", "scores"],
        lambda common, graph: DetectManifest(
            **common,
            graph=graph,
            decision=decision,
            classes=tuple(model.classes),
            detection=model.detection,
        ),
        search,
    )


def export_bundle(model: Any, out: str | Path, search: str = "graph") -> Path:
    """Export a fitted model to the bundle folder ``out`` with the exporter its task registers.

    ``search`` (PatchCore only): "graph" keeps the exact nearest-neighbour search
    inside the ONNX graph; "faiss-flat" (exact) and "faiss-hnsw" (approximate)
    split the graph around the search, which the runtime then does with faiss
    over the memory bank stored beside it.
    """
    from lineguard.tasks import get_task

    return get_task(model.task, type(model).__name__).resolve("exporter")(model, out, search=search)


def export_anomaly_bundle(model: AnomalyModel, out: str | Path, search: str = "graph") -> Path:
    """A fitted, calibrated PatchCore or PaDiM as a bundle (see :func:`export_bundle`)."""
    if model.module is None:
        raise ValueError("the model is not fitted")
    if model.calibration is None:
        raise ValueError(
            "the model has no calibrated thresholds; fit it with `lineguard fit`, or with "
            "fit(..., calibration=CalibrationSet(held_out_good))"
        )
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    if search != "graph" and model.kind != "patchcore":
        raise ValueError(f"search {search!r} applies to PatchCore's memory bank, not to {model.kind}")
    if search != "graph" and getattr(model, "reweight_neighbours", False):
        raise ValueError(
            f"search {search!r}: the re-weighted score needs each patch's nearest bank entry and its "
            "neighbours, which only the in-graph search gives; export with --search graph"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pre = model.preprocessing
    image = torch.zeros(1, pre.height, pre.width, 3)
    module: Any = model.module.to("cpu")  # PadimModule or PatchCoreModule
    search_section = None
    if search == "graph":
        _to_onnx(
            NormalizedModel(module, pre.mean, pre.std),
            image,
            out / GRAPH_FILE,
            ["image"],
            ["score", "anomaly_map"],
        )
        graph = _graph(["score", "anomaly_map"])
        files = [GRAPH_FILE]
    else:
        from safetensors.numpy import save_file

        embedder = PatchEmbedder(module, pre.mean, pre.std)
        _to_onnx(embedder, image, out / GRAPH_FILE, ["image"], ["embedding"])
        with torch.inference_mode():
            grid = torch.zeros(1, *embedder(image).shape[1:3])
        _to_onnx(MapAndScore(module), grid, out / HEAD_FILE, ["grid"], ["score", "anomaly_map"])
        save_file({"memory_bank": module.memory_bank.detach().cpu().numpy()}, str(out / BANK_FILE))
        graph = _graph(["embedding"])
        search_section = SearchSection(
            kind=search,
            memory_bank_file=BANK_FILE,
            memory_bank_size=int(module.memory_bank.shape[0]),
            head_file=HEAD_FILE,
            head_input="grid",
            head_outputs={"score": "score", "anomaly_map": "anomaly_map"},
        )
        files = [GRAPH_FILE, HEAD_FILE, BANK_FILE]
    model.module.to(model.device)
    manifest = AnomalyManifest(
        **_common(model, out, files),
        graph=graph,
        decision=DecisionSection(
            thresholds=model.calibration.thresholds,
            score="anomaly score of the part (calibrated on held-out good parts)",
            calibration=model.calibration,
        ),
        tiling=model.tiling,
        part_top_k=model.part_top_k if model.tiling else 0,
        search=search_section,
    )
    write_manifest(out, manifest)
    return out
