"""Camera calibration on rendered checkerboard views with a known camera and lens."""

import cv2
import numpy as np
import pytest

from lineguard.errors import DataError
from lineguard.preprocess.camera import CameraCalibration, calibrate_camera

SIZE = (640, 480)  # width, height
K = np.array([[600.0, 0, 322.0], [0, 600.0, 238.0], [0, 0, 1]])
DIST = np.array([-0.25, 0.08, 0.0, 0.0, 0.0])
PATTERN, SQUARE_MM, PX_PER_MM_TEXTURE = (9, 6), 10.0, 8


def board_texture() -> np.ndarray:
    """10x7 squares with a white margin; texture pixel = mm * PX_PER_MM_TEXTURE, origin at corner (0, 0)."""
    s = int(SQUARE_MM * PX_PER_MM_TEXTURE)
    cols, rows = PATTERN[0] + 1, PATTERN[1] + 1
    board = np.full(((rows + 2) * s, (cols + 2) * s), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                board[(r + 1) * s : (r + 2) * s, (c + 1) * s : (c + 2) * s] = 0
    return board


def render(rvec, tvec, distort: bool) -> np.ndarray:
    """The board seen by camera K at pose (rvec, tvec in mm), through the lens when ``distort``."""
    s = SQUARE_MM * PX_PER_MM_TEXTURE
    # texture pixel -> board mm (corner (0, 0) of the inner grid sits 2 squares in) -> image
    to_mm = np.array(
        [
            [1 / PX_PER_MM_TEXTURE, 0, -2 * s / PX_PER_MM_TEXTURE],
            [0, 1 / PX_PER_MM_TEXTURE, -2 * s / PX_PER_MM_TEXTURE],
            [0, 0, 1],
        ]
    )
    r = cv2.Rodrigues(np.asarray(rvec, np.float64))[0]
    h = K @ np.column_stack([r[:, 0], r[:, 1], np.asarray(tvec, np.float64)]) @ to_mm
    ideal = cv2.warpPerspective(board_texture(), h, SIZE, flags=cv2.INTER_AREA, borderValue=200)
    if not distort:
        return ideal
    # A distorted pixel shows what the ideal camera sees at its undistorted position.
    ys, xs = np.mgrid[0 : SIZE[1], 0 : SIZE[0]].astype(np.float32)
    pts = np.stack([xs.ravel(), ys.ravel()], 1)[:, None]
    src = cv2.undistortPoints(pts, K, DIST, P=K)[:, 0].reshape(SIZE[1], SIZE[0], 2)
    return cv2.remap(ideal, src[..., 0], src[..., 1], cv2.INTER_LINEAR, borderValue=200)


POSES = [  # (rotation vector, translation in mm): the board fills much of the frame, as it should
    ((0.0, 0.0, 0.0), (-45, -25, 180)),  # reference: the board flat in the inspection plane
    ((0.3, 0.0, 0.05), (-70, -45, 200)),
    ((-0.3, 0.1, 0.0), (-20, -10, 190)),
    ((0.0, 0.35, -0.05), (-75, -10, 210)),
    ((0.1, -0.35, 0.1), (-15, -45, 195)),
    ((0.25, 0.25, 0.0), (-60, -30, 230)),
    ((-0.2, -0.25, 0.2), (-30, -20, 170)),
    ((0.0, 0.0, 0.3), (-40, -40, 220)),
]


@pytest.fixture(scope="module")
def distorted_views():
    return [(f"view{i}.png", render(r, t, distort=True)) for i, (r, t) in enumerate(POSES)]


def test_calibration_recovers_camera_lens_and_scale(distorted_views, tmp_path):
    cal = calibrate_camera(distorted_views, PATTERN, SQUARE_MM)
    assert cal.rms_px < 0.5
    np.testing.assert_allclose(np.diag(cal.camera_matrix)[:2], [600, 600], rtol=0.02)
    np.testing.assert_allclose(cal.camera_matrix[:2, 2], [322, 238], atol=6)
    # k1, k2, k3 trade off against each other; the lens they describe must match the true one
    # where the boards were seen (calibration says nothing of the frame's far corners).
    ys, xs = np.mgrid[100:400:30, 120:540:30].astype(np.float32)
    pts = np.stack([xs.ravel(), ys.ravel()], 1)[:, None]
    want = cv2.undistortPoints(pts, K, DIST, P=K)[:, 0]
    got = cv2.undistortPoints(pts, cal.camera_matrix, cal.distortion, P=K)[:, 0]
    assert np.abs(got - want).max() < 1.0 and np.abs(want - pts[:, 0]).max() > 5  # the lens matters
    # Board 180 mm away, f = 600 px, facing the camera: 180 / 600 mm per pixel.
    assert cal.mm_per_px == pytest.approx(180 / 600, rel=0.01)
    # Undistorting a lens view gives the ideal pinhole view.
    ideal = render(*POSES[3], distort=False).astype(np.float32)
    fixed = cal.undistort(distorted_views[3][1]).astype(np.float32)
    inner = (slice(60, -60), slice(80, -80))
    raw_error = np.abs(distorted_views[3][1].astype(np.float32) - ideal)[inner].mean()
    assert np.abs(fixed - ideal)[inner].mean() < raw_error / 3
    cal.save(tmp_path / "camera.json")
    again = CameraCalibration.load(tmp_path / "camera.json")
    np.testing.assert_array_equal(again.camera_matrix, cal.camera_matrix)
    assert again.mm_per_px == cal.mm_per_px and again.views == cal.views


def test_too_few_boards_names_the_images(distorted_views):
    blank = np.full(SIZE[::-1], 200, np.uint8)
    views = [*distorted_views[:2], ("empty.png", blank)]
    with pytest.raises(DataError, match=r"found in 2 image\(s\), at least 3 .*empty.png"):
        calibrate_camera(views, PATTERN, SQUARE_MM)
    with pytest.raises(DataError, match="reference view"):
        calibrate_camera([("empty.png", blank), *distorted_views], PATTERN, SQUARE_MM)
    with pytest.raises(DataError, match="is 320x240"):
        calibrate_camera([*distorted_views, ("small.png", blank[:240, :320])], PATTERN, SQUARE_MM)


def test_undistort_refuses_another_image_size(distorted_views):
    cal = calibrate_camera(distorted_views, PATTERN, SQUARE_MM)
    with pytest.raises(ValueError, match="calibrated at 640x480"):
        cal.undistort(np.zeros((100, 100), np.uint8))


def test_calibrate_command(distorted_views, tmp_path):
    import json

    from typer.testing import CliRunner

    from lineguard.cli import app

    for name, image in distorted_views:
        cv2.imwrite(str(tmp_path / name), image)
    out = tmp_path / "camera.json"
    args = ["calibrate", str(tmp_path), "--pattern", "9x6", "--square-mm", "10", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--reference", str(tmp_path / "view0.png")])
    assert result.exit_code == 0, result.output
    assert "board found in 8/8 images" in result.output
    assert json.loads(out.read_text())["mm_per_px"] == pytest.approx(0.3, rel=0.01)
    result = CliRunner().invoke(app, [*args[:2], "--pattern", "nine", *args[4:]])
    assert result.exit_code == 2 and "COLUMNSxROWS" in result.output
