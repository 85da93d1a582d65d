"""Drift at the station: the bundle carries its calibration images' statistics; a station replaying
parts raises a drift alarm after a 15 % brightening and none without it, and says so as an event,
in /status and /drift, as a Prometheus gauge and as a sink message."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import textured_part
from station_helpers import run_to_end, station_config

from lineguard.runtime.manifest import read_manifest
from lineguard.spc.drift import MIN_REFERENCE, SCORE, STATISTICS
from lineguard.station import Station, build_sinks

SHIFT_AT, PARTS, WINDOW, EVERY = 80, 200, 60, 10


@pytest.fixture(scope="module")
def drift_bundle(tmp_path_factory: pytest.TempPathFactory, parts) -> Path:
    """PaDiM with 60 held-out good parts: enough for a drift reference."""
    from lineguard.bundle import export_bundle
    from lineguard.models import CalibrationSet, Padim

    rng = np.random.default_rng(11)
    held_out = CalibrationSet(textured_part(rng) for _ in range(60))
    model = Padim("efficientnet_lite0", (96, 128), seed=0).fit(parts["good"], calibration=held_out)
    return export_bundle(model, tmp_path_factory.mktemp("drift") / "bundle")


def write_line(folder: Path, shift_at: int | None) -> None:
    """Good parts, 15 % brighter from part ``shift_at`` on (None: never)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i in range(PARTS):
        image = textured_part(rng).astype(np.float32)
        if shift_at is not None and i >= shift_at:
            image *= 1.15
        cv2.imwrite(str(folder / f"p{i:04d}.png"), np.clip(image, 0, 255).astype(np.uint8))


def run_line(tmp_path: Path, bundle: Path, shift_at: int | None) -> Station:
    write_line(tmp_path / "line", shift_at)
    config = station_config(
        tmp_path, bundle, tmp_path / "line", drift={"window": WINDOW, "every": EVERY}, workers=1
    )
    return run_to_end(Station(config, build_sinks(config)), timeout_s=240)


def test_the_bundle_carries_its_calibration_images_statistics(drift_bundle: Path) -> None:
    drift = read_manifest(drift_bundle).drift
    assert drift is not None and drift.images == 60
    assert set(drift.statistics) == {*STATISTICS, SCORE}
    assert all(len(values) == 60 for values in drift.statistics.values())
    brightness = np.asarray(drift.statistics["brightness"])
    assert 120 < brightness.mean() < 136  # textured parts sit around grey 128


def test_a_brightened_line_raises_an_alarm_and_says_so_everywhere(tmp_path: Path, drift_bundle) -> None:
    from lineguard.api import prometheus_text

    station = run_line(tmp_path, drift_bundle, SHIFT_AT)
    events = [e for e in station.store.events("test-line", limit=1000) if e["kind"] == "drift_raised"]
    assert events, "no drift alarm after a 15 % brightening"
    assert any("brightness" in e["detail"] for e in events)
    status = station.status()
    (check,) = status.drift
    assert check.monitored and check.reference_images == 60 and check.parts_seen == PARTS
    brightness = next(s for s in check.statistics if s.statistic == "brightness")
    assert brightness.alarm and brightness.current_median > 1.1 * brightness.reference_median
    assert "surface/brightness" in status.drift_alarms
    lines = (tmp_path / "state" / "results.jsonl").read_text().splitlines()
    messages = [json.loads(line) for line in lines]
    drift = [m for m in messages if m.get("type") == "drift"]
    parts = [m for m in messages if "type" not in m]
    assert len(parts) == PARTS
    raised = next(m for m in drift if m["statistic"] == "brightness" and m["state"] == "raised")
    assert raised["check"] == "surface" and raised["psi"] >= 0.25 and raised["p_value"] < 1e-3
    # It came between the shift and one window plus one comparison after it, and it dates the
    # shift (the change-point estimate) to within a few parts.
    part_at = {m["decided_at"]: i for i, m in enumerate(parts)}
    assert SHIFT_AT < part_at[raised["at"]] <= SHIFT_AT + WINDOW + EVERY, part_at[raised["at"]]
    assert abs(part_at[raised["since"]] - SHIFT_AT) <= 5, part_at[raised["since"]]
    metrics = prometheus_text(station)
    assert 'lineguard_drift_alarm{check="surface",station="test-line",statistic="brightness"} 1.0' in metrics
    assert 'lineguard_drift_psi{check="surface",station="test-line",statistic="brightness"}' in metrics


