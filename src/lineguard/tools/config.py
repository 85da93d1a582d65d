"""What a tool check is told in STATION.yaml (``tool:`` beside ``bundle:``): typed and validated at
start-up, each error naming its key. Coordinates are pixels of the check's image after its
undistortion, alignment and ROI crop (x right, y down)."""

from __future__ import annotations

import functools
import importlib
import operator
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lineguard.tools.measure import Polarity, Select
from lineguard.tools.ocr import DEFAULT_CHARSET, Engine, PrintKind

Point = tuple[float, float]
NAME = r"^[A-Za-z0-9_.\-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ToolSettings(_Strict):
    """What every tool's settings have: ``kind``, the literal its registry entry is found by."""

    kind: str

    @property
    def needs_mm(self) -> bool:
        """Whether its values are in mm (the check must give a scale)."""
        return False


def _check_limits(self: Limits) -> None:
    if (self.nominal is None) != (self.tol is None):
        raise ValueError("nominal and tol go together (nominal ± tol)")
    if self.nominal is not None and (self.min is not None or self.max is not None):
        raise ValueError("give nominal ± tol, or min / max, not both")
    if self.nominal is None and self.min is None and self.max is None:
        raise ValueError("give nominal and tol, or min and/or max")
    if self.min is not None and self.max is not None and self.min >= self.max:
        raise ValueError(f"tolerance upside down: min {self.min} is not below max {self.max}")
    if self.review_band and (self.min is None) != (self.max is None):
        raise ValueError("review_band needs a two-sided tolerance (nominal ± tol, or min and max)")


class Limits(_Strict):
    """A tolerance: ``nominal`` ± ``tol``, or ``min`` and/or ``max`` (inclusive). ``review_band``:
    the share of the tolerance width next to a limit (inside it) that is judged REVIEW."""

    nominal: float | None = None
    tol: float | None = Field(None, gt=0)
    min: float | None = None
    max: float | None = None
    review_band: float = Field(0.0, ge=0, lt=0.5)

    @model_validator(mode="after")
    def _consistent(self) -> Limits:
        _check_limits(self)
        return self

    @property
    def limits(self) -> tuple[float | None, float | None]:
        if self.nominal is not None and self.tol is not None:
            return self.nominal - self.tol, self.nominal + self.tol
        return self.min, self.max

    def judge(self, value: float) -> tuple[Literal["OK", "REVIEW", "NG"], float]:
        """(decision, usage): usage is 1 at a limit, below 1 inside, above outside — for two-sided
        limits the distance from the middle in half-widths."""
        lo, hi = self.limits
        if lo is not None and hi is not None:
            half = (hi - lo) / 2.0
            usage = abs(value - (lo + hi) / 2.0) / half
            band = self.review_band * (hi - lo)
            if value < lo or value > hi:
                return "NG", usage
            return ("REVIEW" if value < lo + band or value > hi - band else "OK"), usage
        limit = hi if hi is not None else lo
        assert limit is not None
        scale = abs(limit) or 1.0
        usage = 1.0 + ((value - limit) if hi is not None else (limit - value)) / scale
        return ("NG" if usage > 1.0 else "OK"), usage


class Toleranced(Limits):
    """Limits given beside other keys, all optional: without any, the value is recorded only."""

    @model_validator(mode="after")
    def _consistent(self) -> Toleranced:
        if self.nominal is None and self.min is None and self.max is None and self.tol is None:
            if self.review_band:
                raise ValueError("review_band without a tolerance")
            return self
        _check_limits(self)
        return self

    @property
    def judged(self) -> bool:
        return not (self.nominal is None and self.min is None and self.max is None)


# -- measure ----------------------------------------------------------------------------------


class Caliper(_Strict):
    width: int = Field(5, ge=1, le=101, description="pixels averaged across the caliper")
    sigma: float = Field(1.0, ge=0.4, le=20, description="smoothing along it, px")
    threshold: float = Field(20.0, gt=0, description="least edge strength, grey levels per px")
    polarity: Polarity = "any"
    select: Select = "first"


class EdgeFeature(Caliper):
    """One edge along a caliper from ``start`` to ``end``: a point."""

    kind: Literal["edge"]
    start: Point
    end: Point


