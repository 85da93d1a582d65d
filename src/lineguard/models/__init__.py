"""Anomaly models trained on good parts only: PatchCore and PaDiM, one contract."""

from lineguard.models.base import AnomalyModel
from lineguard.models.padim import Padim
from lineguard.models.patchcore import PatchCore
from lineguard.results import AnomalyPrediction

MODELS: dict[str, type[AnomalyModel]] = {"patchcore": PatchCore, "padim": Padim}


def load_model(path: str, device: str = "cpu"):
    """Load a model folder: an anomaly model (``AnomalyModel.save``) or a supervised one
    (``ImageClassifier.save``)."""
    from lineguard.supervised.classifier import is_supervised_model

    if is_supervised_model(path):
        from lineguard.supervised import ImageClassifier

        return ImageClassifier.load(path, device=device)
    return AnomalyModel.load(path, device=device)


__all__ = ["MODELS", "AnomalyModel", "AnomalyPrediction", "Padim", "PatchCore", "load_model"]
