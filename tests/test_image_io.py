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


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("colour", [False, True])
def test_jpeg_cut_short_with_an_end_marker_appended_is_refused(tmp_path, colour):
    # libjpeg grey-fills the missing rows and only warns; a defect there would be invisible.
    shape = (96, 96, 3) if colour else (96, 96)
    data = _jpeg(np.random.default_rng(1).integers(0, 255, shape, np.uint8))
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(data[: len(data) * 2 // 3] + b"\xff\xd9")
    with pytest.raises(DataError, match=r"cut\.jpg: truncated JPEG"):
        read_image(bad)


def test_jpeg_decodes_to_the_same_pixels_as_opencv(tmp_path):
    rng = np.random.default_rng(2)
    for shape in [(40, 56), (40, 56, 3)]:
        path = tmp_path / f"p{len(shape)}.jpg"
        path.write_bytes(_jpeg(rng.integers(0, 255, shape, np.uint8)))
        reference = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if reference.ndim == 3:
            reference = cv2.cvtColor(reference, cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(read_image(path), reference)


def test_formats_without_a_header_check_are_refused(tmp_path):
    # A PAM/PPM is decoded by OpenCV but its size was never checked: a 65.6 MP one passed the limit.
    ok, pam = cv2.imencode(".pam", np.zeros((8, 8), np.uint8))
    assert ok
    path = tmp_path / "x.png"
    path.write_bytes(pam.tobytes())
    with pytest.raises(DataError, match="not PNG, JPEG, BMP or TIFF"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".tif", ".bmp", ".jpg"])
def test_pixel_limit_holds_for_every_format_read(tmp_path, suffix):
    path = write(tmp_path / f"big{suffix}", np.zeros((100, 100), np.uint8))
    with pytest.raises(DataError, match="over the 5000 limit"):
        read_image(path, max_pixels=5000)


def test_only_regular_files_are_read(tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    errors: dict[str, Exception] = {}

    def read(path: Path) -> None:
        try:
            read_image(path)
        except Exception as exc:
            errors[path.name] = exc

    for path in (fifo, zero):
        worker = threading.Thread(target=read, args=(path,), daemon=True)
        worker.start()
        worker.join(10)
        if worker.is_alive():  # unblock the reader before failing
            with open(fifo, "wb"):
                pass
            pytest.fail(f"reading {path.name} did not return")
        assert isinstance(errors[path.name], DataError)
        assert "not a regular file" in str(errors[path.name])


def test_file_over_the_byte_limit_is_refused_unread(tmp_path):
    from lineguard.data.image_io import read_file_bytes

    path = tmp_path / "huge.png"
    path.write_bytes(b"\0" * 2000)
    with pytest.raises(DataError, match="2000 bytes, over the 1000-byte limit"):
        read_file_bytes(path, max_bytes=1000)