def test_the_same_line_unshifted_raises_none(tmp_path: Path, drift_bundle) -> None:
    station = run_line(tmp_path, drift_bundle, None)
    kinds = [e["kind"] for e in station.store.events("test-line", limit=1000)]
    assert "drift_raised" not in kinds
    (check,) = station.status().drift
    assert check.monitored and check.statistics and not any(s.alarm for s in check.statistics)


def test_checks_that_cannot_be_watched_say_why(tmp_path: Path, station_bundle) -> None:
    """The session's small bundle was calibrated on 20 images: too few to judge drift."""
    line = tmp_path / "line"
    line.mkdir()
    cv2.imwrite(str(line / "p.png"), textured_part(np.random.default_rng(0)))
    config = station_config(tmp_path, station_bundle, line)
    station = Station(config, build_sinks(config))
    try:
        (check,) = station.status().drift
    finally:
        station.stop()
    assert not check.monitored and check.reference_images == 20
    assert f"{MIN_REFERENCE} are needed" in check.why_not


def test_a_station_replaying_real_elpv_cells_raises_on_a_brightening_and_not_without(tmp_path: Path) -> None:
    """ELPV solar cells (the PyPI sample): a bundle calibrated on 100 good cells; a line of 300 other
    good cells, 15 % brighter from part 150 on, raises the brightness alarm within a window (100
    parts) and a comparison (10) of the shift, dated to within 10 parts; unshifted, no alarm."""
    pytest.importorskip("elpv_dataset")
    from lineguard.bundle import export_bundle
    from lineguard.data.image_io import read_image
    from lineguard.data.readers import elpv_root, read_elpv
    from lineguard.models import CalibrationSet, Padim

    split = read_elpv(elpv_root(), seed=0)
    good = [s.path for s in (*split.train, *split.test) if s.label == 0]
    good = [good[i] for i in np.random.default_rng(7).permutation(len(good))[:500]]
    model = Padim("efficientnet_lite0", (128, 128), seed=0).fit(
        [read_image(p) for p in good[:100]],
        calibration=CalibrationSet([read_image(p) for p in good[100:200]]),
    )
    bundle = export_bundle(model, tmp_path / "bundle")
    shift_at, window, every = 150, 100, 10
    for name, shifted in (("quiet", None), ("bright", shift_at)):
        line = tmp_path / name / "line"
        line.mkdir(parents=True)
        for i, path in enumerate(good[200:500]):
            image = read_image(path).astype(np.float32) * (
                1.15 if shifted is not None and i >= shifted else 1.0
            )
            cv2.imwrite(str(line / f"p{i:04d}.png"), np.clip(image, 0, 255).astype(np.uint8))
        config = station_config(tmp_path / name, bundle, line, drift={"window": window, "every": every})
        run_to_end(Station(config, build_sinks(config)), timeout_s=300)
        messages = [
            json.loads(x) for x in (tmp_path / name / "state" / "results.jsonl").read_text().splitlines()
        ]
        part_at = {m["decided_at"]: i for i, m in enumerate(m for m in messages if "type" not in m)}
        raised = [m for m in messages if m.get("type") == "drift" and m["state"] == "raised"]
        if shifted is None:
            assert raised == [], raised
            continue
        brightness = next(m for m in raised if m["statistic"] == "brightness")
        assert shift_at < part_at[brightness["at"]] <= shift_at + window + every, part_at[brightness["at"]]
        assert abs(part_at[brightness["since"]] - shift_at) <= 10, part_at[brightness["since"]]


def test_a_failing_drift_monitor_never_stops_the_line(tmp_path: Path, station_bundle, monkeypatch) -> None:
    from lineguard.station.drift import DriftWatch

    def broken(self, check, values, at):
        raise RuntimeError("a bug in drift monitoring")

    monkeypatch.setattr(DriftWatch, "update", broken)
    line = tmp_path / "line"
    line.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(line / f"p{i}.png"), textured_part(rng))
    config = station_config(tmp_path, station_bundle, line)
    station = run_to_end(Station(config, build_sinks(config)))
    assert station.state != "error" and station.counters["parts"] == 5
    assert station.counters["drift_errors"] == 5
