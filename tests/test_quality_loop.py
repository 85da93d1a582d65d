"""The quality loop end to end: a station records a line, people review the queue, the reviewed
parts are harvested into a dataset, a new model is fitted on it, and the two bundles are compared —
on generated parts always, and on real castings from ../shared when it is there."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
from helpers import shared_dataset, write_folder_dataset, write_line
from station_helpers import run_to_end, station_config
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.runtime.manifest import read_manifest
from lineguard.station import Station, build_sinks
from lineguard.store import sqlite_url

FIT = ["--model", "padim", "--backbone", "efficientnet_lite0", "--no-select", "--threads", "2"]


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def review_harvest_fit_compare(
    tmp_path: Path, bundle_a: Path, line: Path, truth: dict[str, bool], labelled: Path, size: str
) -> dict:
    """Run the line through bundle A with every part queued, review each by ``truth`` (part ID ->
    defective), harvest, fit and export bundle B on the harvest, compare A and B on ``labelled``."""
    config = station_config(
        tmp_path, bundle_a, line, review={"ok_every": 1, "ng_every": 1}, store={"keep_ok_every": 0}
    )
    station = run_to_end(Station(config, build_sinks(config)), timeout_s=300)
    store = station.store
    assert store.review_queue_length("test-line") == len(truth)  # every part drawn, every image kept
    while (part := store.claim_review("test-line", "olga", minutes=5)) is not None:
        defective = truth[part.part_id]
        store.add_review(
            "test-line", part.uid, "olga", "defect" if defective else "good", "crack" if defective else ""
        )
    record = sqlite_url(tmp_path / "state" / "record.db")
    harvest = tmp_path / "harvest"
    said = cli("harvest", record, "--archive", str(tmp_path / "state" / "images"), "--out", str(harvest))
    n_defect = sum(truth.values())
    assert f"{n_defect} crack" in said and f"{len(truth) - n_defect} good" in said
    assert len(list((harvest / "crack").glob("*.png"))) == n_defect
    with (harvest / "provenance.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(truth) and {r["reviewer"] for r in rows} == {"olga"}
    assert {r["bundle_sha256"] for r in rows} == {station.recipe.runners[0].bundle_sha256}
    assert all((r["label"] == "crack") == truth[r["part_id"]] for r in rows)
    # The harvest is a dataset fit reads as it is; its images are the check's crops.
    model_b, bundle_b = tmp_path / "model-b", tmp_path / "bundle-b"
    cli("fit", str(harvest), "-f", "folder", "-o", str(model_b), "--size", size, *FIT)
    cli("export", str(model_b), "--out", str(bundle_b))
    assert read_manifest(bundle_b).drift is not None
    out = tmp_path / "compare.json"
    said = cli("compare", str(bundle_a), str(bundle_b), str(labelled), "-f", "folder", "--out", str(out))
    assert "parts would change decision from A to B" in said
    comparison = json.loads(out.read_text())
    assert comparison["n_good"] > 0 and comparison["n_defect"] > 0
    assert len(comparison["a"]["decisions"]) == len(comparison["parts"]) == len(comparison["b"]["scores"])
    changed = sum(
        a != b for a, b in zip(comparison["a"]["decisions"], comparison["b"]["decisions"], strict=True)
    )
    assert changed == len(comparison["changed"])
    return comparison


def test_review_harvest_fit_compare_on_generated_parts(tmp_path: Path, station_bundle: Path) -> None:
    truth = {stem: bad for stem, bad in write_line(tmp_path / "line", 40, defect_every=4).items()}
    labelled = write_folder_dataset(tmp_path / "labelled", n_good=12, n_defect=6, seed=9)
    comparison = review_harvest_fit_compare(
        tmp_path, station_bundle, tmp_path / "line", truth, labelled, "128x96"
    )
    # Both bundles see scratches on textured parts: neither is blind.
    assert comparison["a"]["image_auroc"] > 0.8 and comparison["b"]["image_auroc"] > 0.8


def test_review_harvest_fit_compare_on_real_castings(tmp_path: Path) -> None:
    """Casting impellers: bundle A fitted on 60 training castings; a line of 40 good and 20
    defective test castings is reviewed and harvested; A and B compared on 40 + 20 others."""
    from lineguard.bundle import export_bundle
    from lineguard.data.image_io import read_image
    from lineguard.models import CalibrationSet, Padim

    root = shared_dataset("casting-impellers")
    rng = np.random.default_rng(0)
    train = sorted((root / "train" / "good").iterdir())
    good = sorted((root / "test" / "good").iterdir())
    defect = sorted((root / "test" / "defect").iterdir())
    good = [good[i] for i in rng.permutation(len(good))[:80]]
    defect = [defect[i] for i in rng.permutation(len(defect))[:40]]
    model = Padim("efficientnet_lite0", (128, 128), seed=0).fit(
        [read_image(p) for p in train[:60]],
        calibration=CalibrationSet([read_image(p) for p in train[60:100]]),
    )
    bundle_a = export_bundle(model, tmp_path / "bundle-a")
    line, truth = tmp_path / "line", {}
    line.mkdir()
    for path, bad in [*((p, False) for p in good[:40]), *((p, True) for p in defect[:20])]:
        cv2.imwrite(str(line / f"{path.stem}.png"), read_image(path))
        truth[path.stem] = bad
    labelled = tmp_path / "labelled"
    for folder, paths in (("good", good[40:]), ("defect", defect[20:])):
        (labelled / folder).mkdir(parents=True)
        for path in paths:
            shutil.copy(path, labelled / folder / path.name)
    comparison = review_harvest_fit_compare(tmp_path, bundle_a, line, truth, labelled, "128")
    assert comparison["n_good"] == 40 and comparison["n_defect"] == 20
