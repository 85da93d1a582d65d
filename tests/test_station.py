"""The station end to end: real bundle, real SQLite/PostgreSQL record, faults injected on purpose."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from helpers import textured_part, write_line
from station_helpers import run_to_end, station_config, top_and_side_checks, wait_for

from lineguard.station import ConfigError, Station, build_sinks, load_config
from lineguard.store import ImageArchive, RecordStore, sqlite_url


def reported(tmp_path: Path) -> list[dict]:
    path = tmp_path / "state" / "results.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def recorded(tmp_path: Path, station: str = "test-line"):
    store = RecordStore(sqlite_url(tmp_path / "state" / "record.db"), tmp_path / "reader-journal.jsonl")
    try:
        return {p.uid: p for p in store.parts(station, limit=1000)}, store.events(station)
    finally:
        store.close()


def test_parts_decided_recorded_then_reported(station_bundle, tmp_path):
    truth = write_line(tmp_path / "line", 20)
    (tmp_path / "line" / "p900.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a torn file
    # No OK part drawn for review: a drawn part keeps its image whatever the retention says.
    review = {"ok_every": 0, "ng_every": 10}
    config = station_config(
        tmp_path, station_bundle, tmp_path / "line", store={"keep_ok_every": 5}, review=review
    )
    station = run_to_end(Station(config, build_sinks(config)))
    parts, events = recorded(tmp_path)
    lines = reported(tmp_path)
    assert len(parts) == len(lines) == 21 == station.counters["parts"]
    assert {r["uid"] for r in lines} == set(parts)  # everything reported is recorded
    by_name = {p.part_id: p for p in parts.values()}
    assert all(by_name[name].verdict == "NG" for name, bad in truth.items() if bad)
    good_ok = sum(by_name[name].verdict == "OK" for name, bad in truth.items() if not bad)
    assert good_ok >= 15  # 16 good parts; thresholds from 20 held-out good ones
    torn = by_name["p900"]
    assert torn.verdict == "NG" and "decode error" in torn.reason and "p900.png" in torn.reason
    assert torn.checks[0].score is None
    check = by_name["p004"].checks[0]
    assert check.bundle_sha256 and check.thresholds["ng"] > 0 and check.timings_ms["infer"] > 0
    # Retention: every NG image and heatmap kept, one OK in five.
    archive = ImageArchive(tmp_path / "state" / "images")
    assert check.image_sha256 and check.heatmap_sha256
    assert cv2.imdecode(np.frombuffer(archive.get_png(check.image_sha256), np.uint8), 0).shape == (128, 128)
    ok_kept = [p for p in parts.values() if p.verdict == "OK" and p.checks[0].image_sha256]
    ok_all = [p for p in parts.values() if p.verdict == "OK"]
    assert len(ok_kept) == (len(ok_all) + 4) // 5
    assert {"start", "stop"} <= {e["kind"] for e in events}


class FlakyModel:
    """Wraps an inspector: the n-th call raises, the m-th call is slower than the deadline."""

    def __init__(self, inspector, fail_on: int, slow_on: int, slow_s: float) -> None:
        self.inspect_real = inspector.inspect
        self.calls = 0
        self.fail_on, self.slow_on, self.slow_s = fail_on, slow_on, slow_s

    def __call__(self, image):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("simulated inference failure")
        if self.calls == self.slow_on:
            time.sleep(self.slow_s)
        return self.inspect_real(image)


def test_model_error_and_deadline_miss_are_fail_safe_and_the_station_keeps_going(station_bundle, tmp_path):
    write_line(tmp_path / "line", 8, defect_every=0)
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "line",
        deadline_ms=400,
        recipes={
            "parts": {
                "checks": [{"name": "surface", "bundle": str(station_bundle), "source": "cam1"}],
                "on_missing": "REVIEW",
                "on_failed": "NG",
            }
        },
        sources={"cam1": {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 120}},
    )
    station = Station(config, build_sinks(config))
    inspector = station.recipe.runners[0].inspector
    inspector.inspect = FlakyModel(inspector, fail_on=2, slow_on=5, slow_s=0.6)
    run_to_end(station)
    parts, _ = recorded(tmp_path)
    by_name = {p.part_id: p for p in parts.values()}
    assert len(parts) == 8
    assert by_name["p001"].verdict == "NG" and "model error" in by_name["p001"].reason
    assert by_name["p004"].verdict == "REVIEW" and "no result before the deadline" in by_name["p004"].reason
    # The slow result (and any queued behind it past its own deadline) came after its part was decided.
    assert station.recipe.assembler.late >= 1
    # Parts after the faults were inspected normally.
    assert all(by_name[f"p{i:03d}"].checks[0].score is not None for i in (2, 3, 6, 7))


def test_overload_fails_parts_it_cannot_inspect_never_drops_them(station_bundle, tmp_path):
    write_line(tmp_path / "line", 30, defect_every=0)
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "line",
        queue_size=1,
        sources={"cam1": {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 3000}},
    )
    station = Station(config, build_sinks(config))
    inspector = station.recipe.runners[0].inspector
    real = inspector.inspect
    inspector.inspect = lambda image: (time.sleep(0.05), real(image))[1]
    run_to_end(station)
    parts, _ = recorded(tmp_path)
    overloaded = [p for p in parts.values() if "overload" in p.reason]
    assert len(parts) == 30 and station.counters["overload"] == len(overloaded) > 0
    assert all(p.verdict == "NG" for p in overloaded)
    assert all(p.checks[0].score is not None for p in parts.values() if p.verdict == "OK")


def test_two_cameras_make_one_part_and_a_missing_image_is_never_ok(station_bundle, tmp_path):
    write_line(tmp_path / "top", 6, defect_every=0, seed=4)
    write_line(tmp_path / "side", 5, defect_every=3, seed=5)  # part 2 scratched on the side; no 6th image
    checks = top_and_side_checks(station_bundle)
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "top",
        deadline_ms=1500,
        sources={
            "top": {"kind": "replay", "path": str(tmp_path / "top"), "ppm": 600},
            "side": {"kind": "replay", "path": str(tmp_path / "side"), "ppm": 600},
        },
        recipes={"parts": {"checks": checks}},
    )
    station = run_to_end(Station(config, build_sinks(config)))
    parts = sorted(recorded(tmp_path)[0].values(), key=lambda p: p.uid)
    assert len(parts) == 6 and station.counters["parts"] == 6
    assert all([c.check for c in p.checks] == ["top", "side"] for p in parts)
    assert parts[2].verdict == "NG" and "side: NG" in parts[2].reason
    assert parts[5].verdict == "NG" and "side: no result before the deadline" in parts[5].reason
    assert parts[5].checks[1].score is None


def test_triggers_and_recipe_changeover(station_bundle, tmp_path):
    write_line(tmp_path / "line", 3, defect_every=0)
    check = {"bundle": str(station_bundle), "source": "cam1"}
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "line",
        sources={"cam1": {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 0, "trigger": "software"}},
        recipes={
            "A": {"checks": [{"name": "surface", **check}]},
            "B": {"checks": [{"name": "surface-b", **check}]},
            "broken": {"checks": [{"name": "x", "bundle": str(tmp_path / "nowhere"), "source": "cam1"}]},
        },
        recipe="A",
    )
    station = Station(config, build_sinks(config))
    station.start()
    try:
        time.sleep(0.3)
        assert station.counters["parts"] == 0  # nothing is taken without a trigger
        assert station.trigger("PN-0001") == 1
        wait_for(lambda: station.counters["parts"] == 1, what="first part")
        station.changeover("B")
        with pytest.raises(Exception, match="nowhere"):
            station.changeover("broken")
        assert station.recipe.name == "B"
        station.trigger("PN-0002")
        wait_for(lambda: station.counters["parts"] == 2, what="second part")
    finally:
        station.stop()
    parts, events = recorded(tmp_path)
    by_id = {p.part_id: p for p in parts.values()}
    assert by_id["PN-0001"].recipe == "A" and by_id["PN-0001"].checks[0].check == "surface"
    assert by_id["PN-0002"].recipe == "B" and by_id["PN-0002"].checks[0].check == "surface-b"
    assert any(e["kind"] == "changeover" and e["detail"] == "A -> B" for e in events)


def test_database_stopped_mid_run_journal_then_replay(station_bundle, tmp_path, postgres):
    write_line(tmp_path / "line", 40, defect_every=4)
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "line",
        sources={"cam1": {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 600}},
        store={"url": postgres.url},
    )
    station = Station(config, build_sinks(config))
    station.store.retry_after_s = 0.2
    station.start()
    try:
        wait_for(lambda: station.counters["parts"] >= 8, what="parts before the outage")
        postgres.stop("immediate")
        wait_for(lambda: station.counters["journalled"] >= 5, what="journalled parts")
        postgres.start()
        wait_for(lambda: station.finished, timeout_s=60, what="the end of the line")
    finally:
        station.stop()
    store = RecordStore(postgres.url, tmp_path / "check-journal.jsonl")
    parts = {p.uid: p for p in store.parts("test-line", limit=1000)}
    store.close()
    lines = reported(tmp_path)
    assert len(parts) == 40 == len(lines) and {r["uid"] for r in lines} == set(parts)
    assert station.counters["journalled"] >= 5
    assert len(station.store.journal) == 0


def _station_yaml(tmp_path: Path, bundle: Path, line: Path, loop: bool = True) -> Path:
    doc = {
        "station": "test-line",
        "state_dir": "state",
        "sources": {"cam1": {"kind": "replay", "path": str(line), "ppm": 1500, "loop": loop}},
        "recipes": {"parts": {"checks": [{"name": "surface", "bundle": str(bundle), "source": "cam1"}]}},
        "recipe": "parts",
        "sinks": {"jsonl": {"path": "state/results.jsonl"}},
    }
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kill_9_mid_run_then_restart_loses_nothing_reported(station_bundle, tmp_path):
    write_line(tmp_path / "line", 10, defect_every=3)
    config_file = _station_yaml(tmp_path, station_bundle, tmp_path / "line")
    command = [sys.executable, "-m", "lineguard.cli", "run", str(config_file), "--quiet"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: len(reported(tmp_path)) >= 25 or proc.poll() is not None,
            timeout_s=90,
            what="parts reported before the kill",
        )
        assert proc.poll() is None, proc.stdout.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    before = reported(tmp_path)
    subprocess.run([*command, "--max-parts", "5"], cwd=tmp_path, check=True, timeout=120, capture_output=True)
    parts, _events = recorded(tmp_path)
    lines = reported(tmp_path)
    missing = {r["uid"] for r in before} - set(parts)
    assert not missing, f"reported before the kill but not recorded: {sorted(missing)[:5]}"
    assert {r["uid"] for r in lines} <= set(parts)
    assert len(lines) >= len(before) + 5
    for part in parts.values():  # OK only with every check OK and a score
        if part.verdict == "OK":
            assert part.checks and all(c.decision == "OK" and c.score is not None for c in part.checks)
    runs = {p.uid.rsplit("-", 1)[0] for p in parts.values()}
    assert len(runs) == 2  # the restart numbered its parts under a new run id
    with sqlite3.connect(tmp_path / "state" / "record.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_config_errors_name_the_key(tmp_path, station_bundle):
    path = tmp_path / "station.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "station": "s1",
                "sources": {"cam1": {"kind": "replay", "path": "x", "ppm": -5}},
                "recipes": {"r": {"checks": [{"name": "a", "bundle": "b", "source": "cam1"}]}},
                "recipe": "r",
            }
        )
    )
    with pytest.raises(ConfigError, match=r"sources\.cam1\.replay\.ppm: Input should be greater"):
        load_config(path)
    path.write_text(
        yaml.safe_dump(
            {
                "station": "s1",
                "sources": {"cam1": {"kind": "replay", "path": "x"}},
                "recipes": {"r": {"checks": [{"name": "a", "bundle": "b", "source": "cam2"}]}},
                "recipe": "r",
                "deadline": 3,
            }
        )
    )
    with pytest.raises(ConfigError, match=r"deadline: Extra inputs are not permitted"):
        load_config(path)
    doc = yaml.safe_load(path.read_text())
    del doc["deadline"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"reads source 'cam2', which is not in sources \['cam1'\]"):
        load_config(path)
    doc["recipes"]["r"]["checks"][0]["source"] = "cam1"
    doc["sinks"] = {"opcua": {}}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"sinks\.opcua.*add users"):
        load_config(path)
    path.write_text("station: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    del doc["sinks"]
    path.write_text(yaml.safe_dump(doc))
    config = load_config(path)
    assert config.sources["cam1"].path == tmp_path / "x"  # relative to the YAML file
    assert config.recipes["r"].checks[0].bundle == tmp_path / "b"


def test_run_command_prints_a_summary(station_bundle, tmp_path):
    write_line(tmp_path / "line", 6, defect_every=3)
    config_file = _station_yaml(tmp_path, station_bundle, tmp_path / "line", loop=False)
    from typer.testing import CliRunner

    from lineguard.cli import app

    result = CliRunner().invoke(app, ["run", str(config_file), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "stopped  parts      6 | OK 4 REVIEW 0 NG 2" in result.output
    assert f"record: {tmp_path / 'state' / 'record.db'}" in result.output


def test_station_runs_without_torch(station_bundle, tmp_path):
    """In CI, scripts/test.sh installs `lineguard[station]` without torch into a second venv."""
    python = os.environ.get("LINEGUARD_RUNTIME_PYTHON")
    if not python:
        pytest.skip("LINEGUARD_RUNTIME_PYTHON not set (scripts/test.sh sets it)")
    write_line(tmp_path / "line", 6, defect_every=3)
    config_file = _station_yaml(tmp_path, station_bundle, tmp_path / "line", loop=False)
    assert subprocess.run([python, "-c", "import torch"], capture_output=True, check=False).returncode != 0
    out = subprocess.run(
        [python, "-m", "lineguard.cli", "run", str(config_file), "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "parts      6 | OK 4 REVIEW 0 NG 2" in out.stdout
    assert len(reported(tmp_path)) == 6


@pytest.mark.parametrize("name", ["elpv-station.yaml", "station-full.yaml"])
def test_example_configs_are_valid(name):
    config = load_config(Path(__file__).resolve().parents[1] / "examples" / name)
    assert config.recipe in config.recipes


def test_roi_undistortion_and_alignment_run_per_check(station_bundle, tmp_path):
    """Each part is undistorted, aligned to the reference and cropped before the bundle sees it;
    an ROI outside an unaligned image fails that check (fail-safe), not the station; an ROI
    outside the alignment reference can never fit and stops the station at start-up."""
    from lineguard.preprocess import CameraCalibration

    rng = np.random.default_rng(11)
    reference = np.full((160, 200), 90, np.uint8)
    reference[16:144, 36:164] = textured_part(rng)
    line = tmp_path / "line"
    line.mkdir()
    for i, (dx, dy) in enumerate([(0, 0), (5, -3), (-4, 6)]):
        shifted = cv2.warpAffine(
            reference, np.float32([[1, 0, dx], [0, 1, dy]]), (200, 160), borderMode=cv2.BORDER_REPLICATE
        )
        cv2.imwrite(str(line / f"p{i:03d}.png"), shifted)
    cv2.imwrite(str(tmp_path / "reference.png"), reference)
    camera = CameraCalibration(
        np.array([[400.0, 0, 100], [0, 400.0, 80], [0, 0, 1]]), np.zeros(5), (200, 160), 0.1, 0.05
    )
    camera.save(tmp_path / "camera.json")
    check = {
        "bundle": str(station_bundle),
        "source": "cam1",
        "camera_calibration": str(tmp_path / "camera.json"),
        "align_to": str(tmp_path / "reference.png"),
    }
    unaligned = {k: v for k, v in check.items() if k != "align_to"}

    def config_with(outside: dict):
        checks = [{"name": "inside", "roi": [36, 16, 128, 128], **check}, {"name": "outside", **outside}]
        return station_config(
            tmp_path, station_bundle, line, store={"keep_ok_every": 1}, recipes={"parts": {"checks": checks}}
        )

    aligned_outside = config_with({"roi": [150, 100, 128, 128], **check})
    never_fits = r"recipes\.parts: check 'outside': roi .* outside the 200x160 reference"
    with pytest.raises(ConfigError, match=never_fits):
        Station(aligned_outside, build_sinks(aligned_outside))
    config = config_with({"roi": [150, 100, 128, 128], **unaligned})
    run_to_end(Station(config, build_sinks(config)))
    parts = sorted(recorded(tmp_path)[0].values(), key=lambda p: p.part_id)
    archive = ImageArchive(tmp_path / "state" / "images")
    inside = [p.checks[0] for p in parts]
    crops = [cv2.imdecode(np.frombuffer(archive.get_png(c.image_sha256), np.uint8), 0) for c in inside]
    assert all(c.shape == (128, 128) for c in crops)
    for crop in crops[1:]:  # shifted parts were brought back onto the reference before cropping
        assert np.abs(crop[8:-8, 8:-8].astype(int) - crops[0][8:-8, 8:-8]).mean() < 2.0
    assert all(c.decision == "OK" for c in inside)
    assert all(p.verdict == "NG" and "outside" in p.reason and "ROI" in p.reason for p in parts)


def test_webhook_posts_each_recorded_part(station_bundle, tmp_path, monkeypatch):
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received, headers = [], []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            headers.append(self.headers.get("Authorization"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("LG_TEST_MES_TOKEN", "mes-secret")
    write_line(tmp_path / "line", 5, defect_every=5)
    url = f"http://127.0.0.1:{server.server_address[1]}/inspections"
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "line",
        sinks={"webhook": {"url": url, "token_env": "LG_TEST_MES_TOKEN"}},
    )
    try:
        run_to_end(Station(config, build_sinks(config)))
    finally:
        server.shutdown()
    parts, _ = recorded(tmp_path)
    assert sorted(r["uid"] for r in received) == sorted(parts)
    assert {r["verdict"] for r in received if r["part_id"] == "p004"} == {"NG"}
    assert set(headers) == {"Bearer mes-secret"}


def test_when_nothing_can_record_a_part_the_station_stops_deciding(station_bundle, tmp_path):
    """Database and journal both failing (a full disk): no verdict may be reported unrecorded."""
    write_line(tmp_path / "line", 10, defect_every=0)
    config = station_config(tmp_path, station_bundle, tmp_path / "line")
    station = Station(config, build_sinks(config))
    real_record, calls = station.store.record, []

    def record_many(parts):  # the disk fills after three parts (mid-batch, maybe)
        wheres = []
        for part in parts:
            calls.append(part.uid)
            if len(calls) > 3:
                raise OSError(28, "No space left on device")
            wheres.append(real_record(part))
        return wheres

    station.store.record_many = record_many
    station.start()
    try:
        wait_for(lambda: station.state == "error", what="the station to fault")
    finally:
        station.stop()
    # Only parts whose whole group commit succeeded are reported, and every one of them is recorded.
    assert {r["uid"] for r in reported(tmp_path)} <= set(calls[:3])
    assert len(reported(tmp_path)) == station.counters["parts"] <= 3
    assert "No space left on device" in station.error and station.status().error_code == 2


def test_cascade_runs_the_detailed_check_only_on_flagged_parts(station_bundle, tmp_path):
    truth = write_line(tmp_path / "line", 10, defect_every=5)
    (tmp_path / "line" / "p900.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # the pre-screen fails
    checks = [
        {"name": "screen", "bundle": str(station_bundle), "source": "cam1"},
        {"name": "detail", "bundle": str(station_bundle), "source": "cam1", "after": "screen"},
    ]
    config = station_config(
        tmp_path, station_bundle, tmp_path / "line", recipes={"parts": {"checks": checks}}
    )
    station = run_to_end(Station(config, build_sinks(config)))
    by_name = {p.part_id: p for p in recorded(tmp_path)[0].values()}
    assert len(by_name) == 11
    for name, bad in truth.items():
        part = by_name[name]
        if part.checks[0].decision == "OK":
            assert [c.check for c in part.checks] == ["screen"] and part.verdict == "OK"
        else:
            assert [c.check for c in part.checks] == ["screen", "detail"]
        if bad:
            assert part.verdict == "NG" and part.checks[1].score is not None
    assert [c.check for c in by_name["p900"].checks] == ["screen", "detail"]  # a failed screen is no pass
    assert by_name["p900"].verdict == "NG"
    flagged = sum(p.checks[0].decision != "OK" for p in by_name.values())
    assert station.counters["cascade_run"] == flagged and station.counters["cascade_skipped"] == 11 - flagged
    assert station.counters["cascade_skipped"] >= 7


def test_cascade_config_is_checked():
    from lineguard.station import parse_config

    base = {"station": "s", "sources": {"c": {"kind": "replay", "path": "x"}}, "recipe": "r"}
    bad = [
        ([{"name": "a", "bundle": "b", "source": "c", "after": "a"}], "must name another check"),
        (
            [
                {"name": "a", "bundle": "b", "source": "c", "after": "b"},
                {"name": "b", "bundle": "b", "source": "c", "after": "a"},
            ],
            "itself cascaded",
        ),
    ]
    for checks, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_config({**base, "recipes": {"r": {"checks": checks}}})


def test_sigterm_stops_gracefully_after_deciding_parts_in_flight(station_bundle, tmp_path):
    write_line(tmp_path / "line", 6, defect_every=3)
    config_file = _station_yaml(tmp_path, station_bundle, tmp_path / "line")  # loops: never ends by itself
    command = [sys.executable, "-m", "lineguard.cli", "run", str(config_file), "--quiet"]
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: len(reported(tmp_path)) >= 10 or proc.poll() is not None, timeout_s=90, what="parts")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stopped  parts" in output
    parts, events = recorded(tmp_path)
    assert {r["uid"] for r in reported(tmp_path)} == set(parts)
    assert events[0]["kind"] == "stop"


def test_changeover_to_a_recipe_on_another_camera(station_bundle, tmp_path):
    write_line(tmp_path / "top", 2, defect_every=0, seed=4)
    write_line(tmp_path / "side", 2, defect_every=0, seed=5)
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "top",
        sources={
            name: {"kind": "replay", "path": str(tmp_path / name), "ppm": 0, "trigger": "software"}
            for name in ("top", "side")
        },
        recipes={
            "A": {"checks": [{"name": "top", "bundle": str(station_bundle), "source": "top"}]},
            "B": {"checks": [{"name": "side", "bundle": str(station_bundle), "source": "side"}]},
        },
        recipe="A",
    )
    station = Station(config, build_sinks(config))
    station.start()
    try:
        assert set(station.sources) == {"top", "side"}  # opened for recipe B too
        station.changeover("B")
        station.trigger("PN-9", source="side")
        wait_for(lambda: station.counters["parts"] == 1, what="a part on the other camera")
    finally:
        station.stop()
    (part,) = recorded(tmp_path)[0].values()
    assert part.recipe == "B" and part.checks[0].check == "side" and part.part_id == "PN-9"
