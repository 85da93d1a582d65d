"""What `lineguard evaluate` asks of a task's evaluator, and what the evaluator returns: its
metrics (metrics.json) and the summary a person reads first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EvaluationRequest:
    data: str | Path
    format: str
    out: str | Path | None
    seed: int | None = None  # None: the split seed and test fraction the fit record holds
    test_fraction: float | None = None

    def labelled_test(self, estimator: Any, task: str):
        """(the labelled set, its test split as training split it, the images the fit saw)."""
        from lineguard.data.labels import labelled_split_as_fitted
        from lineguard.data.seen import SeenImages

        annotated, split = labelled_split_as_fitted(
            estimator.metadata, self.data, self.format, task, self.seed, self.test_fraction
        )
        return (
            annotated,
            as_prepared(split, estimator.metadata, ("test",)).test,
            SeenImages.of(estimator.metadata),
        )


def as_prepared(split: Any, metadata: dict[str, Any], only: tuple[str, ...] | None = None) -> Any:
    """A model trained on a station check's crop (`--check-from`) is judged on that crop too
    (``only``: these parts of the split)."""
    record = metadata.get("check_from")
    if not record:
        return split
    from lineguard.station.preparation import PreparedCheck

    return PreparedCheck.from_record(record).split(split, progress=True, only=only)


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    summary: str


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
