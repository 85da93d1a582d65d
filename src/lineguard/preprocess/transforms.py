"""Resize + normalise an image into the network's float input (numpy + OpenCV only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np


def to_uint8_scale(image: np.ndarray) -> np.ndarray:
    """float32 image on the 0..255 scale, whatever the bit depth (8 or 16 bit)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32)
    if image.dtype == np.uint16:
        return image.astype(np.float32) * np.float32(255.0 / 65535.0)
    raise ValueError(f"unsupported pixel type {image.dtype}; expected uint8 or uint16")


def crop_roi(image: np.ndarray, roi: tuple[int, int, int, int] | None) -> np.ndarray:
    """The region x, y, width, height of ``image``; ValueError when it reaches outside."""
    if roi is None:
        return image
    x, y, w, h = roi
    height, width = image.shape[:2]
    if x + w > width or y + h > height:
        raise ValueError(f"ROI {tuple(roi)} reaches outside the {width}x{height} image")
    return image[y : y + h, x : x + w]


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize with area averaging when shrinking (keeps thin defects), bilinear when enlarging."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    interpolation = cv2.INTER_AREA if h * w > height * width else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def as_rgb(x: np.ndarray, original_shape: tuple[int, ...]) -> np.ndarray:
    """Grey -> three equal channels (the ImageNet backbones expect RGB)."""
    if x.ndim == 2:
        return np.repeat(x[:, :, None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected a grey or RGB image, got shape {original_shape}")
    return x


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a network input; stored with every model and bundle.

    ``mean``/``std`` are per RGB channel on the 0..255 scale. Grey images are
    replicated to three channels because the ImageNet backbones expect RGB.
    """

    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def resize(self, image: np.ndarray) -> np.ndarray:
        return resize_to(image, self.height, self.width)

    def resized_rgb(self, image: np.ndarray) -> np.ndarray:
        """HxW or HxWx3 uint8/uint16 RGB -> HxWx3 float32 on the 0..255 scale, at the input size.

        This is what an exported bundle's graph takes; it normalises itself.
        """
        x = as_rgb(self.resize(to_uint8_scale(image)), image.shape)
        return np.ascontiguousarray(x, dtype=np.float32)

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 float32 0..255 at the input size -> 3xHxW float32, normalised."""
        x = (rgb - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """HxW or HxWx3 uint8/uint16 RGB -> 3xHxW float32, normalised."""
        return self.normalize(self.resized_rgb(image))

    def batch(self, images: list[np.ndarray]) -> np.ndarray:
        return np.stack([self(im) for im in images])

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channel_order": "RGB", "scale": "0..255", "layout": "NCHW"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            height=int(data["height"]),
            width=int(data["width"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
        )
