"""The training side's workflows: fit a model and calibrate its thresholds."""

from lineguard.evaluation import evaluate_anomaly_model
from lineguard.train.fit import auto_image_size, fit_anomaly_model

__all__ = ["auto_image_size", "evaluate_anomaly_model", "fit_anomaly_model"]
