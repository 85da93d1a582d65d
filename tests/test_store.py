"""The record: a real SQLite file in WAL mode, filters and paging, and the journal when it is gone."""

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from lineguard.results import Measurement
from lineguard.store import CheckRecord, Journal, PartRecord, RecordStore, sqlite_url

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def part(i: int, verdict: str = "OK", station: str = "st1") -> PartRecord:
    score = {"OK": 1.0, "REVIEW": 5.0, "NG": 9.0}[verdict]
    check = CheckRecord(
        check="top",
        decision=verdict,
        score=score,
        bundle_sha256="ab" * 32,
        thresholds={"review": 4.0, "ng": 8.0},
        timings_ms={"infer": 12.5},
        # A tool's values round-trip too: judged, read text with per-character detail, unmeasured.
        measurements=(
            Measurement("gap", 12.0 + i / 100, "mm", lo=11.95, hi=12.05, decision="OK"),
            Measurement("lot", 0.97, text=f"L{i:03d}", detail=(0.99, 0.95, 0.97, 0.97)),
            Measurement("bore", None, "mm", lo=9.9, hi=10.1, decision="NG"),
        ),
    )
    return PartRecord(
        station, f"P{i:04d}", f"P{i:04d}", verdict, (check,), decided_at=T0 + timedelta(seconds=i)
    )


