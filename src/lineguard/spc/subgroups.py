"""Per-subgroup statistics: what a chart of variables is drawn from (numpy only, so the record can
return them without the statistics stack)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Subgroups:
    """Per-subgroup statistics of one value — what SQL aggregation returns: size ``n`` (m,),
    ``mean``, ``std`` (sample, ddof 1; NaN where n = 1) and ``range`` (max − min)."""

    n: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    range: np.ndarray

    def __post_init__(self) -> None:
        for name in ("n", "mean", "std", "range"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), float))
        if not (self.n.shape == self.mean.shape == self.std.shape == self.range.shape) or self.n.ndim != 1:
            raise ValueError("subgroup n, mean, std and range must be 1-D arrays of one length")
        if not len(self.n):
            raise ValueError("no subgroups: nothing to chart")

    def __len__(self) -> int:
        return int(self.n.shape[0])

    @classmethod
    def of(cls, groups: Sequence[Sequence[float]] | np.ndarray) -> Subgroups:
        """From the raw values of each subgroup (rows of a 2-D array, or a list of lists)."""
        arrays = [np.asarray(g, float) for g in groups]
        if any(a.size == 0 or not np.isfinite(a).all() for a in arrays):
            raise ValueError("every subgroup needs finite values")
        return cls(
            n=np.array([a.size for a in arrays]),
            mean=np.array([a.mean() for a in arrays]),
            std=np.array([a.std(ddof=1) if a.size > 1 else np.nan for a in arrays]),
            range=np.array([np.ptp(a) for a in arrays]),
        )
