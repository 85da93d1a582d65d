"""Gauging on images: sub-pixel edges along calipers, edge pairs, line and circle fits, and the
distances and angles between them (numpy, OpenCV, scipy; no I/O).

A caliper is a rectangle from ``start`` to ``end`` of a given ``width``; the grey values across its
width are averaged into one profile (bilinear sampling, one sample per pixel along it), smoothed
with a Gaussian of ``sigma`` and differentiated. Edges are the extrema of that derivative at least
``threshold`` grey levels per pixel strong and at least ``2 * sigma`` from either end, placed to a
fraction of a pixel by fitting a Gaussian to the derivative's peak (the derivative of a blurred
step is one), whose width also gives the blur. A circle fitted to edge points is corrected for
the blur's pull toward its centre. Directions follow the caliper: ``rising`` goes from dark to
light from ``start`` towards ``end``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Polarity = Literal["rising", "falling", "any"]
Select = Literal["first", "last", "strongest"]
# The sub-pixel peak fit: samples down to this share of the peak's height, at most this many either
# side. Chosen by the rule stated before measuring: the lowest worst-case error of a single caliper
# pair on rendered plates over blur 0.5-3 px and noise 0.5 and 3 grey levels (0.10 of 0.05-0.5).
PEAK_FLOOR = 0.10
PEAK_HALF = 8
OUTLIER_SIGMAS = 3.0  # fit points further than this many robust deviations are left out, once
MIN_OUTLIER_PX = 0.5  # ...but never points within half a pixel of the fit


class MeasureError(ValueError):
    """A feature could not be found on this part (no edge, too few points for a fit)."""


@dataclass(frozen=True)
class Edge:
    x: float
    y: float
    along: float  # pixels from the caliper's start
    amplitude: float  # signed derivative, grey levels per pixel: > 0 rising (dark to light)
    spread: float | None = None  # sigma of the derivative's peak, px: blur and smoothing together


@dataclass(frozen=True)
class Line:
    """A fitted line through ``point`` along unit ``direction``; ``ends`` the extent of its points."""

    point: np.ndarray
    direction: np.ndarray
    rms: float  # residual of the points kept, px
    used: int
    ends: tuple[np.ndarray, np.ndarray]

    def distance_to(self, p: np.ndarray) -> float:
        d = np.asarray(p, float) - self.point
        return float(abs(d[0] * self.direction[1] - d[1] * self.direction[0]))


@dataclass(frozen=True)
class Circle:
    centre: np.ndarray
    radius: float
    rms: float
    used: int


def _grey(image: np.ndarray) -> np.ndarray:
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return grey.astype(np.float32)


def profile(
    image: np.ndarray, start: tuple[float, float], end: tuple[float, float], width: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The caliper's grey profile (one sample per pixel from ``start``), the unit direction and
    the unit normal. Samples outside the image are refused (a caliper must lie inside it)."""
    p0, p1 = np.asarray(start, float), np.asarray(end, float)
    length = float(np.hypot(*(p1 - p0)))
    if length < 3:
        raise ValueError(f"caliper from {start} to {end} is under 3 px long")
    u = (p1 - p0) / length
    n = np.array([-u[1], u[0]])
    along = np.arange(int(np.floor(length)) + 1, dtype=float)
    across = np.arange(width, dtype=float) - (width - 1) / 2.0
    points = p0 + along[:, None, None] * u + across[None, :, None] * n  # (L, W, 2)
    h, w = image.shape[:2]
    if (
        points[..., 0].min() < 0
        or points[..., 1].min() < 0
        or points[..., 0].max() > w - 1
        or (points[..., 1].max() > h - 1)
    ):
        raise ValueError(f"caliper from {start} to {end} (width {width}) reaches outside the {w}x{h} image")
    grey = _grey(image)
    mapx, mapy = points[..., 0].astype(np.float32), points[..., 1].astype(np.float32)
    samples = cv2.remap(grey, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return samples.mean(axis=1), u, n


def _three_point(d: np.ndarray, i: int) -> tuple[float, float | None]:
    """Offset of the extremum at ``i`` from the Gaussian through d[i-1], d[i], d[i+1] (a parabola
    where the three do not share a sign), and that Gaussian's width (None for the parabola)."""
    a, b, c = abs(d[i - 1]), abs(d[i]), abs(d[i + 1])
    gaussian = a > 0 and c > 0 and np.sign(d[i - 1]) == np.sign(d[i]) == np.sign(d[i + 1])
    if gaussian:
        la, lb, lc = np.log(a), np.log(b), np.log(c)
    else:
        la, lb, lc = a, b, c
    denominator = la - 2 * lb + lc
    if denominator >= 0:
        return 0.0, None
    offset = float(np.clip(0.5 * (la - lc) / denominator, -0.5, 0.5))
    return offset, float(np.sqrt(-1.0 / denominator)) if gaussian else None


def _subpixel(d: np.ndarray, i: int) -> tuple[float, float | None]:
    """Offset of the extremum at ``i``, and the width (sigma, px) of the derivative's peak: a
    Gaussian fitted by weighted least squares to the log of every sample of the peak down to
    PEAK_FLOOR of its height (weights: the samples themselves, Guo 2011, so the noisy tails count
    little), at most PEAK_HALF samples either side; three points where the peak is that narrow.
    Unbiased for any peak the blur makes Gaussian, where three points alone are not."""
    sign, height = np.sign(d[i]), abs(d[i])
    lo = hi = i
    while lo > 0 and i - lo < PEAK_HALF and sign * d[lo - 1] >= PEAK_FLOOR * height:
        lo -= 1
    while hi < len(d) - 1 and hi - i < PEAK_HALF and sign * d[hi + 1] >= PEAK_FLOOR * height:
        hi += 1
    if hi - lo < 3:
        return _three_point(d, i)
    x = np.arange(lo - i, hi - i + 1, dtype=float)
    y = sign * d[lo : hi + 1]
    design = np.column_stack([np.ones_like(x), x, x * x]) * y[:, None]
    # The normal equations (3 x 3): a tenth of lstsq's cost, and well conditioned on 4-17 samples.
    _, slope, curvature = np.linalg.solve(design.T @ design, design.T @ (np.log(y) * y))
    if curvature >= 0:
        return _three_point(d, i)
    return float(np.clip(-slope / (2 * curvature), -1.0, 1.0)), float(np.sqrt(-0.5 / curvature))


def caliper_edges(
    image: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    width: int = 5,
    sigma: float = 1.0,
    threshold: float = 20.0,
    polarity: Polarity = "any",
) -> list[Edge]:
    """Every edge along the caliper, in order from ``start``."""
    from scipy.ndimage import gaussian_filter1d  # scipy: the `tools` extra

    values, u, _ = profile(image, start, end, width)
    d = gaussian_filter1d(values.astype(float), sigma, order=1, mode="nearest")
    magnitude = np.abs(d)
    edges = []
    # An edge closer to a caliper's end than its smoothing reaches is cut off and placed wrong.
    margin = max(1, int(np.ceil(2 * sigma)))
    for i in range(margin, len(d) - margin):
        if magnitude[i] < threshold or magnitude[i] < magnitude[i - 1] or magnitude[i] <= magnitude[i + 1]:
            continue
        if (polarity == "rising" and d[i] <= 0) or (polarity == "falling" and d[i] >= 0):
            continue
        offset, spread = _subpixel(d, i)
        at = i + offset
        if spread is not None and not 2 * spread <= at <= len(d) - 1 - 2 * spread:
            continue  # the peak runs off the caliper: cut, it would be placed wrong
        x, y = np.asarray(start, float) + at * u
        edges.append(Edge(float(x), float(y), float(at), float(d[i]), spread))
    return edges


def pick(edges: list[Edge], select: Select) -> Edge | None:
    if not edges:
        return None
    if select == "first":
        return edges[0]
    if select == "last":
        return edges[-1]
    return max(edges, key=lambda e: abs(e.amplitude))


def edge_pair(
    edges: list[Edge], region: Literal["dark", "light"], select: Select
) -> tuple[Edge, Edge] | None:
    """Two edges bounding a dark region (falling, then rising) or a light one (rising, then
    falling): the first such pair, the last, or the one of the strongest weaker edge."""
    first_sign = -1.0 if region == "dark" else 1.0
    pairs = []
    for i, a in enumerate(edges):
        if np.sign(a.amplitude) != first_sign:
            continue
        b = next((e for e in edges[i + 1 :] if np.sign(e.amplitude) == -first_sign), None)
        if b is not None:
            pairs.append((a, b))
    if not pairs:
        return None
    if select == "first":
        return pairs[0]
    if select == "last":
        return pairs[-1]
    return max(pairs, key=lambda ab: min(abs(ab[0].amplitude), abs(ab[1].amplitude)))


def _keep_inliers(residuals: np.ndarray) -> np.ndarray:
    spread = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    return np.abs(residuals) <= max(OUTLIER_SIGMAS * spread, MIN_OUTLIER_PX)


def fit_line(points: np.ndarray) -> Line:
    """Total least squares (orthogonal distances) on the points a robust (Huber) fit keeps."""
    points = np.asarray(points, float)
    if len(points) < 2:
        raise MeasureError(f"a line needs 2 edge points, found {len(points)}")

    def tls(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centre = p.mean(axis=0)
        _, _, vt = np.linalg.svd(p - centre)
        return centre, vt[0]

    vx, vy, x0, y0 = cv2.fitLine(points.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
    robust_normal = np.array([-vy, vx], float)
    keep = _keep_inliers((points - np.array([x0, y0], float)) @ robust_normal)
    if len(points) > 2 and 2 <= keep.sum() < len(points):
        points = points[keep]
    centre, direction = tls(points)
    normal = np.array([-direction[1], direction[0]])
    residuals = (points - centre) @ normal
    t = (points - centre) @ direction
    ends = (centre + t.min() * direction, centre + t.max() * direction)
    return Line(centre, direction, float(np.sqrt(np.mean(residuals**2))), len(points), ends)


def fit_circle(points: np.ndarray) -> Circle:
    """Algebraic (Kasa) fit as the start, a robust geometric fit to find outliers, then geometric
    least squares on the points it keeps."""
    from scipy.optimize import least_squares

    points = np.asarray(points, float)
    if len(points) < 3:
        raise MeasureError(f"a circle needs 3 edge points, found {len(points)}")

    def geometric(p: np.ndarray, loss: str = "linear") -> np.ndarray:
        a = np.column_stack([2 * p[:, 0], 2 * p[:, 1], np.ones(len(p))])
        (cx, cy, c), *_ = np.linalg.lstsq(a, (p**2).sum(axis=1), rcond=None)
        r0 = np.sqrt(max(c + cx**2 + cy**2, 1e-9))
        fit = least_squares(
            lambda q: np.hypot(p[:, 0] - q[0], p[:, 1] - q[1]) - q[2], [cx, cy, r0], loss=loss, f_scale=1.0
        )
        return fit.x

    q = geometric(points, "soft_l1")  # robust: outliers found against it, then a plain fit
    residuals = np.hypot(points[:, 0] - q[0], points[:, 1] - q[1]) - q[2]
    keep = _keep_inliers(residuals)
    if len(points) > 3 and 3 <= keep.sum() < len(points):
        points = points[keep]
        q = geometric(points)
        residuals = np.hypot(points[:, 0] - q[0], points[:, 1] - q[1]) - q[2]
    return Circle(q[:2].copy(), float(q[2]), float(np.sqrt(np.mean(residuals**2))), len(points))


def unblurred(circle: Circle, edges: list[Edge]) -> Circle:
    """The circle with the blur's pull toward its centre taken out: where blur (sigma) meets a
    curved edge, the steepest grey slope lies sigma² / 2r inside it (to first order), whichever
    side is light; sigma is the edges' median peak width (blur and the caliper's smoothing)."""
    spreads = [e.spread for e in edges if e.spread is not None]
    if not spreads or circle.radius <= 0:
        return circle
    shift = float(np.median(np.square(spreads))) / (2 * circle.radius)
    return Circle(circle.centre, circle.radius + shift, circle.rms, circle.used)


def line_calipers(
    start: tuple[float, float], end: tuple[float, float], count: int, search: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` calipers across the nominal segment start-end, each ``2 * search`` long, running
    in the direction start -> end turned 90° clockwise on the screen (y down)."""
    p0, p1 = np.asarray(start, float), np.asarray(end, float)
    u = (p1 - p0) / max(float(np.hypot(*(p1 - p0))), 1e-9)
    n = np.array([-u[1], u[0]])
    out = []
    for t in np.linspace(0.0, 1.0, count + 2)[1:-1]:  # not at the very ends
        c = p0 + t * (p1 - p0)
        out.append((c - search * n, c + search * n))
    return out


def circle_calipers(
    centre: tuple[float, float], radius: float, count: int, search: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` radial calipers around the nominal circle, from ``radius - search`` outwards."""
    c = np.asarray(centre, float)
    out = []
    for angle in np.linspace(0.0, 2 * np.pi, count, endpoint=False):
        u = np.array([np.cos(angle), np.sin(angle)])
        out.append((c + max(radius - search, 0.0) * u, c + (radius + search) * u))
    return out


def angle_between(a: Line, b: Line) -> float:
    """The acute angle between two lines, degrees in [0, 90]."""
    cos = abs(float(np.dot(a.direction, b.direction)))
    return float(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))))


def line_to_line(a: Line, b: Line) -> float:
    """Distance between two (nearly parallel) lines: the mean distance of each one's fitted
    segment ends to the other line, both ways (symmetric, and exact for parallel lines)."""
    values = [b.distance_to(p) for p in a.ends] + [a.distance_to(p) for p in b.ends]
    return float(np.mean(values))
