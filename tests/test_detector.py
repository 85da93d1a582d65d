"""The defect detector: NMS and mAP against references, train / evaluate / predict / export through
the CLI on generated boxes, bundle parity, and the station running a detector bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import DETECT_CLASSES as CLASSES
from typer.testing import CliRunner

from lineguard.detections import DetectionSettings, nms, select_detections
from lineguard.metrics.detection import detection_map
from lineguard.results import Detections

# -- post-processing and metrics (no torch needed) -------------------------------------------


def test_nms_matches_torchvision_batched_nms():
    torch = pytest.importorskip("torch")
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 80, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (300, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    classes = rng.integers(0, 3, 300)
    for iou in (0.3, 0.5, 0.7):
        want = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), iou)
        offset = classes[:, None] * 1000.0
        got = nms(boxes + offset, scores, iou)
        np.testing.assert_array_equal(got, want.numpy())


def test_select_detections_thresholds_limits_and_scales_back():
    boxes = np.array([[10, 10, 50, 50], [12, 12, 52, 52], [60, 60, 90, 90], [-5, 0, 20, 120]], np.float32)
    scores = np.array([[0.9, 0.01], [0.8, 0.7], [0.02, 0.03], [0.5, 0.0]], np.float32)
    settings = DetectionSettings(score_threshold=0.05, iou_threshold=0.5, max_detections=10)
    found = select_detections(boxes, scores, settings, input_size=(100, 100), image_size=(200, 400))
    # Box 1 as class 0 is suppressed by box 0; as class 1 it stays; box 2 is below the threshold.
    assert found.confidence.tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert found.class_id.tolist() == [0, 1, 0]
    np.testing.assert_allclose(found.xyxy[0], [40, 20, 200, 100])  # x * 4, y * 2
    np.testing.assert_allclose(found.xyxy[2], [0, 0, 80, 200])  # clipped to the input, then scaled
    assert len(select_detections(boxes, scores, DetectionSettings(max_detections=1), (100, 100))) == 1
    assert len(select_detections(boxes, scores * 0, settings, (100, 100))) == 0
    assert found.top_score == pytest.approx(0.9) and Detections.empty().top_score == 0.0
    assert len(found.above(0.6)) == 2


def test_detection_map_on_known_cases():
    truth = [
        np.array([[10, 10, 60, 60]], np.float32),
        np.array([[0, 0, 30, 30], [50, 50, 90, 90]], np.float32),
    ]
    labels = [np.array([0]), np.array([1, 0])]

    def dets(rows):
        rows = np.asarray(rows, np.float32).reshape(-1, 6)
        return Detections(rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64))

    perfect = [dets([[10, 10, 60, 60, 0.9, 0]]), dets([[0, 0, 30, 30, 0.8, 1], [50, 50, 90, 90, 0.7, 0]])]
    result = detection_map(perfect, truth, labels, 2)
    assert result["map50"] == pytest.approx(1.0) and result["map"] == pytest.approx(1.0)
    # IoU 0.64 for the class-0 box of image 0: a match at IoU 0.5, 0.55 and 0.6 only.
    # Above IoU 0.6 it is a false positive ahead of the other true one: half the recall at
    # precision 1/2, i.e. 51 of the 101 recall points at 0.5.
    shifted = [dets([[10, 10, 50, 50, 0.9, 0]]), perfect[1]]
    result = detection_map(shifted, truth, labels, 2)
    assert result["map50"] == pytest.approx(1.0)
    assert result["per_class_ap50"][1] == pytest.approx(1.0)
    assert result["map"] == pytest.approx((1.0 + (3 * 1.0 + 7 * 51 * 0.5 / 101) / 10) / 2, abs=1e-4)
    # A confident false positive ahead of every true one halves class 0's precision.
    extra = [dets([[10, 10, 60, 60, 0.9, 0], [70, 0, 95, 20, 0.95, 0]]), perfect[1]]
    result = detection_map(extra, truth, labels, 2)
    assert result["per_class_ap50"][0] == pytest.approx(2 / 3, abs=0.01)
    assert detection_map([Detections.empty()] * 2, truth, labels, 2)["map50"] == 0.0


# -- training, export, station (torch) -------------------------------------------------------


@pytest.fixture
def trained(trained_detector):
    return trained_detector


def test_train_evaluate_predict_export_detector(trained, tmp_path):
    from lineguard.cli import app
    from lineguard.data import read_image
    from lineguard.models import load_model
    from lineguard.runtime import load_bundle

    data, model_dir, output = trained
    assert "mAP@0.5" in output and "boxes" in output
    model = load_model(str(model_dir))
    assert model.task == "detect" and model.classes == CLASSES
    runner = CliRunner()
    result = runner.invoke(
        app, ["evaluate", str(model_dir), str(data), "-f", "yolo", "-o", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["n_images"] == 12 and metrics["n_boxes"] > 0
    assert metrics["map50"] >= 0.5, metrics  # an untrained head scores near 0 (0.77 here)
    assert metrics["parts"]["n_good"] + metrics["parts"]["n_defect"] == 12
    assert (tmp_path / "r" / "precision_recall.png").is_file()
    assert len(list((tmp_path / "r" / "detections").glob("*.png"))) == 12

    result = runner.invoke(app, ["export", str(model_dir), "--out", str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    inspector = load_bundle(tmp_path / "bundle")
    assert inspector.task == "detect" and inspector.classes == CLASSES
    images = [read_image(p) for p in sorted((data / "images").glob("*.png"))[:10]]
    # Parity on the raw graph outputs, then on the boxes the shared post-processing makes of them.
    prepared = np.stack([model.preprocessing.resized_rgb(im) for im in images])
    want_boxes, want_scores = model.raw_outputs(prepared)
    got_boxes, got_scores = inspector.session.run(inspector.output_names, {inspector.input_name: prepared})
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)
    np.testing.assert_allclose(got_boxes, want_boxes, atol=1e-3)
    for want, got in zip(model.predict(images), inspector.predict(images), strict=True):
        strong = want.confidence > 0.2  # near-ties at the 0.05 cut may differ in the last ulp
        assert got.class_id[: strong.sum()].tolist() == want.class_id[strong].tolist()
        np.testing.assert_allclose(got.xyxy[: strong.sum()], want.xyxy[strong], atol=1e-2)

    bundle_result = runner.invoke(
        app, ["evaluate", str(tmp_path / "bundle"), str(data), "-f", "yolo", "-o", str(tmp_path / "rb")]
    )
    assert bundle_result.exit_code == 0, bundle_result.output
    bundle_metrics = json.loads((tmp_path / "rb" / "metrics.json").read_text())
    assert bundle_metrics["map50"] == pytest.approx(metrics["map50"], abs=0.01)

    result = runner.invoke(app, ["predict", str(tmp_path / "bundle"), str(data / "images"), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 60
    for line in lines:
        assert all(d["confidence"] >= line["review_threshold"] for d in line["detections"])
        assert line["decision"] in ("OK", "REVIEW", "NG")
    assert any(line["detections"] for line in lines)


def test_a_detector_bundle_evaluates_and_predicts_without_torch(trained, tmp_path):
    from torch_free import torch_free_cli

    from lineguard.cli import app

    data, model_dir, _ = trained
    bundle, report = tmp_path / "bundle", tmp_path / "report"
    assert CliRunner().invoke(app, ["export", str(model_dir), "--out", str(bundle)]).exit_code == 0
    torch_free_cli("evaluate", str(bundle), str(data), "-f", "yolo", "-o", str(report), env="eval")
    result = CliRunner().invoke(
        app, ["evaluate", str(bundle), str(data), "-f", "yolo", "-o", str(tmp_path / "r")]
    )
    want = json.loads((tmp_path / "r" / "metrics.json").read_text())
    got = json.loads((report / "metrics.json").read_text())
    assert result.exit_code == 0 and got["map50"] == pytest.approx(want["map50"], abs=1e-6)
    lines = torch_free_cli("predict", str(bundle), str(data / "images"), "--json").stdout.splitlines()
    assert len(lines) == 60 and all(json.loads(line)["decision"] in ("OK", "REVIEW", "NG") for line in lines)


def test_detection_reads_boxes_only(tmp_path):
    pytest.importorskip("torchvision")
    from lineguard.cli import app

    result = CliRunner().invoke(
        app, ["train", str(tmp_path), "--task", "detect", "--format", "folder", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code != 0 and "detection reads boxes" in result.output
    result = CliRunner().invoke(
        app,
        ["train", str(tmp_path), "--task", "detect", "-f", "voc", "--synthetic", "5", "-o", str(tmp_path)],
    )
    assert result.exit_code != 0 and "--task segment only" in result.output


def test_station_records_what_the_detector_found(trained, tmp_path):
    from station_helpers import inspect_folder

    from lineguard.bundle import export_bundle
    from lineguard.models import load_model

    data, model_dir, _ = trained
    bundle = export_bundle(load_model(str(model_dir)), tmp_path / "bundle")
    parts = inspect_folder(tmp_path, bundle, data / "images")
    assert len(parts) == 60
    flagged = [p for p in parts if p.verdict != "OK"]
    assert flagged, "parts with bright spots and dark bars must be flagged"
    for part in flagged:
        check = part.checks[0]
        assert check.score is not None and " found: " in check.reason
        assert check.reason.split(": ", 1)[1].split()[0] in CLASSES
        assert check.heatmap_sha256 is None  # detectors have boxes, not an anomaly map


def test_listed_confidences_compare_with_the_threshold_as_the_decision_did():
    from lineguard.results import Detections

    threshold = 0.1234505
    found = Detections(
        np.zeros((1, 4), np.float32), np.array([0.1234509], np.float64), np.zeros(1, np.int64)
    ).above(threshold)
    assert len(found.to_list(("scratch",))) == 1
    assert all(d["confidence"] >= threshold for d in found.to_list(("scratch",)))
