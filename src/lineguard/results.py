"""Small typed results shared by training and the runtime (numpy only, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnomalyPrediction:
    """Scores (N,) and anomaly maps (N, H, W) at the model's input resolution."""

    scores: np.ndarray
    maps: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class ClassPrediction:
    """Calibrated class probabilities (N, C), the winning class (N,), and the probability of a
    defect class (N,): what OK / REVIEW / NG are decided on."""

    probabilities: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])
