"""Supervised models by transfer learning on the offline backbones (PyTorch; training side)."""

from lineguard.supervised.calibration import expected_calibration_error, fit_temperature, softmax
from lineguard.supervised.classifier import ClassPrediction, ImageClassifier, is_supervised_model

__all__ = [
    "ClassPrediction",
    "ImageClassifier",
    "expected_calibration_error",
    "fit_temperature",
    "is_supervised_model",
    "softmax",
]
