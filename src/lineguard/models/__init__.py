"""Anomaly models trained on good parts only: PatchCore and PaDiM, one contract."""

from lineguard.models.base import AnomalyModel
from lineguard.models.padim import Padim
from lineguard.models.patchcore import PatchCore
from lineguard.results import AnomalyPrediction

MODELS: dict[str, type[AnomalyModel]] = {"patchcore": PatchCore, "padim": Padim}


def load_model(path: str, device: str = "cpu"):
    """Load a model folder: an anomaly model (``AnomalyModel.save``) or a supervised one
    (classifier, segmenter or detector)."""
    from lineguard.supervised.base import supervised_task

    task = supervised_task(path)
    if task == "classify":
        from lineguard.supervised import ImageClassifier

        return ImageClassifier.load(path, device=device)
    if task == "segment":
        from lineguard.supervised.segmenter import DefectSegmenter

        return DefectSegmenter.load(path, device=device)
    if task == "detect":
        from lineguard.supervised.detector import DefectDetector

        return DefectDetector.load(path, device=device)
    return AnomalyModel.load(path, device=device)


__all__ = ["MODELS", "AnomalyModel", "AnomalyPrediction", "Padim", "PatchCore", "load_model"]
