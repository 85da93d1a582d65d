"""Camera calibration from checkerboard views: camera matrix, lens distortion, px -> mm scale.

OpenCV's pinhole model with radial (k1, k2, k3) and tangential (p1, p2)
distortion. The px -> mm scale holds in one plane: the one the reference view's
board lies in, which should be where the parts are inspected.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lineguard.errors import DataError, ModelFileError

CALIBRATION_FORMAT = "lineguard-camera-calibration"
CALIBRATION_SCHEMA = 1
MIN_VIEWS = 3


@dataclass(frozen=True)
class CameraCalibration:
    camera_matrix: np.ndarray  # (3, 3)
    distortion: np.ndarray  # (5,) k1, k2, p1, p2, k3
    image_size: tuple[int, int]  # (width, height) the calibration images had
    rms_px: float  # reprojection error over every corner used
    mm_per_px: float | None = None  # in the reference view's plane, after undistortion
    views: tuple[str, ...] = ()  # the images whose board was found
    _maps: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def undistort(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """The image as a distortion-free pinhole camera with the same matrix would see it
        (``interpolation``: nearest for label masks)."""
        h, w = image.shape[:2]
        if (w, h) != tuple(self.image_size):
            raise ValueError(
                f"image is {w}x{h} but the camera was calibrated at {self.image_size[0]}x{self.image_size[1]}"
            )
        if "maps" not in self._maps:  # remap tables are built once: undistortion then costs one lookup
            self._maps["maps"] = cv2.initUndistortRectifyMap(
                self.camera_matrix, self.distortion, None, self.camera_matrix, (w, h), cv2.CV_16SC2
            )
        map1, map2 = self._maps["maps"]
        return cv2.remap(image, map1, map2, interpolation)

    def undistort_points(self, points: np.ndarray) -> np.ndarray:
        """Pixel positions (N, 2) of the distorted frame, where :meth:`undistort` puts them."""
        pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
        moved = cv2.undistortPoints(pts, self.camera_matrix, self.distortion, P=self.camera_matrix)
        return moved.reshape(-1, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CALIBRATION_FORMAT,
            "schema_version": CALIBRATION_SCHEMA,
            "camera_matrix": self.camera_matrix.tolist(),
            "distortion": self.distortion.ravel().tolist(),
            "image_size": list(self.image_size),
            "rms_px": self.rms_px,
            "mm_per_px": self.mm_per_px,
            "views": list(self.views),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraCalibration:
        return cls(
            camera_matrix=np.asarray(data["camera_matrix"], np.float64).reshape(3, 3),
            distortion=np.asarray(data["distortion"], np.float64).ravel(),
            image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
            rms_px=float(data["rms_px"]),
            mm_per_px=None if data.get("mm_per_px") is None else float(data["mm_per_px"]),
            views=tuple(data.get("views", ())),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> CameraCalibration:
        from lineguard.checksums import read_versioned_json

        doc = read_versioned_json(Path(path), CALIBRATION_FORMAT, CALIBRATION_SCHEMA, "camera calibration")
        try:
            return cls.from_dict(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: incomplete camera calibration ({exc})") from None


def board_points(pattern: tuple[int, int], square_mm: float) -> np.ndarray:
    """The inner corners of a (columns, rows) board in mm, row by row, in the board plane (z = 0)."""
    cols, rows = pattern
    grid = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2).astype(np.float32) * float(square_mm)
    return np.hstack([grid, np.zeros((len(grid), 1), np.float32)])


def find_corners(image: np.ndarray, pattern: tuple[int, int]) -> np.ndarray | None:
    """Sub-pixel inner corners of the board, or None when the whole board is not visible."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if grey.dtype != np.uint8:
        grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    found, corners = cv2.findChessboardCornersSB(grey, pattern, flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
    if not found:
        found, corners = cv2.findChessboardCorners(grey, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH)
        if not found:
            return None
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
        corners = cv2.cornerSubPix(grey, corners, (5, 5), (-1, -1), criteria)
    return corners.reshape(-1, 2).astype(np.float32)


def calibrate_camera(
    views: Sequence[tuple[str, np.ndarray]],
    pattern: tuple[int, int],
    square_mm: float,
    reference: int = 0,
) -> CameraCalibration:
    """Calibrate from named checkerboard images (all of one camera, one size).

    ``pattern``: inner corners (columns, rows). ``reference``: index in ``views``
    of the image whose board lies in the inspection plane; it sets ``mm_per_px``.
    Images where the board is not found are listed in the error if too few remain.
    """
    if square_mm <= 0:
        raise ValueError(f"square size must be positive, got {square_mm} mm")
    if min(pattern) < 2:
        raise ValueError(f"pattern counts inner corners and needs at least 2x2, got {pattern}")
    if not views:
        raise ValueError("no calibration images given")
    size = views[0][1].shape[1::-1]
    image_points, names, missing = [], [], []
    reference_corners = None
    for i, (name, image) in enumerate(views):
        if image.shape[1::-1] != size:
            raise DataError(
                name, f"is {image.shape[1]}x{image.shape[0]}, the first image {size[0]}x{size[1]}"
            )
        corners = find_corners(image, pattern)
        if corners is None:
            missing.append(name)
            if i == reference:
                raise DataError(name, f"reference view: no complete {pattern[0]}x{pattern[1]} board found")
            continue
        if i == reference:
            reference_corners = corners
        image_points.append(corners)
        names.append(name)
    if len(image_points) < MIN_VIEWS:
        raise DataError(
            views[0][0] if len(views) == 1 else Path(views[0][0]).parent,
            f"a complete {pattern[0]}x{pattern[1]} inner-corner board was found in {len(image_points)} "
            f"image(s), at least {MIN_VIEWS} are needed; not found in: {', '.join(map(str, missing)) or '-'}",
        )
    objects = [board_points(pattern, square_mm)] * len(image_points)
    rms, matrix, distortion, _, _ = cv2.calibrateCamera(objects, image_points, size, None, None)
    mm_per_px = None
    if reference_corners is not None:
        undistorted = cv2.undistortPoints(reference_corners[:, None], matrix, distortion, P=matrix)[:, 0]
        grid = undistorted.reshape(pattern[1], pattern[0], 2)
        steps = np.concatenate(
            [
                np.linalg.norm(np.diff(grid, axis=1), axis=2).ravel(),
                np.linalg.norm(np.diff(grid, axis=0), axis=2).ravel(),
            ]
        )
        mm_per_px = float(square_mm / np.mean(steps))
    return CameraCalibration(
        camera_matrix=matrix,
        distortion=distortion.ravel()[:5],
        image_size=(int(size[0]), int(size[1])),
        rms_px=float(rms),
        mm_per_px=mm_per_px,
        views=tuple(str(n) for n in names),
    )
