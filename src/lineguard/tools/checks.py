"""Tools as a recipe's checks: each takes the check's prepared image and gives a decision, its
measured values (the record's ``Measurement``s, what SPC charts) and an overlay picture.

One rule turns values into a decision (``decide``): any value out of tolerance is NG; a judged
value that could not be measured leaves the check without a decision, which the recipe's
fail-safe turns into REVIEW or NG; a value inside a review band is REVIEW; otherwise OK.
"""

from __future__ import annotations

import calendar
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

import cv2
import numpy as np

from lineguard.decision import Decision
from lineguard.preprocess.pattern import TemplateMatcher
from lineguard.results import Measurement
from lineguard.tools import measure as gauge
from lineguard.tools.blob import Blobs, find_blobs, threshold
from lineguard.tools.config import (
    PART_ID,
    TOOLS,
    BlobToolConfig,
    Caliper,
    CircleFeature,
    CodeToolConfig,
    ColorToolConfig,
    DefectRules,
    EdgeFeature,
    Limits,
    LineFeature,
    MeasureToolConfig,
    OcrToolConfig,
    PairFeature,
    PresenceToolConfig,
    RegionRules,
    ToolSettings,
    date_pattern,
    expected_pattern,
    resolve,
)
from lineguard.tools.ocr import CharReading, OcrUnavailable, TextReader, TextReading

MIN_CALIPERS_FOUND = 0.5  # a line or circle fit needs an edge on at least this share of its calipers
RUNNER_UP_POSITIONS = 8  # expectation-guided reading tries runner-ups at this many weakest characters
RUNNER_UP_BELOW = 0.95  # ...of those read with less confidence than this
GREEN, RED, YELLOW, CYAN = (40, 200, 60), (230, 40, 40), (240, 200, 0), (0, 200, 230)


@dataclass(frozen=True)
class ToolResult:
    decision: Decision | None  # None: the tool could not judge the part (the reason says why)
    score: float | None
    measurements: tuple[Measurement, ...]
    reason: str = ""
    overlay: np.ndarray | None = None  # RGB uint8, the size of the image judged
    timings_ms: dict[str, float] = field(default_factory=dict)


class Tool(Protocol):
    kind: str

    def run(self, image: np.ndarray, part_id: str = "") -> ToolResult: ...


def judged(
    name: str, value: float | None, unit: str, limits: Limits | None
) -> tuple[Measurement, float | None]:
    """A value with its tolerance and what it alone decides, and its usage of the tolerance."""
    if limits is None or (not _has_limits(limits)):
        return Measurement(name, value, unit), None
    lo, hi = limits.limits
    if value is None:
        return Measurement(name, None, unit, lo, hi), None
    decision, usage = limits.judge(value)
    return Measurement(name, value, unit, lo, hi, decision), usage


def _has_limits(limits: Limits) -> bool:
    return any(v is not None for v in limits.limits)


def _describe(m: Measurement) -> str:
    value = f"{m.name} {m.value:.4g} {m.unit}".rstrip()
    if m.lo is not None and m.hi is not None:
        where = "outside" if m.decision == "NG" else "near a limit of"
        return f"{value} {where} [{m.lo:g}, {m.hi:g}]"
    if m.hi is not None:
        return f"{value} above max {m.hi:g}"
    return f"{value} below min {m.lo:g}"


def decide(
    measurements: tuple[Measurement, ...], usages: list[float | None], failures: list[str]
) -> tuple[Decision | None, float | None, str]:
    """(decision, score, reason): the worst of the judged values; the score is the largest
    tolerance usage (1 at a limit)."""
    finite = [u for u in usages if u is not None]
    score = max(finite) if finite else (0.0 if not failures else None)
    bad = [m for m in measurements if m.decision == "NG"]
    unmeasured = [
        m
        for m in measurements
        if m.value is None and m.text is None and (m.lo is not None or m.hi is not None)
    ]
    if bad:
        return Decision.NG, score, "; ".join([*(_describe(m) for m in bad), *failures])
    if unmeasured or failures:
        return None, None, "; ".join(failures) or "not measured: " + ", ".join(m.name for m in unmeasured)
    review = [m for m in measurements if m.decision == "REVIEW"]
    if review:
        return Decision.REVIEW, score, "; ".join(_describe(m) for m in review)
    return Decision.OK, score, ""


