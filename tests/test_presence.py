"""Template matching: the presence tool, and the fixture other checks' ROIs follow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from tool_parts import PLATE_TOOL, Plate, render

from lineguard.decision import Decision
from lineguard.preprocess.pattern import TemplateMatcher
from lineguard.station.checks import CheckRunner
from lineguard.station.config import CheckConfig, ConfigError
from lineguard.tools.checks import PresenceTool
from lineguard.tools.config import PresenceToolConfig

CENTRE = np.array([150.0, 120.0])  # render() rotates the part about the image centre
PATTERN = (40, 20, 160, 130)  # x, y, w, h: a corner of the plate and its bore


def where(point: tuple[float, float], angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    """Where render() puts a point of the part: rotated about the centre (clockwise on the screen
    for a positive angle), then shifted."""
    t = np.radians(angle_deg)
    rotation = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return CENTRE + np.asarray(shift) + rotation @ (np.asarray(point) - CENTRE)


def test_finds_the_pattern_to_sub_pixel_position_and_angle() -> None:
    rng = np.random.default_rng(0)
    x, y, w, h = PATTERN
    matcher = TemplateMatcher(render(Plate(), rng)[y : y + h, x : x + w], angle_range=12)
    taught = (x + (w - 1) / 2, y + (h - 1) / 2)
    worst_px = worst_deg = 0.0
    for _ in range(10):
        angle, shift = rng.uniform(-10, 10), (rng.uniform(-8, 8), rng.uniform(-8, 8))
        found = matcher.find(render(Plate(), rng, angle_deg=angle, shift=shift, noise=rng.uniform(1, 3)))
        want = where(taught, angle, shift)
        worst_px = max(worst_px, float(np.hypot(found.x - want[0], found.y - want[1])))
        worst_deg = max(worst_deg, abs(found.angle + angle))  # counter-clockwise: the opposite sign
        assert found.score > 0.95
    assert worst_px < 0.1 and worst_deg < 0.05, (worst_px, worst_deg)


def test_the_presence_tool_judges_score_and_place(tmp_path) -> None:
    rng = np.random.default_rng(1)
    x, y, w, h = PATTERN
    template = render(Plate(), rng)[y : y + h, x : x + w]
    config = PresenceToolConfig(
        kind="presence", template=tmp_path / "t.png", angle_range=10, x={"nominal": 119.5, "tol": 2.0}
    )
    tool = PresenceTool(config, template)
    ok = tool.run(render(Plate(), rng))
    values = {m.name: m.value for m in ok.measurements}
    assert ok.decision == Decision.OK and values["x"] == pytest.approx(119.5, abs=0.1)
    moved = tool.run(render(Plate(), rng, shift=(4.0, 0.0)))
    assert moved.decision == Decision.NG and "x 123.5 px outside [117.5, 121.5]" in moved.reason
    empty = tool.run(np.full((240, 300), 40, np.uint8) + rng.integers(0, 4, (240, 300)).astype(np.uint8))
    assert empty.decision == Decision.NG and "pattern not found" in empty.reason
    assert [m.value for m in empty.measurements[1:]] == [None, None, None]


def test_a_shifted_and_rotated_part_measures_the_same_through_the_fixture(tmp_path) -> None:
    """The gauge's calipers are placed on the reference; the fixture brings every part there."""
    rng = np.random.default_rng(2)
    reference = render(Plate(), rng)
    cv2.imwrite(str(tmp_path / "reference.png"), reference)
    fixture = {"reference": str(tmp_path / "reference.png"), "pattern": list(PATTERN), "angle_range": 10}
    runner = CheckRunner(CheckConfig(name="gauge", source="cam", tool=PLATE_TOOL, fixture=fixture))
    plate = Plate(x0=58.8, x1=222.9)
    straight = runner.run(render(plate, rng))
    want = {m.name: m.value for m in straight.measurements}
    for _ in range(6):
        angle, shift = rng.uniform(-8, 8), (rng.uniform(-10, 10), rng.uniform(-10, 10))
        run = runner.run(render(plate, rng, angle_deg=angle, shift=shift))
        got = {m.name: m.value for m in run.measurements}
        assert run.outcome.decision is not None, run.outcome.reason
        assert got["width"] == pytest.approx(plate.x1 - plate.x0, abs=0.1)
        assert got["bore_to_left"] == pytest.approx(want["bore_to_left"], abs=0.1)
        # recorded with the check; this plate differs from the taught one, which costs a little angle
        assert got["fixture.angle"] == pytest.approx(-angle, abs=0.3)
    blank = runner.run(np.full((240, 300), 40, np.uint8))
    assert blank.outcome.decision is None and "fixture pattern not found" in blank.outcome.reason


def test_bad_fixture_and_template_settings_fail_at_start_up(tmp_path) -> None:
    reference = render(Plate(), np.random.default_rng(3))
    cv2.imwrite(str(tmp_path / "reference.png"), reference)
    cv2.imwrite(str(tmp_path / "flat.png"), np.full((40, 40), 128, np.uint8))
    base = {"name": "gauge", "source": "cam", "tool": PLATE_TOOL}
    outside = {"reference": str(tmp_path / "reference.png"), "pattern": [250, 200, 100, 100]}
    with pytest.raises(
        ConfigError, match=r"check 'gauge': fixture: pattern \[250, 200, 100, 100\] is not inside"
    ):
        CheckRunner(CheckConfig(**base, fixture=outside))
    flat = {"reference": str(tmp_path / "flat.png"), "pattern": [0, 0, 30, 30]}
    with pytest.raises(ConfigError, match="fixture: template is flat"):
        CheckRunner(CheckConfig(**base, fixture=flat))
    tiny = {"reference": str(tmp_path / "reference.png"), "pattern": [0, 0, 5, 5]}
    with pytest.raises(ConfigError, match="under 8 px a side"):
        CheckRunner(CheckConfig(**base, fixture=tiny))
    roi = {"reference": str(tmp_path / "reference.png"), "pattern": list(PATTERN)}
    with pytest.raises(ConfigError, match=r"roi .* reaches outside the 300x240 reference"):
        CheckRunner(
            CheckConfig(
                **{
                    **base,
                    "tool": {
                        **PLATE_TOOL,
                        "features": {"e": {"kind": "edge", "start": [10, 10], "end": [20, 20]}},
                        "measurements": [{"name": "x", "value": "x", "of": ["e"], "max": 3}],
                    },
                },
                roi=[200, 100, 200, 200],
                fixture=roi,
            )
        )
    missing = {"kind": "presence", "template": str(tmp_path / "nothing.png")}
    with pytest.raises(ConfigError, match=r"check 'find': tool: template: .*nothing.png: file not found"):
        CheckRunner(CheckConfig(name="find", source="cam", tool=missing))
    with pytest.raises(ValueError, match="align_to or fixture, not both"):
        CheckConfig(**base, fixture=roi, align_to=tmp_path / "reference.png")
