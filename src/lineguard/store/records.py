"""What the station records for each part: small typed records, JSON round-trippable, no I/O."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from lineguard.results import Measurement

# A part ID fits every PLC string type (an S7 STRING holds 254) and the record's column on every
# database; the same limit at REST, OPC UA, Modbus and file names.
MAX_PART_ID_CHARS = 128
# Undecodable bytes of a file name (Python's surrogate escapes), NUL and control characters: no
# database column or PLC string takes them as they are.
_UNSTORABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def storable_text(text: str) -> str:
    """``text`` with what no database or JSON line may hold shown as visible ``\\xNN`` escapes
    (idempotent: escaped text is left as it is)."""
    return _UNSTORABLE.sub(_escape, text)


def admit_part_id(raw: str | bytes | None) -> str | None:
    """The one rule for a part ID, wherever it comes from: escaped to storable text, blank means
    none (the station numbers the part); raises ValueError if longer than MAX_PART_ID_CHARS."""
    if raw is None:
        return None
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    text = storable_text(text).strip()
    if not text:
        return None
    if len(text) > MAX_PART_ID_CHARS:
        raise ValueError(f"part ID is {len(text)} characters, over the limit of {MAX_PART_ID_CHARS}")
    return text


def _store_text_fields(record: object) -> None:
    """Records hold only storable text, whoever built them (a file name, an exception message)."""
    for f in fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if isinstance(value, str):
            object.__setattr__(record, f.name, storable_text(value))


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
    heatmap_sha256: str | None = None  # the anomaly heatmap, or a tool's overlay
    measurements: tuple[Measurement, ...] = ()  # what a tool check measured or read

    def __post_init__(self) -> None:
        _store_text_fields(self)
        measurements = tuple(self.measurements)
        for m in measurements:
            _store_text_fields(m)  # a name from the recipe, a text read off the part
        object.__setattr__(self, "measurements", measurements)
        if self.decision == "OK" and (self.score is None or not math.isfinite(self.score)):
            raise ValueError(f"check {self.check!r}: OK without a valid score")

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CheckRecord:
        measurements = tuple(Measurement.from_dict(m) for m in doc.get("measurements", ()))
        return cls(**{**doc, "measurements": measurements})


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
        _store_text_fields(self)
        if len(self.part_id) > MAX_PART_ID_CHARS:
            raise ValueError(f"part {self.uid!r}: part ID over {MAX_PART_ID_CHARS} characters")
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
            checks=tuple(CheckRecord.from_dict(c) for c in doc.get("checks", ())),
            reason=doc.get("reason", ""),
            recipe=doc.get("recipe", ""),
            decided_at=datetime.fromisoformat(doc["decided_at"]),
        )


def stored_utc(value: datetime | str) -> datetime:
    """A time read back from the record: SQLite hands back naive datetimes (and MIN() of one as
    text); everything LineGuard stores is UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def uid_draw(uid: str) -> int:
    """A 64-bit number drawn from a part's uid (sha256): the same on every replay, blind to what
    the part looks like — the review queue's sample and the harvest's test split use it."""
    import hashlib

    return int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big")
