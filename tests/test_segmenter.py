"""The defect segmenter: train / evaluate / export through the CLI, bundle parity, the station."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torchvision")

from lineguard.cli import app
from lineguard.data import read_image
from lineguard.models import load_model


@pytest.fixture
def trained(trained_segmenter):
    return trained_segmenter


def test_train_evaluate_export_segmenter(trained, tmp_path):
    data, model_dir, output = trained
    assert "defective" in output and "image AP" in output
    model = load_model(str(model_dir))
    assert model.task == "segment" and model.metadata["n_train_defect"] > 0
    runner = CliRunner()
    result = runner.invoke(
        app, ["evaluate", str(model_dir), str(data), "--format", "folder", "--out", str(tmp_path / "report")]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["n_defect"] == 6 and metrics["n_good"] == 6
    assert metrics["image_ap"] >= 0.9
    assert metrics["mask_f1"] > 0.2  # scratches cover ~4 % of a part: a blind model scores near 0
    assert (tmp_path / "report" / "precision_recall.png").is_file()
    assert len(list((tmp_path / "report" / "defects").glob("*.png"))) == 6
    result = runner.invoke(app, ["export", str(model_dir), "--out", str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    from lineguard.runtime import load_bundle

    inspector = load_bundle(tmp_path / "bundle")
    images = [read_image(p) for p in sorted((data / "scratch").glob("*.png"))[:6]]
    want, got = model.predict(images), inspector.predict(images)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
    np.testing.assert_allclose(got.maps, want.maps, atol=1e-4)
    assert inspector.thresholds == model.thresholds and inspector.task == "segment"
    assert model.thresholds.ng == model.metadata["threshold_calibration"]["thresholds"]["ng"]
    # Found: the calibrated thresholds were saved as the constructor's parameters.
    doc = json.loads((model_dir / "model.json").read_text())
    assert (doc["config"]["review_probability"], doc["config"]["ng_probability"]) == (0.3, 0.5)
    assert doc["thresholds"] == model.thresholds.to_dict() != {"review": 0.3, "ng": 0.5}
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "bundle"),
            str(data),
            "--format",
            "folder",
            "--out",
            str(tmp_path / "report-bundle"),
        ],
    )
    assert result.exit_code == 0, result.output
    got_metrics = json.loads((tmp_path / "report-bundle" / "metrics.json").read_text())
    assert got_metrics["image_ap"] == pytest.approx(metrics["image_ap"], abs=1e-6)


def test_a_segmenter_bundle_evaluates_and_predicts_without_torch(trained, tmp_path):
    from torch_free import torch_free_cli

    data, model_dir, _ = trained
    bundle = tmp_path / "bundle"
    assert CliRunner().invoke(app, ["export", str(model_dir), "--out", str(bundle)]).exit_code == 0
    for python, out in ((torch_free_cli, tmp_path / "torch-free"), (None, tmp_path / "here")):
        args = ["evaluate", str(bundle), str(data), "--format", "folder", "--out", str(out)]
        if python is None:
            assert CliRunner().invoke(app, args).exit_code == 0
        else:
            python(*args, env="eval")
    got = json.loads((tmp_path / "torch-free" / "metrics.json").read_text())
    want = json.loads((tmp_path / "here" / "metrics.json").read_text())
    assert got["image_ap"] == pytest.approx(want["image_ap"], abs=1e-6) and got["mask_f1"] == pytest.approx(
        want["mask_f1"], abs=1e-6
    )
    line = torch_free_cli("predict", str(bundle), str(data / "scratch"), "--json").stdout.splitlines()[0]
    assert json.loads(line)["decision"] in ("OK", "REVIEW", "NG")


def test_segmentation_needs_masks_format(tmp_path):
    result = CliRunner().invoke(
        app, ["train", str(tmp_path), "--task", "segment", "--format", "voc", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code != 0 and "segmentation reads masks" in result.output


def test_station_archives_the_segmenter_probability_map(trained, tmp_path):
    from station_helpers import inspect_folder

    from lineguard.bundle import export_bundle
    from lineguard.store import ImageArchive

    data, model_dir, _ = trained
    bundle = export_bundle(load_model(str(model_dir)), tmp_path / "bundle")
    parts = inspect_folder(tmp_path, bundle, data / "scratch")
    assert len(parts) == 20
    kept = [p.checks[0] for p in parts if p.verdict != "OK"]
    assert len(kept) >= 10  # scratched parts: most are flagged
    archive = ImageArchive(tmp_path / "state" / "images")
    assert all(c.heatmap_sha256 and archive.get_png(c.heatmap_sha256) for c in kept)


def test_synthetic_defects_extend_training_with_masks():
    from helpers import add_scratch, textured_part

    from lineguard.supervised import DefectSegmenter
    from lineguard.train.config import SegmentConfig

    rng = np.random.default_rng(0)
    model = DefectSegmenter(SegmentConfig(synthetic=8), image_size=(64, 64))
    good = [model.prepare(textured_part(rng, 64)) for _ in range(4)]
    bad, mask = add_scratch(rng, textured_part(rng, 64))
    images = np.stack([*good, model.prepare(bad)])
    masks = np.stack([*(np.zeros((64, 64), np.uint8) for _ in good), mask.astype(np.uint8)])
    extra_x, extra_m = model._synthesize(images, masks)
    assert extra_x.shape == (8, 64, 64, 3) and extra_m.shape == (8, 64, 64)
    assert all(m.any() for m in extra_m)
    assert (
        DefectSegmenter(SegmentConfig(synthetic=0), image_size=(64, 64))
        ._synthesize(images, masks)[0]
        .shape[0]
        == 0
    )


def test_an_input_size_left_to_the_data_is_saved_beside_the_config(tmp_path):
    from lineguard.supervised import DefectSegmenter
    from lineguard.train.config import SegmentConfig

    model = DefectSegmenter(SegmentConfig(epochs=3), image_size=(64, 96))
    model.module = model._build(pretrained=False).eval()
    model.save(tmp_path / "m")
    loaded = DefectSegmenter.load(tmp_path / "m")
    assert loaded.config == SegmentConfig(epochs=3) and loaded.config.image_size is None
    assert loaded.image_size == (64, 96) and loaded.preprocessing == model.preprocessing
    with pytest.raises(ValueError, match="leaves the input size to the data"):
        DefectSegmenter(SegmentConfig())
