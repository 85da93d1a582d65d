"""Harvest: reviewed parts (and kept OK parts) into a dataset layout fit reads, with provenance;
labels and file names that cannot escape the dataset folder."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lineguard.data import open_dataset
from lineguard.errors import DataError
from lineguard.store import CheckRecord, ImageArchive, PartRecord, RecordStore, sqlite_url
from lineguard.store.harvest import class_folder, file_stem, harvest
from lineguard.store.reviews import ReviewSampling

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def recorded(tmp_path: Path, checks: tuple[str, ...] = ("top",)) -> tuple[RecordStore, ImageArchive]:
    """30 parts: every 5th NG (reviewed defective, one class a path), the others OK; every part's
    image kept but for part 1; parts 0-9 reviewed."""
    archive = ImageArchive(tmp_path / "images")
    store = RecordStore(
        sqlite_url(tmp_path / "r.db"), tmp_path / "j.jsonl", review_sampling=ReviewSampling(1, 1)
    )
    rng = np.random.default_rng(0)
    parts = []
    for i in range(30):
        verdict = "NG" if i % 5 == 0 else "OK"
        image = None if i == 1 else archive.put_image(rng.integers(0, 255, (32, 32), dtype=np.uint8))
        records = tuple(
            CheckRecord(c, verdict, 1.0, bundle_sha256="cd" * 32, image_sha256=image) for c in checks
        )
        parts.append(
            PartRecord("st", f"r1/{i:03d}", f"P{i:03d}", verdict, records, decided_at=T0 + timedelta(i))
        )
    store.record_many(parts)
    for i in range(10):
        bad = i % 5 == 0
        store.add_review(
            "st",
            f"r1/{i:03d}",
            "olga",
            "defect" if bad else "good",
            "../../etc" if i == 5 else "crack" if bad else "",
        )
    return store, archive


def test_mvtec_layout_with_provenance_and_safe_names(tmp_path: Path) -> None:
    store, archive = recorded(tmp_path)
    out = tmp_path / "harvest"
    result = harvest(
        store.labelled_parts("st"), archive, out, None, "mvtec", test_fraction=0.3, record="sqlite://"
    )
    # Reviewed: 2 defective (crack, and "../../etc" made a folder name), 7 good with images;
    # unreviewed OK parts 10-29 but the NG ones (which no review labels): 16 more good.
    assert result.written == {"crack": 1, "etc": 1, "good": 7 + 16}
    assert result.skipped == {"image not archived": 1}
    assert not (tmp_path / "etc").exists() and (out / "test" / "etc").is_dir()
    assert all("/" not in p.name for p in out.rglob("*.png"))
    split = open_dataset(out, "mvtec")  # what fit reads
    assert len(split.train) + sum(s.label == 0 for s in split.test) == 23
    assert sum(s.label == 1 for s in split.test) == 2
    with (out / "provenance.csv").open() as handle:
        rows = {r["uid"]: r for r in csv.DictReader(handle)}
    assert rows["r1/005"]["label"] == "etc" and rows["r1/005"]["reviewer"] == "olga"
    assert rows["r1/005"]["label_from"] == "review (sample)" and rows["r1/021"]["label_from"] == "station OK"
    assert rows["r1/021"]["bundle_sha256"] == "cd" * 32 and rows["r1/021"]["station_verdict"] == "OK"
    with pytest.raises(DataError, match="not empty"):
        harvest(store.labelled_parts("st"), archive, out, None)


def test_only_reviewed_parts_and_the_check_named(tmp_path: Path) -> None:
    store, archive = recorded(tmp_path, checks=("top", "side"))
    with pytest.raises(ValueError, match="several checks \\(side, top\\); name one with --check"):
        harvest(store.labelled_parts("st"), archive, tmp_path / "a", None)
    result = harvest(store.labelled_parts("st", station_ok=False), archive, tmp_path / "b", "side")
    assert result.written == {"crack": 1, "etc": 1, "good": 7}
    empty = store.labelled_parts("st", since=T0 + timedelta(days=40), station_ok=False)
    with pytest.raises(DataError, match="nothing to harvest"):
        harvest(empty, archive, tmp_path / "c", "side")


def test_labels_and_uids_become_plain_names() -> None:
    assert class_folder("../../etc") == "etc" and class_folder("  ") == "defect"
    assert class_folder("Kratzer groß") == "Kratzer_gro"
    assert file_stem("../r1/000") == "_r1_000" and file_stem("...") == "part"
