"""What an evaluation returns: its metrics (metrics.json) and the summary a person reads first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    summary: str


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
