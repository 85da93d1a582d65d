"""Render the sample parts of docs/tools.md, run each tool on them and write the overlays the
page shows (docs/img/tool-*.png) and the sample images (into OUT, default /tmp/lineguard-tools).

    python scripts/tool_pictures.py [OUT]

The parts are drawn with known geometry (tests/tool_parts.py), so the numbers on the page can be
checked against the truth; nothing here comes from a dataset.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tool_parts import BLOB_TOOL, PLATE_TOOL, Plate, particles, render  # noqa: E402

from lineguard.tools.checks import build_tool  # noqa: E402
from lineguard.tools.config import (  # noqa: E402
    BlobToolConfig,
    CodeToolConfig,
    ColorToolConfig,
    MeasureToolConfig,
    OcrToolConfig,
    PresenceToolConfig,
)
from lineguard.tools.synthetic import DotPrint, render_lines  # noqa: E402

OCR_TOOL = {
    "kind": "ocr",
    "print": "dot_matrix",
    "expect": r"LOT {part_id} EXP \d\d-20\d\d",
    "expiry": {"format": "%m-%Y", "min_months": 6},
}
CODE_TOOL = {"kind": "code", "formats": ["DataMatrix"], "expect": "LOT {part_id}", "min_contrast": 40}
COLOR_TOOL = {"kind": "color", "reference": [60.6, 33.6, 57.5], "delta_e": {"max": 2.0}}
LOT_PRINT = DotPrint(dot_diameter=6.0, pitch=9.0, jitter=0.3, noise=4.0)
TEXT_WIDTH = 674  # of the two printed lines: 11 characters at 6 x 9 px pitch, 40 px margins


def label(rng: np.random.Generator) -> np.ndarray:
    """The dot-matrix lot code and expiry, and a Data Matrix of the lot code beside them."""
    import zxingcpp

    text = render_lines(["LOT L24X7B", "EXP 09-2028"], LOT_PRINT, rng)
    assert text.shape[1] == TEXT_WIDTH
    code = zxingcpp.create_barcode("LOT L24X7B", zxingcpp.BarcodeFormat.DataMatrix)
    matrix = np.array(zxingcpp.write_barcode_to_image(code, scale=5))
    matrix = np.where(matrix < 128, 40, 215).astype(np.uint8)
    page = np.full((text.shape[0], text.shape[1] + matrix.shape[1] + 40), 215, np.uint8)
    page[:, : text.shape[1]] = text
    top = (text.shape[0] - matrix.shape[0]) // 2
    page[top : top + matrix.shape[0], text.shape[1] + 20 : text.shape[1] + 20 + matrix.shape[1]] = matrix
    return page


def paint(rng: np.random.Generator) -> np.ndarray:
    """An orange painted patch (sRGB 220, 120, 40) under camera noise."""
    return np.clip(np.array([220.0, 120.0, 40.0]) + rng.normal(0, 3, (120, 160, 3)), 0, 255).astype(np.uint8)


def main(out: Path) -> None:
    rng = np.random.default_rng(2026)
    out.mkdir(parents=True, exist_ok=True)
    img = ROOT / "docs" / "img"
    samples = {
        "plate.png": (render(Plate(), rng, angle_deg=0.0), MeasureToolConfig.model_validate(PLATE_TOOL), ""),
        "particles.png": (particles(rng), BlobToolConfig.model_validate(BLOB_TOOL), ""),
        "L24X7B.png": (label(rng), CodeToolConfig.model_validate(CODE_TOOL), "L24X7B"),
        "paint.png": (paint(rng), ColorToolConfig.model_validate(COLOR_TOOL), ""),
    }
    # the ocr check's ROI: the print, not the code beside it
    # presence: the plate's corner and bore, taught on the upright plate, found on a turned one
    cv2.imwrite(str(out / "pattern.png"), samples["plate.png"][0][20:150, 40:200])
    turned = render(Plate(), rng, angle_deg=-6.0, shift=(7.0, -4.0))
    presence = PresenceToolConfig(kind="presence", template=out / "pattern.png", angle_range=10)
    samples["turned.png"] = (turned, presence, "")
    print_only = samples["L24X7B.png"][0][:, :TEXT_WIDTH]
    samples["ocr"] = (print_only, OcrToolConfig.model_validate(OCR_TOOL), "L24X7B")
    for (name, (image, config, part_id)), tool_name in zip(
        samples.items(), ("measure", "blob", "code", "color", "presence", "ocr"), strict=True
    ):
        if name.endswith(".png"):
            cv2.imwrite(str(out / name), image if image.ndim == 2 else image[:, :, ::-1])
        document = config.model_dump(mode="json", exclude_defaults=True)
        if "template" in document:  # beside the tool file, which its paths are relative to
            document["template"] = Path(document["template"]).name
        (out / f"{tool_name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        result = build_tool(config, None).run(image, part_id)
        assert result.overlay is not None
        cv2.imwrite(str(img / f"tool-{tool_name}.png"), result.overlay[:, :, ::-1])
        values = ", ".join(f"{m.name}={m.value if m.text is None else m.text}" for m in result.measurements)
        print(f"{tool_name}: {result.decision} {values} {result.reason}")
    print(f"samples and tool files: {out}; overlays: {img}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/lineguard-tools"))
