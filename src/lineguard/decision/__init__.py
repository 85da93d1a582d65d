"""From score to decision: calibrated thresholds, the OK / REVIEW / NG band, one verdict per part."""

from lineguard.decision.thresholds import (
    MAX_EXPECTED_ESCAPE,
    Calibration,
    Decision,
    DecisionThresholds,
    calibrate,
    f1_optimal_threshold,
    frr_threshold,
    sensitivity_threshold,
)
from lineguard.decision.verdict import (
    AssembledPart,
    CheckOutcome,
    PartAssembler,
    VerdictPolicy,
    check_decision,
    combine,
)

__all__ = [
    "MAX_EXPECTED_ESCAPE",
    "AssembledPart",
    "Calibration",
    "CheckOutcome",
    "Decision",
    "DecisionThresholds",
    "PartAssembler",
    "VerdictPolicy",
    "calibrate",
    "check_decision",
    "combine",
    "f1_optimal_threshold",
    "frr_threshold",
    "sensitivity_threshold",
]
