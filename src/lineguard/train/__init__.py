"""The training side's workflows: fit + calibrate, evaluate + report."""

from lineguard.train.evaluate import evaluate_anomaly_model
from lineguard.train.fit import auto_image_size, fit_anomaly_model

__all__ = ["auto_image_size", "evaluate_anomaly_model", "fit_anomaly_model"]
