"""The CLI end to end on a generated folder dataset: fit -> evaluate -> predict."""

import json

import pytest
from typer.testing import CliRunner

from lineguard.cli import app, parse_size

runner = CliRunner()


def fit_folder(data, out, *options: str) -> list[str]:
    return ["fit", str(data), "--format", "folder", "--out", str(out), *options]


def write_tall_parts(root, n: int, seed: int) -> None:
    """``n`` good parts 60 wide x 150 high in the folder layout."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    (root / "good").mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / "good" / f"{i}.png"), rng.integers(90, 160, (150, 60), np.uint8))


@pytest.fixture(scope="module")
def trained(folder_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    result = runner.invoke(
        app,
        [
            "fit",
            str(folder_dataset),
            "--format",
            "folder",
            "--out",
            str(out),
            "--size",
            "128",
            "--calibration-fraction",
            "0.25",
            "--threads",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_fit_writes_a_calibrated_model(trained):
    doc = json.loads((trained / "model.json").read_text())
    # --model auto without labelled defects: PaDiM and PatchCore ranked on 60 synthetic defects
    trials = doc["metadata"]["selection"]["trials"]
    assert [t["model"] for t in trials] == ["padim", "patchcore"]
    best = max(trials, key=lambda t: t["validation_auroc"])
    assert doc["kind"] == best["model"] and doc["config"]["image_size"] == [128, 128]
    assert doc["metadata"]["validation"]["defects"] == "synthetic"
    assert doc["config"]["top_fraction"] == 0.01
    th = doc["calibration"]["thresholds"]
    assert th["review"] <= th["ng"]
    assert doc["metadata"]["n_fit_images"] == 18 and doc["metadata"]["n_calibration_good"] == 6
    # 30 good images: 0.5 % cannot be resolved, and the user is told so
    assert doc["calibration"]["warnings"]


def test_evaluate_writes_metrics_and_plots(trained, folder_dataset, tmp_path):
    report = tmp_path / "report"
    result = runner.invoke(
        app, ["evaluate", str(trained), str(folder_dataset), "--format", "folder", "--out", str(report)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    for key in (
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "n_good",
        "n_defect",
        "threshold",
        "false_reject_rate",
        "sensitivity",
    ):
        assert key in metrics
    assert metrics["n_good"] == 6 and metrics["n_defect"] == 8
    assert metrics["image_auroc"] >= 0.9 and metrics["pixel_auroc"] >= 0.9
    assert 0.0 <= metrics["aupro"] <= 1.0
    assert (report / "roc.png").stat().st_size > 1000
    assert (report / "score_histogram.png").stat().st_size > 1000
    assert len(list((report / "worst").glob("*.png"))) == 12
    # the good parts closest to rejection and the defects closest to escaping
    assert len(list((report / "good_highest").glob("*_good_*.png"))) == 6
    assert len(list((report / "defect_lowest").glob("*_defect_*.png"))) == 8


def test_predict_lines_and_json(trained, folder_dataset):
    result = runner.invoke(app, ["predict", str(trained), str(folder_dataset / "scratch")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 8
    path, score, decision, threshold = lines[0].split("\t")
    assert float(threshold) > 0
    assert path.endswith("d000.png") and float(score) > 0 and decision in {"OK", "REVIEW", "NG"}
    result = runner.invoke(
        app, ["predict", str(trained), str(folder_dataset / "good" / "g000.png"), "--json"]
    )
    record = json.loads(result.output)
    assert set(record) >= {"path", "score", "decision", "threshold"}


def test_predict_never_passes_an_unreadable_image(trained, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = runner.invoke(app, ["predict", str(trained), str(bad), "--json"])
    assert result.exit_code == 1
    record = json.loads(result.output)
    assert record["decision"] == "NG" and record["score"] is None
    assert "broken.png" in record["error"]


def test_fit_reports_a_bad_file_by_name(folder_dataset, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(folder_dataset, data)
    from lineguard.data import open_dataset

    victim = open_dataset(data, "folder").train[3].path  # an image fit will read
    victim.write_bytes(b"")
    result = runner.invoke(
        app, ["fit", str(data), "--format", "folder", "--out", str(tmp_path / "m"), "--size", "64"]
    )
    assert result.exit_code == 2
    assert f"{victim.name}: empty file" in result.output
    assert not (tmp_path / "m").exists()


def test_fit_patchcore_with_auto_size_keeps_the_aspect_ratio(tmp_path):
    write_tall_parts(tmp_path / "d", 12, seed=0)
    out = tmp_path / "m"
    result = runner.invoke(
        app,
        fit_folder(
            tmp_path / "d", out, "--model", "patchcore", "--coreset-ratio", "0.1", "--top-fraction", "0"
        ),
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "model.json").read_text())
    assert doc["kind"] == "patchcore" and doc["config"]["top_fraction"] is None
    assert doc["config"]["image_size"] == [640, 256]  # short side 256, 2.5:1 kept


def test_size_parsing():
    assert parse_size("auto") is None
    assert parse_size("256") == (256, 256)
    assert parse_size("208x512") == (512, 208)
    with pytest.raises(Exception, match="WIDTHxHEIGHT"):
        parse_size("big")


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    for command in ("fit", "evaluate", "predict", "backbones"):
        assert command in result.output


def test_export_then_evaluate_and_predict_the_bundle_like_the_model(trained, folder_dataset, tmp_path):
    bundle = tmp_path / "bundle"
    result = runner.invoke(app, ["export", str(trained), "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    assert (bundle / "manifest.json").exists() and (bundle / "model.onnx").exists()
    reports = {}
    for name, source in (("model", trained), ("bundle", bundle)):
        out = tmp_path / name
        result = runner.invoke(
            app, ["evaluate", str(source), str(folder_dataset), "--format", "folder", "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        reports[name] = json.loads((out / "metrics.json").read_text())
    for key in ("image_auroc", "pixel_auroc", "aupro", "false_reject_rate", "sensitivity"):
        assert reports["bundle"][key] == pytest.approx(reports["model"][key], abs=1e-4), key
    assert reports["bundle"]["decisions"] == reports["model"]["decisions"]
    lines = {}
    for name, source in (("model", trained), ("bundle", bundle)):
        result = runner.invoke(app, ["predict", str(source), str(folder_dataset / "scratch"), "--json"])
        lines[name] = [json.loads(line) for line in result.output.splitlines()]
    assert [r["decision"] for r in lines["bundle"]] == [r["decision"] for r in lines["model"]]
    for a, b in zip(lines["bundle"], lines["model"], strict=True):
        assert a["score"] == pytest.approx(b["score"], rel=1e-4)


def test_fit_with_tiles_at_native_size(tmp_path):
    write_tall_parts(tmp_path / "d", 10, seed=1)  # working size 144x64 (multiples of 16)
    out = tmp_path / "m"
    result = runner.invoke(
        app, fit_folder(tmp_path / "d", out, "--model", "patchcore", "--tile", "64", "--tile-overlap", "16")
    )
    assert result.exit_code == 0, result.output
    tiling = json.loads((out / "model.json").read_text())["config"]["tiling"]
    assert (tiling["height"], tiling["width"], tiling["tile_height"], tiling["overlap"]) == (144, 64, 64, 16)
    assert tiling["n_tiles"] == 3
    result = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "d"),
            "--format",
            "folder",
            "--out",
            str(out),
            "--tile",
            "64",
            "--model",
            "padim",
        ],
    )
    assert result.exit_code == 2 and "position-free" in result.output
    # --model auto tiles with the position-free model
    result = runner.invoke(app, fit_folder(tmp_path / "d", tmp_path / "auto", "--tile", "64"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "auto" / "model.json").read_text())["kind"] == "patchcore"


def test_export_int8_reports_the_guard_and_writes_the_bundle_it_chose(trained, folder_dataset, tmp_path):
    bundle = tmp_path / "int8"
    int8 = ["--int8", "--calibration", str(folder_dataset), "--format", "folder"]
    result = runner.invoke(app, ["export", str(trained), "--out", str(bundle), *int8])
    assert result.exit_code == 0, result.output
    report = json.loads((bundle / "quantization_report.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert ("INT8 kept" if report["accepted"] else "INT8 refused") in result.output
    assert manifest["graph"]["file"] == ("model.int8.onnx" if report["accepted"] else "model.onnx")
    # calibrated on the training images, mapped on the 6 held-out good ones, guarded on the test split
    assert report["n_calibration"] == 24 and report["n_validation"] == 14
    if report["accepted"]:
        assert manifest["quantization"]["score_affine"]["fitted_on_images"] == 6
    result = runner.invoke(app, ["predict", str(bundle), str(folder_dataset / "scratch")])
    assert result.exit_code == 0, result.output


def test_export_int8_needs_a_calibration_dataset(trained, tmp_path):
    result = runner.invoke(app, ["export", str(trained), "--out", str(tmp_path / "b"), "--int8"])
    assert result.exit_code == 2 and "--calibration" in result.output


def test_zipped_bundle_predicts_like_the_folder(trained, folder_dataset, tmp_path):
    lines = {}
    for out in (tmp_path / "b", tmp_path / "b.zip"):
        result = runner.invoke(app, ["export", str(trained), "--out", str(out)])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["predict", str(out), str(folder_dataset / "scratch"), "--json"])
        lines[out.suffix] = [json.loads(line) for line in result.output.splitlines()]
    assert tmp_path.joinpath("b.zip").is_file() and lines[".zip"] == lines[""]


def test_fit_names_its_good_folder_and_states_expected_escapes(tmp_path):
    """A folder of 'normal' parts beside known defects, PatchCore with the paper's re-weighting."""
    import cv2
    import numpy as np
    from helpers import add_scratch, textured_part

    rng = np.random.default_rng(0)
    root = tmp_path / "cubes"
    (root / "normal").mkdir(parents=True)
    (root / "dent").mkdir()
    for i in range(24):
        cv2.imwrite(str(root / "normal" / f"n{i}.png"), textured_part(rng, 96))
    for i in range(6):
        cv2.imwrite(str(root / "dent" / f"d{i}.png"), add_scratch(rng, textured_part(rng, 96))[0])
    out = tmp_path / "m"
    options = ["--model", "patchcore", "--top-fraction", "0", "--reweight-neighbours", "9", "--size", "96"]
    result = runner.invoke(app, [*fit_folder(root, out, *options), "--good-class", "normal"])
    assert result.exit_code == 0, result.output
    assert "expected at these thresholds: false rejects below" in result.output
    assert "of 60 synthetic defects pass as OK, " in result.output
    doc = json.loads((out / "model.json").read_text())
    assert doc["config"]["reweight_neighbours"] == 9 and doc["metadata"]["split"]["good_class"] == "normal"
    # evaluate re-opens the layout with the same good folder and says what passes as OK
    result = runner.invoke(
        app, ["evaluate", str(out), str(root), "--format", "folder", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert "passed as OK (escape rate" in result.output


def test_fit_without_any_defects_says_escapes_are_unknown(folder_dataset, tmp_path):
    options = ["--model", "padim", "--size", "64", "--synthetic-defects", "0"]
    result = runner.invoke(app, [*fit_folder(folder_dataset, tmp_path / "m", *options)])
    assert result.exit_code == 0, result.output
    assert "escapes unknown (no defects to measure them on" in result.output


def test_reweighting_without_the_highest_patch_score_is_refused(folder_dataset, tmp_path):
    result = runner.invoke(
        app, fit_folder(folder_dataset, tmp_path / "m", "--model", "patchcore", "--reweight-neighbours", "9")
    )
    assert result.exit_code != 0 and "top_fraction" in result.output


def test_evaluate_leaves_out_seen_images_by_content_after_the_dataset_moved(
    trained, folder_dataset, tmp_path
):
    # Found: seen images were named by absolute path, so a moved dataset (or any bundle, which
    # never carried the list) was tested on its own training images without a word.
    import shutil

    moved = shutil.copytree(folder_dataset, tmp_path / "elsewhere" / "data")
    bundle = tmp_path / "bundle"
    assert runner.invoke(app, ["export", str(trained), "--out", str(bundle)]).exit_code == 0
    excluded = {}
    for name, model, data in (
        ("model", trained, folder_dataset),
        ("moved", trained, moved),
        ("bundle", bundle, moved),
    ):
        # Another split seed: this test split holds images the model was fitted or calibrated on.
        out = tmp_path / name
        cmd = ["evaluate", str(model), str(data), "--format", "folder", "--out", str(out), "--seed", "7"]
        result = runner.invoke(app, cmd)
        assert result.exit_code == 0, result.output
        excluded[name] = json.loads((out / "metrics.json").read_text())["n_excluded_seen_in_fit"]
    assert excluded["model"] > 0
    assert excluded["moved"] == excluded["bundle"] == excluded["model"]


def test_an_anomaly_bundle_evaluates_without_torch_like_the_model(trained, folder_dataset, tmp_path):
    from torch_free import torch_free_cli

    bundle = tmp_path / "bundle"
    assert runner.invoke(app, ["export", str(trained), "--out", str(bundle)]).exit_code == 0
    torch_free_cli(
        "evaluate",
        str(bundle),
        str(folder_dataset),
        "--format",
        "folder",
        "--out",
        str(tmp_path / "b"),
        env="eval",
    )
    cmd = ["evaluate", str(trained), str(folder_dataset), "--format", "folder", "--out", str(tmp_path / "m")]
    assert runner.invoke(app, cmd).exit_code == 0
    got, want = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("b", "m"))
    for key in ("image_auroc", "pixel_auroc", "aupro", "n_excluded_seen_in_fit"):
        assert got[key] == pytest.approx(want[key], abs=1e-4), key
    assert got["decisions"] == want["decisions"]


def test_the_line_pc_install_leaves_out_evaluation_and_says_how_to_add_it(trained, folder_dataset, tmp_path):
    from torch_free import EVAL_ONLY, _importable, run_cli, runtime_python

    python = runtime_python("runtime")
    assert not any(_importable(python, module) for module in EVAL_ONLY)
    bundle = tmp_path / "bundle"
    assert runner.invoke(app, ["export", str(trained), "--out", str(bundle)]).exit_code == 0
    done = run_cli(
        "evaluate", str(bundle), str(folder_dataset), "--format", "folder", "--out", str(tmp_path / "r")
    )
    assert done.returncode == 2 and "pip install 'lineguard[eval]'" in done.stderr, done.stderr
    assert run_cli("predict", str(bundle), str(folder_dataset / "scratch"), "--json").returncode == 0
