"""Evaluation: metrics and report plots for any scorer (a trained model or a bundle); no torch."""

from lineguard.evaluation.anomaly import (
    Scorer,
    evaluate_anomaly_model,
    split_as_fitted,
    unseen_test_samples,
)

__all__ = ["Scorer", "evaluate_anomaly_model", "split_as_fitted", "unseen_test_samples"]
