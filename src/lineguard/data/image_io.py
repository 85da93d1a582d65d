"""Image and mask decoding with checks that fail loudly, naming the file.

Images come back in RGB (colour) or as a single plane (grey), keeping their bit
depth (uint8 or uint16): the preprocessing step decides how to scale them, so
training and the runtime see exactly the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from lineguard.errors import DataError

# 64 megapixels covers line-scan strips and 8K area cameras; anything larger
# is far more likely a corrupt header or a decompression bomb than a real part.
MAX_IMAGE_PIXELS = 64_000_000

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _check_complete(path: Path, data: bytes) -> None:
    """Reject truncated JPEG/PNG files, which OpenCV would decode partially."""
    if data[:3] == b"\xff\xd8\xff":
        # Some cameras pad files after the end-of-image marker; look near the end.
        if b"\xff\xd9" not in data[-1024:]:
            raise DataError(path, "truncated JPEG (no end-of-image marker)")
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-32:]:
        raise DataError(path, "truncated PNG (no IEND chunk)")


def _check_dimensions(path: Path, data: bytes, max_pixels: int) -> None:
    """Read only the header to refuse huge images before decoding them."""
    import io

    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except Image.DecompressionBombError as exc:
        raise DataError(path, f"image too large to decode safely ({exc})") from None
    except Exception:
        return  # Pillow does not know every format OpenCV reads; decode decides.
    if width * height > max_pixels:
        raise DataError(
            path, f"image is {width}x{height} = {width * height} pixels, over the {max_pixels} limit"
        )


def read_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image file to HxW (grey) or HxWx3 (RGB), uint8 or uint16."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, not an image file") from None
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror})") from None
    return decode_image(data, path, max_pixels)


def decode_image(data: bytes, name: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (a file's content, a camera's JPEG) with the same checks;
    ``name`` is what errors call it."""
    path = Path(name)
    if not data:
        raise DataError(path, "empty file (0 bytes)")
    _check_complete(path, data)
    _check_dimensions(path, data, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise DataError(path, "not a decodable image (corrupt or unsupported format)")
    return normalize_layout(image, path)


def normalize_layout(image: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """Bring an OpenCV-decoded array to grey HxW or RGB HxWx3, uint8/uint16."""
    if image.dtype not in (np.uint8, np.uint16):
        raise DataError(path, f"unsupported pixel type {image.dtype} (need 8- or 16-bit)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise DataError(path, f"unsupported image layout {image.shape}")


def read_mask(path: str | Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a defect mask to a boolean HxW array (any non-zero pixel is defect)."""
    mask = read_image(path)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if expected_shape is not None and mask.shape != tuple(expected_shape):
        raise DataError(
            path,
            f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{expected_shape[1]}x{expected_shape[0]} (width x height)",
        )
    return mask > 0


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name for determinism."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
