"""Export a trained model as a bundle: ONNX graph + manifest (training side, needs torch and onnx)."""

from lineguard.bundle.export import export_bundle
from lineguard.bundle.files import zip_bundle
from lineguard.bundle.quantize import QuantizationReport, quantize_bundle

__all__ = ["QuantizationReport", "export_bundle", "quantize_bundle", "zip_bundle"]
