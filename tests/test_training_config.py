"""Per-task training configs: their defaults are the only ones (the CLI's help shows them), bad
settings are refused naming the option, one train() entry takes them, and model.json keeps them as
they were given beside what was learned."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.train.config import (
    CONFIGS,
    AnomalyConfig,
    ClassifyConfig,
    DetectConfig,
    SegmentConfig,
    default,
)


def _options(command: str) -> dict:
    import typer

    return {p.name: p for p in typer.main.get_command(app).commands[command].params}


def test_train_help_shows_each_tasks_own_defaults():
    options = _options("train")
    for name in ("epochs", "batch_size", "patience", "val_fraction", "test_fraction"):
        assert options[name].default is None  # None: the task's config decides
        for config in (ClassifyConfig, DetectConfig, SegmentConfig):
            assert f"{config.task} {default(config, name):g}" in options[name].help, (name, config.task)


def test_fit_option_defaults_are_the_configs():
    options = _options("fit")
    for name in (
        "top_fraction",
        "coreset_ratio",
        "calibration_fraction",
        "target_frr",
        "review_rate",
        "target_sensitivity",
        "synthetic_defects",
        "reweight_neighbours",
    ):
        assert options[name].default == default(AnomalyConfig, name), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "d", "-f", "folder", "-o", "m", "--val-fraction", "1.5"],
            "--val-fraction: Input should be",
        ),
        (
            ["train", "d", "-f", "voc", "-o", "m", "--task", "detect", "--good-class", "ok"],
            "--good-class applies",
        ),
        (
            ["train", "d", "-f", "voc", "-o", "m", "--task", "detect", "--synthetic", "3"],
            "--task segment only",
        ),
        (["fit", "d", "-f", "folder", "-o", "m", "--target-frr", "2"], "--target-frr: Input should be"),
        (["fit", "d", "-f", "folder", "-o", "m", "--model", "padim", "--tile", "64"], "position-free"),
        (["fit", "d", "-f", "folder", "-o", "m", "--reweight-neighbours", "9"], "top_fraction to 0"),
    ],
)
def test_bad_settings_are_refused_before_any_data_is_read(tmp_path, args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_an_augmentation_file_with_an_unknown_key_names_it(tmp_path):
    (tmp_path / "augment.yaml").write_text("hflip: 0.5\nflip: 0.2\n")
    result = CliRunner().invoke(
        app, ["train", "d", "-f", "folder", "-o", "m", "--augment", str(tmp_path / "augment.yaml")]
    )
    assert result.exit_code == 2 and "--augment: unknown key 'flip'" in result.output


def test_configs_refuse_unknown_and_inconsistent_settings():
    with pytest.raises(ValueError, match="epoch"):
        ClassifyConfig(epoch=3)  # misspelt: never silently ignored
    with pytest.raises(ValueError, match="nothing to train on"):
        SegmentConfig(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="must not exceed"):
        DetectConfig(review_probability=0.8, ng_probability=0.5)
    assert set(CONFIGS) == {"anomaly", "classify", "detect", "segment"}


def test_one_train_entry_checks_the_config_it_is_given(tmp_path):
    pytest.importorskip("torch")
    from lineguard.train import train

    with pytest.raises(TypeError, match="trains with a SegmentConfig, not ClassifyConfig"):
        train("segment", tmp_path, "folder", tmp_path / "m", ClassifyConfig())
    with pytest.raises(ValueError, match="no checkpoint"):
        train("anomaly", tmp_path, "folder", tmp_path / "m", AnomalyConfig(), resume=True)


def test_fit_records_the_config_it_ran_with(tmp_path):
    pytest.importorskip("torch")
    from helpers import write_folder_dataset

    data = write_folder_dataset(tmp_path / "d", n_good=14, n_defect=2, seed=1)
    options = ["--model", "padim", "--size", "64", "--synthetic-defects", "0", "--review-rate", "0.05"]
    result = CliRunner().invoke(app, ["fit", str(data), "-f", "folder", "-o", str(tmp_path / "m"), *options])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    ran = AnomalyConfig.model_validate(doc["metadata"]["training_config"])
    assert ran == AnomalyConfig(model="padim", image_size=(64, 64), synthetic_defects=0, review_rate=0.05)
    assert doc["config"]["top_fraction"] == default(AnomalyConfig, "top_fraction")
