"""The training side's workflows: fit a model and calibrate its thresholds."""

from lineguard.train.fit import auto_image_size, fit_anomaly_model, native_size

__all__ = ["auto_image_size", "fit_anomaly_model", "native_size"]
