"""The line PC's install (no torch, no scikit-learn) runs a station with one check of each kind:
anomaly, classification, detection and segmentation bundles on the same parts."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import write_line
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
        if by_kind["classify"].decision != "OK":  # a classifier names the class it saw
            assert by_kind["classify"].reason.split()[0] in ("scratch", "spot"), by_kind["classify"].reason
    lines = [json.loads(line) for line in (state / "results.jsonl").read_text().splitlines()]
    assert sorted(r["uid"] for r in lines) == sorted(p.uid for p in parts)
