"""Is the model still seeing the world it was trained on? Image statistics of the parts (brightness,
contrast, focus, saturation) and their scores, compared in rolling windows against a reference
(a bundle's calibration images): the population stability index and a two-sample Kolmogorov-Smirnov
test, with alarms that rise and clear with hysteresis. Pure: numpy, OpenCV, scipy; no I/O."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import cv2
import numpy as np

PSI_BINS = 10  # reference deciles
PSI_FLOOR = 1e-4  # an empty bin's share: PSI stays finite
SATURATED = 250  # grey level at or above which a pixel counts as saturated (and at or below 255 - it)
STATISTICS = ("brightness", "contrast", "focus", "saturated")
SCORE = "score"  # the model's part score, monitored beside the image statistics
MIN_REFERENCE = 30  # fewer calibration values than this cannot tell a shift from chance
MAX_REFERENCE = 2000  # a bundle keeps at most this many values a statistic (evenly thinned)
# The monitor's defaults (the station's drift: section shows the same)
WINDOW, EVERY = 200, 20  # parts a window, parts between comparisons
RAISE_PSI, CLEAR_PSI, RAISE_P = 0.25, 0.1, 1e-3  # PSI 0.25 is the customary "large shift"


def input_statistics(preprocessing, image: np.ndarray) -> dict[str, float]:
    """The statistics of the part as the network sees it (``preprocessing.resized_rgb``): the
    same on the calibration images at fit and on every part at the station, and cheap."""
    return image_statistics(preprocessing.resized_rgb(image))


def thinned(values: Sequence[float] | np.ndarray, limit: int = MAX_REFERENCE) -> list[float]:
    """At most ``limit`` of the values, evenly spaced in their order (a bounded reference)."""
    x = np.asarray(values, float).ravel()
    if x.size > limit:
        x = x[np.linspace(0, x.size - 1, limit).round().astype(int)]
    return [float(v) for v in x]


def image_statistics(image: np.ndarray) -> dict[str, float]:
    """One part's image statistics, cheap enough for every part (run them on the downscaled
    network input): mean grey level, its standard deviation, the variance of the Laplacian (focus)
    and the share of pixels at either end of the range."""
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    grey = np.rint(np.clip(grey, 0, 255)).astype(np.uint8)  # float network inputs round alike
    saturated = (grey >= SATURATED) | (grey <= 255 - SATURATED)
    return {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "focus": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        "saturated": float(saturated.mean()),
    }


def reference_of(statistics: Sequence[Mapping[str, float]], scores: np.ndarray) -> dict:
    """The drift reference a bundle carries (its ``drift`` section): each image statistic and
    the score over the calibration's good images, thinned to ``MAX_REFERENCE``."""
    values = {name: thinned([s[name] for s in statistics]) for name in STATISTICS}
    return {"images": len(statistics), "statistics": {**values, SCORE: thinned(scores)}}


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``current`` against ``reference``, over the reference's
    quantile bins: Σ (c − r) · ln(c / r). Under 0.1: no shift; 0.1-0.25: moderate; above: large."""
    reference, current = _finite(reference, "reference"), _finite(current, "current")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    r = (
        np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1)
        / reference.size
    )
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1) / current.size
    r, c = np.maximum(r, PSI_FLOOR), np.maximum(c, PSI_FLOOR)
    return float(((c - r) * np.log(c / r)).sum())


def psi_floor(reference: np.ndarray, n_current: int, bins: int = PSI_BINS) -> float:
    """The PSI two samples of these sizes show with no shift at all (its expectation: PSI is close
    to a chi-square statistic on the bins, (k - 1) (1/n + 1/m)). Large shifts dwarf it; with a
    small reference it alone passes the customary 0.1 and 0.25, so alarms are judged on the excess."""
    reference = _finite(reference, "reference")
    k = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])).size + 1
    return float((k - 1) * (1.0 / reference.size + 1.0 / max(n_current, 1)))


def ks_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value: small when the two samples differ in distribution."""
    from scipy import stats  # here: the bundle's manifest imports this module's constants

    return float(stats.ks_2samp(_finite(reference, "reference"), _finite(current, "current")).pvalue)


def _finite(values, what: str) -> np.ndarray:
    x = np.asarray(values, float).ravel()
    if x.size < 2 or not np.isfinite(x).all():
        raise ValueError(f"{what}: at least 2 finite values needed, got {x.size}")
    return x


