"""The INT8 accuracy guard, both ways: it keeps an INT8 bundle that holds, refuses one that does not."""

import json

import numpy as np
import pytest

from lineguard.bundle import export_bundle, quantize_bundle
from lineguard.bundle.quantize import guard_reasons
from lineguard.models import CalibrationSet, Padim, PatchCore
from lineguard.runtime import load_bundle


def fp32_bundle(kind, parts, folder):
    cls = PatchCore if kind == "patchcore" else Padim
    model = cls("efficientnet_lite0", (96, 128), seed=0)
    model.fit(parts["good"][:16], calibration=CalibrationSet(parts["good"][16:]))
    return export_bundle(model, folder)


# 20 validation parts: one changed decision is 5 %. The generated good parts sit close to
# thresholds calibrated on 8 held-out parts, so the test allows what a user would for so few.
LIMITS = {"max_auroc_drop": 0.005, "max_decision_change": 0.15}


def validation(parts):
    return parts["test_good"] + parts["defect"], [0] * len(parts["test_good"]) + [1] * len(parts["defect"])


@pytest.mark.parametrize("kind", ["padim", "patchcore"])
def test_guard_keeps_int8_that_holds_accuracy_and_decisions(kind, parts, tmp_path):
    source = fp32_bundle(kind, parts, tmp_path / "fp32")
    images, labels = validation(parts)
    report = quantize_bundle(
        source, tmp_path / "int8", parts["good"], images, labels, score_images=parts["good"][16:], **LIMITS
    )
    assert report.accepted, report.summary()
    assert report.decisions_changed <= 0.15 and report.int8_image_auroc >= report.fp32_image_auroc - 0.005
    manifest = json.loads((tmp_path / "int8" / "manifest.json").read_text())
    assert manifest["graph"] == {**manifest["graph"], "file": "model.int8.onnx", "precision": "int8"}
    assert manifest["quantization"]["score_affine"]["scale"] > 0
    assert "model.onnx" not in manifest["files"]
    written = json.loads((tmp_path / "int8" / "quantization_report.json").read_text())
    assert written["accepted"] is True and written["speedup"] > 0
    # The INT8 bundle loads (hashes verified); around the thresholds, where good parts
    # score, its scores stay on the fp32 scale.
    s8 = load_bundle(tmp_path / "int8").predict(images).scores
    s32 = load_bundle(source).predict(images).scores
    assert np.corrcoef(s8, s32)[0, 1] > 0.95
    good = np.asarray(labels) == 0
    assert np.median(np.abs(s8 - s32)[good] / np.abs(s32[good])) < 0.1


def test_guard_refuses_int8_calibrated_on_the_wrong_images(parts, tmp_path):
    """Activation ranges taken from near-black frames clip every real part: refused, fp32 kept."""
    source = fp32_bundle("padim", parts, tmp_path / "fp32")
    rng = np.random.default_rng(0)
    dark = [rng.integers(0, 12, (128, 128), dtype=np.uint8) for _ in range(8)]
    images, labels = validation(parts)
    report = quantize_bundle(source, tmp_path / "out", dark, images, labels, **LIMITS)
    assert not report.accepted and report.decisions_changed > LIMITS["max_decision_change"]
    assert report.reasons == (f"{report.decisions_changed:.2%} of decisions change (limit 15.00%)",)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["graph"]["file"] == "model.onnx" and manifest["quantization"] is None
    assert json.loads((tmp_path / "out" / "quantization_report.json").read_text())["accepted"] is False
    np.testing.assert_array_equal(
        load_bundle(tmp_path / "out").predict(images).scores, load_bundle(source).predict(images).scores
    )


def test_int8_scores_that_cannot_be_mapped_are_refused_not_an_error(parts, tmp_path):
    source = fp32_bundle("padim", parts, tmp_path / "fp32")
    images, labels = validation(parts)
    same = [parts["good"][16]] * 3  # one image three times: no spread to fit the score map on
    report = quantize_bundle(source, tmp_path / "out", parts["good"], images, labels, score_images=same)
    assert not report.accepted and "scores every calibration image alike" in report.reasons[0]
    assert report.summary().startswith("INT8 refused") and "fp32 kept" in report.summary()
    written = json.loads((tmp_path / "out" / "quantization_report.json").read_text())
    assert written["decisions_changed"] is None
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["graph"]["file"] == "model.onnx"


def test_quantize_refuses_bad_requests(parts, tmp_path):
    source = fp32_bundle("padim", parts, tmp_path / "fp32")
    images, labels = validation(parts)
    with pytest.raises(ValueError, match="new folder"):
        quantize_bundle(source, source, parts["good"], images, labels)
    with pytest.raises(ValueError, match="calibration images"):
        quantize_bundle(source, tmp_path / "x", parts["good"][:1], images, labels)
    with pytest.raises(ValueError, match="equal length"):
        quantize_bundle(source, tmp_path / "x", parts["good"], images, labels[:-1])


def test_guard_limits():
    assert guard_reasons(0.95, 0.946, 0.005, 0.005, 0.005) == []
    assert guard_reasons(0.95, 0.94, 0.0, 0.005, 0.005) == ["image AUROC drops 0.0100 (limit 0.005)"]
    assert guard_reasons(0.95, 0.96, 0.01, 0.005, 0.005) == ["1.00% of decisions change (limit 0.50%)"]
    assert guard_reasons(None, None, 0.0, 0.005, 0.005) == []  # no defects: decisions alone judge
    assert len(guard_reasons(0.9, 0.8, 0.2, 0.005, 0.005)) == 2