class PairFeature(Caliper):
    """Two edges bounding a ``dark`` or ``light`` region along the caliper: a width, and its middle."""

    kind: Literal["pair"]
    start: Point
    end: Point
    region: Literal["dark", "light"]


class LineFeature(Caliper):
    """A straight edge near the segment start-end: ``calipers`` across it, each ``search`` px to
    either side, their edges fitted by a line. The calipers run in the direction start -> end
    turned 90° clockwise on the screen (a segment drawn upwards: from left to right), which is
    the direction ``polarity`` follows."""

    kind: Literal["line"]
    start: Point
    end: Point
    search: float = Field(gt=0, le=1000)
    calipers: int = Field(10, ge=3, le=400)


class CircleFeature(Caliper):
    """A circular edge near ``centre`` / ``radius``: radial calipers from ``radius - search`` to
    ``radius + search``, their edges fitted by a circle. Polarity runs outwards."""

    kind: Literal["circle"]
    centre: Point
    radius: float = Field(gt=0)
    search: float = Field(gt=0)
    calipers: int = Field(24, ge=6, le=720)
    width: int = Field(3, ge=1, le=101)  # narrow: a wide radial caliper averages across the curve


Feature = Annotated[EdgeFeature | PairFeature | LineFeature | CircleFeature, Field(discriminator="kind")]
Quantity = Literal["distance", "width", "diameter", "radius", "angle", "x", "y", "straightness", "roundness"]
# Which features each quantity takes: one of these kind tuples.
SIGNATURES: dict[str, tuple[tuple[str, ...], ...]] = {
    "width": (("pair",),),
    "diameter": (("circle",),),
    "radius": (("circle",),),
    "roundness": (("circle",),),
    "straightness": (("line",),),
    "angle": (("line", "line"),),
    "x": (("edge",), ("pair",), ("circle",)),
    "y": (("edge",), ("pair",), ("circle",)),
    "distance": tuple(
        (a, b) for a in ("edge", "pair", "circle", "line") for b in ("edge", "pair", "circle", "line")
    ),
}


class MeasurementSpec(Toleranced):
    """A value computed from one or two features, in ``unit`` (mm needs the scale: ``mm_per_px``
    or the check's camera calibration), judged against its tolerance when one is given."""

    name: str = Field(min_length=1, max_length=128, pattern=NAME)
    value: Quantity
    of: list[str] = Field(min_length=1, max_length=2)
    unit: Literal["px", "mm", "deg"] = "px"

    @model_validator(mode="after")
    def _unit(self) -> MeasurementSpec:
        if (self.value == "angle") != (self.unit == "deg"):
            raise ValueError(
                f"unit: {self.value} is measured in {'deg' if self.value == 'angle' else 'px or mm'}"
            )
        return self


class MeasureToolConfig(ToolSettings):
    kind: Literal["measure"]
    mm_per_px: float | None = Field(None, gt=0, description="scale; default: the check's camera_calibration")
    features: dict[str, Feature] = Field(min_length=1)
    measurements: list[MeasurementSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> MeasureToolConfig:
        names = [m.name for m in self.measurements]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"measurement names must be unique, repeated: {repeated}")
        for i, m in enumerate(self.measurements):
            missing = [f for f in m.of if f not in self.features]
            if missing:
                raise ValueError(
                    f"measurements.{i} ({m.name}): of {missing} is not in features {sorted(self.features)}"
                )
            kinds = tuple(self.features[f].kind for f in m.of)
            if kinds not in SIGNATURES[m.value]:
                wanted = " or ".join("+".join(k) for k in SIGNATURES[m.value])
                raise ValueError(
                    f"measurements.{i} ({m.name}): {m.value} takes {wanted}, not {'+'.join(kinds)}"
                )
        if not any(m.judged for m in self.measurements):
            raise ValueError("measurements: give at least one a tolerance (nominal/tol or min/max)")
        return self

    @property
    def needs_mm(self) -> bool:
        return any(m.unit == "mm" for m in self.measurements)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): what the calipers reach, to check against the image at start-up."""
        xs: list[float] = []
        ys: list[float] = []
        for f in self.features.values():
            half = f.width / 2.0
            if isinstance(f, CircleFeature):
                reach = f.radius + f.search + half
                xs += [f.centre[0] - reach, f.centre[0] + reach]
                ys += [f.centre[1] - reach, f.centre[1] + reach]
                continue
            ends = [f.start, f.end]
            if isinstance(f, LineFeature):
                (sx, sy), (ex, ey) = f.start, f.end
                length = max(((ex - sx) ** 2 + (ey - sy) ** 2) ** 0.5, 1e-9)
                nx, ny = -(ey - sy) / length * f.search, (ex - sx) / length * f.search
                ends = [(x + k * nx, y + k * ny) for x, y in ends for k in (-1, 1)]
            for x, y in ends:
                xs += [x - half, x + half]
                ys += [y - half, y + half]
        return min(xs), min(ys), max(xs), max(ys)


# -- blob -------------------------------------------------------------------------------------


class Range(_Strict):
    """Bounds a region's shape must lie within to be counted (inclusive; either may be left out)."""

    min: float | None = Field(None, ge=0)
    max: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _bounded(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("give min and/or max")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"range upside down: min {self.min} is not below max {self.max}")
        return self

    def holds(self, values: np.ndarray) -> np.ndarray:
        inside = np.ones(values.shape, bool)
        if self.min is not None:
            inside &= values >= self.min
        if self.max is not None:
            inside &= values <= self.max
        return inside


