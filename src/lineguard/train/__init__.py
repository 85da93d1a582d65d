"""The training side's workflows: fit a model and calibrate its thresholds."""

from lineguard.train.fit import (
    Candidate,
    auto_image_size,
    build_candidate,
    candidate_configs,
    fit_anomaly_model,
    native_size,
    select_anomaly_model,
)

__all__ = [
    "Candidate",
    "auto_image_size",
    "build_candidate",
    "candidate_configs",
    "fit_anomaly_model",
    "native_size",
    "select_anomaly_model",
]
