from pathlib import Path

import cv2
import numpy as np
import pytest

from lineguard.data import read_image, read_mask
from lineguard.errors import DataError


def write(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def test_grey_colour_and_16_bit_keep_depth_and_become_rgb(tmp_path):
    grey = write(tmp_path / "g.png", np.full((5, 7), 9, np.uint8))
    deep = write(tmp_path / "d.png", np.full((5, 7), 40000, np.uint16))
    bgr = np.zeros((5, 7, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    colour = write(tmp_path / "c.png", bgr)
    assert read_image(grey).shape == (5, 7) and read_image(grey).dtype == np.uint8
    assert read_image(deep).dtype == np.uint16 and int(read_image(deep)[0, 0]) == 40000
    rgb = read_image(colour)
    assert rgb.shape == (5, 7, 3) and rgb[0, 0, 0] == 200 and rgb[0, 0, 2] == 0


def test_rgba_drops_alpha(tmp_path):
    path = write(tmp_path / "a.png", np.zeros((4, 4, 4), np.uint8))
    assert read_image(path).shape == (4, 4, 3)


def test_truncated_jpeg_is_an_error_naming_the_file(tmp_path):
    good = write(tmp_path / "part.jpg", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    data = good.read_bytes()
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: truncated JPEG"):
        read_image(bad)


def test_truncated_png_is_an_error(tmp_path):
    good = write(tmp_path / "part.png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    bad = tmp_path / "cut.png"
    bad.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"cut\.png: truncated PNG"):
        read_image(bad)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"this is not an image at all", "not a decodable image")],
)
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_image(path)
    assert info.value.path == path


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_image(tmp_path / "nope.png")


def test_oversized_image_refused_before_decoding(tmp_path):
    path = write(tmp_path / "big.png", np.zeros((100, 100), np.uint8))
    with pytest.raises(DataError, match="over the 5000 limit"):
        read_image(path, max_pixels=5000)


def test_mask_size_mismatch_names_the_mask(tmp_path):
    mask = write(tmp_path / "m_mask.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(DataError, match=r"m_mask\.png: mask is 12x10 but its image is 12x11"):
        read_mask(mask, expected_shape=(11, 12))
    assert read_mask(mask, expected_shape=(10, 12)).dtype == bool
