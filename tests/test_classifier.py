"""The supervised classifier: train / evaluate / predict / export through the CLI, resumable
checkpoints, calibrated confidences, bundle parity, and the station running a classifier bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import SIZE, write_classes
from typer.testing import CliRunner

pytest.importorskip("torchvision")

from lineguard.cli import app
from lineguard.data import read_image
from lineguard.supervised import ImageClassifier, expected_calibration_error, fit_temperature, softmax


@pytest.fixture
def trained(trained_classifier):
    return trained_classifier


def test_train_evaluate_predict_export(trained, tmp_path):
    data, model_dir, output = trained
    assert "epoch 1:" in output and "3 classes" in output
    model = ImageClassifier.load(model_dir)
    assert model.classes == ("good", "scratch", "spot") and model.good_classes == ("good",)
    assert len(model.metadata["history"]) == model.metadata["epochs_run"]
    runner = CliRunner()
    result = runner.invoke(
        app, ["evaluate", str(model_dir), str(data), "--format", "folder", "--out", str(tmp_path / "report")]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["n_images"] == 9 and metrics["accuracy"] >= 0.66  # 3 classes: chance is 0.33
    assert (tmp_path / "report" / "confusion_matrix.png").is_file() and (
        tmp_path / "report" / "reliability.png"
    ).is_file()
    assert np.asarray(metrics["confusion_matrix"]).sum() == 9
    # The bundle gives the model's probabilities (parity) and the same report.
    result = runner.invoke(app, ["export", str(model_dir), "--out", str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    from lineguard.runtime import load_bundle

    inspector = load_bundle(tmp_path / "bundle")
    images = [read_image(p) for p in sorted(data.rglob("*.png"))]
    want, got = model.predict(images), inspector.predict(images)
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    assert (got.labels == want.labels).all()
    np.testing.assert_allclose(got.scores, 1 - want.probabilities[:, 0], atol=1e-5)
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
    assert (
        json.loads((tmp_path / "report-bundle" / "metrics.json").read_text())["accuracy"]
        == metrics["accuracy"]
    )
    # predict names the class; the decision is on the probability of a defect class.
    spot = sorted((data / "spot").glob("*.png"))[0]
    result = runner.invoke(app, ["predict", str(tmp_path / "bundle"), str(spot), "--json"])
    record = json.loads(result.output)
    assert record["label"] in model.classes and 0 <= record["confidence"] <= 1
    assert record["decision"] == (
        "NG" if record["score"] >= 0.5 else "REVIEW" if record["score"] >= 0.2 else "OK"
    )
    result = runner.invoke(
        app,
        [
            "export",
            str(model_dir),
            "--out",
            str(tmp_path / "b8"),
            "--int8",
            "--calibration",
            str(data),
            "--format",
            "folder",
        ],
    )
    assert result.exit_code != 0 and "supervised models export in fp32" in result.output


def test_an_interrupted_training_resumes_to_the_same_weights(tmp_path):
    from lineguard.train import TrainingHooks, train
    from lineguard.train.config import ClassifyConfig

    data = write_classes(tmp_path / "data", n=8, seed=3)
    config = ClassifyConfig(image_size=SIZE, epochs=3, batch_size=8, seed=1)
    quiet = TrainingHooks(progress=False)
    straight, _ = train("classify", data, "folder", tmp_path / "straight", config, hooks=quiet)

    class Stop(Exception):
        pass

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        hooks = TrainingHooks(progress=False, on_epoch=stop_after_two)
        train("classify", data, "folder", tmp_path / "resumed", config, hooks=hooks)
    assert (tmp_path / "resumed" / "checkpoint" / "last.safetensors").is_file()
    resumed, _ = train("classify", data, "folder", tmp_path / "resumed", config, resume=True, hooks=quiet)
    assert [h["epoch"] for h in resumed.metadata["history"]] == [1, 2, 3]
    a, b = straight.module.state_dict(), resumed.module.state_dict()
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a)
    assert resumed.metadata["history"][2]["val_loss"] == pytest.approx(
        straight.metadata["history"][2]["val_loss"]
    )


def test_temperature_scaling_improves_calibration_without_changing_predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 2000)
    # Unit-variance logits shifted by 1 on the true class: softmax(logits) is the exact posterior.
    logits = rng.normal(0, 1, (2000, 4))
    logits[np.arange(2000), labels] += 1.0
    overconfident = logits * 3  # a network that is too sure of itself: the right temperature is 3
    t = fit_temperature(overconfident, labels)
    assert 2.4 < t < 3.6
    before = expected_calibration_error(softmax(overconfident), labels)
    after = expected_calibration_error(softmax(overconfident, t), labels)
    assert after < before / 2
    assert (softmax(overconfident, t).argmax(1) == overconfident.argmax(1)).all()


def test_station_runs_a_classifier_bundle(trained, tmp_path):
    from station_helpers import inspect_folder

    from lineguard.bundle import export_bundle

    data, model_dir, _ = trained
    bundle = export_bundle(ImageClassifier.load(model_dir), tmp_path / "bundle")
    parts = inspect_folder(tmp_path, bundle, data / "spot")
    assert len(parts) == 14
    for part in parts:
        check = part.checks[0]
        assert check.score is not None and check.reason.split()[0] in ("good", "scratch", "spot")
        assert check.heatmap_sha256 is None  # classifiers have no anomaly map
        if part.verdict != "OK":
            assert check.reason in part.reason


def test_a_classifier_bundle_evaluates_and_predicts_without_torch(trained, tmp_path):
    """Found: `lineguard evaluate` on a classifier bundle crashed with ModuleNotFoundError: torch in
    the torch-free install (the calibration metric lived in the torch-side package)."""
    from torch_free import torch_free_cli

    from lineguard.bundle import export_bundle

    data, model_dir, _ = trained
    bundle = export_bundle(ImageClassifier.load(model_dir), tmp_path / "bundle")
    torch_free_cli(
        "evaluate",
        str(bundle),
        str(data),
        "--format",
        "folder",
        "--out",
        str(tmp_path / "report"),
        env="eval",
    )
    torch_free_cli("predict", str(bundle), str(data / "spot" / "p0.png"), "--json")
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["n_images"] > 0


def test_model_json_keeps_the_config_as_given_and_older_models_still_load(trained, tmp_path):
    import shutil

    from lineguard.train.config import ClassifyConfig

    data, model_dir, _ = trained
    doc = json.loads((model_dir / "model.json").read_text())
    given = ClassifyConfig(image_size=SIZE, epochs=6, batch_size=8, lr=2e-3)
    assert ClassifyConfig.model_validate(doc["config"]) == given and doc["config"]["good_classes"] is None
    assert doc["classes"] == ["good", "scratch", "spot"] and doc["input_size"] == list(SIZE)
    assert doc["metadata"]["split"]["val_fraction"] == given.val_fraction
    # A model saved before the typed configs: classes and the resolved good classes in its config,
    # no input size or classes beside it.
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    legacy = dict(doc)
    legacy["config"] = {
        k: v for k, v in doc["config"].items() if k not in ("val_fraction", "test_fraction")
    } | {"classes": doc["classes"], "good_classes": ["good"]}
    del legacy["classes"], legacy["input_size"]
    (old / "model.json").write_text(json.dumps(legacy))
    images = [read_image(p) for p in sorted(data.rglob("*.png"))[:6]]
    new_model, old_model = ImageClassifier.load(model_dir), ImageClassifier.load(old)
    assert old_model.classes == new_model.classes and old_model.good_classes == ("good",)
    assert old_model.thresholds == new_model.thresholds
    np.testing.assert_array_equal(
        old_model.predict(images).probabilities, new_model.predict(images).probabilities
    )
    # A hand-edited document is refused naming the key.
    legacy["config"]["epochs"] = 0
    (old / "model.json").write_text(json.dumps(legacy))
    with pytest.raises(Exception, match=r"config\.epochs"):
        ImageClassifier.load(old)
