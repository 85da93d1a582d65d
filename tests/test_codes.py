"""The code tool: Data Matrix, QR and 1-D codes read with zxing-cpp, verified, with symbol contrast."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from lineguard.decision import Decision
from lineguard.tools.checks import CodeTool, contrast_grade, symbol_contrast
from lineguard.tools.config import CodeToolConfig

zxingcpp = pytest.importorskip("zxingcpp")


def printed(text: str, fmt: str, scale: int = 4, dark: int = 0, light: int = 255) -> np.ndarray:
    """The code as printed on a label: ``dark`` modules on ``light`` ground, quiet zone included."""
    code = zxingcpp.create_barcode(text, zxingcpp.barcode_format_from_str(fmt))
    image = np.array(zxingcpp.write_barcode_to_image(code, scale=scale))
    return np.where(image < 128, dark, light).astype(np.uint8)


def on_part(*codes: np.ndarray, size=(300, 420), angle: float = 0.0, seed: int = 0) -> np.ndarray:
    """The labels placed side by side on a grey part, rotated, blurred and noisy, in RGB."""
    rng = np.random.default_rng(seed)
    part = np.full(size, 150.0)
    x = 20
    for code in codes:
        h, w = code.shape
        part[30 : 30 + h, x : x + w] = code
        x += w + 30
    centre = (size[1] / 2, size[0] / 2)
    part = cv2.warpAffine(part, cv2.getRotationMatrix2D(centre, angle, 1.0), size[::-1], borderValue=150)
    part = cv2.GaussianBlur(part, (0, 0), 0.8) + rng.normal(0, 3, size)
    return cv2.cvtColor(np.clip(part, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)


def tool(**keys) -> CodeTool:
    return CodeTool(CodeToolConfig(kind="code", **keys))


def test_reads_and_verifies_a_data_matrix_against_the_part_id() -> None:
    image = on_part(printed("LOT L24X7B", "DataMatrix"), angle=12.0)
    result = tool(expect="LOT {part_id}").run(image, "L24X7B")
    assert result.decision == Decision.OK, result.reason
    got = {m.name: m for m in result.measurements}
    assert got["count"].value == 1 and got["code"].text == "LOT L24X7B" and got["code"].decision == "OK"
    assert got["contrast"].unit == "%" and got["contrast"].value > 70 and got["contrast"].text == "A"
    wrong = tool(expect="LOT {part_id}").run(image, "L99X9Z")
    assert wrong.decision == Decision.NG and "reads 'LOT L24X7B', expected" in wrong.reason
    assert tool(expect="LOT {part_id}").run(image, "").decision is None  # fail-safe: nothing to verify


def test_counts_codes_of_the_formats_asked_for() -> None:
    image = on_part(printed("PN-4471-20", "QRCode"), printed("4006381333931", "EAN13", scale=2))
    both = tool(formats=("QRCode", "EAN13"), count=2).run(image)
    assert both.decision == Decision.OK, both.reason
    texts = sorted(m.text for m in both.measurements if m.name.startswith("code"))
    assert texts == ["4006381333931", "PN-4471-20"]
    qr_only = tool(formats=("QRCode",)).run(image)
    assert qr_only.decision == Decision.OK and qr_only.measurements[1].text == "PN-4471-20"
    missing = tool(formats=("DataMatrix",)).run(image)
    assert missing.decision == Decision.NG and missing.reason == "no code found"
    extra = tool(formats=("QRCode", "EAN13")).run(image)
    assert extra.decision == Decision.NG and "found 2 codes, expected 1" in extra.reason


def test_faint_print_fails_the_contrast_floor() -> None:
    faint = on_part(printed("LOT L24X7B", "DataMatrix", dark=110, light=170))
    result = tool(min_contrast=40).run(faint)
    contrast = next(m for m in result.measurements if m.name == "contrast")
    assert 15 < contrast.value < 30 and contrast.text == "D"
    assert result.decision == Decision.NG and "symbol contrast" in result.reason
    assert tool(min_contrast=15).run(faint).decision == Decision.OK


def test_symbol_contrast_and_grades() -> None:
    grey = np.zeros((40, 40), np.uint8)
    grey[:, 20:] = 204  # dark and light halves: 80 %
    corners = np.array([[0, 0], [39, 0], [39, 39], [0, 39]], float)
    assert symbol_contrast(grey, corners) == pytest.approx(80.0)
    assert [contrast_grade(v) for v in (80, 60, 45, 25, 10)] == ["A", "B", "C", "D", "F"]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"formats": ["Datamatrix"]}, "formats.0"),
        ({"formats": []}, "at least 1 item"),
        ({"expect": "LOT ("}, "not a regular expression"),
        ({"count": 0}, "greater than or equal to 1"),
        ({"min_contrast": 120}, "less than or equal to 100"),
    ],
)
def test_bad_code_tool_settings_are_refused(keys, message) -> None:
    with pytest.raises(ValidationError, match=message):
        CodeToolConfig(kind="code", **keys)
