"""What a check does to a frame before its model or tool sees it — undistort, move the part onto the
reference (whole-image alignment or a pattern fixture), crop the ROI — as one object, so the station
and training prepare the same pixels (numpy + OpenCV, no I/O).

A labelled training image's mask and boxes follow its image through the same steps
(:meth:`CheckPreparation.place_mask`, :meth:`CheckPreparation.place_boxes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lineguard.preprocess.align import Aligner
from lineguard.preprocess.camera import CameraCalibration
from lineguard.preprocess.pattern import Match, PatternFixture
from lineguard.preprocess.transforms import crop_roi

# A box less than this share of whose area stays inside the ROI is no longer a labelled defect there.
MIN_BOX_INSIDE = 0.25


@dataclass(frozen=True)
class Placement:
    """How one frame was prepared: ``affine`` (2x3) takes undistorted frame pixels to the
    reference's (None: not moved), ``found`` is where a fixture found its pattern."""

    affine: np.ndarray | None
    found: Match | None = None


class CheckPreparation:
    """Undistort (``calibration``), move onto the reference (``aligner`` or ``fixture``, not both),
    crop ``roi`` (x, y, width, height). Every step optional."""

    def __init__(
        self,
        calibration: CameraCalibration | None = None,
        aligner: Aligner | None = None,
        fixture: PatternFixture | None = None,
        roi: tuple[int, int, int, int] | None = None,
    ) -> None:
        if aligner is not None and fixture is not None:
            raise ValueError("align to a reference image or follow a pattern fixture, not both")
        self.calibration = calibration
        self.aligner = aligner
        self.fixture = fixture
        self.roi = roi

    def place(self, image: np.ndarray) -> tuple[np.ndarray, Placement]:
        """The prepared image and how it was placed. Raises AlignmentError / ValueError when the
        frame cannot be prepared (wrong size, nothing to align on, pattern not found)."""
        if self.calibration is not None:
            image = self.calibration.undistort(image)
        affine: np.ndarray | None = None
        found = None
        if self.aligner is not None:
            affine = cv2.invertAffineTransform(self.aligner.estimate(image))
        elif self.fixture is not None:
            affine, found = self.fixture.transform(image)
        if affine is not None:
            image = _warp(image, affine, cv2.INTER_LINEAR)
        return crop_roi(image, self.roi), Placement(affine, found)

    def place_mask(self, mask: np.ndarray, placement: Placement) -> np.ndarray:
        """A label mask (the frame's size) through the same steps, without inventing labels."""
        boolean = mask.dtype == bool
        mask = mask.astype(np.uint8) if boolean else mask
        if self.calibration is not None:
            mask = self.calibration.undistort(mask, interpolation=cv2.INTER_NEAREST)
        if placement.affine is not None:
            mask = _warp(mask, placement.affine, cv2.INTER_NEAREST, border=cv2.BORDER_CONSTANT)
        mask = crop_roi(mask, self.roi)
        return mask > 0 if boolean else mask

    def place_boxes(self, boxes: np.ndarray, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (K, 4) xyxy in frame pixels, in the prepared image's: each corner moved, the box
        around them clipped to the ROI. Returns (boxes, kept): a box with less than a quarter of
        its area left inside the ROI is dropped (``kept`` False)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            return boxes.astype(np.float32), np.zeros(0, bool)
        x0, y0, x1, y1 = boxes.T
        points = np.stack([x0, y0, x1, y0, x0, y1, x1, y1], 1).reshape(-1, 2)  # 4 corners a box
        if self.calibration is not None:
            points = self.calibration.undistort_points(points)
        if placement.affine is not None:
            points = points @ placement.affine[:, :2].T + placement.affine[:, 2]
        per_box = points.reshape(-1, 4, 2)
        moved = np.concatenate([per_box.min(1), per_box.max(1)], 1)
        if self.roi is not None:
            x, y, w, h = self.roi
            moved -= np.array([x, y, x, y], np.float64)
            clipped = np.clip(moved, 0, [w, h, w, h])
        else:
            clipped = moved
        area = np.prod(np.maximum(moved[:, 2:] - moved[:, :2], 1e-9), 1)
        inside = np.prod(np.maximum(clipped[:, 2:] - clipped[:, :2], 0), 1)
        kept = inside >= MIN_BOX_INSIDE * area
        return clipped[kept].astype(np.float32), kept


def _warp(
    image: np.ndarray, affine: np.ndarray, interpolation: int, border: int = cv2.BORDER_REPLICATE
) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, affine, (w, h), flags=interpolation, borderMode=border)
