"""Blob analysis: threshold, connected components, and their sizes (numpy + OpenCV, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Method = Literal["otsu", "fixed", "adaptive"]


@dataclass(frozen=True)
class Blobs:
    """Regions kept by the area filter: area (K,) px², bounding boxes (K, 4) x, y, w, h, centroids
    (K, 2); ``labels`` the component image (0: none, else 1 + the blob's index)."""

    area: np.ndarray
    boxes: np.ndarray
    centroids: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.area.shape[0])

    def _regions(self):
        """Each region's outline points (its convex hull), one array per blob."""
        for i, (x, y, w, h) in enumerate(self.boxes[:, :4]):
            region = (self.labels[y : y + h, x : x + w] == i + 1).astype(np.uint8)
            contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            yield cv2.convexHull(np.concatenate(contours)).reshape(-1, 2)  # a few dozen points

    @property
    def lengths(self) -> np.ndarray:
        """Each region's Feret diameter, px: the longest distance across it (between its outermost
        pixel centres, plus the pixel they stand for), so a diagonal scratch measures its length,
        not its bounding box's side."""
        out = np.zeros(len(self))
        for i, hull in enumerate(self._regions()):
            points = hull.astype(float)
            out[i] = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1).max()) + 1.0
        return out

    @property
    def elongation(self) -> np.ndarray:
        """Length over width of each region's smallest enclosing rotated rectangle (pixels as
        squares): 1 for a disc or a square, 30 for a 120 x 4 px scratch at any angle."""
        out = np.ones(len(self))
        for i, hull in enumerate(self._regions()):
            (_, _), (a, b), _ = cv2.minAreaRect(hull.astype(np.float32))
            out[i] = (max(a, b) + 1.0) / (min(a, b) + 1.0)
        return out

    @property
    def roundness(self) -> np.ndarray:
        """Area over the disc its Feret diameter spans, 4A / (π L²): near 1 for a round blob (0.85
        at 5 px radius, where pixels are coarse), towards 0 for a scratch."""
        return 4.0 * self.area / (np.pi * np.maximum(self.lengths, 1.0) ** 2)

    def select(self, keep: np.ndarray) -> Blobs:
        """Only the blobs ``keep`` marks, renumbered."""
        index = np.zeros(len(self) + 1, np.int32)
        index[1:][keep] = np.arange(1, int(keep.sum()) + 1)
        return Blobs(self.area[keep], self.boxes[keep], self.centroids[keep], index[self.labels])


def threshold(
    grey: np.ndarray,
    method: Method,
    polarity: Literal["dark", "light"],
    level: float = 128.0,
    block: int = 51,
    offset: float = 10.0,
) -> tuple[np.ndarray, float | None]:
    """The blob mask (uint8 0/255): pixels darker (``dark``) or lighter than the threshold."""
    if grey.ndim != 2 or grey.dtype != np.uint8:
        grey = cv2.cvtColor(grey, cv2.COLOR_RGB2GRAY) if grey.ndim == 3 else grey
        grey = np.clip(grey, 0, 255).astype(np.uint8)
    mode = cv2.THRESH_BINARY_INV if polarity == "dark" else cv2.THRESH_BINARY
    if method == "adaptive":
        # blob pixels lie ``offset`` beyond the mean of their neighbourhood
        c = offset if polarity == "dark" else -offset
        mask = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, mode, block, c)
        return mask, None
    if method == "otsu":
        used, mask = cv2.threshold(grey, 0, 255, mode + cv2.THRESH_OTSU)
        return mask, float(used)
    if polarity == "dark":
        return np.where(grey < level, 255, 0).astype(np.uint8), float(level)
    return np.where(grey > level, 255, 0).astype(np.uint8), float(level)


def find_blobs(mask: np.ndarray, min_area_px: float = 0.0, max_area_px: float | None = None) -> Blobs:
    """Connected components (8-connected) of ``mask``, keeping areas in [min, max]."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(
        (mask > 0).astype(np.uint8), connectivity=8
    )
    area = stats[1:, cv2.CC_STAT_AREA].astype(float)
    keep = area >= min_area_px
    if max_area_px is not None:
        keep &= area <= max_area_px
    index = np.zeros(n, np.int32)
    index[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    return Blobs(
        area=area[keep],
        boxes=stats[1:, :4][keep],
        centroids=centroids[1:][keep],
        labels=index[labels],
    )
