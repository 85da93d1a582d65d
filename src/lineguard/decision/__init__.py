"""From score to decision: calibrated thresholds and the OK / REVIEW / NG band (numpy only)."""

from lineguard.decision.thresholds import (
    Calibration,
    Decision,
    DecisionThresholds,
    calibrate,
    f1_optimal_threshold,
    frr_threshold,
    sensitivity_threshold,
)

__all__ = [
    "Calibration",
    "Decision",
    "DecisionThresholds",
    "calibrate",
    "f1_optimal_threshold",
    "frr_threshold",
    "sensitivity_threshold",
]
