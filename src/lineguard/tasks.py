"""One registry of what a model or bundle can do: the task.

Each entry names the task's typed manifest and, by import string, the classes and functions
that train, export, run and evaluate it, and the label layouts it reads. torch-free: the
strings are resolved only when used, so a line PC opening a bundle imports its runtime alone.
``load_model``, ``load_bundle``, ``export_bundle``, ``lineguard evaluate`` and the manifest's
validation are lookups here. Adding a kind is its own files plus one entry (docs/tasks.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from lineguard.data.labels import BOX_FORMATS, LABEL_FORMATS, MASK_FORMATS
from lineguard.data.readers import FORMATS as ANOMALY_FORMATS
from lineguard.errors import ModelFileError
from lineguard.runtime.manifest import (
    AnomalyManifest,
    BundleManifest,
    ClassifyManifest,
    DetectManifest,
    SegmentManifest,
)
from lineguard.train.config import (
    AnomalyConfig,
    ClassifyConfig,
    DetectConfig,
    SegmentConfig,
    TrainingConfig,
)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    summary: str
    manifest: type[BundleManifest]  # its bundle's typed manifest, discriminated on ``task``
    # "module:Class" running its bundle on ONNX Runtime: Class(folder, manifest, providers, threads)
    runtime: str
    evaluator: str  # "module:function" (torch-free): (estimator, EvaluationRequest) -> Evaluation
    model: str  # "module:Class" of the trainable model (torch); Class.load(path, device=...)
    exporter: str  # "module:function" (torch): (model, out, search="graph") -> bundle folder
    label_formats: tuple[str, ...]  # dataset layouts its training and evaluation read
    config: type[TrainingConfig]  # its typed training settings (torch-free); defaults live there
    # "module:function" (torch): (data, format, out, config, resume=, hooks=, prepare=) -> Trained
    trainer: str

    def resolve(self, role: str) -> Any:
        """The class or function an entry names for ``role`` ("runtime", "evaluator", ...)."""
        module, _, attribute = getattr(self, role).partition(":")
        return getattr(importlib.import_module(module), attribute)

    def check_format(self, format: str) -> None:
        if format not in self.label_formats:
            raise ValueError(f"--format {format}: {self.name} models read {', '.join(self.label_formats)}")


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "anomaly",
            "score and heatmap from good parts only (PatchCore, PaDiM)",
            AnomalyManifest,
            runtime="lineguard.runtime.inspector:Inspector",
            evaluator="lineguard.evaluation.anomaly:evaluate_on_data",
            model="lineguard.models.base:AnomalyModel",
            exporter="lineguard.bundle.export:export_anomaly_bundle",
            label_formats=tuple(ANOMALY_FORMATS),
            config=AnomalyConfig,
            trainer="lineguard.train.fit:train_anomaly",
        ),
        TaskSpec(
            "segment",
            "defect-probability map from labelled masks (the anomaly graph's contract)",
            SegmentManifest,
            runtime="lineguard.runtime.inspector:Inspector",
            evaluator="lineguard.evaluation.segmentation:evaluate_on_data",
            model="lineguard.supervised.segmenter:DefectSegmenter",
            exporter="lineguard.bundle.export:export_segmenter_bundle",
            label_formats=MASK_FORMATS,
            config=SegmentConfig,
            trainer="lineguard.train.supervised:train_segmenter",
        ),
        TaskSpec(
            "classify",
            "calibrated class probabilities from labelled images",
            ClassifyManifest,
            runtime="lineguard.runtime.classifier:ClassifierInspector",
            evaluator="lineguard.evaluation.classification:evaluate_on_data",
            model="lineguard.supervised.classifier:ImageClassifier",
            exporter="lineguard.bundle.export:export_classifier_bundle",
            label_formats=LABEL_FORMATS,
            config=ClassifyConfig,
            trainer="lineguard.train.supervised:train_classifier",
        ),
        TaskSpec(
            "detect",
            "defect boxes with classes from labelled boxes (FCOS)",
            DetectManifest,
            runtime="lineguard.runtime.detector:DetectorInspector",
            evaluator="lineguard.evaluation.detection:evaluate_on_data",
            model="lineguard.supervised.detector:DefectDetector",
            exporter="lineguard.bundle.export:export_detector_bundle",
            label_formats=BOX_FORMATS,
            config=DetectConfig,
            trainer="lineguard.train.supervised:train_detector",
        ),
    )
}


def get_task(name: str, where: object = "") -> TaskSpec:
    """The registry entry for ``name``; an unknown task names where it was found."""
    try:
        return TASKS[name]
    except KeyError:
        raise ModelFileError(
            f"{where or 'task'}: task {name!r} is not known to this LineGuard (known: {', '.join(TASKS)})"
        ) from None
