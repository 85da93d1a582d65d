"""Align each part to a reference image before inspection (numpy + OpenCV).

Fixtures and conveyors leave parts a few pixels off; a model trained on aligned
parts would score that shift as an anomaly. Translation uses phase correlation
(fast, robust to lighting changes); euclidean (shift + rotation) refines with
OpenCV's ECC. An alignment that cannot be trusted raises, so the check fails
fail-safe rather than judging a misplaced part.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lineguard.preprocess.transforms import to_uint8_scale


class AlignmentError(ValueError):
    pass


def _grey_float(image: np.ndarray) -> np.ndarray:
    image = to_uint8_scale(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image.astype(np.float32)


@dataclass
class Aligner:
    reference: np.ndarray
    motion: str = "translation"  # or "euclidean"
    max_shift_fraction: float = 0.25  # a bigger shift is a wrong part or a bad image, not a misplacement
    min_response: float = 0.05  # phase-correlation peak strength below this: nothing to align on

    def __post_init__(self) -> None:
        if self.motion not in ("translation", "euclidean"):
            raise ValueError(f"motion must be translation or euclidean, got {self.motion!r}")
        self._ref = _grey_float(self.reference)
        h, w = self._ref.shape
        self._window = cv2.createHanningWindow((w, h), cv2.CV_32F)

    def estimate(self, image: np.ndarray) -> np.ndarray:
        """The 2x3 warp that maps the image onto the reference."""
        grey = _grey_float(image)
        if grey.shape != self._ref.shape:
            raise AlignmentError(
                f"image is {grey.shape[1]}x{grey.shape[0]}, "
                f"reference is {self._ref.shape[1]}x{self._ref.shape[0]}"
            )
        (dx, dy), response = cv2.phaseCorrelate(self._ref, grey, self._window)
        h, w = grey.shape
        if response < self.min_response:
            raise AlignmentError(f"no reliable match with the reference (peak {response:.3f})")
        if abs(dx) > self.max_shift_fraction * w or abs(dy) > self.max_shift_fraction * h:
            raise AlignmentError(f"shift ({dx:.1f}, {dy:.1f}) px is beyond the allowed range")
        warp = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        if self.motion == "euclidean":
            criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
            try:
                _, warp = cv2.findTransformECC(
                    self._ref,
                    grey,
                    warp,
                    cv2.MOTION_EUCLIDEAN,
                    criteria,
                    None,
                    5,  # type: ignore[call-overload]
                )  # OpenCV's stubs lack the (inputMask=None, gaussFiltSize) overload it documents
            except cv2.error as exc:
                raise AlignmentError(f"rotation refinement did not converge ({exc.err})") from None
        return warp

    def align(self, image: np.ndarray) -> np.ndarray:
        warp = self.estimate(image)
        h, w = image.shape[:2]
        return cv2.warpAffine(
            image,
            warp,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
