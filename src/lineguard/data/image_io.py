"""Image and mask decoding with checks that fail loudly, naming the file.

Images come back in RGB (colour) or as a single plane (grey), keeping their bit
depth (uint8 or uint16): the preprocessing step decides how to scale them, so
training and the runtime see exactly the same numbers.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from lineguard.errors import DataError

# 64 megapixels covers line-scan strips and 8K area cameras; anything larger
# is far more likely a corrupt header or a decompression bomb than a real part.
MAX_IMAGE_PIXELS = 64_000_000
MAX_ENCODED_BYTES = 512 * 1024 * 1024  # a file bigger than this is not a part image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# The formats LineGuard decodes, told by their first bytes (never by the file name). Anything else
# is refused: the pixel limit can only be checked on a header something here can parse.
_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def image_format(data: bytes) -> str | None:
    """ "JPEG", "PNG", "BMP", "TIFF" from the content's signature; None for anything else."""
    return next((name for sig, name in _SIGNATURES.items() if data.startswith(sig)), None)


def read_file_bytes(path: str | Path, max_bytes: int = MAX_ENCODED_BYTES) -> bytes:
    """A regular file's content, at most ``max_bytes``: a FIFO, a device or a socket is refused
    before it is opened (reading one would block or never end)."""
    path = Path(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise DataError(path, "is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise DataError(path, "is not a regular file (a pipe, device or socket is never read)")
        if info.st_size > max_bytes:
            raise DataError(path, f"{info.st_size} bytes, over the {max_bytes}-byte limit for an image")
        with path.open("rb") as fh:
            # The file may have been swapped after stat(): check again what was opened.
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise DataError(path, "is not a regular file")
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise DataError(path, f"grew past the {max_bytes}-byte limit for an image while being read")
    return data


def read_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image file to HxW (grey) or HxWx3 (RGB), uint8 or uint16."""
    path = Path(path)
    return decode_image(read_file_bytes(path), path, max_pixels)


def decode_image(data: bytes, name: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (a file's content, a camera's JPEG) strictly; ``name`` is what
    errors call it.

    Strict means a damaged file is an error, never a partly invented image: JPEGs decode through
    libjpeg-turbo with its warnings ("premature end of data", corrupt Huffman data) raised, since
    libjpeg otherwise grey-fills missing rows; libpng already fails on bad CRCs and short data.
    """
    path = Path(name)
    if not data:
        raise DataError(path, "empty file (0 bytes)")
    kind = image_format(data)
    if kind is None:
        raise DataError(path, "not a decodable image (not PNG, JPEG, BMP or TIFF, or corrupt)")
    if kind == "JPEG":
        return _decode_jpeg(path, data, max_pixels)
    if kind == "PNG" and b"IEND" not in data[-32:]:
        raise DataError(path, "truncated PNG (no IEND chunk)")
    _check_pixels(path, *_header_size(path, data, kind), max_pixels)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise DataError(path, f"not a decodable image (corrupt {kind})")
    return normalize_layout(image, path)


def _check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise DataError(
            path, f"image is {width}x{height} = {width * height} pixels, over the {max_pixels} limit"
        )


def _header_size(path: Path, data: bytes, kind: str) -> tuple[int, int]:
    """(width, height) from the header alone, to refuse huge images before decoding them."""
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as header:
            return header.size
    except Image.DecompressionBombError as exc:
        raise DataError(path, f"image too large to decode safely ({exc})") from None
    except Exception:
        raise DataError(path, f"corrupt {kind} header") from None


def _decode_jpeg(path: Path, data: bytes, max_pixels: int) -> np.ndarray:
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise DataError(path, f"corrupt JPEG header ({exc})") from None
    _check_pixels(path, width, height, max_pixels)
    try:
        if colourspace == "Gray":
            return simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True)[:, :, 0]
        if colourspace in ("CMYK", "YCCK"):
            # libjpeg-turbo has no CMYK -> RGB: validate strictly, let OpenCV convert.
            simplejpeg.decode_jpeg(data, colorspace="CMYK", strict=True)
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError("OpenCV cannot convert it")
            return normalize_layout(image, path)
        return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError as exc:
        message = str(exc).strip().rstrip(".")
        if "premature end" in message.lower() or "end of data" in message.lower():
            raise DataError(path, f"truncated JPEG ({message})") from None
        raise DataError(path, f"corrupt JPEG ({message})") from None


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
