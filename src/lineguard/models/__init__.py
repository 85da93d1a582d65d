"""Anomaly models trained on good parts only: PatchCore and PaDiM, one contract."""

from lineguard.models.base import AnomalyModel
from lineguard.models.padim import Padim
from lineguard.models.patchcore import PatchCore
from lineguard.results import AnomalyPrediction

MODELS: dict[str, type[AnomalyModel]] = {"patchcore": PatchCore, "padim": Padim}


def load_model(path: str, device: str = "cpu") -> AnomalyModel:
    """Load a model folder written by ``AnomalyModel.save``."""
    return AnomalyModel.load(path, device=device)


__all__ = ["MODELS", "AnomalyModel", "AnomalyPrediction", "Padim", "PatchCore", "load_model"]
