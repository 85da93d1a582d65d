"""Property-based: whatever is done to an encoded image, decoding either raises DataError or gives
back exactly the image that was encoded (truncation), and never anything but a DataError."""

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lineguard.data.image_io import decode_image
from lineguard.errors import DataError

FORMATS = [".jpg", ".png", ".bmp", ".tif"]


@st.composite
def encoded(draw):
    seed = draw(st.integers(0, 2**16))
    colour = draw(st.booleans())
    ext = draw(st.sampled_from(FORMATS))
    shape = (draw(st.integers(8, 48)), draw(st.integers(8, 48))) + ((3,) if colour else ())
    image = np.random.default_rng(seed).integers(0, 255, shape, np.uint8)
    ok, data = cv2.imencode(ext, image)
    assert ok
    return ext, data.tobytes()


def _decode(data: bytes):
    try:
        return decode_image(data, "part")
    except DataError:
        return None


@settings(max_examples=150, deadline=None)
@given(encoded(), st.floats(0.0, 1.0), st.booleans())
def test_a_cut_short_file_is_refused_or_whole(sample, where, end_marker):
    ext, data = sample
    full = decode_image(data, "part")
    cut = data[: int(len(data) * where)]
    if end_marker:
        # What a careless writer or an attacker appends so the file "looks complete".
        cut += {".jpg": b"\xff\xd9", ".png": data[-12:]}.get(ext, b"")
    decoded = _decode(cut)
    assert decoded is None or np.array_equal(decoded, full)


@settings(max_examples=150, deadline=None)
@given(encoded(), st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips_never_escape_as_anything_but_a_data_error(sample, flips):
    _, data = sample
    damaged = bytearray(data)
    for where, bit in flips:
        damaged[min(int(len(damaged) * where), len(damaged) - 1)] ^= 1 << bit
    decoded = _decode(bytes(damaged))
    assert decoded is None or (decoded.dtype == np.uint8 and decoded.ndim in (2, 3))
