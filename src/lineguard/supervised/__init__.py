"""Supervised models by transfer learning on the offline backbones (PyTorch; training side)."""

from lineguard.metrics.calibration import expected_calibration_error, fit_temperature, softmax
from lineguard.results import ClassPrediction
from lineguard.supervised.base import is_supervised_model
from lineguard.supervised.classifier import ImageClassifier
from lineguard.supervised.detector import DefectDetector
from lineguard.supervised.segmenter import DefectSegmenter

__all__ = [
    "ClassPrediction",
    "DefectDetector",
    "DefectSegmenter",
    "ImageClassifier",
    "expected_calibration_error",
    "fit_temperature",
    "is_supervised_model",
    "softmax",
]
