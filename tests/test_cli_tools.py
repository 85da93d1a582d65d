"""`lineguard read` and `lineguard measure`: a tool tried on images before it goes into a recipe."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import yaml
from tool_parts import PLATE_TOOL, Plate, render
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.tools.synthetic import DotPrint, render_lines


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def plates(tmp_path):
    """Two plates of the nominal geometry (one shifted 4 px right) and one 1 px too wide."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "plates"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), render(Plate(), rng))
    cv2.imwrite(str(folder / "b.png"), render(Plate(), rng, shift=(4.0, 0.0)))
    cv2.imwrite(str(folder / "c.png"), render(Plate(x1=222.7), rng))
    tool = tmp_path / "plate.yaml"
    tool.write_text(yaml.safe_dump(PLATE_TOOL))
    return tool, folder


def test_measure_runs_a_tool_file_on_images_and_reports_each_value(plates, tmp_path):
    tool, folder = plates
    result = invoke("measure", tool, folder, "--json", "--overlay", tmp_path / "overlays")
    assert result.exit_code == 1, result.output  # c.png is too wide
    records = {
        json.loads(line)["path"].rsplit("/", 1)[1]: json.loads(line) for line in result.stdout.splitlines()
    }
    assert [records[n]["decision"] for n in ("a.png", "b.png", "c.png")] == ["OK", "OK", "NG"]
    width = {n: next(m for m in r["measurements"] if m["name"] == "width") for n, r in records.items()}
    assert width["a.png"]["value"] == pytest.approx(161.4, abs=0.1)
    assert width["b.png"]["value"] == pytest.approx(161.4, abs=0.1)
    assert width["c.png"]["value"] == pytest.approx(162.4, abs=0.1) and width["c.png"]["decision"] == "NG"
    assert "width" in records["c.png"]["reason"]
    overlay = cv2.imread(records["a.png"]["overlay"])
    assert overlay.shape == (240, 300, 3)
    text = invoke("measure", tool, folder / "a.png")
    assert text.exit_code == 0 and "\tOK\twidth=161." in text.stdout and " px OK" in text.stdout


def test_measure_follows_a_fixture_on_a_turned_part(plates, tmp_path):
    tool, folder = plates
    turned = tmp_path / "turned.png"
    cv2.imwrite(str(turned), render(Plate(), np.random.default_rng(9), angle_deg=-5.0, shift=(6.0, -3.0)))
    # the calipers sit where the upright plate was: without the fixture they cut it askew
    assert invoke("measure", tool, turned).exit_code == 1
    fixture = ("--fixture", folder / "a.png", "--pattern", "40,20,160,130", "--angle-range", "10")
    result = invoke("measure", tool, turned, *fixture, "--json")
    assert result.exit_code == 0, result.output
    got = {m["name"]: m["value"] for m in json.loads(result.stdout)["measurements"]}
    assert got["width"] == pytest.approx(161.4, abs=0.1) and got["fixture.angle"] == pytest.approx(
        5.0, abs=0.3
    )
    alone = invoke("measure", tool, turned, "--fixture", folder / "a.png")
    assert alone.exit_code == 2 and "--fixture REFERENCE and --pattern x,y,w,h go together" in alone.output


def test_measure_takes_the_checks_roi(plates, tmp_path):
    tool, folder = plates
    doc = yaml.safe_load(tool.read_text())
    doc["features"] = {"across": {**doc["features"]["across"], "start": [10, 50], "end": [240, 50]}}
    doc["measurements"] = doc["measurements"][:1]
    cropped = tmp_path / "cropped.yaml"
    cropped.write_text(yaml.safe_dump(doc))
    result = invoke("measure", cropped, folder / "a.png", "--roi", "20,20,260,200", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["measurements"][0]["value"] == pytest.approx(161.4, abs=0.1)
    outside = invoke("measure", tool, folder / "a.png", "--roi", "20,20,100,100")
    assert outside.exit_code == 2 and "outside its 100x100 ROI" in outside.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "caliper"}, r"plate.yaml: .*does not match any of the expected tags"),
        (
            {"measurements": [{"name": "w", "value": "width", "of": ["gone"]}]},
            r"plate.yaml: measurements.0 \(w\): of \['gone'\] is not in features",
        ),
        ({"measurements": [{"name": "w", "value": "width", "of": ["across"], "min": 2, "max": 1}]}, "upside"),
        ({"colour": "red"}, r"plate.yaml: colour: Extra inputs are not permitted"),
    ],
)
def test_measure_names_the_file_and_key_of_a_bad_tool(plates, change, message):
    tool, folder = plates
    tool.write_text(yaml.safe_dump({**PLATE_TOOL, **change}))
    result = invoke("measure", tool, folder)
    assert result.exit_code == 2
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output


def test_measure_reports_an_unreadable_image_as_ng(plates, tmp_path):
    tool, _ = plates
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    result = invoke("measure", tool, broken)
    assert result.exit_code == 1 and "\tNG\t" in result.stdout and "cannot read" in result.stdout


def test_read_prints_the_text_and_verifies_it(tmp_path):
    pytest.importorskip("rapidocr")
    rng = np.random.default_rng(3)
    style = DotPrint(dot_diameter=6.0, pitch=9.0, jitter=0.3, noise=4.0)
    cv2.imwrite(str(tmp_path / "L24X7B.png"), render_lines(["LOT L24X7B", "EXP 09-2028"], style, rng))
    image = tmp_path / "L24X7B.png"
    plain = invoke("read", image)
    assert plain.exit_code == 0, plain.output
    _, text, confidence = plain.stdout.rstrip("\n").split("\t")
    assert text == "LOT L24X7B EXP 09-2028" and 0.5 < float(confidence) <= 1.0
    # {part_id} is the file's name, as a folder source names parts
    ok = invoke("read", image, "--expect", r"LOT {part_id} EXP \d\d-20\d\d", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["decision"] == "OK"
    other = invoke("read", image, "--expect", r"LOT {part_id} EXP \d\d-20\d\d", "--part-id", "L99X9Z")
    assert other.exit_code == 1 and "\tNG (read 'LOT L24X7B EXP 09-2028'" in other.stdout


def test_read_refuses_a_bad_regex_and_reports_what_it_cannot_read(tmp_path):
    pytest.importorskip("rapidocr")
    bad = invoke("read", tmp_path / "x.png", "--expect", "LOT (")
    assert bad.exit_code == 2 and "--expect: not a regular expression" in bad.output
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 400), 210, np.uint8))
    result = invoke("read", blank, tmp_path / "missing.png")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].endswith("\t(no text found)\t0.00") and "cannot read" in lines[1]
    roi = invoke("read", blank, "--roi", "0,0,500,10")
    assert roi.exit_code == 1 and "reaches outside the 400x120 image" in roi.stdout


def test_the_tool_files_and_recipe_in_docs_tools_md_are_valid():
    from pathlib import Path

    from pydantic import TypeAdapter

    from lineguard.station.config import RecipeConfig
    from lineguard.tools.config import ToolConfig

    page = (Path(__file__).resolve().parents[1] / "docs" / "tools.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", page, re.S)]
    tools = [b for b in blocks if "kind" in b]
    assert {t["kind"] for t in tools} == {"measure", "blob", "presence", "ocr", "code", "color"}
    for tool in tools:
        TypeAdapter(ToolConfig).validate_python(tool)
    recipes = [recipe for b in blocks if "recipes" in b for recipe in b["recipes"].values()]
    assert len(recipes) == 2
    for recipe in recipes:
        RecipeConfig.model_validate(recipe)
