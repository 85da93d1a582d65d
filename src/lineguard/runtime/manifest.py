"""The bundle manifest: a typed document of what a bundle holds, and how to check it.

One pydantic model per task (discriminated on ``task``), written by export and returned
validated by :func:`read_manifest`; its JSON Schema is ``docs/bundle-manifest.schema.json``.
Schema 1 bundles (LineGuard 0.x before the typed manifest) are upgraded as they are read.
torch-free: the line PC reads it with ONNX Runtime, numpy and pydantic only.
"""

from __future__ import annotations

import functools
import math
import zipfile
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from lineguard.checksums import file_sha256, read_versioned_json
from lineguard.decision.thresholds import Calibration, DecisionThresholds
from lineguard.detections import DetectionSettings
from lineguard.errors import ModelFileError
from lineguard.preprocess.tiling import Tiling
from lineguard.preprocess.transforms import Preprocessing
from lineguard.spc.drift import MAX_REFERENCE

BUNDLE_FORMAT: Final = "lineguard-bundle"
BUNDLE_SCHEMA_VERSION: Final = 2
MANIFEST_FILE = "manifest.json"
GRAPH_INPUT_LAYOUT = "NHWC float32 RGB 0..255, resized to preprocessing.height x width"


class _Section(BaseModel):
    # A misspelt key in a hand-edited manifest is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Section):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class ModelSection(BaseModel):
    """The model's kind and the parameters it was built with (what ``model.json`` holds)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str


class GraphSection(_Section):
    file: str
    opset: int
    input: str
    input_layout: str = GRAPH_INPUT_LAYOUT
    precision: Literal["fp32", "int8"] = "fp32"
    outputs: dict[str, str]  # role (score, anomaly_map, probabilities, ...) -> graph output name


class DecisionSection(_Section):
    """The only thresholds a runtime decides with, what the score means, and (when they were
    calibrated) how they were set."""

    thresholds: DecisionThresholds
    score: str
    calibration: Calibration | None = None

    @model_validator(mode="after")
    def _one_set_of_thresholds(self) -> DecisionSection:
        if self.calibration is not None and self.calibration.thresholds != self.thresholds:
            raise ValueError(
                "decision.thresholds differ from the ones decision.calibration set; "
                "one of them was edited, re-export the bundle"
            )
        return self


class ClassifyDecision(DecisionSection):
    good_classes: tuple[str, ...]


class SearchSection(_Section):
    """PatchCore's nearest-neighbour search outside the graph (faiss over the saved bank)."""

    kind: Literal["faiss-flat", "faiss-hnsw"]
    memory_bank_file: str
    memory_bank_size: int = Field(ge=1)
    head_file: str
    head_input: str
    head_outputs: dict[str, str]
    hnsw_m: int = Field(default=32, ge=2)
    hnsw_ef_search: int = Field(default=64, ge=1)


class ScoreAffine(_Section):
    scale: float
    offset: float
    fitted_on_images: int
    applied_in: str


class QuantizationSection(_Section):
    method: str
    quantized_ops: tuple[str, ...]
    scope: str
    weights: str
    activations: str
    n_calibration_images: int
    score_affine: ScoreAffine
    fp32_graph_sha256: str


class Provenance(_Section):
    """Where the bundle came from. ``training``: the fit record, without the training machine's
    file lists; ``seen_images_sha256``: the content digests of every image fitting, validation or
    calibration used, so ``evaluate`` on the bundle refuses them wherever the dataset now lies."""

    created: str
    versions: dict[str, str]
    training: dict[str, Any] = Field(default_factory=dict)
    seen_images_sha256: tuple[str, ...] = ()


