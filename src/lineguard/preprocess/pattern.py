"""Template matching: find a taught pattern by normalised cross-correlation, optionally over a range
of rotations, to sub-pixel position (numpy + OpenCV, no I/O).

The search runs coarse to fine: every angle's rotated template correlated (OpenCV's normalised
TM_CCOEFF, masked to the rotated template) on a downscaled pyramid level; the best pose is then
refined at full resolution by ECC (OpenCV's findTransformECC, euclidean motion), which gives the
position to a fraction of a pixel, the angle to a fraction of the search step, and the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_TEMPLATE_SIDE = 8  # px: a smaller pattern has too little structure to be found reliably
COARSE_MIN_SIDE = 24  # px: the coarse level keeps the template at least this large


@dataclass(frozen=True)
class Match:
    """Where the pattern is: its centre in the image (x, y px), its rotation relative to the
    template (degrees, counter-clockwise on the screen) and the correlation score (-1..1)."""

    x: float
    y: float
    angle: float
    score: float


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.dtype == np.uint16:
        image = (image / 257.0).astype(np.uint8)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _rotated(template: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The template rotated about its centre on a canvas that holds it, and the mask of its pixels
    (None at 0°: no mask, the faster correlation)."""
    if angle == 0.0:
        return template, None
    h, w = template.shape
    t = np.radians(angle)
    cw = int(np.ceil(abs(w * np.cos(t)) + abs(h * np.sin(t)))) | 1
    ch = int(np.ceil(abs(w * np.sin(t)) + abs(h * np.cos(t)))) | 1
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    m[:, 2] += ((cw - 1) / 2.0 - (w - 1) / 2.0, (ch - 1) / 2.0 - (h - 1) / 2.0)
    canvas = cv2.warpAffine(template, m, (cw, ch), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (cw, ch), flags=cv2.INTER_NEAREST)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # no interpolated border pixels
    return canvas, mask


