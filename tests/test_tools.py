"""Gauging and blob tools on rendered parts of known geometry (sub-pixel edges, blur, noise), through
the fixture, and their configuration errors at start-up."""

from __future__ import annotations

from datetime import date

import cv2
import numpy as np
import pytest
from pydantic import ValidationError
from tool_parts import PLATE_TOOL, Plate, render

from lineguard.decision import Decision
from lineguard.station.checks import CheckRunner
from lineguard.station.config import CheckConfig, ConfigError, parse_config
from lineguard.tools import measure as gauge
from lineguard.tools.checks import (
    BlobTool,
    DefectSizer,
    MeasureTool,
    add_months,
    months_between,
    printed_date,
)
from lineguard.tools.config import BlobToolConfig, DefectRules, Limits, MeasureToolConfig


def values(result) -> dict[str, float]:
    return {m.name: m.value for m in result.measurements}


def test_caliper_edges_and_fits_are_sub_pixel_over_blur_noise_and_place() -> None:
    rng = np.random.default_rng(0)
    tool = MeasureTool(MeasureToolConfig.model_validate(PLATE_TOOL))
    worst = dict.fromkeys(("width", "span", "bore_d", "bore_to_left"), 0.0)
    for _ in range(12):
        plate = Plate(
            x0=rng.uniform(55, 65), x1=rng.uniform(216, 226), cx=rng.uniform(155, 165), r=rng.uniform(28, 34)
        )
        image = render(plate, rng, blur=rng.uniform(0.7, 1.6), noise=rng.uniform(0.5, 3.0))
        got = values(tool.run(image))
        truth = {
            "width": plate.x1 - plate.x0,
            "span": plate.x1 - plate.x0,
            "bore_d": 2 * plate.r,
            "bore_to_left": plate.cx - plate.x0,
        }
        for key, want in truth.items():
            worst[key] = max(worst[key], abs(got[key] - want))
        assert got["parallel"] < 0.1  # degrees, from 10 edge points along 120 px
    # distances within 0.1 px of the truth; a diameter within 0.2 px is a radius within 0.1 px
    assert worst["width"] < 0.1 and worst["span"] < 0.1 and worst["bore_to_left"] < 0.1, worst
    assert worst["bore_d"] < 0.2, worst


def step_profile(edge: float, blur: float, n: int = 61) -> np.ndarray:
    """Two rows of a noise-free blurred step at ``edge`` (pixel coverage, then a Gaussian)."""
    x = np.arange(n, dtype=float)
    row = 40.0 + 170.0 * np.clip(x - edge + 0.5, 0.0, 1.0)
    image = np.repeat(row[None, :], 21, axis=0)
    return cv2.GaussianBlur(image, (0, 0), blur).astype(np.float32)


@pytest.mark.parametrize("blur", [0.5, 1.0, 2.0, 3.0])
def test_a_sub_pixel_edge_has_little_phase_bias_at_any_blur(blur: float, monkeypatch) -> None:
    """Noise-free steps at every tenth of a pixel: the peak fit places each within 0.025 px, and
    within 0.6 times the error of the three-point Gaussian it replaced (0.036 px at blur 0.5)."""

    def errors() -> list[float]:
        found = []
        for phase in np.linspace(0.0, 0.9, 10):
            edge = 30.0 + phase
            (e,) = gauge.caliper_edges(step_profile(edge, blur), (2, 10), (58, 10), width=5, threshold=5)
            assert e.spread is None or e.spread == pytest.approx(np.sqrt(blur**2 + 1 / 12 + 1.0), rel=0.15)
            found.append(abs(e.x - edge))
        return found

    fitted = max(errors())
    monkeypatch.setattr(gauge, "_subpixel", gauge._three_point)
    three = max(errors())
    assert fitted < 0.025 and fitted < 0.6 * three, (fitted, three)


def test_a_blurred_circle_is_measured_at_its_radius_not_inside_it() -> None:
    """Blur pulls the steepest slope of a curved edge sigma² / 2r toward the centre (0.16 px at
    blur 3 on r = 31): the fit takes it out."""
    tool = MeasureTool(MeasureToolConfig.model_validate(PLATE_TOOL))
    for blur in (1.0, 3.0):
        for r in (28.3, 33.7):
            got = values(tool.run(render(Plate(r=r), np.random.default_rng(0), blur=blur, noise=0.0)))
            assert got["bore_d"] / 2 == pytest.approx(r, abs=0.03), (blur, r)