class DriftSection(_Section):
    """Reference statistics of the calibration's held-out good parts, which the station compares
    its rolling windows with: each statistic's values, one per image, in calibration order
    (image statistics on the network input, see ``lineguard.spc.drift``; and the part score)."""

    images: int = Field(ge=1)  # calibration images the values came from
    statistics: dict[str, tuple[float, ...]]

    @model_validator(mode="after")
    def _bounded_and_finite(self) -> DriftSection:
        for name, values in self.statistics.items():
            if not 2 <= len(values) <= MAX_REFERENCE:
                raise ValueError(f"drift.statistics.{name}: 2 to {MAX_REFERENCE} values, got {len(values)}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"drift.statistics.{name}: values must be finite")
        return self


class BundleManifest(_Section):
    """What every task's manifest holds; each task's subclass adds its own sections."""

    task: str  # each task's subclass narrows it to its name (the union's discriminator)
    format: Literal["lineguard-bundle"] = BUNDLE_FORMAT
    schema_version: Literal[2] = BUNDLE_SCHEMA_VERSION
    model: ModelSection
    preprocessing: Preprocessing
    graph: GraphSection
    decision: DecisionSection
    provenance: Provenance
    files: dict[str, FileEntry]
    drift: DriftSection | None = None  # None: a bundle exported before drift references

    @model_validator(mode="after")
    def _graph_files_listed(self) -> BundleManifest:
        for name in self.bundle_files():
            if name not in self.files:
                raise ValueError(f"{name} is used by the bundle but not listed under files")
        return self

    def bundle_files(self) -> list[str]:
        """The files the runtime opens (each must be listed, with its sha256, under ``files``)."""
        return [self.graph.file]


class AnomalyManifest(BundleManifest):
    """PatchCore / PaDiM: score + anomaly map, thresholds calibrated on held-out good parts."""

    task: Literal["anomaly"] = "anomaly"
    # None: the whole part is resized to the network input; else tiles, merged in the runtime,
    # the part scored on the mean of its part_top_k highest tile scores.
    tiling: Tiling | None = None
    part_top_k: int = Field(default=0, ge=0)
    search: SearchSection | None = None
    quantization: QuantizationSection | None = None

    def bundle_files(self) -> list[str]:
        extra = [self.search.head_file, self.search.memory_bank_file] if self.search else []
        return [self.graph.file, *extra]


class SegmentManifest(BundleManifest):
    """A defect segmenter: the anomaly graph's contract (score + map), defect-probability map."""

    task: Literal["segment"] = "segment"
    classes: tuple[str, ...]


class ClassifyManifest(BundleManifest):
    task: Literal["classify"] = "classify"
    classes: tuple[str, ...]
    decision: ClassifyDecision
    temperature: float = Field(gt=0)


class DetectManifest(BundleManifest):
    task: Literal["detect"] = "detect"
    classes: tuple[str, ...]
    detection: DetectionSettings


@functools.cache
def _manifest_adapter() -> TypeAdapter:
    """Every registered task's manifest, told apart by ``task`` (lineguard.tasks)."""
    from lineguard.tasks import TASKS

    kinds = tuple(spec.manifest for spec in TASKS.values())
    # A union built from the registry at run time: beyond what a static checker can follow.
    return TypeAdapter(Annotated[Union[kinds], Field(discriminator="task")])  # type: ignore[arg-type]  # noqa: UP007


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of every task's manifest (what docs/bundle-manifest.schema.json holds)."""
    return _manifest_adapter().json_schema()


def manifest_json(manifest: BundleManifest) -> str:
    return manifest.model_dump_json(indent=2, exclude_none=False)


def parse_manifest(doc: dict[str, Any], where: str | Path) -> BundleManifest:
    """Validate a manifest document (schema 1 is upgraded first); errors name the key."""
    if int(doc.get("schema_version", 0)) == 1:
        doc = upgrade_schema_1(doc)
    try:
        return _manifest_adapter().validate_python(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise ModelFileError(
            f"{where}: not a valid bundle manifest ({problems}); re-export the bundle with "
            "`lineguard export` from its model folder"
        ) from None


def upgrade_schema_1(doc: dict[str, Any]) -> dict[str, Any]:
    """A schema 1 manifest (untyped; thresholds under calibration for anomaly bundles and under
    decision for the others) in the schema 2 layout. Nothing is invented: every value moves."""
    task = doc.get("task", "anomaly")
    old_decision = dict(doc.get("decision") or {})
    calibration = doc.get("calibration")
    metadata = dict(doc.get("metadata") or {})
    if calibration is None:
        calibration = metadata.pop("threshold_calibration", None)
    thresholds = (
        old_decision.get("thresholds")
        or (calibration or {}).get("thresholds")
        or {"review": None, "ng": None}  # refused by validation, naming decision.thresholds
    )
    decision: dict[str, Any] = {
        "thresholds": thresholds,
        "score": old_decision.get("score", "anomaly score of the part"),
        "calibration": calibration,
    }
    if task == "classify":
        decision["good_classes"] = old_decision.get("good_classes", [])
    new: dict[str, Any] = {
        "format": doc.get("format"),
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "task": task,
        "model": doc.get("model"),
        "preprocessing": _without(doc.get("preprocessing"), "channel_order", "scale", "layout"),
        "graph": doc.get("graph"),
        "decision": decision,
        "provenance": {
            "created": doc.get("created", "unknown"),
            "versions": doc.get("versions") or {},
            "training": metadata,
        },
        "files": doc.get("files"),
    }
    if task == "anomaly":
        tiling = doc.get("tiling") or {}
        new["part_top_k"] = int(tiling.get("part_top_k", 0))
        new["tiling"] = _without(tiling, "part_top_k", "n_tiles", "merge", "score") or None
        new["search"] = doc.get("search")
        new["quantization"] = doc.get("quantization")
    else:
        new["classes"] = doc.get("classes", [])
    if task == "classify":
        new["temperature"] = doc.get("temperature")
    if task == "detect":
        new["detection"] = doc.get("detection") or {}
    return new


def _without(section: Any, *described: str) -> Any:
    """A schema 1 section less the keys that only described it (schema 2 says them once)."""
    if not isinstance(section, dict):
        return section
    return {k: v for k, v in section.items() if k not in described}


# A zipped bundle is unpacked before use; this bounds what a damaged or hostile archive can write.
MAX_UNPACKED_BYTES = 4 << 30


def is_bundle(path: str | Path) -> bool:
    """A bundle folder, or a .zip holding one (files at the archive root)."""
    path = Path(path)
    if path.is_dir():
        return (path / MANIFEST_FILE).is_file()
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return MANIFEST_FILE in zf.namelist()
    return False


def unpack_bundle(archive: Path, folder: Path) -> Path:
    """Extract a zipped bundle into ``folder``: plain files at the root only, size bounded."""
    if not zipfile.is_zipfile(archive):
        raise ModelFileError(f"{archive}: neither a bundle folder nor a zip archive")
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            name = info.filename
            if info.is_dir() or "/" in name or "\\" in name or name in ("", ".", ".."):
                raise ModelFileError(
                    f"{archive}: unexpected entry {name!r}; a bundle zip holds plain files only"
                )
        if sum(info.file_size for info in members) > MAX_UNPACKED_BYTES:
            raise ModelFileError(f"{archive}: unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB")
        if MANIFEST_FILE not in {info.filename for info in members}:
            raise ModelFileError(f"{archive}: no {MANIFEST_FILE} at the archive root; not a bundle")
        zf.extractall(folder)
    return folder


def manifest_sha256(bundle: str | Path) -> str:
    """The sha256 of a bundle's manifest.json (folder or zip): what a recipe pins and the record keeps.
    The manifest lists every other file's sha256, so this one hash pins the whole bundle."""
    import hashlib

    bundle = Path(bundle)
    if bundle.is_dir():
        return file_sha256(bundle / MANIFEST_FILE)
    with zipfile.ZipFile(bundle) as zf:
        return hashlib.sha256(zf.read(MANIFEST_FILE)).hexdigest()


def read_manifest(bundle: Path) -> BundleManifest:
    """Parse, validate and verify a bundle's manifest: format, schema, every file's sha256."""
    path = bundle / MANIFEST_FILE
    manifest = parse_manifest(read_versioned_json(path, BUNDLE_FORMAT, BUNDLE_SCHEMA_VERSION, "bundle"), path)
    for name, entry in manifest.files.items():
        file = bundle / name
        if not file.is_file():
            raise ModelFileError(f"{file}: listed in the manifest but missing")
        if file_sha256(file) != entry.sha256:
            raise ModelFileError(f"{file}: sha256 differs from the manifest (damaged or replaced)")
    return manifest
