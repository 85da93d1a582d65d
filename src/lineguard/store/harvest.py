"""Harvest: the parts people reviewed (and the OK parts the station kept) as a dataset that
``fit`` and ``train`` read as it is, with a provenance file saying where every image came from.

Each image is the check's archived image — the region the model or tool judged (after undistortion,
alignment and the ROI) — so a model fitted on a harvest needs no ``--check-from``: its images are
already the check's crops. Labels: a part's latest review (good, or its defect class), else
"good" for an OK part nobody reviewed (``station_ok``; its label is the station's, say so).
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from lineguard.errors import DataError
from lineguard.store.archive import ImageArchive
from lineguard.store.records import PartRecord, uid_draw
from lineguard.store.reviews import Review

HarvestFormat = Literal["folder", "mvtec"]
PROVENANCE = "provenance.csv"
SUMMARY = "harvest.json"
PROVENANCE_FIELDS = (
    "file",
    "label",
    "label_from",
    "station",
    "uid",
    "part_id",
    "check",
    "station_verdict",
    "reviewer",
    "reviewed_at",
    "note",
    "bundle_sha256",
    "model_version",
    "decided_at",
)


@dataclass
class Harvest:
    """What a harvest wrote, and what it had to leave out and why."""

    out: Path
    format: HarvestFormat
    written: Counter[str] = field(default_factory=Counter)  # label -> images
    skipped: Counter[str] = field(default_factory=Counter)  # why -> parts


def class_folder(label: str) -> str:
    """A defect class as a folder name: letters, digits, '-' and '_' (others become '_')."""
    name = re.sub(r"[^A-Za-z0-9_\-]+", "_", label.strip()).strip("_")
    return name or "defect"


def file_stem(uid: str) -> str:
    """A part uid as a file name: no path separators, no leading dot (a record is input too)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", uid).lstrip(".") or "part"


def _in_test(uid: str, test_fraction: float) -> bool:
    """MVTec layout: a good part goes to test/good by a hash of its uid (stable, content-blind)."""
    return uid_draw(uid) / 2**64 < test_fraction


def harvest(
    labelled: Iterable[tuple[PartRecord, Review | None]],
    archive: ImageArchive,
    out: Path,
    check: str | None,
    fmt: HarvestFormat = "folder",
    test_fraction: float = 0.2,
    record: str = "",
    progress: bool = False,
) -> Harvest:
    """Write each labelled part's ``check`` image (the only check when None) into ``out``."""
    if fmt not in ("folder", "mvtec"):
        raise ValueError(f"unknown harvest format {fmt!r}; choose folder or mvtec")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    if out.exists() and any(out.iterdir()):
        raise DataError(out, "the harvest folder exists and is not empty; name a new one")
    out.mkdir(parents=True, exist_ok=True)
    result = Harvest(out, fmt)
    from tqdm.auto import tqdm

    with (out / PROVENANCE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, PROVENANCE_FIELDS)
        writer.writeheader()
        for part, review in tqdm(labelled, desc="harvest", unit="part", disable=not progress):
            checks = [c for c in part.checks if check is None or c.check == check]
            if check is None and len({c.check for c in part.checks}) > 1:
                names = sorted({c.check for c in part.checks})
                raise ValueError(f"parts have several checks ({', '.join(names)}); name one with --check")
            if not checks:
                result.skipped[f"no check {check!r}"] += 1
                continue
            judged = checks[0]
            if judged.image_sha256 is None:
                result.skipped["image not archived"] += 1
                continue
            try:
                png = archive.get_png(judged.image_sha256)
            except FileNotFoundError:
                result.skipped["image gone from the archive"] += 1
                continue
            if review is None:
                label, label_from = "good", "station OK"
            else:
                label = "good" if review.result == "good" else class_folder(review.defect_class or "defect")
                label_from = f"review ({review.basis})"
            folder = _folder(fmt, label, part.uid, test_fraction)
            (out / folder).mkdir(parents=True, exist_ok=True)
            name, twin = f"{folder}/{file_stem(part.uid)}.png", 1
            while (out / name).exists():  # two uids alike once made file names: keep both
                twin += 1
                name = f"{folder}/{file_stem(part.uid)}-{twin}.png"
            (out / name).write_bytes(png)
            result.written[label] += 1
            writer.writerow(
                {
                    "file": name,
                    "label": label,
                    "label_from": label_from,
                    "station": part.station,
                    "uid": part.uid,
                    "part_id": part.part_id,
                    "check": judged.check,
                    "station_verdict": part.verdict,
                    "reviewer": review.reviewer if review else "",
                    "reviewed_at": review.at.isoformat() if review else "",
                    "note": review.note if review else "",
                    "bundle_sha256": judged.bundle_sha256,
                    "model_version": judged.model_version,
                    "decided_at": part.decided_at.isoformat(),
                }
            )
    if not result.written:
        raise DataError(out, f"nothing to harvest: no labelled part with an archived image ({_why(result)})")
    summary = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "record": record,
        "check": check,
        "format": fmt,
        "test_fraction": test_fraction if fmt == "mvtec" else None,
        "images": dict(result.written),
        "skipped": dict(result.skipped),
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return result


def _folder(fmt: HarvestFormat, label: str, uid: str, test_fraction: float) -> str:
    if fmt == "folder":
        return label
    if label == "good":
        return "test/good" if _in_test(uid, test_fraction) else "train/good"
    return f"test/{label}"


def _why(result: Harvest) -> str:
    return ", ".join(f"{n} {why}" for why, n in result.skipped.items()) or "no labelled parts recorded"
