"""What the station records for each part: small typed records, JSON round-trippable, no I/O."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class CheckRecord:
    """One check of a part: which bundle judged it, the score, the decision and why."""

    check: str
    decision: str  # OK / REVIEW / NG
    score: float | None = None  # None: no valid score (the decision is then never OK)
    reason: str = ""  # why a check has no valid result: timeout, decode error, model error...
    bundle_sha256: str = ""
    model_version: str = ""
    thresholds: dict[str, float] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    image_sha256: str | None = None  # content address in the image archive, when kept
    heatmap_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.decision == "OK" and (self.score is None or not math.isfinite(self.score)):
            raise ValueError(f"check {self.check!r}: OK without a valid score")


@dataclass(frozen=True)
class PartRecord:
    """A part's verdict and its checks. ``uid`` is unique per station (the part ID plus, where
    the line reuses IDs, a trigger count); recording the same uid twice is a no-op."""

    station: str
    uid: str
    part_id: str
    verdict: str
    checks: tuple[CheckRecord, ...] = ()
    reason: str = ""
    recipe: str = ""
    decided_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.verdict not in ("OK", "REVIEW", "NG"):
            raise ValueError(f"part {self.uid!r}: verdict must be OK, REVIEW or NG, got {self.verdict!r}")
        if self.verdict == "OK" and (not self.checks or any(c.decision != "OK" for c in self.checks)):
            raise ValueError(f"part {self.uid!r}: OK needs every check to have passed")
        if self.decided_at.tzinfo is None:
            raise ValueError(f"part {self.uid!r}: decided_at must carry a time zone")

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["decided_at"] = self.decided_at.isoformat()
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PartRecord:
        return cls(
            station=doc["station"],
            uid=doc["uid"],
            part_id=doc["part_id"],
            verdict=doc["verdict"],
            checks=tuple(CheckRecord(**c) for c in doc.get("checks", ())),
            reason=doc.get("reason", ""),
            recipe=doc.get("recipe", ""),
            decided_at=datetime.fromisoformat(doc["decided_at"]),
        )
