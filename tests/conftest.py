"""Shared fixtures: small generated inspection data, so the suite means something anywhere. The
functions that make it live in helpers.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import (
    DETECT_SIZE,
    add_scratch,
    textured_part,
    write_classes,
    write_folder_dataset,
    write_yolo_parts,
)
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def folder_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("data") / "parts")


@pytest.fixture(scope="session")
def parts() -> dict[str, list[np.ndarray]]:
    """In-memory good parts, and defect parts with masks."""
    rng = np.random.default_rng(1)
    good = [textured_part(rng) for _ in range(24)]
    test_good = [textured_part(rng) for _ in range(10)]
    defects, masks = [], []
    for _ in range(10):
        image, mask = add_scratch(rng, textured_part(rng))
        defects.append(image)
        masks.append(mask)
    return {"good": good, "test_good": test_good, "defect": defects, "mask": masks}


@pytest.fixture
def postgres():
    """A real PostgreSQL server on a private port, run as an unprivileged user; skips if not installed."""
    from postgres_server import PostgresServer, postgres_bin

    pytest.importorskip("psycopg")
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def station_bundle(tmp_path_factory: pytest.TempPathFactory, parts) -> Path:
    """A small PaDiM bundle, thresholds from held-out good parts: good parts pass, scratches fail."""
    from lineguard.bundle import export_bundle
    from lineguard.models import CalibrationSet, Padim

    rng = np.random.default_rng(7)
    held_out = CalibrationSet([textured_part(rng) for _ in range(20)])
    model = Padim("efficientnet_lite0", (96, 128), seed=0).fit(parts["good"], calibration=held_out)
    return export_bundle(model, tmp_path_factory.mktemp("station") / "bundle")


# -- the supervised models, trained once per session through the CLI (data, model dir, output) --


def _train(task: str, data, out, format: str, *options: str) -> tuple:
    pytest.importorskip("torchvision")
    from lineguard.cli import app

    args = ["train", str(data), "--task", task, "--format", format, "--out", str(out), "--threads", "2"]
    result = CliRunner().invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    return data, out, result.output


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cls")
    options = ("--size", "64", "--epochs", "6", "--batch-size", "8", "--lr", "2e-3")
    return _train("classify", write_classes(tmp / "data"), tmp / "model", "folder", *options)


@pytest.fixture(scope="session")
def trained_detector(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("det")
    options = ("--size", str(DETECT_SIZE), "--epochs", "14", "--batch-size", "4", "--lr", "1e-3")
    return _train("detect", write_yolo_parts(tmp / "data"), tmp / "model", "yolo", *options)


@pytest.fixture(scope="session")
def trained_segmenter(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seg")
    data = write_folder_dataset(tmp / "data", n_good=20, n_defect=20, seed=4)
    options = ("--size", "96", "--epochs", "8", "--batch-size", "8")
    return _train("segment", data, tmp / "model", "folder", *options)
