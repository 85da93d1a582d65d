"""The line PC's install (no torch, no scikit-learn) runs a station with one check of each kind:
anomaly, classification, detection and segmentation bundles on the same parts; and a recipe that
mixes a model with the measure, blob, OCR, code and color tools."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml
from helpers import add_scratch, textured_part, write_line
from typer.testing import CliRunner

from lineguard.store import RecordStore, sqlite_url


def test_a_line_pc_runs_one_check_of_each_kind(
    station_bundle, trained_classifier, trained_detector, trained_segmenter, tmp_path
):
    from torch_free import torch_free_cli

    pytest.importorskip("torchvision")  # the supervised bundles are exported here
    from lineguard.cli import app

    bundles = {"anomaly": station_bundle}
    for kind, (_, model_dir, _) in (
        ("classify", trained_classifier),
        ("detect", trained_detector),
        ("segment", trained_segmenter),
    ):
        out = tmp_path / f"{kind}-bundle"
        result = CliRunner().invoke(app, ["export", str(model_dir), "--out", str(out)])
        assert result.exit_code == 0, result.output
        bundles[kind] = out
    write_line(tmp_path / "line", 6, defect_every=3)
    state = tmp_path / "state"
    doc = {
        "station": "every-kind",
        "state_dir": str(state),
        "sources": {"cam": {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 0}},
        "recipes": {
            "all": {"checks": [{"name": k, "bundle": str(b), "source": "cam"} for k, b in bundles.items()]}
        },
        "recipe": "all",
        "deadline_ms": 20000,
        "sinks": {"jsonl": {"path": str(state / "results.jsonl")}},
    }
    # the segmenter's defects decide its check: none larger than 40 px² (in the 128 px part)
    doc["recipes"]["all"]["checks"][-1]["defects"] = {"min_area": 4, "largest_area": {"max": 40}}
    (tmp_path / "station.yaml").write_text(yaml.safe_dump(doc))
    torch_free_cli("run", str(tmp_path / "station.yaml"), "--quiet", timeout=300)

    store = RecordStore(sqlite_url(state / "record.db"), tmp_path / "reader-journal.jsonl")
    try:
        parts = store.parts("every-kind", limit=100)
    finally:
        store.close()
    assert len(parts) == 6
    for part in parts:
        assert [c.check for c in part.checks] == list(bundles)
        for check in part.checks:  # every kind ran and decided (a check that failed has no score)
            assert check.score is not None, (check.check, check.reason)
            assert check.decision in ("OK", "REVIEW", "NG") and check.bundle_sha256
        by_kind = {c.check: c for c in part.checks}
        sizes = {m.name: m for m in by_kind["segment"].measurements}
        assert sorted(sizes) == [
            f"defects.{v}" for v in ("count", "largest_area", "largest_length", "total_area")
        ]
        largest = sizes["defects.largest_area"]
        assert (
            largest.unit == "px2" and largest.hi == 40 and (largest.decision == "NG") == (largest.value > 40)
        )
        assert by_kind["segment"].decision == "NG" or largest.value <= 40
        if part.verdict != "OK":  # kept: the segmenter's map is archived as any model's
            assert by_kind["segment"].heatmap_sha256 is not None
        # a classifier names the class it saw (a REVIEW part may still look most like a good one)
        assert by_kind["classify"].reason.split()[0] in ("good", "scratch", "spot"), by_kind[
            "classify"
        ].reason
    lines = [json.loads(line) for line in (state / "results.jsonl").read_text().splitlines()]
    assert sorted(r["uid"] for r in lines) == sorted(p.uid for p in parts)


def test_a_line_pc_runs_a_recipe_of_a_model_and_tools_and_records_every_value(station_bundle, tmp_path):
    """One colour camera image per part, six checks on regions of it: the anomaly bundle, a gauge, a
    blob count, the printed lot code and a Data Matrix verified against the part ID, and a colour
    patch against its reference. The verdict is the worst of them."""
    import zxingcpp
    from tool_parts import PLATE_TOOL, Plate, render
    from torch_free import torch_free_cli

    from lineguard.tools.synthetic import DotPrint, render_lines

    rng = np.random.default_rng(5)
    style = DotPrint(dot_diameter=6.0, pitch=9.0, jitter=0.3, noise=4.0)
    # file stem = part ID = the lot code the part must carry; what is wrong with each part
    parts = {
        "L24X7B": {},
        "K31M8P": {"scratch": True},
        "H55R2W": {"printed": "LOT Z90C4D"},
        "A12B3C": {"spots": 3},
        "M48N6Q": {"plate": Plate(x1=219.0)},  # 2.7 px narrower: out of the ±0.5 px tolerance
        "P77Q1R": {"code": "P77Q1S"},
        "C09D2E": {"paint": (60, 140, 200)},  # blue, not the orange the recipe wants
    }
    orange = (220, 120, 40)  # RGB; ΔE00 to the reference below under 1
    line = tmp_path / "line"
    line.mkdir()
    for part_id, fault in parts.items():
        image = np.full((430, 760), 200, np.uint8)
        surface = textured_part(rng)
        if fault.get("scratch"):
            surface, _ = add_scratch(rng, surface)
        image[0:128, 0:128] = surface
        image[0:240, 140:440] = render(fault.get("plate", Plate()), rng)
        spots = np.clip(rng.normal(190, 3, (200, 200)), 0, 255).astype(np.uint8)
        for k in range(fault.get("spots", 0)):
            cv2.circle(spots, (40 + 50 * k, 100), 4, 60, -1)
        image[0:200, 460:660] = spots
        image[250:420, 0:620] = render_lines([fault.get("printed", f"LOT {part_id}")], style, rng)
        code = zxingcpp.create_barcode(fault.get("code", part_id), zxingcpp.BarcodeFormat.DataMatrix)
        matrix = np.array(zxingcpp.write_barcode_to_image(code, scale=4))
        image[300 : 300 + matrix.shape[0], 650 : 650 + matrix.shape[1]] = matrix
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        rgb[10:90, 680:750] = fault.get("paint", orange)
        cv2.imwrite(str(line / f"{part_id}.png"), rgb[:, :, ::-1])
    state = tmp_path / "state"
    checks = [
        {"name": "surface", "bundle": str(station_bundle), "source": "cam", "roi": [0, 0, 128, 128]},
        {"name": "gauge", "tool": PLATE_TOOL, "source": "cam", "roi": [140, 0, 300, 240]},
        {
            "name": "spots",
            "tool": {"kind": "blob", "threshold": "fixed", "level": 120, "min_area": 10, "count": {"max": 0}},
            "source": "cam",
            "roi": [460, 0, 200, 200],
        },
        {
            "name": "lot",
            "tool": {"kind": "ocr", "expect": "LOT {part_id}", "print": "dot_matrix"},
            "source": "cam",
            "roi": [0, 250, 620, 170],
        },
        {
            "name": "code",
            "tool": {"kind": "code", "formats": ["DataMatrix"], "expect": "{part_id}", "min_contrast": 40},
            "source": "cam",
            "roi": [630, 250, 130, 170],
        },
        {
            "name": "paint",
            "tool": {"kind": "color", "reference": [60.6, 33.6, 57.5], "delta_e": {"max": 3.0}},
            "source": "cam",
            "roi": [685, 15, 60, 70],
        },
    ]
    doc = {
        "station": "hybrid",
        "state_dir": str(state),
        "sources": {"cam": {"kind": "replay", "path": str(line), "ppm": 0}},
        "recipes": {"mixed": {"checks": checks}},
        "recipe": "mixed",
        "deadline_ms": 30000,
        "store": {"keep_ok_every": 1},
    }
    (tmp_path / "station.yaml").write_text(yaml.safe_dump(doc))
    torch_free_cli("run", str(tmp_path / "station.yaml"), "--quiet", timeout=300)

    store = RecordStore(sqlite_url(state / "record.db"), tmp_path / "reader-journal.jsonl")
    try:
        recorded = {p.part_id: p for p in store.parts("hybrid", limit=100)}
    finally:
        store.close()
    assert sorted(recorded) == sorted(parts)
    severity = {"OK": 0, "REVIEW": 1, "NG": 2}
    wrong_check = {
        "K31M8P": "surface",
        "H55R2W": "lot",
        "A12B3C": "spots",
        "M48N6Q": "gauge",
        "P77Q1R": "code",
        "C09D2E": "paint",
    }
    for part_id, part in recorded.items():
        checks_by_name = {c.check: c for c in part.checks}
        assert list(checks_by_name) == ["surface", "gauge", "spots", "lot", "code", "paint"]
        assert part.verdict == max((c.decision for c in part.checks), key=severity.get)  # the worst
        failed = [name for name, c in checks_by_name.items() if c.decision != "OK"]
        assert failed == ([wrong_check[part_id]] if part_id in wrong_check else []), (part_id, part.checks)
        gauge, spots, lot = checks_by_name["gauge"], checks_by_name["spots"], checks_by_name["lot"]
        values = {m.name: m.value for m in gauge.measurements}
        assert values["width"] == pytest.approx(161.4 if part_id != "M48N6Q" else 158.7, abs=0.1)
        assert {m.name: m.value for m in spots.measurements}["count"] == (3 if part_id == "A12B3C" else 0)
        read = lot.measurements[0].text
        assert read.startswith("LOT ") and (read == f"LOT {part_id}") == (part_id != "H55R2W"), read
        code, paint = checks_by_name["code"], checks_by_name["paint"]
        assert {m.name: m.text for m in code.measurements}["code"] == parts[part_id].get("code", part_id)
        delta_e = {m.name: m.value for m in paint.measurements}["delta_e"]
        assert (delta_e < 1.0) == (part_id != "C09D2E"), delta_e
        for tool_check in (gauge, spots, lot, code, paint):
            assert tool_check.model_version.startswith("tool:") and len(tool_check.bundle_sha256) == 64
            assert tool_check.heatmap_sha256 is not None  # the overlay, archived with the image
            assert tool_check.timings_ms.get("prepare") is not None