class RegionRules(_Strict):
    """Sizes of regions (blobs, a segmenter's defects) and the rules they pass: areas in px² or mm²
    (``unit: mm``), lengths (the longest distance across a region, its Feret diameter) in px or
    mm. Regions smaller than ``min_area`` are noise, not counted; so are those whose shape lies
    outside ``elongation`` (length / width of the smallest rotated rectangle around it: 1 round or
    square, large for a scratch) or ``roundness`` (4·area / (π·length²): near 1 round, towards 0
    for a line)."""

    unit: Literal["px", "mm"] = "px"
    mm_per_px: float | None = Field(None, gt=0)
    min_area: float = Field(0.0, ge=0, description="smaller regions are noise, not counted")
    elongation: Range | None = None
    roundness: Range | None = None
    count: Limits | None = None
    largest_area: Limits | None = None
    total_area: Limits | None = None
    largest_length: Limits | None = None

    @property
    def rules(self) -> tuple[Limits | None, ...]:
        return self.count, self.largest_area, self.total_area, self.largest_length

    @property
    def needs_mm(self) -> bool:
        return self.unit == "mm"


class BlobToolConfig(RegionRules, ToolSettings):
    """Particles, bubbles, spots: thresholded regions darker (or lighter) than the surface, counted
    and sized."""

    kind: Literal["blob"]
    threshold: Literal["otsu", "fixed", "adaptive"] = "otsu"
    level: float = Field(128.0, ge=0, le=255, description="fixed: the grey level")
    block: int = Field(51, ge=3, le=1001, description="adaptive: neighbourhood size, px (odd)")
    offset: float = Field(10.0, ge=0, le=255, description="adaptive: grey levels beyond the local mean")
    polarity: Literal["dark", "light"] = "dark"
    max_area: float | None = Field(None, gt=0, description="larger regions are not blobs (background)")

    @field_validator("block")
    @classmethod
    def _odd(cls, block: int) -> int:
        if block % 2 == 0:
            raise ValueError(f"must be odd, got {block}")
        return block

    @model_validator(mode="after")
    def _rules(self) -> BlobToolConfig:
        if not any(self.rules):
            raise ValueError("give at least one rule: count, largest_area, total_area or largest_length")
        if self.max_area is not None and self.max_area <= self.min_area:
            raise ValueError(f"max_area {self.max_area} is not above min_area {self.min_area}")
        return self


class DefectRules(RegionRules):
    """A segmenter check's ``defects:``. Its defects are the regions whose pixels reach the bundle's
    NG threshold; their count and sizes go into the record. With rules, the rules decide the part
    instead of the part score (so a small accepted defect passes): NG when the defects break a
    rule; REVIEW when the regions at the REVIEW threshold would; otherwise OK. The unit defaults
    to mm when the check has a scale (``mm_per_px`` or its camera calibration)."""

    unit: Literal["px", "mm"] | None = None  # type: ignore[assignment]

    @property
    def needs_mm(self) -> bool:
        return self.unit == "mm"


