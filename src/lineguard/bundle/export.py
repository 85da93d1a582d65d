"""Write a bundle: the model as one ONNX graph plus a manifest of everything around it.

The graph takes the resized RGB image on the 0..255 scale (NHWC, float32) and
carries the normalisation, the network, the anomaly map and the part score,
so no step between image and score can be forgotten or done differently on
the line. Resizing is the shared numpy/OpenCV step both sides already call.
"""

from __future__ import annotations

import json
import platform
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lineguard import __version__
from lineguard.checksums import file_sha256
from lineguard.models import AnomalyModel
from lineguard.runtime.manifest import BUNDLE_FORMAT, BUNDLE_SCHEMA_VERSION, MANIFEST_FILE

GRAPH_FILE = "model.onnx"
OPSET = 17


class NormalizedModel(nn.Module):
    """(N, H, W, 3) RGB 0..255 -> normalise -> the model's (scores, maps)."""

    def __init__(self, module: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (image.permute(0, 3, 1, 2) - self.mean) / self.std
        return self.module(x)


def export_bundle(model: AnomalyModel, out: str | Path) -> Path:
    """Export a fitted, calibrated model to the bundle folder ``out``."""
    if model.module is None:
        raise ValueError("the model is not fitted")
    if model.calibration is None:
        raise ValueError("the model has no calibrated thresholds; fit it with `lineguard fit`")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pre = model.preprocessing
    wrapper = NormalizedModel(model.module, pre.mean, pre.std).to("cpu").eval()
    dummy = torch.zeros(1, pre.height, pre.width, 3)
    with torch.inference_mode(), warnings.catch_warnings():
        # The tracer warns about shapes it freezes: the input size is fixed by design.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(out / GRAPH_FILE),
            input_names=["image"],
            output_names=["score", "anomaly_map"],
            dynamic_axes={"image": {0: "batch"}, "score": {0: "batch"}, "anomaly_map": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    model.module.to(model.device)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": "anomaly",
        "model": {"kind": model.kind, **model.config()},
        "preprocessing": pre.to_dict(),
        "roi": None,  # whole image; ROI crops come with the station's recipes
        "tiling": None,  # one tile = the whole (resized) image
        "calibration": model.calibration.to_dict(),
        "graph": {
            "file": GRAPH_FILE,
            "opset": OPSET,
            "input": "image",
            "input_layout": "NHWC float32 RGB 0..255, resized to preprocessing.height x width",
            "outputs": {"score": "score", "anomaly_map": "anomaly_map"},
        },
        "metadata": {
            k: v for k, v in model.metadata.items() if k != "seen_files"
        },  # file lists stay with the training model
        "versions": {
            "lineguard": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "files": {
            GRAPH_FILE: {"sha256": file_sha256(out / GRAPH_FILE), "bytes": (out / GRAPH_FILE).stat().st_size}
        },
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return out
