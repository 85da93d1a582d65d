"""The color tool: mean CIELAB of the check's region against a reference, as CIEDE2000 ΔE."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from lineguard.decision import Decision
from lineguard.tools.checks import ColorTool, mean_lab
from lineguard.tools.config import ColorToolConfig

colour = pytest.importorskip("colour")


def patch(lab: tuple[float, float, float], noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """An 8-bit sRGB patch of this CIELAB colour, with camera noise."""
    rgb = colour.XYZ_to_sRGB(colour.Lab_to_XYZ(np.asarray(lab, float)))
    rng = np.random.default_rng(seed)
    image = np.clip(rgb * 255.0 + rng.normal(0, noise, (60, 80, 3)), 0, 255)
    return np.round(image).astype(np.uint8)


# Pairs and ΔE00 from Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula", table 1.
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, -1.0, 2.0), (50.0, 0.0, 0.0), 2.3669),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.694), (23.0331, 14.973, -42.5619), 2.0373),
]


@pytest.mark.parametrize(("reference", "sample", "want"), SHARMA)
def test_delta_e_is_ciede2000(reference, sample, want) -> None:
    tool = ColorTool(ColorToolConfig(kind="color", reference=reference, delta_e={"max": 3.0}))
    assert float(tool._delta_e(np.asarray(sample), np.asarray(reference))) == pytest.approx(want, abs=1e-4)
    rgb = colour.XYZ_to_sRGB(colour.Lab_to_XYZ(np.asarray(sample)))
    if rgb.min() < 0 or rgb.max() > 1:
        return  # a colour no sRGB camera image holds (Sharma's first pair is outside the gamut)
    # An image of the sample: its mean colour within 8-bit quantisation, so ΔE within what that moves
    image = patch(sample)
    assert np.abs(mean_lab(image) - sample).max() < 0.5
    result = tool.run(image)
    assert result.measurements[0].name == "delta_e"
    assert result.measurements[0].value == pytest.approx(want, abs=0.35)
    assert result.decision == Decision.OK


def test_judges_the_colour_shift_of_the_region() -> None:
    reference = (55.0, 20.0, 30.0)
    tool = ColorTool(ColorToolConfig(kind="color", reference=reference, delta_e={"max": 2.0}))
    same = tool.run(patch(reference, noise=4.0))
    assert same.decision == Decision.OK and same.measurements[0].value < 0.6
    shifted = tool.run(patch((55.0, 24.0, 30.0), noise=4.0))
    assert shifted.decision == Decision.NG and "delta_e" in shifted.reason
    assert [m.name for m in shifted.measurements] == ["delta_e", "L", "a", "b"]
    assert shifted.measurements[2].value == pytest.approx(24.0, abs=0.6)
    with pytest.raises(ValueError, match="needs a colour image"):
        tool.run(patch(reference)[:, :, 0].copy())


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"reference": (120, 0, 0), "delta_e": {"max": 2}}, "is not L"),
        ({"reference": (50, 0, 0), "delta_e": {"min": 1}}, "positive upper limit"),
        ({"reference": (50, 0, 0)}, "delta_e\n  Field required"),
    ],
)
def test_bad_color_settings_are_refused(keys, message) -> None:
    with pytest.raises(ValidationError, match=message):
        ColorToolConfig(kind="color", **keys)