def test_an_edge_whose_peak_runs_off_the_caliper_is_not_taken() -> None:
    image = step_profile(5.5, 3.0)
    assert gauge.caliper_edges(image, (0, 10), (40, 10), width=5, threshold=5) == []
    (inside,) = gauge.caliper_edges(step_profile(20.5, 3.0), (0, 10), (40, 10), width=5, threshold=5)
    assert inside.x == pytest.approx(20.5, abs=0.01)


def test_millimetres_from_the_scale_within_0_02_mm() -> None:
    rng = np.random.default_rng(1)
    doc = {
        **PLATE_TOOL,
        "measurements": [{**PLATE_TOOL["measurements"][0], "unit": "mm", "nominal": 8.07, "tol": 0.05}],
    }
    tool = MeasureTool(MeasureToolConfig.model_validate(doc), mm_per_px=0.05)
    result = tool.run(render(Plate(), rng))
    width = result.measurements[0]
    assert width.unit == "mm" and width.value == pytest.approx((221.7 - 60.3) * 0.05, abs=0.02)
    assert (width.lo, width.hi) == pytest.approx((8.02, 8.12))
    assert result.decision == Decision.OK and result.overlay is not None


def test_out_of_tolerance_is_ng_near_a_limit_review_and_a_missing_edge_fails_safe() -> None:
    rng = np.random.default_rng(2)
    image = render(Plate(), rng)
    base = PLATE_TOOL["measurements"][0]
    tight = MeasureTool(
        MeasureToolConfig.model_validate(
            {**PLATE_TOOL, "measurements": [{**base, "nominal": 160.0, "tol": 0.5}]}
        )
    )
    result = tight.run(image)
    assert result.decision == Decision.NG and "width" in result.reason and result.score > 1
    band = {**base, "nominal": 161.0, "tol": 0.5, "review_band": 0.2}  # 161.4 lies in the top 20 %
    result = MeasureTool(MeasureToolConfig.model_validate({**PLATE_TOOL, "measurements": [band]})).run(image)
    assert result.decision == Decision.REVIEW and result.measurements[0].decision == "REVIEW"
    blank = np.full_like(image, 128)
    result = MeasureTool(MeasureToolConfig.model_validate(PLATE_TOOL)).run(blank)
    assert result.decision is None and result.score is None  # no edges: the recipe's fail-safe decides
    assert "across: no edge pair" in result.reason and "bore: 0 of 24 calipers" in result.reason


def test_a_shifted_and_rotated_part_measures_the_same_through_the_fixture(tmp_path) -> None:
    rng = np.random.default_rng(3)
    plate = Plate()
    cv2.imwrite(str(tmp_path / "reference.png"), render(plate, rng, noise=0.5))
    config = CheckConfig(
        name="gauge",
        tool=MeasureToolConfig.model_validate(PLATE_TOOL),
        source="cam",
        align_to=tmp_path / "reference.png",
        align_motion="euclidean",
    )
    runner = CheckRunner(config)
    straight = values(runner.run(render(plate, rng)))
    for angle, shift in [(3.0, (6.4, -4.7)), (-2.0, (-9.2, 3.3))]:
        moved = render(plate, rng, angle_deg=angle, shift=shift)
        run = runner.run(moved)
        assert run.outcome.decision == Decision.OK, run.outcome.reason
        got = values(run)
        for key in ("width", "span", "bore_d", "bore_to_left"):
            assert got[key] == pytest.approx(straight[key], abs=0.1), (key, angle)


def test_blob_counts_are_exact_under_shading_and_noise() -> None:
    rng = np.random.default_rng(4)
    for trial in range(6):
        h, w = 240, 320
        y, x = np.mgrid[0:h, 0:w]
        surface = 170.0 + 40.0 * (x / w) + rng.normal(0, 3, (h, w))  # uneven light
        n = int(rng.integers(0, 12))
        centres: list[tuple[float, float]] = []
        radii = []
        while len(centres) < n:
            c = (rng.uniform(12, w - 12), rng.uniform(12, h - 12))
            if all(np.hypot(c[0] - a, c[1] - b) > 20 for a, b in centres):
                centres.append(c)
                radii.append(rng.uniform(2.0, 6.0))
        for (cx, cy), r in zip(centres, radii, strict=True):
            surface = np.where(np.hypot(x - cx, y - cy) <= r, surface - 90.0, surface)
        specks = rng.integers(0, w * h, 15)  # single dark pixels: below min_area, not particles
        surface.flat[specks] -= 90.0
        image = np.clip(cv2.GaussianBlur(surface, (0, 0), 0.8), 0, 255).astype(np.uint8)
        for method in ("adaptive", "fixed"):
            tool = BlobTool(
                BlobToolConfig(
                    kind="blob",
                    threshold=method,
                    level=140,
                    block=31,
                    offset=25,
                    min_area=5,
                    count={"max": 0},
                )
            )
            result = tool.run(image)
            got = values(result)
            assert got["count"] == n, (trial, method)
            assert result.decision == (Decision.OK if n == 0 else Decision.NG)
            if n:
                assert got["largest_area"] == pytest.approx(np.pi * max(radii) ** 2, rel=0.3)