def _rgb(image: np.ndarray) -> np.ndarray:
    """An 8-bit RGB copy to draw on (images are RGB or grey, 8 or 16 bit)."""
    if image.dtype != np.uint8:
        image = (image.astype(np.float32) / (257.0 if image.dtype == np.uint16 else 1.0)).clip(0, 255)
        image = image.astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()


def _pt(p: np.ndarray | tuple[float, float], shift: int = 4) -> tuple[int, int]:
    return round(float(p[0]) * (1 << shift)), round(float(p[1]) * (1 << shift))


def _label(
    overlay: np.ndarray, text: str, at: np.ndarray | tuple[float, float], colour: tuple[int, int, int]
) -> None:
    scale = max(0.35, overlay.shape[0] / 900)
    x, y = int(at[0]) + 4, max(int(at[1]) - 4, 10)
    cv2.putText(overlay, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(overlay, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _legend(overlay: np.ndarray, measurements: list[Measurement]) -> None:
    """The judged values, top left, each in the colour of its own decision."""
    step = max(12, overlay.shape[0] // 30)
    shown = [m for m in measurements if m.decision]
    for i, m in enumerate(shown):
        value = "not measured" if m.value is None else f"{m.value:.4g} {m.unit}"
        colour = GREEN if m.decision == "OK" else (YELLOW if m.decision == "REVIEW" else RED)
        _label(overlay, f"{m.name} {value}", (0, step * (i + 1)), colour)


# -- measure ----------------------------------------------------------------------------------


@dataclass
class _Found:
    kind: str
    point: np.ndarray | None = None  # edge, pair middle, circle centre
    width: float | None = None
    line: gauge.Line | None = None
    circle: gauge.Circle | None = None
    edges: list[gauge.Edge] = field(default_factory=list)
    calipers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


class MeasureTool:
    kind = "measure"

    @classmethod
    def build(cls, config: MeasureToolConfig, mm_per_px: float | None, threads: int = 1) -> MeasureTool:
        return cls(config, mm_per_px)

    def __init__(self, config: MeasureToolConfig, mm_per_px: float | None = None) -> None:
        import scipy.ndimage
        import scipy.optimize  # noqa: F401  (at start-up: the first part must not pay for it)

        self.config = config
        self.mm_per_px = config.mm_per_px or mm_per_px
        if config.needs_mm and self.mm_per_px is None:
            raise ValueError(
                "unit mm needs a scale: set mm_per_px, or give the check a camera_calibration made "
                "with a reference view (`lineguard calibrate --reference`)"
            )

    def _caliper(
        self,
        image: np.ndarray,
        start: np.ndarray | tuple[float, float],
        end: np.ndarray | tuple[float, float],
        f: Caliper,
    ) -> list[gauge.Edge]:
        return gauge.caliper_edges(
            image,
            tuple(start),
            tuple(end),
            width=f.width,
            sigma=f.sigma,
            threshold=f.threshold,
            polarity=f.polarity,
        )

    def _find(self, image: np.ndarray, name: str, f: object) -> _Found:
        if isinstance(f, EdgeFeature):
            edge = gauge.pick(self._caliper(image, f.start, f.end, f), f.select)
            if edge is None:
                raise gauge.MeasureError(f"{name}: no {f.polarity} edge along the caliper")
            return _Found(
                "edge",
                np.array([edge.x, edge.y]),
                edges=[edge],
                calipers=[(np.array(f.start), np.array(f.end))],
            )
        if isinstance(f, PairFeature):
            pair = gauge.edge_pair(self._caliper(image, f.start, f.end, f), f.region, f.select)
            if pair is None:
                raise gauge.MeasureError(f"{name}: no edge pair around a {f.region} region along the caliper")
            a, b = pair
            middle = np.array([(a.x + b.x) / 2, (a.y + b.y) / 2])
            width = float(np.hypot(b.x - a.x, b.y - a.y))
            return _Found(
                "pair", middle, width, edges=[a, b], calipers=[(np.array(f.start), np.array(f.end))]
            )
        if isinstance(f, LineFeature | CircleFeature):
            calipers = (
                gauge.line_calipers(f.start, f.end, f.calipers, f.search)
                if isinstance(f, LineFeature)
                else gauge.circle_calipers(f.centre, f.radius, f.calipers, f.search)
            )
            edges = [e for a, b in calipers if (e := gauge.pick(self._caliper(image, a, b, f), f.select))]
            needed = max(3, int(np.ceil(MIN_CALIPERS_FOUND * len(calipers))))
            if len(edges) < needed:
                raise gauge.MeasureError(
                    f"{name}: {len(edges)} of {len(calipers)} calipers found an edge ({needed} needed)"
                )
            points = np.array([[e.x, e.y] for e in edges])
            if isinstance(f, LineFeature):
                return _Found("line", line=gauge.fit_line(points), edges=edges, calipers=calipers)
            circle = gauge.unblurred(gauge.fit_circle(points), edges)
            return _Found("circle", circle.centre, circle=circle, edges=edges, calipers=calipers)
        raise TypeError(f"unknown feature {f!r}")

    def _value(self, quantity: str, found: list[_Found]) -> float:
        a = found[0]
        if quantity == "width":
            return float(a.width)  # type: ignore[arg-type]
        if quantity in ("diameter", "radius", "roundness"):
            circle = a.circle
            assert circle is not None
            return {"diameter": 2 * circle.radius, "radius": circle.radius, "roundness": circle.rms}[quantity]
        if quantity == "straightness":
            assert a.line is not None
            return a.line.rms
        if quantity in ("x", "y"):
            assert a.point is not None
            return float(a.point[0 if quantity == "x" else 1])
        b = found[1]
        if quantity == "angle":
            assert a.line is not None and b.line is not None
            return gauge.angle_between(a.line, b.line)
        # distance
        if a.line is not None and b.line is not None:
            return gauge.line_to_line(a.line, b.line)
        if a.line is not None or b.line is not None:
            line = a.line if a.line is not None else b.line
            point = b.point if a.line is not None else a.point
            assert line is not None and point is not None
            return line.distance_to(point)
        assert a.point is not None and b.point is not None
        return float(np.hypot(*(a.point - b.point)))

    def run(self, image: np.ndarray, part_id: str = "") -> ToolResult:
        start = time.perf_counter()
        found: dict[str, _Found] = {}
        failures: list[str] = []
        for name, f in self.config.features.items():
            try:
                found[name] = self._find(image, name, f)
            except (gauge.MeasureError, ValueError, np.linalg.LinAlgError) as exc:
                failures.append(str(exc))
        measured = time.perf_counter()
        measurements, usages = [], []
        for spec in self.config.measurements:
            value = None
            if all(f in found for f in spec.of):
                value = self._value(spec.value, [found[f] for f in spec.of])
                if spec.unit == "mm":
                    value *= self.mm_per_px  # type: ignore[operator]
            m, usage = judged(spec.name, value, spec.unit, spec if spec.judged else None)
            measurements.append(m)
            usages.append(usage)
        # Fit residuals go into the record too (a worn edge shows in them first).
        for name, item in found.items():
            fit = item.line or item.circle
            if fit is not None and not any(m.name == f"{name}.rms" for m in measurements):
                scale = self.mm_per_px if self.config.needs_mm and self.mm_per_px else 1.0
                unit = "mm" if self.config.needs_mm and self.mm_per_px else "px"
                measurements.append(Measurement(f"{name}.rms", fit.rms * scale, unit))
        decision, score, reason = decide(tuple(measurements), usages, failures)
        overlay = self._overlay(image, found, decision)
        _legend(overlay, measurements)
        end = time.perf_counter()
        timings = {"measure": 1e3 * (measured - start), "overlay": 1e3 * (end - measured)}
        return ToolResult(decision, score, tuple(measurements), reason, overlay, timings)

    def _overlay(self, image: np.ndarray, found: dict[str, _Found], decision: Decision | None) -> np.ndarray:
        out = _rgb(image)
        colour = GREEN if decision == Decision.OK else RED
        for name, f in found.items():
            for a, b in f.calipers:
                cv2.line(out, _pt(a), _pt(b), YELLOW, 1, cv2.LINE_AA, 4)
            for e in f.edges:
                cv2.drawMarker(out, (round(e.x), round(e.y)), CYAN, cv2.MARKER_CROSS, 7, 1)
            if f.line is not None:
                cv2.line(out, _pt(f.line.ends[0]), _pt(f.line.ends[1]), colour, 1, cv2.LINE_AA, 4)
            if f.circle is not None:
                cv2.circle(out, _pt(f.circle.centre), round(f.circle.radius * 16), colour, 1, cv2.LINE_AA, 4)
            anchor = f.point if f.point is not None else (f.line.ends[0] if f.line is not None else (0, 0))
            _label(out, name, anchor, colour)
        return out


# -- blob -------------------------------------------------------------------------------------


class RegionSizer:
    """Counts and sizes regions in their rules' unit and judges them: one rule for blobs and for a
    segmenter's defects. Values are named ``{prefix}count``, ``largest_area``, ``total_area`` and
    ``largest_length``."""

    def __init__(self, rules: RegionRules, mm_per_px: float | None, prefix: str = "") -> None:
        scale = rules.mm_per_px or mm_per_px
        self.rules = rules
        self.unit = rules.unit or ("mm" if scale else "px")
        if self.unit == "mm" and scale is None:
            raise ValueError("unit mm needs a scale: set mm_per_px, or give the check a camera_calibration")
        self.length_scale = scale if self.unit == "mm" and scale else 1.0
        self.prefix = prefix

    def find(self, mask: np.ndarray, max_area: float | None = None) -> Blobs:
        """The regions of ``mask`` the size and shape filters keep."""
        area_scale = self.length_scale**2
        max_px = None if max_area is None else max_area / area_scale
        blobs = find_blobs(mask, self.rules.min_area / area_scale, max_px)
        keep = np.ones(len(blobs), bool)
        if self.rules.elongation is not None:
            keep &= self.rules.elongation.holds(blobs.elongation)
        if self.rules.roundness is not None:
            keep &= self.rules.roundness.holds(blobs.roundness)
        return blobs if keep.all() else blobs.select(keep)

    def judge(self, blobs: Blobs) -> tuple[list[Measurement], list[float | None]]:
        r = self.rules
        area_unit = "mm2" if self.unit == "mm" else "px2"
        areas = blobs.area * self.length_scale**2
        lengths = blobs.lengths * self.length_scale
        values = [
            ("count", float(len(blobs)), "", r.count),
            ("largest_area", float(areas.max()) if len(blobs) else 0.0, area_unit, r.largest_area),
            ("total_area", float(areas.sum()), area_unit, r.total_area),
            ("largest_length", float(lengths.max()) if len(blobs) else 0.0, self.unit, r.largest_length),
        ]
        measurements, usages = [], []
        for name, value, unit, limits in values:
            m, usage = judged(self.prefix + name, value, unit, limits)
            measurements.append(m)
            usages.append(usage)
        return measurements, usages


def _outline(overlay: np.ndarray, blobs: Blobs, colour: tuple[int, int, int]) -> None:
    mask = (blobs.labels > 0).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(overlay, contours, -1, colour, 1, cv2.LINE_AA)


class BlobTool:
    kind = "blob"

    @classmethod
    def build(cls, config: BlobToolConfig, mm_per_px: float | None, threads: int = 1) -> BlobTool:
        return cls(config, mm_per_px)

    def __init__(self, config: BlobToolConfig, mm_per_px: float | None = None) -> None:
        self.config = config
        self.sizer = RegionSizer(config, mm_per_px)

    def run(self, image: np.ndarray, part_id: str = "") -> ToolResult:
        c = self.config
        start = time.perf_counter()
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        mask, _ = threshold(grey, c.threshold, c.polarity, c.level, c.block, c.offset)
        blobs = self.sizer.find(mask, c.max_area)
        found = time.perf_counter()
        measurements, usages = self.sizer.judge(blobs)
        decision, score, reason = decide(tuple(measurements), usages, [])
        overlay = _rgb(image)
        colour = RED if decision != Decision.OK else GREEN
        _outline(overlay, blobs, colour)
        _label(overlay, f"{len(blobs)} blobs", (4, 16), colour)
        timings = {"blobs": 1e3 * (found - start), "overlay": 1e3 * (time.perf_counter() - found)}
        return ToolResult(decision, score, tuple(measurements), reason, overlay, timings)


class DefectSizer:
    """A segmenter's defects on one part: the regions of its probability map at the NG threshold,
    counted and sized in the check's image pixels (or mm), and — with rules — the part's decision
    (see :class:`~lineguard.tools.config.DefectRules`)."""

    def __init__(self, rules: DefectRules, mm_per_px: float | None, review: float, ng: float) -> None:
        self.sizer = RegionSizer(rules, mm_per_px, prefix="defects.")
        self.judges = any(rules.rules)  # without rules the sizes are recorded, the score decides
        self.review, self.ng = float(review), float(ng)

    def run(self, image: np.ndarray, probability: np.ndarray) -> ToolResult:
        start = time.perf_counter()
        h, w = image.shape[:2]
        if probability.shape[:2] != (h, w):  # the network's input size: back onto the check's pixels
            probability = cv2.resize(probability.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        defects = self.sizer.find(probability >= self.ng)
        measurements, usages = self.sizer.judge(defects)
        decision, score, reason = decide(tuple(measurements), usages, [])
        doubtful = defects
        if decision == Decision.OK and self.review < self.ng:
            doubtful = self.sizer.find(probability >= self.review)
            at_review, _ = self.sizer.judge(doubtful)
            broken = [m for m in at_review if m.decision == "NG"]
            if broken:
                decision = Decision.REVIEW
                reason = "at the REVIEW threshold " + "; ".join(_describe(m) for m in broken)
        found = time.perf_counter()
        overlay = _rgb(image)
        _outline(overlay, doubtful, YELLOW)
        _outline(overlay, defects, RED)
        _label(overlay, f"{len(defects)} defects", (4, 16), RED if len(defects) else GREEN)
        timings = {"defects": 1e3 * (found - start), "overlay": 1e3 * (time.perf_counter() - found)}
        return ToolResult(decision, score, tuple(measurements), reason, overlay, timings)


# -- ocr --------------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def printed_date(text: str, fmt: str) -> date | None:
    """The first date in ``text`` printed in ``fmt``; month-only dates mean the month's last day."""
    for match in re.finditer(date_pattern(fmt), text):
        try:
            parsed = datetime.strptime(match.group(), fmt).date()
        except ValueError:
            continue  # 13-2027: digits where a date goes, not a date
        if "%d" not in fmt:
            parsed = parsed.replace(day=calendar.monthrange(parsed.year, parsed.month)[1])
        return parsed
    return None


def months_between(start: date, end: date) -> int:
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - 1 if end.day < start.day and add_months(start, months) > end else months


class OcrTool:
    kind = "ocr"

    @classmethod
    def build(cls, config: OcrToolConfig, mm_per_px: float | None, threads: int = 1) -> OcrTool:
        return cls(config, threads)

    def __init__(
        self, config: OcrToolConfig, threads: int = 1, today: Callable[[], date] = date.today
    ) -> None:
        self.config = config
        self.today = today
        try:
            self.reader = TextReader(
                config.print, config.polarity, config.charset, 0.5, threads, engine=config.engine
            )
        except OcrUnavailable as exc:
            raise ValueError(str(exc)) from None

    def _guided(self, chars: list[CharReading], pattern: re.Pattern[str]) -> str | None:
        """A reading that matches ``pattern`` when some of the least certain characters are
        replaced by their runner-ups, if there is one."""
        doubtful = sorted(
            (i for i, c in enumerate(chars) if c.confidence < RUNNER_UP_BELOW and c.alternatives),
            key=lambda i: chars[i].confidence,
        )[:RUNNER_UP_POSITIONS]
        options = [[chars[i].char, *(a for a, _ in chars[i].alternatives)] for i in doubtful]
        text = [c.char for c in chars]
        for choice in itertools.islice(itertools.product(*options), 1, 4096):
            for i, char in zip(doubtful, choice, strict=True):
                text[i] = char
            candidate = "".join(text)
            if pattern.fullmatch(candidate):
                return candidate
        return None

    def run(self, image: np.ndarray, part_id: str = "") -> ToolResult:
        if self._lacks_part_id(part_id):
            return self.verify(TextReading(()), image, part_id)  # not worth reading
        return self.verify(self.reader.read(image), image, part_id)

    def _lacks_part_id(self, part_id: str) -> bool:
        return self.config.expect is not None and PART_ID in self.config.expect and not part_id

    def verify(self, reading: TextReading, image: np.ndarray, part_id: str = "") -> ToolResult:
        """Judge what was read from ``image`` against the expectation and the expiry rule."""
        if self._lacks_part_id(part_id):
            reason = "expect refers to {part_id}, and this part came without one (trigger, file name)"
            return ToolResult(None, None, (), reason)
        c = self.config
        start = time.perf_counter()
        text = reading.text
        # the line's characters with one space between lines, as ``text`` joins them
        chars = [
            ch
            for i, line in enumerate(reading.lines)
            for ch in ((*line.chars,) if i == 0 else (_SPACE, *line.chars))
        ]
        detail = tuple(ch.confidence for ch in chars if ch.char != " ")
        confidence = reading.confidence
        problems: list[str] = []
        review: list[str] = []
        if not text:
            problems.append("no text found")
        text_decision = ""
        if c.expect is not None and text:
            pattern = expected_pattern(c.expect, part_id)
            if pattern.fullmatch(text):
                text_decision = "OK"
            elif (guided := self._guided(chars, pattern)) is not None:
                text_decision = "REVIEW"
                review.append(
                    f"read {text!r}; matches {c.expect!r} only as {guided!r} (runner-up characters)"
                )
            else:
                text_decision = "NG"
                problems.append(f"read {text!r}, expected {c.expect!r}")
        elif c.expect is not None:
            text_decision = "NG"
        measurements = [
            Measurement(
                "text", confidence if text else 0.0, "", text=text, decision=text_decision, detail=detail
            )
        ]
        if c.expiry is not None:
            printed = printed_date(text, c.expiry.format) if text else None
            if printed is None:
                measurements.append(
                    Measurement("expiry_months", None, "months", lo=c.expiry.min_months, decision="NG")
                )
                if text:
                    problems.append(f"no date in the format {c.expiry.format!r} in {text!r}")
            else:
                today = self.today()
                months = months_between(today, printed)
                ok = printed >= add_months(today, c.expiry.min_months)
                measurements.append(
                    Measurement(
                        "expiry_months",
                        months,
                        "months",
                        lo=c.expiry.min_months,
                        decision="OK" if ok else "NG",
                    )
                )
                if not ok:
                    problems.append(
                        f"expiry {printed.isoformat()} is under {c.expiry.min_months} months "
                        f"after {today.isoformat()}"
                    )
        if text and confidence < c.min_confidence:
            review.append(f"read {text!r} with confidence {confidence:.2f} (< {c.min_confidence})")
        score = 1.0 - confidence if text else 1.0
        if problems:
            decision, reason = Decision.NG, "; ".join(problems)
        elif review:
            decision, reason = Decision.REVIEW, "; ".join(review)
        else:
            decision, reason = Decision.OK, ""
        overlay = _rgb(image)
        colour = GREEN if decision == Decision.OK else RED
        for line in reading.lines:
            cv2.polylines(overlay, [np.round(line.box).astype(np.int32)], True, colour, 2, cv2.LINE_AA)
        _label(overlay, text or "(nothing read)", (8, 24), colour)
        timings = {**reading.timings_ms, "verify": 1e3 * (time.perf_counter() - start)}
        return ToolResult(decision, score, tuple(measurements), reason, overlay, timings)


_SPACE = CharReading(" ", 1.0)


# -- code -------------------------------------------------------------------------------------

# ISO/IEC 15415 grades of the symbol contrast parameter (SC, %): A from 70, B 55, C 40, D 20.
CONTRAST_GRADES = ((70.0, "A"), (55.0, "B"), (40.0, "C"), (20.0, "D"))


def contrast_grade(contrast: float) -> str:
    return next((grade for floor, grade in CONTRAST_GRADES if contrast >= floor), "F")


def symbol_contrast(grey: np.ndarray, corners: np.ndarray) -> float:
    """Symbol contrast, %: the spread between the light and dark modules' reflectance inside the
    code (5th to 95th percentile of the grey levels, as 255 = 100 %) — ISO/IEC 15415's SC taken on
    the image, not with a verifier's calibrated optics."""
    mask = np.zeros(grey.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 255)
    inside = grey[mask > 0]
    if inside.size < 4:
        return 0.0
    low, high = np.percentile(inside, [5, 95])
    return float(100.0 * (high - low) / 255.0)


class CodeTool:
    kind = "code"

    @classmethod
    def build(cls, config: CodeToolConfig, mm_per_px: float | None, threads: int = 1) -> CodeTool:
        return cls(config)

    def __init__(self, config: CodeToolConfig) -> None:
        try:
            import zxingcpp
        except ImportError:
            raise ValueError('reading codes needs zxing-cpp: pip install "lineguard[tools]"') from None
        self.config = config
        self._read = zxingcpp.read_barcodes
        self._formats = zxingcpp.barcode_formats_from_str(",".join(config.formats))

    def run(self, image: np.ndarray, part_id: str = "") -> ToolResult:
        c = self.config
        if c.expect is not None and PART_ID in c.expect and not part_id:
            reason = "expect refers to {part_id}, and this part came without one (trigger, file name)"
            return ToolResult(None, None, (), reason)
        start = time.perf_counter()
        overlay = _rgb(image)
        grey = cv2.cvtColor(overlay, cv2.COLOR_RGB2GRAY)
        codes = [b for b in self._read(grey, formats=self._formats) if b.valid]
        corners = [
            np.array([[p.x, p.y] for p in (b.position.top_left, b.position.top_right,
                      b.position.bottom_right, b.position.bottom_left)], float)
            for b in codes
        ]  # fmt: skip
        order = sorted(range(len(codes)), key=lambda i: (corners[i][:, 1].min(), corners[i][:, 0].min()))
        read = time.perf_counter()
        pattern = None if c.expect is None else expected_pattern(c.expect, part_id)
        count_ok = len(codes) == c.count
        measurements = [Measurement("count", len(codes), "", c.count, c.count, "OK" if count_ok else "NG")]
        problems = [] if count_ok else [
            "no code found" if not codes else f"found {len(codes)} codes, expected {c.count}"
        ]  # fmt: skip
        for k, i in enumerate(order):
            code, suffix = codes[i], (f".{k + 1}" if c.count > 1 or len(codes) > 1 else "")
            matched = "" if pattern is None else ("OK" if pattern.fullmatch(code.text) else "NG")
            measurements.append(Measurement(f"code{suffix}", None, "", text=code.text, decision=matched))
            if matched == "NG":
                problems.append(f"{code.format} reads {code.text!r}, expected {c.expect!r}")
            contrast = symbol_contrast(grey, corners[i])
            low = c.min_contrast is not None and contrast < c.min_contrast
            measurements.append(
                Measurement(
                    f"contrast{suffix}",
                    contrast,
                    "%",
                    lo=c.min_contrast,
                    decision="" if c.min_contrast is None else ("NG" if low else "OK"),
                    text=contrast_grade(contrast),
                )
            )
            if low:
                problems.append(f"symbol contrast {contrast:.0f} % below {c.min_contrast:g} %")
        decision = Decision.NG if problems else Decision.OK
        colour = GREEN if decision == Decision.OK else RED
        for k, i in enumerate(order):
            cv2.polylines(overlay, [np.round(corners[i]).astype(np.int32)], True, colour, 2, cv2.LINE_AA)
            _label(overlay, f"{k + 1}: {codes[i].text}", corners[i].min(axis=0), colour)
        if not codes:
            _label(overlay, "no code found", (8, 24), RED)
        timings = {"read": 1e3 * (read - start), "verify": 1e3 * (time.perf_counter() - read)}
        score = 1.0 if problems else 0.0
        return ToolResult(decision, score, tuple(measurements), "; ".join(problems), overlay, timings)


# -- color ------------------------------------------------------------------------------------


def mean_lab(image: np.ndarray) -> np.ndarray:
    """Mean CIELAB (D65) of an RGB image, 8 or 16 bit, its values taken as sRGB (colour-science's
    conversions: OpenCV's float Lab is off by up to 0.2)."""
    from colour import XYZ_to_Lab, sRGB_to_XYZ

    if image.ndim != 3:
        raise ValueError("the color tool needs a colour image; this one is grey")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    lab = XYZ_to_Lab(sRGB_to_XYZ(image.reshape(-1, 3).astype(np.float64) / scale))
    return np.asarray(lab).mean(axis=0)


class ColorTool:
    kind = "color"

    @classmethod
    def build(cls, config: ColorToolConfig, mm_per_px: float | None, threads: int = 1) -> ColorTool:
        return cls(config)

    def __init__(self, config: ColorToolConfig) -> None:
        try:
            from colour import XYZ_to_Lab, sRGB_to_XYZ  # noqa: F401  (mean_lab's, checked at start-up)
            from colour.difference import delta_E_CIE2000
        except ImportError:
            raise ValueError(
                'colour differences need colour-science: pip install "lineguard[tools]"'
            ) from None
        self.config = config
        self._delta_e = delta_E_CIE2000

    def run(self, image: np.ndarray, part_id: str = "") -> ToolResult:
        c = self.config
        start = time.perf_counter()
        lab = mean_lab(image)
        delta = float(self._delta_e(lab, np.asarray(c.reference, float)))
        recorded = [Measurement(name, float(v)) for name, v in zip(("L", "a", "b"), lab, strict=True)]
        judged_delta, usage = judged("delta_e", delta, "", c.delta_e)
        measurements = (judged_delta, *recorded)
        decision, score, reason = decide(measurements, [usage], [])
        overlay = _rgb(image)
        colour = GREEN if decision == Decision.OK else (YELLOW if decision == Decision.REVIEW else RED)
        cv2.rectangle(overlay, (0, 0), (overlay.shape[1] - 1, overlay.shape[0] - 1), colour, 2)
        _label(overlay, f"dE00 {delta:.2f}  L {lab[0]:.1f} a {lab[1]:.1f} b {lab[2]:.1f}", (4, 16), colour)
        timings = {"color": 1e3 * (time.perf_counter() - start)}
        return ToolResult(decision, score, measurements, reason, overlay, timings)


# -- presence ---------------------------------------------------------------------------------


class PresenceTool:
    kind = "presence"

    @classmethod
    def build(cls, config: PresenceToolConfig, mm_per_px: float | None, threads: int = 1) -> PresenceTool:
        from lineguard.data.image_io import read_image  # the one file a tool reads, at start-up
        from lineguard.errors import LineGuardError

        try:
            template = read_image(config.template)
        except LineGuardError as exc:
            raise ValueError(f"template: {exc}") from None
        return cls(config, template)

    def __init__(self, config: PresenceToolConfig, template: np.ndarray) -> None:
        self.config = config
        try:
            self.matcher = TemplateMatcher(template, config.angle_range)
        except ValueError as exc:
            raise ValueError(f"template {config.template}: {exc}") from None

    def run(self, image: np.ndarray, part_id: str = "") -> ToolResult:
        c = self.config
        start = time.perf_counter()
        found = self.matcher.find(image)
        matched = time.perf_counter()
        present = found.score >= c.min_score
        score_m = Measurement("score", found.score, "", lo=c.min_score, decision="OK" if present else "NG")
        pose = [
            (("x", found.x, "px", c.x)),
            ("y", found.y, "px", c.y),
            ("angle", found.angle, "deg", c.angle),
        ]
        measurements, usages = [score_m], []
        for name, value, unit, limits in pose:
            m, usage = judged(name, value if present else None, unit, limits if present else None)
            measurements.append(m)
            usages.append(usage)
        failures = [] if present else [f"pattern not found (best score {found.score:.2f} < {c.min_score})"]
        if present:
            decision, score, reason = decide(tuple(measurements), usages, [])
        else:
            decision, score, reason = Decision.NG, 1.0, failures[0]
        overlay = _rgb(image)
        colour = GREEN if decision == Decision.OK else (YELLOW if decision == Decision.REVIEW else RED)
        h, w = self.matcher.template.shape
        box = cv2.boxPoints(((found.x, found.y), (w, h), -found.angle))
        cv2.polylines(overlay, [np.round(box).astype(np.int32)], True, colour, 2, cv2.LINE_AA)
        cv2.drawMarker(overlay, (round(found.x), round(found.y)), colour, cv2.MARKER_CROSS, 12, 1)
        _label(overlay, f"score {found.score:.2f}  angle {found.angle:.2f} deg", box.min(axis=0), colour)
        timings = {"match": 1e3 * (matched - start), "overlay": 1e3 * (time.perf_counter() - matched)}
        return ToolResult(decision, score, tuple(measurements), reason, overlay, timings)


def build_tool(config: ToolSettings, mm_per_px: float | None, threads: int = 1) -> Tool:
    """The runnable tool its registry entry names; raises ValueError when it cannot run with this
    configuration."""
    return resolve(TOOLS[config.kind].tool).build(config, mm_per_px, threads)
