"""Export a trained model as a bundle: ONNX graph + manifest (training side, needs torch)."""

from lineguard.bundle.export import export_bundle

__all__ = ["export_bundle"]
