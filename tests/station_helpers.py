"""Building and running stations in tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lineguard.station import Station, parse_config


def station_config(tmp_path: Path, bundle: Path, line: Path, **overrides: Any):
    doc: dict[str, Any] = {
        "station": "test-line",
        "state_dir": str(tmp_path / "state"),
        "sources": {"cam1": {"kind": "replay", "path": str(line), "ppm": 0}},
        "recipes": {"parts": {"checks": [{"name": "surface", "bundle": str(bundle), "source": "cam1"}]}},
        "recipe": "parts",
        "deadline_ms": 5000,
        "sinks": {"jsonl": {"path": str(tmp_path / "state" / "results.jsonl")}},
    }
    for key, value in overrides.items():
        doc[key] = value
    return parse_config(doc)


def top_and_side_checks(bundle: Path) -> list[dict[str, str]]:
    """A recipe's two checks, one on each of the cameras "top" and "side", with one bundle."""
    return [{"name": camera, "bundle": str(bundle), "source": camera} for camera in ("top", "side")]


def run_to_end(station: Station, timeout_s: float = 60.0) -> Station:
    """Start, wait until every finite source is done and every part decided, stop."""
    station.start()
    end = time.monotonic() + timeout_s
    try:
        while not station.finished:
            assert station.state == "running", station.error
            assert time.monotonic() < end, f"station did not finish: {station.status()}"
            time.sleep(0.02)
    finally:
        station.stop()
    return station


def wait_for(predicate, timeout_s: float = 20.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def inspect_folder(tmp_path: Path, bundle: Path, folder: Path) -> list:
    """Run a station with one check (``bundle``) over every image in ``folder``; the recorded parts."""
    from lineguard.station import build_sinks
    from lineguard.store import RecordStore, sqlite_url

    config = station_config(tmp_path, bundle, folder)
    run_to_end(Station(config, build_sinks(config)))
    store = RecordStore(sqlite_url(tmp_path / "state" / "record.db"), tmp_path / "j.jsonl")
    try:
        return store.parts("test-line")
    finally:
        store.close()


def two_job_station(tmp_path: Path, bundle: Path, sinks: dict[str, Any]) -> Station:
    """A station on PLC triggers (a looping line of 4 parts) with two recipes, jobs 1 and 2, and
    ``sinks``: what every PLC link test drives."""
    from helpers import write_line

    from lineguard.station import build_sinks

    write_line(tmp_path / "line", 4, defect_every=2)
    checks = [{"name": "surface", "bundle": str(bundle), "source": "cam1"}]
    source = {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 0, "loop": True, "trigger": "external"}
    config = station_config(
        tmp_path,
        bundle,
        tmp_path / "line",
        sources={"cam1": source},
        recipes={"parts": {"job": 1, "checks": checks}, "parts-b": {"job": 2, "checks": checks}},
        sinks=sinks,
    )
    return Station(config, build_sinks(config))