class TemplateMatcher:
    """Find ``template`` (grey or RGB) in images; ``angle_range``: ± degrees searched, in steps of
    ``angle_step`` (default: the step that moves the template's corner by about one pixel at the
    coarse level)."""

    def __init__(
        self, template: np.ndarray, angle_range: float = 0.0, angle_step: float | None = None
    ) -> None:
        grey = _grey(template)
        if grey.size == 0 or min(grey.shape) < MIN_TEMPLATE_SIDE:
            raise ValueError(
                f"template is {grey.shape[1]}x{grey.shape[0]} px, under {MIN_TEMPLATE_SIDE} px a side"
            )
        if float(grey.std()) < 2.0:
            raise ValueError("template is flat (no contrast): nothing to match on")
        if not 0.0 <= angle_range <= 180.0:
            raise ValueError(f"angle_range {angle_range} is not within 0..180 degrees")
        self.template = grey
        self.level = 0
        while min(grey.shape) / 2 ** (self.level + 1) >= COARSE_MIN_SIDE and self.level < 3:
            self.level += 1
        coarse = grey
        for _ in range(self.level):
            coarse = cv2.pyrDown(coarse)
        if angle_step is None:
            radius = 0.5 * float(np.hypot(*coarse.shape))
            angle_step = float(np.degrees(1.0 / radius)) * 2.0
        self.angle_step = angle_step if angle_range > 0 else 0.0
        count = int(np.ceil(angle_range / angle_step)) if angle_range > 0 else 0
        self.angles = [0.0] if count == 0 else list(np.linspace(-angle_range, angle_range, 2 * count + 1))
        self._coarse = [(a, *_rotated(coarse, a)) for a in self.angles]

    def find(self, image: np.ndarray) -> Match:
        """The best match anywhere in ``image``; ValueError when the image is smaller than the
        template."""
        grey = _grey(image)
        th, tw = self.template.shape
        if grey.shape[0] < th or grey.shape[1] < tw:
            raise ValueError(f"image {grey.shape[1]}x{grey.shape[0]} is smaller than the template {tw}x{th}")
        small = grey
        for _ in range(self.level):
            small = cv2.pyrDown(small)
        best = (-2.0, 0.0, 0.0, 0.0)  # score, angle, centre x, centre y (full-resolution px)
        scale = 2.0**self.level
        for angle, rotated, mask in self._coarse:
            if rotated.shape[0] > small.shape[0] or rotated.shape[1] > small.shape[1]:
                continue
            scores = cv2.matchTemplate(small, rotated, cv2.TM_CCOEFF_NORMED, mask=mask)
            scores = np.nan_to_num(scores, nan=-1.0, posinf=-1.0, neginf=-1.0)
            _, top, _, (x, y) = cv2.minMaxLoc(scores)
            if top > best[0]:
                cx = (x + (rotated.shape[1] - 1) / 2.0) * scale  # pyrDown: coarse i is fine 2i
                cy = (y + (rotated.shape[0] - 1) / 2.0) * scale
                best = (top, angle, cx, cy)
        _, angle, cx, cy = best
        return self._refine(grey, best[0], angle, cx, cy)

    def _refine(self, grey: np.ndarray, coarse: float, angle: float, cx: float, cy: float) -> Match:
        """Sub-pixel position and angle by ECC (a least-squares fit of the euclidean motion
        that maximises the correlation) from the coarse pose; the score is ECC's correlation.
        When ECC does not converge, the coarse pose and its score stand."""
        th, tw = self.template.shape
        rotation = cv2.getRotationMatrix2D(((tw - 1) / 2.0, (th - 1) / 2.0), angle, 1.0)
        # template pixel -> image pixel, the template's centre onto the coarse centre
        warp = rotation.copy()
        warp[:, 2] += (cx - (tw - 1) / 2.0, cy - (th - 1) / 2.0)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)
        try:
            score, warp = cv2.findTransformECC(
                self.template.astype(np.float32),
                grey.astype(np.float32),
                warp.astype(np.float32),
                cv2.MOTION_EUCLIDEAN,
                criteria,
                None,
                1,  # type: ignore[call-overload]
            )  # OpenCV's stubs lack the (inputMask=None, gaussFiltSize) overload it documents
        except cv2.error:
            return Match(cx, cy, angle, coarse)
        centre = warp @ np.array([(tw - 1) / 2.0, (th - 1) / 2.0, 1.0])
        refined = float(np.degrees(np.arctan2(warp[0, 1], warp[0, 0])))
        if np.hypot(centre[0] - cx, centre[1] - cy) > 2.0**self.level * 2 + 2:
            return Match(cx, cy, angle, coarse)  # ECC wandered off: not the same match
        return Match(float(centre[0]), float(centre[1]), refined, float(score))


def fixture_transform(found: Match, taught: tuple[float, float]) -> np.ndarray:
    """The 2x3 warp that moves the image so the found pattern lies where it was taught, upright."""
    m = cv2.getRotationMatrix2D((found.x, found.y), -found.angle, 1.0)
    m[:, 2] += np.array([taught[0] - found.x, taught[1] - found.y])
    return m


class PatternFixture:
    """The fixture other checks follow: the pattern cut from ``reference`` at ``box`` (x, y, w, h)
    is found in each frame, and the frame is moved so the pattern lies where it lay on the
    reference, upright. A pattern found with a score under ``min_score`` is no fixture: ValueError."""

    def __init__(
        self,
        reference: np.ndarray,
        box: tuple[int, int, int, int],
        angle_range: float = 0.0,
        min_score: float = 0.7,
    ) -> None:
        x, y, w, h = box
        height, width = reference.shape[:2]
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
            raise ValueError(f"pattern {list(box)} is not inside the {width}x{height} reference image")
        self.matcher = TemplateMatcher(reference[y : y + h, x : x + w], angle_range)
        self.at = (x + (w - 1) / 2.0, y + (h - 1) / 2.0)
        self.min_score = min_score

    def transform(self, image: np.ndarray) -> tuple[np.ndarray, Match]:
        """The 2x3 warp that moves this frame onto the reference's placement, and where the
        pattern was found."""
        found = self.matcher.find(image)
        if found.score < self.min_score:
            raise ValueError(f"fixture pattern not found (best score {found.score:.2f} < {self.min_score})")
        return fixture_transform(found, self.at), found

    def locate(self, image: np.ndarray) -> tuple[np.ndarray, Match]:
        """The frame moved onto the reference's placement, and where the pattern was found."""
        warp, found = self.transform(image)
        h, w = image.shape[:2]
        moved = cv2.warpAffine(image, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return moved, found
