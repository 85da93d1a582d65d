"""The standing fault suite of issue 20: each test is a way parts were lost or wrongly passed
(and failed before the fix). Hostile images are in test_image_io*.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import write_line
from station_helpers import run_to_end, station_config, top_and_side_checks, wait_for

from lineguard.errors import TriggerRefused
from lineguard.results import ErrorCode
from lineguard.sinks.handshake import Handshake
from lineguard.station import Station, build_sinks
from lineguard.store import CheckRecord, PartRecord, RecordStore, sqlite_url
from lineguard.store.records import MAX_PART_ID_CHARS


def recorded(tmp_path: Path) -> tuple[list[PartRecord], list[dict]]:
    store = RecordStore(sqlite_url(tmp_path / "state" / "record.db"), tmp_path / "reader.jsonl")
    try:
        return store.parts("test-line", limit=1000), store.events("test-line")
    finally:
        store.close()


def _triggered(tmp_path: Path, bundle: Path, names: tuple[str, ...], recipes: dict, **overrides):
    for i, name in enumerate(names):
        write_line(tmp_path / name, 3, defect_every=0, seed=10 + i)
    return station_config(
        tmp_path,
        bundle,
        tmp_path / names[0],
        sources={
            name: {"kind": "replay", "path": str(tmp_path / name), "ppm": 0, "trigger": "software"}
            for name in names
        },
        recipes=recipes,
        recipe=next(iter(recipes)),
        **overrides,
    )


def _one_recipe_per_camera(tmp_path: Path, bundle: Path) -> Station:
    """Two triggered cameras; recipe A reads "top", recipe B "side"; started."""
    recipes = {
        name: {"checks": [{"name": camera, "bundle": str(bundle), "source": camera}]}
        for name, camera in (("A", "top"), ("B", "side"))
    }
    config = _triggered(tmp_path, bundle, ("top", "side"), recipes)
    station = Station(config, build_sinks(config))
    station.start()
    return station


def test_changeover_to_a_recipe_on_another_triggered_camera_keeps_every_trigger(station_bundle, tmp_path):
    # Found: parts were paired by per-camera frame count, so after 3 parts on "top" the first 3
    # frames of "side" counted as late and all 3 triggers under recipe B gave nothing.
    station = _one_recipe_per_camera(tmp_path, station_bundle)
    try:
        for i in range(3):
            station.trigger(f"A-{i}")
        wait_for(lambda: station.counters["parts"] == 3, what="parts under recipe A")
        station.changeover("B")
        for i in range(3):
            assert station.trigger(f"B-{i}") == 1
        wait_for(lambda: station.counters["parts"] == 6, what="parts under recipe B")
    finally:
        station.stop()
    parts, _ = recorded(tmp_path)
    assert sorted(p.part_id for p in parts if p.recipe == "B") == ["B-0", "B-1", "B-2"]
    assert station.counters["late_frames"] == 0


def test_a_trigger_the_active_recipe_cannot_serve_is_refused_and_recorded(station_bundle, tmp_path):
    station = _one_recipe_per_camera(tmp_path, station_bundle)
    try:
        with pytest.raises(TriggerRefused, match=r"triggered source\(s\) \['top'\]"):
            station.trigger("PN-1", source="side")  # recipe A does not read "side"
        with pytest.raises(TriggerRefused, match="over the limit of 128") as info:
            station.trigger("x" * (MAX_PART_ID_CHARS + 1))
        assert info.value.kind == "part_id"
        time.sleep(0.3)
    finally:
        station.stop()
    parts, events = recorded(tmp_path)
    assert parts == [] and station.counters["triggers_refused"] == 2
    assert sum(e["kind"] == "trigger_refused" for e in events) == 2


def test_one_lost_frame_fails_one_part_and_does_not_shift_the_pairing(station_bundle, tmp_path):
    # Found: one dropped frame on a camera paired the wrong images for every later part.
    checks = top_and_side_checks(station_bundle)
    config = _triggered(
        tmp_path, station_bundle, ("top", "side"), {"parts": {"checks": checks}}, deadline_ms=1500
    )
    station = Station(config, build_sinks(config))
    station.start()
    gate = station.sources["side"].gate
    fire = gate.fire
    gate.fire = lambda *args, **kwargs: None if args[:1] == ("P1",) else fire(*args, **kwargs)
    try:
        for i in range(3):
            station.trigger(f"P{i}")
            time.sleep(0.2)
        wait_for(lambda: station.counters["parts"] == 3, what="three parts")
    finally:
        station.stop()
    by_id = {p.part_id: p for p in recorded(tmp_path)[0]}
    assert by_id["P1"].verdict == "NG" and "side: no result before the deadline" in by_id["P1"].reason
    for pid in ("P0", "P2"):  # the parts around the lost frame keep both of their own images
        assert [c.score is not None for c in by_id[pid].checks] == [True, True], by_id[pid].reason


def test_handshake_shows_a_refused_trigger_as_an_error_code():
    def refuse(part_id):
        raise TriggerRefused("part ID refused", "part_id")

    handshake = Handshake(4, on_trigger=refuse)
    handshake.set_trigger(True, "x" * 300)  # must not raise into the PLC server's loop
    assert handshake.state().error_code == ErrorCode.TRIGGER_REFUSED
    handshake.reset_error()
    assert handshake.state().error_code == ErrorCode.NONE


def test_hostile_file_names_never_halt_the_station(station_bundle, tmp_path):
    # Found: one file name that is not UTF-8 stopped the station on every restart.
    line = tmp_path / "line"
    write_line(line, 2, defect_every=0)
    data = (line / "p000.png").read_bytes()
    odd = os.path.join(os.fsencode(line), b"odd-\xff\xfe.png")
    with open(odd, "wb") as fh:
        fh.write(data)
    (line / ("L" * 200 + ".png")).write_bytes(data)
    config = station_config(tmp_path, station_bundle, line)
    for _ in range(2):  # and again after a restart over the same folder
        station = run_to_end(Station(config, build_sinks(config)))
        assert station.state != "error", station.error
    parts, _ = recorded(tmp_path)
    by_id = {p.part_id: p for p in parts}
    assert "odd-\\xff\\xfe" in by_id  # escaped, visible, decided like any other part
    assert by_id["odd-\\xff\\xfe"].checks[0].score is not None
    (long_id,) = [pid for pid in by_id if pid.startswith("LLL")]
    assert len(long_id) <= MAX_PART_ID_CHARS
    assert by_id[long_id].verdict == "NG" and "part ID refused" in by_id[long_id].reason


def test_records_hold_only_storable_text_and_part_ids_within_the_limit():
    check = CheckRecord("top", "NG", None, reason="cannot read odd-\udcff.png\x00")
    assert check.reason == "cannot read odd-\\xff.png\\x00"
    with pytest.raises(ValueError, match="part ID over 128"):
        PartRecord("st", "u1", "x" * 129, "NG", (check,))


def _part(uid: str) -> PartRecord:
    return PartRecord("st", uid, uid, "NG", (CheckRecord("top", "NG", 9.0),))


def test_a_record_the_database_refuses_is_quarantined_and_does_not_block_later_parts(tmp_path, monkeypatch):
    # Found (PostgreSQL, a part ID over its column): the refused insert went to the journal and
    # every later part queued behind it forever.
    from sqlalchemy.exc import DataError as SQLDataError

    import lineguard.store.database as database

    store = RecordStore(sqlite_url(tmp_path / "r.db"), tmp_path / "journal.jsonl", retry_after_s=0)
    to_row = database._to_row

    def refusing(part, via_journal):
        if part.uid == "bad":
            raise SQLDataError("INSERT INTO parts", {}, Exception("value too long for type varchar"))
        return to_row(part, via_journal)

    monkeypatch.setattr(database, "_to_row", refusing)
    try:
        assert store.record(_part("P1")) == "database"
        assert store.record(_part("bad")) == "quarantine"
        assert store.record(_part("P2")) == "database"
        # The same record met during a journal replay: the rest of the journal still goes in.
        for uid in ("J1", "bad", "J2"):
            store.journal.append(_part(uid))
        assert store.replay_journal() == 2 and len(store.journal) == 0
        assert {p.uid for p in store.parts("st")} == {"P1", "P2", "J1", "J2"}
        held = list(store.quarantine.records())
        assert [p.uid for p in held] == ["bad", "bad"]
        assert "value too long" in store.quarantine.reasons()[0]
        assert any(e["kind"] == "quarantined" for e in store.events("st"))
    finally:
        store.close()


def _station_doc(**overrides) -> dict:
    doc = {
        "station": "s1",
        "sources": {"cam1": {"kind": "replay", "path": "x"}},
        "recipes": {"r": {"checks": [{"name": "a", "bundle": "b", "source": "cam1"}]}},
        "recipe": "r",
    }
    return {**doc, **overrides}


@pytest.mark.parametrize("deadline", [".inf", ".nan", "1e12"])
def test_start_up_refuses_deadlines_that_cannot_run(tmp_path, deadline):
    import yaml

    from lineguard.station import ConfigError, load_config

    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(_station_doc()) + f"deadline_ms: {deadline}\n")
    with pytest.raises(ConfigError, match="deadline_ms"):
        load_config(path)


def test_start_up_refuses_duplicate_keys_naming_key_and_lines(tmp_path):
    from lineguard.station import ConfigError, load_config

    path = tmp_path / "station.yaml"
    path.write_text("station: s1\nrecipe: r\nstation: s2\n")
    with pytest.raises(ConfigError, match=r"key 'station' given twice \(lines 1 and 3\)"):
        load_config(path)


def test_start_up_refuses_an_alias_bomb_quickly(tmp_path):
    from lineguard.station import ConfigError, load_config

    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="alias bomb"):
        load_config(path)
    assert time.monotonic() - start < 5  # bounded work (it took 40 s and 1.4 GB)


def test_yaml_anchors_and_merge_keys_still_work(tmp_path):
    from lineguard.station import load_config

    path = tmp_path / "station.yaml"
    path.write_text(
        "station: s1\nsources:\n  cam1: &cam {kind: replay, path: x}\n  cam2: {<<: *cam, path: y}\n"
        "recipes: {r: {checks: [{name: a, bundle: b, source: cam1}]}}\nrecipe: r\n"
    )
    config = load_config(path)
    assert config.sources["cam2"].path == tmp_path / "y"


def test_a_free_running_camera_beside_a_triggered_one_joins_the_waiting_part(station_bundle, tmp_path):
    # examples/station-full.yaml: an area camera on PLC triggers, a line-scan camera on the encoder.
    write_line(tmp_path / "top", 3, defect_every=0, seed=20)
    write_line(tmp_path / "side", 3, defect_every=0, seed=21)
    checks = top_and_side_checks(station_bundle)
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "top",
        sources={
            "top": {"kind": "replay", "path": str(tmp_path / "top"), "ppm": 0, "trigger": "software"},
            "side": {"kind": "replay", "path": str(tmp_path / "side"), "ppm": 120, "loop": True},
        },
        recipes={"parts": {"checks": checks}},
    )
    station = Station(config, build_sinks(config))
    station.start()
    try:
        for i in range(3):
            station.trigger(f"P{i}")
            wait_for(lambda i=i: station.counters["parts"] == i + 1, what=f"part {i}")
    finally:
        station.stop()
    parts = recorded(tmp_path)[0]
    assert sorted(p.part_id for p in parts) == ["P0", "P1", "P2"]
    assert all(c.score is not None for p in parts for c in p.checks)


def test_a_damaged_journal_line_is_an_error_naming_the_journal_and_the_line(tmp_path):
    from lineguard.store.journal import Journal, JournalError

    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append(_part("P1"))
    with path.open("a") as fh:
        fh.write('{"station": "st", "uid": \n')
    journal.append(_part("P2"))
    with pytest.raises(JournalError, match=r"journal\.jsonl: line 2 is damaged"):
        Journal(path)


@pytest.mark.parametrize("server", ["modbus", "api"])
def test_start_up_refuses_a_port_another_program_holds(server, station_bundle, tmp_path):
    # Found: the station ran without its Modbus server, its "listening" check talking to the holder.
    import socket

    from postgres_server import free_port

    port = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    write_line(tmp_path / "line", 1, defect_every=0)
    try:
        if server == "modbus":
            config = station_config(
                tmp_path, station_bundle, tmp_path / "line", sinks={"modbus": {"port": port}}
            )
            station = Station(config, build_sinks(config))
            with pytest.raises(OSError, match=rf"Modbus server: cannot listen on 127.0.0.1:{port}"):
                station.start()
            station.stop()
        else:
            from lineguard.api.app import ApiServer, create_app

            config = station_config(tmp_path, station_bundle, tmp_path / "line")
            station = Station(config, build_sinks(config))
            with pytest.raises(OSError, match=rf"REST API: cannot listen on 127.0.0.1:{port}"):
                ApiServer(create_app(station, "t" * 32), "127.0.0.1", port).start()
    finally:
        holder.close()


def test_the_command_maps_failures_to_exit_codes_without_tracebacks(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    from lineguard import cli

    done = subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "predict", str(tmp_path / "no-model"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == cli.EXIT_REFUSED and "Traceback" not in done.stderr
    assert "no-model" in done.stderr

    def broken() -> None:
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.delenv("LINEGUARD_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == cli.EXIT_INTERNAL
    assert "internal error: RuntimeError: something nobody planned for" in capsys.readouterr().err


def _watched(tmp_path: Path, bundle: Path, folder: Path, **source):
    return station_config(
        tmp_path,
        bundle,
        folder,
        sources={"cam1": {"kind": "folder", "path": str(folder), "watch": True, "settle_s": 0.05, **source}},
    )


def _run_until(station: Station, parts: int, settle_s: float = 0.6) -> None:
    wait_for(lambda: station.counters["parts"] >= parts, what=f"{parts} parts")
    time.sleep(settle_s)  # and nothing more comes


def test_a_watched_folder_remembers_what_it_decided_across_restarts(station_bundle, tmp_path):
    # Found: a restart re-inspected and re-reported every existing file (the PLC saw old results
    # as new), and a file rewritten under the same name was never inspected again.
    line = tmp_path / "drop"
    write_line(line, 3, defect_every=0)
    config = _watched(tmp_path, station_bundle, line)
    station = Station(config, build_sinks(config))
    station.start()
    try:
        _run_until(station, 3)
    finally:
        station.stop()
    station = Station(config, build_sinks(config))
    station.start()
    try:
        time.sleep(1.0)
        assert station.counters["parts"] == 0  # the three old files are not parts again
        os.utime(line / "p001.png")  # touched, same content: still the same part
        (line / "p000.png").write_bytes((line / "p002.png").read_bytes())  # a new image, same name
        _run_until(station, 1)
        assert station.counters["parts"] == 1
    finally:
        station.stop()
    assert len(recorded(tmp_path)[0]) == 4


def test_a_camera_that_always_writes_the_same_file_name_gives_a_part_per_image(station_bundle, tmp_path):
    source = tmp_path / "line"
    write_line(source, 3, defect_every=0)
    drop = tmp_path / "drop"
    drop.mkdir()
    config = _watched(tmp_path, station_bundle, drop)
    station = Station(config, build_sinks(config))
    station.start()
    try:
        for i in range(3):
            (drop / "image.png").write_bytes((source / f"p{i:03d}.png").read_bytes())
            _run_until(station, i + 1, settle_s=0.0)
    finally:
        station.stop()
    assert station.counters["parts"] == 3


@pytest.mark.parametrize("after", ["delete", "move"])
def test_a_watched_folder_can_move_or_delete_a_file_once_its_part_is_recorded(
    after, station_bundle, tmp_path
):
    line = tmp_path / "drop"
    write_line(line, 2, defect_every=0)
    extra = {"move_to": str(tmp_path / "done")} if after == "move" else {}
    config = _watched(tmp_path, station_bundle, line, after=after, **extra)
    station = Station(config, build_sinks(config))
    station.start()
    try:
        _run_until(station, 2)
        wait_for(lambda: not list(line.iterdir()), what="files handled")
    finally:
        station.stop()
    assert len(recorded(tmp_path)[0]) == 2
    moved = sorted(p.name for p in (tmp_path / "done").iterdir()) if after == "move" else []
    assert moved == (["p000.png", "p001.png"] if after == "move" else [])


def test_a_recipe_pins_its_bundle_and_an_edited_manifest_is_refused(station_bundle, tmp_path):
    # Found: manifest.json was trusted: raising its thresholds made a defective part pass.
    import json
    import shutil

    from lineguard.errors import ModelFileError
    from lineguard.runtime.manifest import manifest_sha256

    bundle = tmp_path / "bundle"
    shutil.copytree(station_bundle, bundle)
    pin = manifest_sha256(bundle)
    write_line(tmp_path / "line", 1, defect_every=0)

    def config():
        check = {"name": "surface", "bundle": str(bundle), "source": "cam1", "bundle_sha256": pin}
        return station_config(tmp_path, bundle, tmp_path / "line", recipes={"parts": {"checks": [check]}})

    station = run_to_end(Station(config(), build_sinks(config())))
    (part,) = recorded(tmp_path)[0]
    assert part.checks[0].bundle_sha256 == pin == station.recipe.runners[0].bundle_sha256

    manifest = json.loads((bundle / "manifest.json").read_text())
    raised = {"review": 1e9, "ng": 1e9}  # both copies, so only the pin can tell
    manifest["decision"]["thresholds"] = manifest["decision"]["calibration"]["thresholds"] = raised
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"pins manifest sha256 .* changed or replaced"):
        Station(config(), [])


def test_health_is_degraded_when_a_sink_or_source_is_down_and_webhook_drops_are_counted(
    station_bundle, tmp_path
):
    # Found: a dead source left /health "ok"; webhook drops were counted nowhere.
    from lineguard.api.app import prometheus_text
    from lineguard.sinks.basic import WebhookSink

    write_line(tmp_path / "line", 2, defect_every=0)
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "line",
        sources={"cam1": {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 600, "loop": True}},
    )
    webhook = WebhookSink("http://127.0.0.1:9/unreachable", timeout_s=0.2, queue_size=1, retries=0)
    station = Station(config, [*build_sinks(config), webhook])
    station.start()
    try:
        wait_for(lambda: station.counters["parts"] >= 3, what="parts")
        wait_for(lambda: webhook.failed + webhook.dropped > 0, what="webhook failures")
        status, problems = station.health()
        assert status == "degraded" and any("webhook" in p for p in problems)
        assert 'sink="WebhookSink"' in prometheus_text(station)

        def dead(stop):
            raise OSError("camera unplugged")
            yield

        source = station.sources["cam1"]
        source.frames = dead
        station._spawn(station._acquire, "dead-source", source)
        wait_for(lambda: any("source cam1 stopped" in p for p in station.health()[1]), what="source down")
    finally:
        station.stop()


def _replayed_line(tmp_path: Path, bundle: Path, n: int, replay: dict, **overrides):
    """A station on one camera replaying ``n`` good parts (one in four scratched if n > 4)."""
    write_line(tmp_path / "line", n, defect_every=4 if n > 4 else 0)
    source = {"kind": "replay", "path": str(tmp_path / "line"), **replay}
    return station_config(tmp_path, bundle, tmp_path / "line", sources={"cam1": source}, **overrides)


def test_overload_is_bounded_and_a_stop_mid_overload_records_every_decided_part(station_bundle, tmp_path):
    # Found: at 2x what the record could take, decided parts queued without bound (1.9 GB in 90 s),
    # and at stop 1,909 of 3,751 decided parts were never recorded.
    config = _replayed_line(tmp_path, station_bundle, 8, {"ppm": 3000, "loop": True}, record_backlog=16)
    station = Station(config, build_sinks(config))
    real = station.store.record_many

    def slow_disk(parts):  # 30 ms a part: the record takes ~33 parts/s of the line's 50
        time.sleep(0.03 * len(parts))
        return real(parts)

    station.store.record_many = slow_disk
    station.start()
    deepest = 0
    try:
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            deepest = max(deepest, station.status().record_backlog)
            time.sleep(0.01)
        assert station.counters["refused_backlog"] > 0  # the line outran the record
    finally:
        station.stop()  # mid-overload
    produced = station.sources["cam1"].frames_taken
    parts, events = recorded(tmp_path)
    assert deepest <= 16 + config.queue_size + config.workers + 2  # bounded, not growing
    assert len(parts) == station.counters["parts"] == station.counters["reported"]
    # Every image the line produced is a recorded part or a counted refusal; none vanished.
    assert len(parts) + station.counters["refused_backlog"] + station.counters["late_frames"] == produced
    assert any(e["kind"] == "backlog_full" for e in events)


def test_a_part_failed_as_overload_keeps_its_image(station_bundle, tmp_path):
    # Found: parts failed as overload kept no image, against "every NG/REVIEW image is archived".
    from lineguard.store import ImageArchive

    config = _replayed_line(tmp_path, station_bundle, 4, {"ppm": 6000, "limit": 40}, queue_size=1)
    station = Station(config, build_sinks(config))
    runner = station.recipe.runners[0]
    inspect = runner.run

    def slow(image, part_id=""):  # 20 parts/s: the line gives 100
        time.sleep(0.05)
        return inspect(image, part_id)

    runner.run = slow
    run_to_end(station)
    overloaded = [p for p in recorded(tmp_path)[0] if "overload" in p.checks[0].reason]
    assert overloaded, "the line did not outrun the inspection"
    archive = ImageArchive(tmp_path / "state" / "images")
    for part in overloaded:
        assert part.verdict != "OK" and part.checks[0].image_sha256 is not None
        assert archive.get_png(part.checks[0].image_sha256).startswith(b"\x89PNG")


def test_start_up_refuses_an_unreachable_database(station_bundle, tmp_path):
    from postgres_server import free_port

    write_line(tmp_path / "line", 1, defect_every=0)
    url = f"postgresql+psycopg://lineguard:secret@127.0.0.1:{free_port()}/nowhere"
    config = station_config(tmp_path, station_bundle, tmp_path / "line", store={"url": url})
    station = Station(config, build_sinks(config))
    with pytest.raises(OSError, match=r"record database .*127\.0\.0\.1.* unreachable") as info:
        station.start()
    assert "secret" not in str(info.value)
    lenient = station_config(
        tmp_path, station_bundle, tmp_path / "line", store={"url": url, "require_database_at_start": False}
    )
    station = run_to_end(Station(lenient, build_sinks(lenient)))
    assert station.counters["journalled"] == 1  # on the journal, to be replayed when the database is back


def test_the_run_summary_says_when_parts_were_failed_as_overload(station_bundle, tmp_path, monkeypatch):
    # Found: in the README demo under load 160 of 600 parts were NG only by overload, and nothing said so.
    from typer.testing import CliRunner

    from lineguard.cli import app

    write_line(tmp_path / "line", 4, defect_every=0)
    config = tmp_path / "station.yaml"
    import yaml

    config.write_text(
        yaml.safe_dump(
            {
                "station": "test-line",
                "state_dir": str(tmp_path / "state"),
                "sources": {
                    "cam1": {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 12000, "limit": 100}
                },
                "recipes": {
                    "parts": {"checks": [{"name": "s", "bundle": str(station_bundle), "source": "cam1"}]}
                },
                "recipe": "parts",
                "queue_size": 1,
            }
        )
    )
    from lineguard.station.checks import CheckRunner

    inspect = CheckRunner.run

    def slow(self, image, part_id=""):
        time.sleep(0.02)
        return inspect(self, image, part_id)

    monkeypatch.setattr(CheckRunner, "run", slow)
    result = CliRunner().invoke(app, ["run", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "checks were failed as overload" in result.output