def test_sqlite_record_round_trips_filters_and_pages(tmp_path):
    store = RecordStore(sqlite_url(tmp_path / "line.db"), tmp_path / "journal.jsonl")
    verdicts = ["OK", "NG", "OK", "REVIEW", "OK", "NG"]
    for i, v in enumerate(verdicts):
        assert store.record(part(i, v)) == "database"
    assert store.record(part(1, "NG")) == "database"  # the same part again: recorded once
    with sqlite3.connect(tmp_path / "line.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.counts("st1") == {"OK": 3, "REVIEW": 1, "NG": 2}
    newest = store.parts(limit=2)
    assert [p.uid for p in newest] == ["P0005", "P0004"]
    assert [p.uid for p in store.parts(limit=2, offset=2)] == ["P0003", "P0002"]
    assert [p.uid for p in store.parts(verdict="NG")] == ["P0005", "P0001"]
    assert [p.uid for p in store.parts(since=T0 + timedelta(seconds=4))] == ["P0005", "P0004"]
    assert store.parts(part_id="P0003") == [part(3, "REVIEW")]  # every field round-trips
    store.add_event("st1", "start", "recipe A")
    assert store.events("st1")[0]["kind"] == "start"


def test_measurements_are_rows_charts_can_aggregate(tmp_path):
    store = RecordStore(sqlite_url(tmp_path / "line.db"), tmp_path / "journal.jsonl")
    for i in range(3):
        store.record(part(i))
    with sqlite3.connect(tmp_path / "line.db") as db:
        mean = db.execute("SELECT avg(value), count(*) FROM measurements WHERE name = 'gap'").fetchone()
    assert mean == (pytest.approx(12.01), 3)
    with pytest.raises(ValueError, match="not finite"):
        Measurement("gap", float("nan"))
    with pytest.raises(ValueError, match="OK without a value"):
        Measurement("gap", None, decision="OK")


def test_ok_needs_complete_valid_checks():
    with pytest.raises(ValueError, match="OK without a valid score"):
        CheckRecord(check="top", decision="OK", score=None)
    with pytest.raises(ValueError, match="OK needs every check"):
        PartRecord("st1", "u", "u", "OK", ())
    review = CheckRecord(check="side", decision="REVIEW", score=5.0)
    with pytest.raises(ValueError, match="OK needs every check"):
        PartRecord("st1", "u", "u", "OK", (part(0).checks[0], review))
    with pytest.raises(ValueError, match="time zone"):
        PartRecord("st1", "u", "u", "NG", decided_at=datetime(2026, 1, 1))


def test_database_gone_then_back_nothing_lost_order_kept(tmp_path):
    db = tmp_path / "db" / "line.db"
    db.parent.mkdir()
    store = RecordStore(sqlite_url(db), tmp_path / "journal.jsonl", retry_after_s=0.0)
    assert store.record(part(0)) == "database"
    # The database goes away (its folder replaced, as by a failed share): decisions go to the journal.
    shutil.move(db.parent, tmp_path / "db-away")
    (tmp_path / "db").mkdir()
    db.mkdir()  # a folder where the database file was: sqlite cannot open it
    assert store.record(part(1, "NG")) == "journal"
    assert store.record(part(2)) == "journal"
    assert len(store.journal) == 2 and store.last_error
    # A station restarted meanwhile still finds them.
    assert [p.uid for p in Journal(tmp_path / "journal.jsonl").records()] == ["P0001", "P0002"]
    # The database comes back: the next part first replays the journal, in order.
    shutil.rmtree(tmp_path / "db")
    shutil.move(tmp_path / "db-away", tmp_path / "db")
    assert store.record(part(3)) == "database"
    assert len(store.journal) == 0 and len(Journal(tmp_path / "journal.jsonl")) == 0
    assert [p.uid for p in store.parts()] == ["P0003", "P0002", "P0001", "P0000"]


def test_journal_skips_a_torn_last_line_and_replay_is_idempotent(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append(part(0))
    journal.append(part(1))
    with (tmp_path / "j.jsonl").open("a") as fh:
        fh.write('{"station": "st1", "uid": "P00')  # killed mid-write
    reopened = Journal(tmp_path / "j.jsonl")
    assert [p.uid for p in reopened.records()] == ["P0000", "P0001"] and reopened.torn_bytes == 30
    reopened.append(part(2))  # appends cleanly after the cut
    # P0000 reached the database before a crash between commit and journal cleanup.
    RecordStore(sqlite_url(tmp_path / "line.db"), tmp_path / "other.jsonl").record(part(0))
    store = RecordStore(sqlite_url(tmp_path / "line.db"), tmp_path / "j.jsonl")
    assert store.replay_journal() == 3
    assert store.counts() == {"OK": 3, "REVIEW": 0, "NG": 0} and len(store.journal) == 0


def test_postgres_stopped_mid_run_then_replayed(postgres, tmp_path):
    store = RecordStore(postgres.url, tmp_path / "journal.jsonl", connect_timeout_s=1, retry_after_s=0.0)
    assert store.record(part(0)) == "database"
    postgres.stop("immediate")  # the database dies without warning
    assert store.record(part(1, "NG")) == "journal"
    assert store.record(part(2, "REVIEW")) == "journal"
    postgres.start()
    assert store.record(part(3)) == "database"
    assert [p.uid for p in store.parts()] == ["P0003", "P0002", "P0001", "P0000"]
    assert store.parts(part_id="P0002") == [part(2, "REVIEW")]
    assert len(store.journal) == 0
    store.close()


def test_image_archive_is_content_addressed_and_keeps_what_the_policy_says(tmp_path):
    import numpy as np

    from lineguard.store.archive import ImageArchive, keep_image

    archive = ImageArchive(tmp_path / "images")
    image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    sha = archive.put_image(image)
    assert archive.put_image(image.copy()) == sha and len(list((tmp_path / "images").rglob("*.png"))) == 1
    import cv2

    decoded = cv2.imdecode(np.frombuffer(archive.get_png(sha), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded[..., ::-1], image)  # lossless, RGB kept
    archive.path(sha).write_bytes(b"damaged")
    with pytest.raises(OSError, match="does not match its sha256"):
        archive.get_png(sha)
    with pytest.raises(ValueError, match="not a sha256"):
        archive.path("../../etc/passwd")
    kept = [keep_image("OK", i, 10) for i in range(30)]
    assert sum(kept) == 3 and all(keep_image(v, 7, 0) for v in ("NG", "REVIEW"))
    assert not keep_image("OK", 0, 0)
