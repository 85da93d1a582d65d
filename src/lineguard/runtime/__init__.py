"""The torch-free runtime: load a bundle, inspect parts with ONNX Runtime."""

from lineguard.runtime.inspector import InspectionResult, Inspector, load_bundle
from lineguard.runtime.manifest import is_bundle, read_manifest

__all__ = ["InspectionResult", "Inspector", "is_bundle", "load_bundle", "read_manifest"]
