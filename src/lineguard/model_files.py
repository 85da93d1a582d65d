"""A trained model's folder, for both model families: ``model.json`` (a typed ``ModelDocument``)
beside ``state.safetensors`` (the weights, never pickle), tied together by the weights' sha256.

The one place that writes and reads it: anomaly models (``lineguard.models``) and supervised ones
(``lineguard.supervised``) hand over their config, learned decision state and fit record, and get
them back validated. The document is torch-free; only the weights need torch.
"""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lineguard import __version__
from lineguard.checksums import file_sha256, read_versioned_json
from lineguard.errors import ModelFileError

if TYPE_CHECKING:
    from torch import Tensor, nn

CONFIG_FILE = "model.json"
STATE_FILE = "state.safetensors"
ANOMALY_FORMAT = "lineguard-anomaly-model"
SUPERVISED_FORMAT = "lineguard-supervised-model"
SCHEMA_VERSION = 1
Digests = tuple[str, ...]


class SplitRecord(BaseModel):
    """How the data was split, so ``evaluate`` re-creates the same test split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str | None = None
    seed: int | None = None
    test_fraction: float | None = None
    val_fraction: float | None = None
    good_class: str | None = None
    source: str | None = None  # the labels' file or folder (supervised)
    task: str | None = None


class FitRecord(BaseModel):
    """What fitting saw and measured. The fields every consumer reads are typed; a kind's own
    training statistics (epochs, history, bank size, ...) sit beside them."""

    model_config = ConfigDict(extra="allow", frozen=True)

    split: SplitRecord = SplitRecord()
    # Content digests of every image fitting or calibration used: evaluate leaves them out of the
    # test wherever the dataset lies by then.
    seen_sha256: Digests = ()
    calibration_sha256: Digests = ()  # the held-out good parts the thresholds came from
    # Models saved before the digests recorded absolute paths; still honoured.
    seen_files: tuple[str, ...] = ()
    calibration_files: tuple[str, ...] = ()
    fit_seconds: float | None = Field(None, ge=0)
    training_fingerprint: str | None = None
    validation: dict[str, Any] | None = None  # held-out good vs (labelled or synthetic) defects
    selection: dict[str, Any] | None = None  # every candidate tried, when fit chose among several
    threshold_calibration: dict[str, Any] | None = None  # supervised: the calibration record
    training_config: dict[str, Any] | None = None  # anomaly: the AnomalyConfig fit ran with


class FileRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ModelDocument(BaseModel):
    """``model.json``: what rebuilds the model (kind, config, preprocessing), what it learned
    beside its weights (decision thresholds or calibration, temperature, input size), the fit
    record, and what it was made with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str
    schema_version: int = Field(ge=1)
    task: str | None = None  # supervised; anomaly models are all task "anomaly"
    kind: str
    config: dict[str, Any]  # the model's parameters as they were passed
    input_size: tuple[int, int] | None = None  # (H, W) when the config left it to the data
    classes: tuple[str, ...] | None = None  # supervised: the label set, in output order
    preprocessing: dict[str, Any]
    calibration: dict[str, Any] | None = None  # anomaly: the threshold calibration
    thresholds: dict[str, float] | None = None  # supervised: thresholds in force
    temperature: float | None = None  # classifier: softmax temperature fitted on validation
    metadata: FitRecord = FitRecord()
    files: dict[str, FileRecord] = {}  # saved models always have it; hand-made ones may not
    versions: dict[str, str] = {}
    saved_at: str | None = None


def read_document(path: str | Path, format: str, what: str) -> ModelDocument:
    """The validated ``model.json`` of the folder ``path``; a bad one names the file and key."""
    file = Path(path) / CONFIG_FILE
    raw = read_versioned_json(file, format, SCHEMA_VERSION, what)
    try:
        return ModelDocument.model_validate(raw)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ModelFileError(f"{file}: {where}") from None


def peek_document(path: str | Path) -> dict[str, Any] | None:
    """``model.json`` as a plain mapping, or None when the folder holds none (for telling kinds)."""
    try:
        doc = json.loads((Path(path) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def save_model(path: str | Path, module: nn.Module, document: dict[str, Any]) -> Path:
    """Write the weights, then ``model.json`` (validated, with the weights' sha256 and versions)."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path / STATE_FILE))
    doc = ModelDocument.model_validate(
        {
            **document,
            "schema_version": SCHEMA_VERSION,
            "files": {STATE_FILE: {"sha256": file_sha256(path / STATE_FILE)}},
            "versions": {
                "lineguard": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    # Sections another family has (a classifier's temperature, ...) stay absent, not null.
    body = {k: v for k, v in doc.model_dump(mode="json", exclude={"metadata"}).items() if v is not None}
    # The fit record as it was made: fields a fit did not set stay absent, not null.
    body["metadata"] = doc.metadata.model_dump(mode="json", exclude_unset=True)
    (path / CONFIG_FILE).write_text(json.dumps(body, indent=2))
    return path


def load_state(path: str | Path, document: ModelDocument) -> dict[str, Tensor]:
    """The weights of the folder ``path``, refused when their sha256 differs from ``model.json``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = Path(path) / STATE_FILE
    if not file.is_file():
        raise ModelFileError(f"{file}: file not found")
    entry = document.files.get(STATE_FILE)
    if entry is not None and file_sha256(file) != entry.sha256:
        raise ModelFileError(f"{file}: sha256 differs from model.json (damaged or replaced)")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"{file}: not a readable safetensors file: {exc}") from None


def restore_module(path: str | Path, module: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    """``module`` with ``state`` loaded strictly; a mismatch names the weights file."""
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ModelFileError(f"{Path(path) / STATE_FILE}: does not match the model: {exc}") from None
    return module
