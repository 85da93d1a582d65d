"""The shift report: one self-contained HTML file from a real record (SQLite), opened in headless
Chromium (Debian's), whose screenshot must show the charts; bad input is a clear error."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.results import Measurement
from lineguard.store import CheckRecord, ImageArchive, PartRecord, RecordStore, sqlite_url
from lineguard.store.reviews import ReviewSampling

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
CHART_BLUE = np.array([178, 114, 0])  # BGR of the charts' line colour (#0072B2)


def recorded_shift(tmp_path: Path, n: int = 400) -> tuple[str, Path]:
    """A shift of ``n`` parts: scores that drift up in the last quarter (rules must fire), a gap
    measured against its specification, REVIEW/NG parts with images and heatmaps, a few that
    could not be judged, reviews of the queue, and a drift alarm."""
    rng = np.random.default_rng(0)
    archive = ImageArchive(tmp_path / "images")
    url = sqlite_url(tmp_path / "record.db")
    store = RecordStore(url, tmp_path / "j.jsonl", review_sampling=ReviewSampling(ok_every=10, ng_every=1))
    parts = []
    for i in range(n):
        score = rng.normal(3.0 + (1.5 if i > 0.75 * n else 0.0), 0.8)
        unjudged = i % 97 == 13
        verdict = "NG" if unjudged or score >= 6 else "REVIEW" if score >= 5 else "OK"
        image = heatmap = None
        if verdict != "OK" or i % 10 == 0:
            part = (rng.integers(0, 255, (48, 64)) * 0.3 + 90).astype(np.uint8)
            image = archive.put_image(part)
            heatmap = archive.put_image(cv2.applyColorMap(part, cv2.COLORMAP_JET)[..., ::-1].copy())
        gap = Measurement("gap", 12.0 + rng.normal(0, 0.01), "mm", lo=11.95, hi=12.05, decision="OK")
        check = CheckRecord(
            check="surface",
            decision=verdict,
            score=None if unjudged else float(score),
            reason="overload: inspection queue full" if unjudged else "",
            bundle_sha256="ab" * 32,
            thresholds={"review": 5.0, "ng": 6.0},
            image_sha256=image,
            heatmap_sha256=heatmap,
            measurements=(gap,),
        )
        at = T0 + timedelta(seconds=30 * i)
        parts.append(PartRecord("line7", f"u{i:05d}", f"P{i:05d}", verdict, (check,), decided_at=at))
    store.record_many(parts)
    while (q := store.claim_review("line7", "olga", minutes=5)) is not None:
        found = q.verdict == "NG" and int(q.uid[1:]) % 3 != 0
        store.add_review("line7", q.uid, "olga", "defect" if found else "good", "scratch" if found else "")
    store.add_event("line7", "drift_raised", "check surface: brightness median 127 (reference) -> 146")
    store.close()
    return url, tmp_path / "images"


def report(url: str, images: Path, out: Path, *args: str):
    return CliRunner().invoke(app, ["report", url, "--archive", str(images), "--out", str(out), *args])


def chromium(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("Debian chromium is not installed (scripts/setup.sh installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def test_the_report_opens_in_chromium_with_its_charts(tmp_path: Path) -> None:
    url, images = recorded_shift(tmp_path)
    out = tmp_path / "shift.html"
    result = report(url, images, out)  # the whole record (its drift alarm came today)
    assert result.exit_code == 0, result.output
    assert "400 parts of line7" in result.output
    page = out.read_text()
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)
    for section in ("counts", "pareto", "charts", "capability", "drift", "reviews", "worst"):
        assert f'id="{section}"' in page
    assert page.count("<svg") == 5  # reject Pareto, defect-class Pareto, X̄, S, p
    assert "nelson-" in page  # the last quarter's shift fired a rule, listed under the charts
    assert "overload: inspection queue full" in page and "brightness median 127" in page
    assert "surface / gap (mm)" in page and "Cpk" in page
    shift = report(url, images, tmp_path / "morning.html", "--until", (T0 + timedelta(hours=1)).isoformat())
    assert shift.exit_code == 0 and "120 parts of line7" in shift.output
    assert "No drift alarm rose or cleared in this period" in (tmp_path / "morning.html").read_text()
    assert page.count("data:image/png;base64,") == 12  # six worst parts, image and heatmap each
    dom = chromium("--dump-dom", out.as_uri()).stdout
    assert dom.count("<svg") == 5 and "Shift report — line7" in dom
    shot = tmp_path / "shift.png"  # kept with the test's files, out of git
    chromium(f"--screenshot={shot}", "--window-size=1280,4200", out.as_uri())
    pixels = cv2.imread(str(shot))
    assert pixels is not None and pixels.shape[:2] == (4200, 1280)
    blue = (np.abs(pixels.astype(int) - CHART_BLUE).sum(axis=2) < 40).sum()
    assert blue > 1000, f"the charts' blue lines cover only {blue} pixels of the screenshot"


def test_bad_input_is_a_clear_error_never_a_report_of_nothing(tmp_path: Path) -> None:
    url, images = recorded_shift(tmp_path, n=40)
    out = tmp_path / "r.html"
    unknown = report(url, images, out, "--station", "line9")
    assert unknown.exit_code != 0 and "no station 'line9' in the record; it holds ['line7']" in unknown.output
    backwards = report(url, images, out, "--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z")
    assert backwards.exit_code != 0 and "empty time range" in backwards.output
    empty = report(url, images, out, "--since", "2027-01-01T00:00:00Z")
    assert empty.exit_code != 0 and "decided no parts" in empty.output
    no_archive = report(url, tmp_path / "nowhere", out)
    assert no_archive.exit_code != 0 and "no image archive there" in no_archive.output
    assert not out.exists()
    # A check that never gave a number, a specification upside down: said, not drawn.
    store = RecordStore(url, tmp_path / "j2.jsonl")
    bore = Measurement("bore", 10.0, "mm", lo=10.1, hi=9.9, decision="NG")
    failed = CheckRecord("code", "NG", None, reason="code tool error: unreadable", measurements=(bore,))
    store.record_many(
        [
            PartRecord("line8", f"c{i}", f"C{i}", "NG", (failed,), decided_at=T0 + timedelta(minutes=i))
            for i in range(30)
        ]
    )
    store.close()
    said = report(url, images, out, "--station", "line8")
    assert said.exit_code == 0, said.output
    page = html.unescape(out.read_text())
    assert "No chart: scores: station 'line8', check 'code': no recorded score in this range" in page
    assert "specification limits upside down" in page and page.count("<svg") == 2  # the p chart, one Pareto
