"""Rendered parts of known geometry for the gauging tools' tests, CLI tests and doc pictures."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Plate:
    """A light plate (x0..x1, y0..y1) with a dark bore, on a dark background; part coordinates."""

    x0: float = 60.3
    x1: float = 221.7
    y0: float = 40.6
    y1: float = 180.2
    cx: float = 160.4
    cy: float = 110.8
    r: float = 31.35


def render(
    plate: Plate,
    rng: np.random.Generator,
    size: tuple[int, int] = (240, 300),
    angle_deg: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
    blur: float = 1.0,
    noise: float = 2.0,
) -> np.ndarray:
    """Grey uint8: coverage from the signed distance to the shape's outline (exact for straight
    edges at any sub-pixel place), the part rotated about the image centre and shifted."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    centre = np.array([w / 2.0, h / 2.0])
    t = np.radians(angle_deg)
    # image -> part coordinates (the inverse of rotating the part by t about the centre, then shifting)
    dx, dy = x - centre[0] - shift[0], y - centre[1] - shift[1]
    px = np.cos(t) * dx + np.sin(t) * dy + centre[0]
    py = -np.sin(t) * dx + np.cos(t) * dy + centre[1]
    qx = np.abs(px - (plate.x0 + plate.x1) / 2) - (plate.x1 - plate.x0) / 2
    qy = np.abs(py - (plate.y0 + plate.y1) / 2) - (plate.y1 - plate.y0) / 2
    box = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    hole = np.hypot(px - plate.cx, py - plate.cy) - plate.r
    inside = np.maximum(box, -hole)  # signed distance: negative on the plate, outside the bore
    coverage = np.clip(0.5 - inside, 0.0, 1.0)
    image = 40.0 + 170.0 * coverage
    image = cv2.GaussianBlur(image, (0, 0), blur) + rng.normal(0.0, noise, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


PLATE_TOOL = {
    "kind": "measure",
    "features": {
        "across": {"kind": "pair", "start": [30, 70], "end": [260, 70], "region": "light", "width": 9},
        "left": {"kind": "line", "start": [60, 170], "end": [60, 50], "search": 14, "polarity": "rising"},
        "right": {"kind": "line", "start": [222, 170], "end": [222, 50], "search": 14, "polarity": "falling"},
        "bore": {"kind": "circle", "centre": [160, 110], "radius": 31, "search": 12, "polarity": "rising"},
    },
    "measurements": [
        {"name": "width", "value": "width", "of": ["across"], "nominal": 161.4, "tol": 0.5},
        {"name": "span", "value": "distance", "of": ["left", "right"]},
        {"name": "parallel", "value": "angle", "of": ["left", "right"], "unit": "deg", "max": 0.5},
        {"name": "bore_d", "value": "diameter", "of": ["bore"], "min": 62.0, "max": 63.4},
        {"name": "bore_to_left", "value": "distance", "of": ["bore", "left"]},
    ],
}


def particles(rng: np.random.Generator, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A shaded surface with five dark particles of 2.5..6 px radius (placed for 320x240, scaled
    to ``size``) and single-pixel specks."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    surface = 170.0 + 40.0 * (x / w) + rng.normal(0, 3, (h, w))
    for cx, cy, r in [(60, 50, 3.0), (150, 170, 6.0), (250, 80, 2.5), (280, 200, 4.0), (110, 110, 3.5)]:
        cx, cy = cx * w / 320, cy * h / 240
        surface = np.where(np.hypot(x - cx, y - cy) <= r, surface - 90.0, surface)
    surface.flat[rng.integers(0, w * h, 15)] -= 90.0
    return np.clip(cv2.GaussianBlur(surface, (0, 0), 0.8), 0, 255).astype(np.uint8)


BLOB_TOOL = {  # the blob tool of docs/tools.md: particles on a shaded surface, single-pixel specks ignored
    "kind": "blob",
    "threshold": "adaptive",
    "block": 31,
    "offset": 25,
    "min_area": 4,
    "count": {"max": 3},
    "largest_area": {"max": 60},
}
