"""Small typed results shared by training, the runtime and the station (numpy only, no torch): model
predictions, and a part's verdict as the line is told it with the station's fault codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

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


@dataclass(frozen=True)
class Detections:
    """One image's detections: boxes (K, 4) xyxy in image pixels, confidence (K,), class index (K,),
    highest confidence first."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray

    def __len__(self) -> int:
        return int(self.confidence.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @property
    def top_score(self) -> float:
        """The part's defect score: its most confident detection (0 without any)."""
        return float(self.confidence[0]) if len(self) else 0.0

    def above(self, min_confidence: float) -> Detections:
        """Only the detections at or above ``min_confidence`` (e.g. those that move a decision)."""
        keep = self.confidence >= min_confidence
        return Detections(self.xyxy[keep], self.confidence[keep], self.class_id[keep])

    def to_list(self, classes: tuple[str, ...] | list[str]) -> list[dict]:
        return [
            {
                "class": classes[int(c)],
                # Not rounded: a shown confidence must compare with the thresholds as the decision did.
                "confidence": float(s),
                "box_xyxy": [round(float(v), 2) for v in b],
            }
            for b, s, c in zip(self.xyxy, self.confidence, self.class_id, strict=True)
        ]


MAX_MEASUREMENT_NAME = 128


@dataclass(frozen=True)
class Measurement:
    """One value a tool measured or read on a part, in the record beside the check's decision: what
    control charts and Cp/Cpk are computed on. ``value`` None: it could not be measured. ``lo`` /
    ``hi``: the tolerance in ``unit`` (None: recorded, not judged); ``decision`` what the value
    alone decided (OK / REVIEW / NG, "" when not judged). ``text``: what was read (OCR, codes);
    ``detail``: values per element (e.g. each character's confidence)."""

    name: str
    value: float | None
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    decision: str = ""
    text: str | None = None
    detail: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > MAX_MEASUREMENT_NAME:
            raise ValueError(f"measurement name must be 1-{MAX_MEASUREMENT_NAME} characters: {self.name!r}")
        for key in ("value", "lo", "hi"):
            number = getattr(self, key)
            if number is not None:
                if not np.isfinite(number):
                    raise ValueError(f"measurement {self.name!r}: {key} {number} is not finite")
                object.__setattr__(self, key, float(number))
        if self.decision not in ("", "OK", "REVIEW", "NG"):
            raise ValueError(f"measurement {self.name!r}: decision {self.decision!r}")
        if self.decision == "OK" and self.value is None and self.text is None:
            raise ValueError(f"measurement {self.name!r}: OK without a value")
        object.__setattr__(self, "detail", tuple(float(v) for v in self.detail))

    @classmethod
    def from_dict(cls, doc: dict) -> Measurement:
        return cls(**{**doc, "detail": tuple(doc.get("detail", ()))})


class ErrorCode(IntEnum):
    NONE = 0
    RESULT_BUFFER_OVERFLOW = 1
    RECORD_FAILED = 2  # the station could not make a decision durable and stopped deciding
    SOURCE_FAILED = 3  # a camera or image source stopped
    STOPPED = 4
    TRIGGER_REFUSED = 5  # a trigger that could not give a part (part ID over the limit, no such source)
    JOB_UNKNOWN = 6  # the PLC asked for a job number no recipe has
    JOB_REFUSED = 7  # a job change asked mid-part (Trigger or TriggerAck still set) or that failed to load
    COMMAND_INVALID = 8  # the PLC's command area held something no command means (ignored whole)
    PLC_LINK_LOST = 9  # the station held itself because its PLC link dropped (``on_plc_lost: hold``)


# Errors the PLC clears with ErrorReset; the others clear when their cause does.
RESETTABLE_ERRORS = frozenset(
    {
        ErrorCode.RESULT_BUFFER_OVERFLOW,
        ErrorCode.TRIGGER_REFUSED,
        ErrorCode.JOB_UNKNOWN,
        ErrorCode.JOB_REFUSED,
        ErrorCode.COMMAND_INVALID,
    }
)


@dataclass(frozen=True)
class PublishedResult:
    """A part's verdict as the line sees it."""

    seq: int  # 1, 2, 3... per station run; 0 means no result yet
    uid: str
    part_id: str
    verdict: str
    reason: str
    scores: dict[str, float | None]
    decided_at: str  # ISO 8601, UTC
    latency_ms: float
    recipe: str = ""
    decisions: dict[str, str] = field(default_factory=dict)  # each check's own OK / REVIEW / NG
    # What each tool check measured or read, by name (None: could not be measured).
    measurements: dict[str, dict[str, float | None]] = field(default_factory=dict)