# -- ocr --------------------------------------------------------------------------------------

PART_ID = "{part_id}"
_DATE_FIELDS = {"%d": r"\d{2}", "%m": r"\d{2}", "%y": r"\d{2}", "%Y": r"\d{4}"}


def expected_pattern(expect: str, part_id: str) -> re.Pattern[str]:
    """``expect`` with ``{part_id}`` standing for the part's ID, taken literally."""
    return re.compile(expect.replace(PART_ID, re.escape(part_id)))


def _compiled(expect: str | None) -> str | None:
    if expect is not None:
        try:
            expected_pattern(expect, "PART-1")
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
    return expect


def date_pattern(fmt: str) -> str:
    """A regex for dates printed in ``fmt`` (strftime: %d %m %y %Y and literal characters)."""
    out, i = [], 0
    while i < len(fmt):
        if fmt[i] == "%":
            field = fmt[i : i + 2]
            if field not in _DATE_FIELDS:
                raise ValueError(f"format: {field!r} is not one of {sorted(_DATE_FIELDS)}")
            out.append(_DATE_FIELDS[field])
            i += 2
        else:
            out.append(re.escape(fmt[i]))
            i += 1
    return "".join(out)


class ExpiryRule(_Strict):
    """A printed date that must lie at least ``min_months`` after the day the part is inspected."""

    format: str = Field("%m-%Y", min_length=2, max_length=32)
    min_months: int = Field(0, ge=0, le=600)

    @field_validator("format")
    @classmethod
    def _format(cls, fmt: str) -> str:
        date_pattern(fmt)
        if "%m" not in fmt or not ("%Y" in fmt or "%y" in fmt):
            raise ValueError(f"{fmt!r} needs a month (%m) and a year (%Y or %y)")
        datetime.strptime(datetime(2030, 12, 31).strftime(fmt), fmt)  # the format round-trips
        return fmt


class OcrToolConfig(ToolSettings):
    """Read the printed text and verify it: ``expect`` must match the whole text (its lines joined
    by one space), where ``{part_id}`` stands for the part's ID; ``expiry`` checks a printed date.
    A reading below ``min_confidence`` (mean per character) is REVIEW, never OK."""

    kind: Literal["ocr"]
    engine: Engine = Field("auto", description="rapidocr, tesseract, or auto: RapidOCR when installed")
    print: PrintKind = "auto"
    polarity: Literal["dark", "light"] = "dark"
    charset: str = Field(DEFAULT_CHARSET, min_length=1, max_length=512)
    expect: str | None = Field(None, max_length=1024)
    expiry: ExpiryRule | None = None
    min_confidence: float = Field(0.8, ge=0, le=1)

    @field_validator("expect")
    @classmethod
    def _compiles(cls, expect: str | None) -> str | None:
        return _compiled(expect)

    @field_validator("charset")
    @classmethod
    def _printable(cls, charset: str) -> str:
        if any(not c.isprintable() for c in charset):
            raise ValueError("only printable characters")
        return charset

    @model_validator(mode="after")
    def _something_to_verify(self) -> OcrToolConfig:
        if self.expect is None and self.expiry is None:
            raise ValueError("give expect (a regex) and/or expiry: a reading alone decides nothing")
        return self


# -- code -------------------------------------------------------------------------------------

CodeFormat = Literal[
    "DataMatrix", "QRCode", "MicroQRCode", "Aztec", "PDF417",
    "Code128", "Code39", "Code93", "EAN13", "EAN8", "UPCA", "UPCE", "ITF", "Codabar", "DataBar",
]  # fmt: skip


class CodeToolConfig(ToolSettings):
    """Read Data Matrix, QR and 1-D codes (zxing-cpp) and verify them: exactly ``count`` codes of
    ``formats``, each one's text matching ``expect`` (``{part_id}``: the part's ID, literally).
    ``min_contrast``: the least symbol contrast, % (ISO/IEC 15415's SC parameter: the spread
    between the light and dark modules' reflectance), a print-quality floor."""

    kind: Literal["code"]
    formats: tuple[CodeFormat, ...] = Field(("DataMatrix", "QRCode", "Code128", "EAN13"), min_length=1)
    count: int = Field(1, ge=1, le=20)
    expect: str | None = Field(None, max_length=1024)
    min_contrast: float | None = Field(None, gt=0, le=100)

    @field_validator("expect")
    @classmethod
    def _compiles(cls, expect: str | None) -> str | None:
        return _compiled(expect)