def test_blob_areas_in_square_millimetres() -> None:
    image = np.full((100, 100), 200, np.uint8)
    cv2.rectangle(image, (10, 10), (19, 29), 30, -1)  # 10 x 20 px
    cv2.rectangle(image, (50, 50), (53, 53), 30, -1)  # 4 x 4 px
    config = BlobToolConfig(kind="blob", unit="mm", mm_per_px=0.1, largest_area={"max": 1.5})
    result = BlobTool(config).run(image)
    got = {m.name: (m.value, m.unit) for m in result.measurements}
    # the length is the Feret diameter: between the 10 x 20 px rectangle's corner pixels, plus one
    assert got["largest_area"] == (pytest.approx(2.0), "mm2") and got["largest_length"] == (
        pytest.approx(0.1 * (np.hypot(9, 19) + 1)),
        "mm",
    )
    assert got["total_area"][0] == pytest.approx(2.16) and got["count"][0] == 2
    assert result.decision == Decision.NG and "largest_area 2 mm2 above max 1.5" in result.reason


def test_a_diagonal_scratch_measures_its_length_not_its_bounding_box() -> None:
    for angle in (0.0, 17.0, 30.0, 45.0, 72.0):
        t = np.radians(angle)
        along, across = np.array([np.cos(t), np.sin(t)]), np.array([-np.sin(t), np.cos(t)])
        corners = [100 + 60 * a * along + 2 * c * across for a, c in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        fine = np.full((3200, 3200), 200, np.uint8)  # drawn at 16x, then each pixel's mean grey
        cv2.fillPoly(fine, [np.round((np.array(corners) + 0.5) * 16 - 0.5).astype(np.int32)], 0)
        image = cv2.resize(fine, (200, 200), interpolation=cv2.INTER_AREA)
        result = BlobTool(BlobToolConfig(kind="blob", largest_length={"max": 200})).run(image)
        # a 120 x 4 px bar: its diagonal, give or take the pixels its edges cut
        assert values(result)["largest_length"] == pytest.approx(np.hypot(120, 4), abs=1.5), angle


def test_shape_filters_tell_scratches_from_round_particles() -> None:
    """Three scratches at random angles and four round particles: each filter counts its own."""
    rng = np.random.default_rng(8)
    fine = np.full((3200, 3200), 200, np.uint8)  # drawn at 16x, then each pixel's mean grey
    for k in range(3):
        t = rng.uniform(0, np.pi)
        along, across = np.array([np.cos(t), np.sin(t)]), np.array([-np.sin(t), np.cos(t)])
        centre = np.array([40.0 + 60 * k, 50.0])
        corners = [
            centre + 22 * a * along + 1.5 * c * across for a, c in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
        cv2.fillPoly(fine, [np.round((np.array(corners) + 0.5) * 16 - 0.5).astype(np.int32)], 0)
    for k in range(4):
        cv2.circle(
            fine, (int((30 + 45 * k + 0.5) * 16), int((140 + 0.5) * 16)), int(rng.uniform(4, 7) * 16), 0, -1
        )
    image = cv2.resize(fine, (200, 200), interpolation=cv2.INTER_AREA)
    base = {"kind": "blob", "threshold": "fixed", "level": 100, "count": {"max": 10}}
    blobs = BlobTool(BlobToolConfig.model_validate(base)).sizer.find(image < 100)
    assert len(blobs) == 7
    elongation, roundness = np.sort(blobs.elongation), np.sort(blobs.roundness)
    assert np.all(elongation[:4] < 1.3) and np.all(elongation[4:] > 8), elongation
    assert np.all(roundness[:3] < 0.2) and np.all(roundness[3:] > 0.75), roundness
    scratches = BlobToolConfig.model_validate({**base, "elongation": {"min": 4}})
    particles = BlobToolConfig.model_validate({**base, "roundness": {"min": 0.6}})
    assert values(BlobTool(scratches).run(image))["count"] == 3
    assert values(BlobTool(particles).run(image))["count"] == 4
    with pytest.raises(ValueError, match="range upside down"):
        BlobToolConfig.model_validate({**base, "roundness": {"min": 0.8, "max": 0.5}})


def test_a_segmenters_defects_are_sized_on_the_checks_pixels_and_judged_at_two_levels() -> None:
    image = np.full((192, 256, 3), 128, np.uint8)
    probability = np.zeros((48, 64), np.float32)  # the network's output, a quarter of the size
    probability[10:14, 10:20] = 1.0  # a defect: 4 x 10 map pixels, 16 x 40 image pixels
    probability[30:32, 40:42] = 1.0  # a small one
    probability[30:40, 40:42] = np.maximum(probability[30:40, 40:42], 0.4)  # doubtful beyond it
    review, ng = 0.25, 0.5  # an edge from 0 to 1 crosses 0.5 where the map's pixels meet
    recorded = DefectSizer(DefectRules(), None, review, ng)
    assert not recorded.judges
    got = values(recorded.run(image, probability))
    assert got["defects.count"] == 2
    assert got["defects.largest_area"] == pytest.approx(16 * 40, rel=0.1)
    assert got["defects.largest_length"] == pytest.approx(np.hypot(16, 40), rel=0.1)

    rules = DefectRules(unit="mm", mm_per_px=0.05, largest_area={"max": 2.0})  # 800 px²
    result = DefectSizer(rules, None, review, ng).run(image, probability)
    assert result.decision == Decision.OK, result.reason  # both are within the rule
    assert values(result)["defects.largest_area"] == pytest.approx(16 * 40 * 0.05**2, rel=0.1)
    tighter = DefectRules(unit="mm", mm_per_px=0.05, largest_area={"max": 1.0})
    assert DefectSizer(tighter, None, review, ng).run(image, probability).decision == Decision.NG
    counted = DefectRules(count={"max": 1})
    assert DefectSizer(counted, None, review, ng).run(image, probability).decision == Decision.NG
    # at the NG threshold the small one (8 x 8 px) is noise; at the REVIEW threshold it is not
    ignored = DefectRules(min_area=100, count={"max": 1})
    result = DefectSizer(ignored, None, review, ng).run(image, probability)
    assert result.decision == Decision.REVIEW and values(result)["defects.count"] == 1
    assert "at the REVIEW threshold defects.count 2 above max 1" in result.reason
    assert DefectSizer(ignored, None, ng, ng).run(image, probability).decision == Decision.OK
    # the small defect is 8 px long at the NG threshold, 40 px at the REVIEW threshold
    probability[10:14, 10:20] = 0.0
    short = DefectRules(largest_length={"max": 30})
    result = DefectSizer(short, None, review, ng).run(image, probability)
    assert result.decision == Decision.REVIEW, result.reason
    assert "at the REVIEW threshold defects.largest_length" in result.reason
    with pytest.raises(ValueError, match="unit mm needs a scale"):
        DefectSizer(DefectRules(unit="mm"), None, review, ng)
    assert DefectSizer(DefectRules(), 0.1, review, ng).sizer.unit == "mm"  # calibrated: mm


def test_tolerances_judge_both_sides_and_one() -> None:
    two = Limits(nominal=10.0, tol=0.1, review_band=0.25)
    assert two.judge(10.0) == ("OK", 0.0)
    assert two.judge(10.08)[0] == "REVIEW" and two.judge(9.92)[0] == "REVIEW"
    assert two.judge(10.1)[0] == "REVIEW" and two.judge(10.1001)[0] == "NG"
    assert Limits(max=0).judge(0) == ("OK", 1.0) and Limits(max=0).judge(1)[0] == "NG"
    assert Limits(min=2).judge(1.9)[0] == "NG" and Limits(min=2).judge(5)[0] == "OK"


def test_dates_and_months() -> None:
    assert printed_date("LOT L21X45 EXP 10-2023", "%m-%Y") == date(2023, 10, 31)
    assert printed_date("13-2023 then 02-2024", "%m-%Y") == date(2024, 2, 29)  # 13 is no month
    assert printed_date("no date", "%m-%Y") is None
    assert printed_date("31.12.27", "%d.%m.%y") == date(2027, 12, 31)
    assert add_months(date(2026, 8, 31), 6) == date(2027, 2, 28)
    assert months_between(date(2026, 12, 4), date(2027, 6, 30)) == 6
    assert months_between(date(2026, 12, 4), date(2027, 6, 3)) == 5


def test_geometry_primitives() -> None:
    points = np.column_stack([np.arange(10.0), np.arange(10.0)])
    points[6, 1] += 5.0  # an edge of a scratch beside the edge
    line = gauge.fit_line(points)
    assert line.used == 9 and line.rms < 1e-9
    assert line.distance_to(np.array([0.0, 2.0])) == pytest.approx(np.sqrt(2))
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    ring = np.column_stack([5 + 3 * np.cos(t), -2 + 3 * np.sin(t)])
    circle = gauge.fit_circle(np.vstack([ring, [[9.0, 4.0]]]))  # and one stray edge
    assert circle.used == 20 and circle.rms < 1e-6
    assert circle.radius == pytest.approx(3) and circle.centre == pytest.approx([5, -2])
    with pytest.raises(gauge.MeasureError, match="3 edge points"):
        gauge.fit_circle(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="outside"):
        gauge.caliper_edges(np.zeros((20, 20), np.uint8), (5, 5), (30, 5))


STATION = {
    "station": "s1",
    "sources": {"cam": {"kind": "folder", "path": "."}},
    "recipe": "r",
}


def station_with(check: dict) -> dict:
    return {**STATION, "recipes": {"r": {"checks": [{"name": "gauge", "source": "cam", **check}]}}}


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (
            {
                "tool": {
                    **PLATE_TOOL,
                    "measurements": [{"name": "w", "value": "width", "of": ["across"], "min": 3, "max": 2}],
                }
            },
            "recipes.r.checks.0[gauge].tool.measure.measurements.0: Value error, tolerance upside down",
        ),
        (
            {
                "tool": {
                    **PLATE_TOOL,
                    "measurements": [{"name": "w", "value": "width", "of": ["nope"], "max": 2}],
                }
            },
            "of ['nope'] is not in features",
        ),
        (
            {
                "tool": {
                    **PLATE_TOOL,
                    "measurements": [{"name": "w", "value": "diameter", "of": ["across"], "max": 2}],
                }
            },
            "diameter takes circle, not pair",
        ),
        (
            {"tool": {**PLATE_TOOL, "measurements": [{"name": "w", "value": "width", "of": ["across"]}]}},
            "give at least one a tolerance",
        ),
        (
            {"tool": {"kind": "ocr", "expect": "LOT ([0-9"}},
            "tool.ocr.expect: Value error, not a regular expression",
        ),
        ({"tool": {"kind": "ocr"}}, "give expect (a regex) and/or expiry"),
        ({"tool": {"kind": "ocr", "expect": "x", "expiry": {"format": "%Y"}}}, "needs a month"),
        ({"tool": {"kind": "blob"}}, "give at least one rule"),
        ({"tool": {"kind": "blob", "block": 30, "count": {"max": 0}}}, "block: Value error, must be odd"),
        (
            {"tool": {"kind": "blob", "count": {"max": 0, "review_band": 0.1}}},
            "review_band needs a two-sided",
        ),
        ({"tool": {"kind": "colour"}}, "does not match any of the expected tags"),
        ({"tool": PLATE_TOOL, "roi": [0, 0, 200, 200]}, "outside its 200x200 ROI"),
        ({"tool": PLATE_TOOL, "bundle": "b"}, "give either bundle (a model) or tool"),
        ({}, "give either bundle (a model) or tool"),
    ],
)
def test_bad_tool_configuration_names_recipe_check_and_key(check: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(station_with(check), "STATION.yaml")
    assert "STATION.yaml" in str(error.value) and message in str(error.value), str(error.value)
    assert "[gauge]" in str(error.value)


def test_mm_without_a_scale_and_a_roi_outside_the_reference_fail_at_start_up(tmp_path) -> None:
    doc = {
        **PLATE_TOOL,
        "measurements": [{**PLATE_TOOL["measurements"][0], "unit": "mm", "nominal": 8, "tol": 1}],
    }
    config = CheckConfig(name="gauge", tool=MeasureToolConfig.model_validate(doc), source="cam")
    with pytest.raises(ConfigError, match="check 'gauge': tool: unit mm needs a scale"):
        CheckRunner(config)
    cv2.imwrite(str(tmp_path / "ref.png"), np.zeros((100, 120), np.uint8))
    blob = BlobToolConfig(kind="blob", count={"max": 0})
    config = CheckConfig(
        name="spots", tool=blob, source="cam", roi=(50, 0, 100, 50), align_to=tmp_path / "ref.png"
    )
    with pytest.raises(ConfigError, match=r"roi \(50, 0, 100, 50\) reaches outside the 120x100 reference"):
        CheckRunner(config)
    with pytest.raises(ValidationError, match="tolerance upside down"):
        Limits(min=1, max=1)
