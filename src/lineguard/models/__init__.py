"""Anomaly models trained on good parts only: PatchCore and PaDiM, one contract."""

from lineguard.models.base import AnomalyModel, CalibrationSet
from lineguard.models.padim import Padim
from lineguard.models.patchcore import PatchCore
from lineguard.results import AnomalyPrediction

MODELS: dict[str, type[AnomalyModel]] = {"patchcore": PatchCore, "padim": Padim}


def load_model(path: str, device: str = "cpu"):
    """Load a model folder: an anomaly model (``AnomalyModel.save``) or a supervised one
    (classifier, segmenter or detector), with the model class its task registers."""
    from lineguard.supervised.base import supervised_task
    from lineguard.tasks import get_task

    return get_task(supervised_task(path) or "anomaly", path).resolve("model").load(path, device=device)


__all__ = [
    "MODELS",
    "AnomalyModel",
    "AnomalyPrediction",
    "CalibrationSet",
    "Padim",
    "PatchCore",
    "load_model",
]