# -- color ------------------------------------------------------------------------------------


class ColorToolConfig(ToolSettings):
    """The mean colour of the check's image (its ROI) in CIELAB (D65; the camera's RGB taken as
    sRGB) against ``reference`` (L*, a*, b*), as the CIEDE2000 colour difference ΔE00, judged by
    ``delta_e`` (e.g. ``{max: 2.0}``). The mean L*, a*, b* are recorded too: run the tool on a
    golden part (``lineguard measure``) to read its reference."""

    kind: Literal["color"]
    reference: tuple[float, float, float]
    delta_e: Limits

    @field_validator("reference")
    @classmethod
    def _lab(cls, lab: tuple[float, float, float]) -> tuple[float, float, float]:
        if not 0 <= lab[0] <= 100 or any(abs(v) > 128 for v in lab[1:]):
            raise ValueError(f"{list(lab)} is not L*, a*, b* (L* 0..100, a* and b* -128..128)")
        return lab

    @field_validator("delta_e")
    @classmethod
    def _positive(cls, limits: Limits) -> Limits:
        if limits.limits[1] is None or limits.limits[1] <= 0:
            raise ValueError("give a positive upper limit (max, or nominal ± tol): ΔE is a distance")
        return limits


# -- presence ---------------------------------------------------------------------------------


class PresenceToolConfig(ToolSettings):
    """Find a taught pattern (``template``: an image cut from a good part) by normalised
    cross-correlation over ± ``angle_range`` degrees: present when its score reaches
    ``min_score``. Its centre ``x``, ``y`` (px of the check's image) and ``angle`` (degrees,
    counter-clockwise on the screen) are recorded and may carry tolerances."""

    kind: Literal["presence"]
    template: Path
    min_score: float = Field(0.7, gt=0, lt=1)
    angle_range: float = Field(0.0, ge=0, le=180)
    x: Limits | None = None
    y: Limits | None = None
    angle: Limits | None = None


class ToolKind(NamedTuple):
    """A tool kind, by import strings: its typed settings (a ``ToolSettings`` whose ``kind`` literal
    is its key) and the class that runs it (``Class.build(settings, mm_per_px, threads)``)."""

    settings: str
    tool: str


# Every tool kind, one line each: a new kind is its own file (settings + tool class) and a line here.
TOOLS: dict[str, ToolKind] = {
    "measure": ToolKind("lineguard.tools.config:MeasureToolConfig", "lineguard.tools.checks:MeasureTool"),
    "blob": ToolKind("lineguard.tools.config:BlobToolConfig", "lineguard.tools.checks:BlobTool"),
    "ocr": ToolKind("lineguard.tools.config:OcrToolConfig", "lineguard.tools.checks:OcrTool"),
    "code": ToolKind("lineguard.tools.config:CodeToolConfig", "lineguard.tools.checks:CodeTool"),
    "color": ToolKind("lineguard.tools.config:ColorToolConfig", "lineguard.tools.checks:ColorTool"),
    "presence": ToolKind("lineguard.tools.config:PresenceToolConfig", "lineguard.tools.checks:PresenceTool"),
}
TOOL_KINDS = tuple(TOOLS)


def resolve(name: str) -> Any:
    """The class an import string ``module:Class`` names."""
    module, _, attribute = name.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _settings() -> tuple[type[ToolSettings], ...]:
    classes = []
    for kind, entry in TOOLS.items():
        settings = resolve(entry.settings)
        if get_args(settings.model_fields["kind"].annotation) != (kind,):
            raise TypeError(
                f"TOOLS[{kind!r}]: {entry.settings} has kind {settings.model_fields['kind'].annotation}"
            )
        classes.append(settings)
    return tuple(classes)


if TYPE_CHECKING:
    ToolConfig = ToolSettings  # statically, any tool's settings; isinstance narrows to one
else:  # pydantic validates a check's `tool:` against the entry its `kind` names
    ToolConfig = Annotated[functools.reduce(operator.or_, _settings()), Field(discriminator="kind")]