def onset(reference: np.ndarray, window: np.ndarray) -> int:
    """Where in ``window`` the shift most likely began: each value's position in the reference's
    distribution (0..1, 0.5 on average while nothing moved), then the split into an unmoved start
    and a moved end that fits best by least squares (the likelihood-ratio change-point estimate
    for a mean shift from a known level: the largest S²/m, S the summed departure of the last m
    parts). Missing values count as no departure."""
    ordered = np.sort(reference)
    position = (np.searchsorted(ordered, window, "left") + np.searchsorted(ordered, window, "right")) / (
        2 * ordered.size
    )
    departure = np.where(np.isfinite(window), position - 0.5, 0.0)
    from_newest = np.cumsum(departure[::-1])[::-1]  # from_newest[k] = sum of departure[k:]
    return int(np.argmax(from_newest**2 / np.arange(window.size, 0, -1)))


@dataclass(frozen=True)
class DriftEvent:
    """A statistic's alarm rose or cleared: by how much it moved, and since when."""

    statistic: str
    state: Literal["raised", "cleared"]
    at: datetime
    since: datetime  # raised: the part the shift most likely began at (``onset``); cleared: when
    # it was raised
    psi: float
    p_value: float
    reference_median: float
    current_median: float
    psi_floor: float  # the PSI these sample sizes show with no shift (``psi_floor``)


@dataclass(frozen=True)
class DriftReading:
    """A statistic at the last comparison of its window with the reference."""

    statistic: str
    psi: float
    p_value: float
    reference_median: float
    current_median: float
    psi_floor: float
    alarm_since: datetime | None  # the standing alarm's start; None when there is none


class DriftMonitor:
    """Rolling windows of each statistic against its reference. An alarm rises when a full window's
    PSI exceeds its no-shift floor (``psi_floor``) by ``raise_psi`` and the KS test rejects
    (p < ``raise_p``), and clears only when that excess falls below ``clear_psi`` (hysteresis: one
    noisy window does not toggle it). Windows are compared every ``every`` parts."""

    def __init__(
        self,
        reference: Mapping[str, Sequence[float] | np.ndarray],
        window: int = WINDOW,
        every: int = EVERY,
        raise_psi: float = RAISE_PSI,
        clear_psi: float = CLEAR_PSI,
        raise_p: float = RAISE_P,
    ) -> None:
        if window < 20 or every < 1:
            raise ValueError("a drift window needs at least 20 parts and a step of at least 1")
        if not 0 < clear_psi < raise_psi:
            raise ValueError(f"clear_psi {clear_psi} must lie between 0 and raise_psi {raise_psi}")
        # scipy.stats takes a second and 50 MB to import: at start-up, not in the first comparison
        # (at a station that is the decide thread, with a part waiting).
        from scipy import stats  # noqa: F401

        self.reference = {name: _finite(values, f"reference {name}") for name, values in reference.items()}
        self.window, self.every = window, every
        self.raise_psi, self.clear_psi, self.raise_p = raise_psi, clear_psi, raise_p
        self._values: dict[str, deque[float]] = {name: deque(maxlen=window) for name in self.reference}
        self._times: deque[datetime] = deque(maxlen=window)
        self._seen = 0
        self.raised: dict[str, DriftEvent] = {}  # the alarms standing now
        self.readings: dict[str, DriftReading] = {}  # each statistic at the last comparison

    @property
    def seen(self) -> int:
        """Parts given to ``update`` so far."""
        return self._seen

    def update(self, values: Mapping[str, float], at: datetime) -> list[DriftEvent]:
        """One part's statistics (those of the reference; others are ignored); the alarms this part
        raised or cleared."""
        for name, window in self._values.items():
            value = values.get(name)
            window.append(float(value) if value is not None and np.isfinite(value) else np.nan)
        self._times.append(at)
        self._seen += 1
        if len(self._times) < self.window or self._seen % self.every:
            return []
        events = []
        for name, window in self._values.items():
            current = np.asarray(window, float)
            current = current[np.isfinite(current)]
            if current.size < self.window // 2:
                continue  # too few measured values in this window to judge
            reference = self.reference[name]
            index, p = psi(reference, current), ks_p_value(reference, current)
            floor = psi_floor(reference, current.size)
            shown = (index, p, float(np.median(reference)), float(np.median(current)), floor)
            standing = self.raised.get(name)
            if standing is None and index - floor >= self.raise_psi and p < self.raise_p:
                since = self._times[onset(reference, np.asarray(window, float))]
                standing = DriftEvent(name, "raised", at, since, *shown)
                self.raised[name] = standing
                events.append(standing)
            elif standing is not None and index - floor < self.clear_psi:
                del self.raised[name]
                events.append(DriftEvent(name, "cleared", at, standing.at, *shown))
                standing = None
            alarm_since = standing.since if standing is not None else None
            self.readings[name] = DriftReading(name, *shown, alarm_since)
        return events
