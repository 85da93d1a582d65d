"""Control charts and the shift report over a large record: N synthetic recorded parts (one check
with a score, about 2 % rejected), then a p chart (subgroups of 500 parts) and an X̄-S chart of the
score (subgroups of 5) drawn from subgroup statistics the database aggregates, and the whole shift
report (`lineguard report`: counts, Paretos, charts, capability, drift, reviews, worst parts, as
HTML) — on SQLite and on a real PostgreSQL (started here as in the tests, when it is installed).

Reported: the time to aggregate and chart, and the peak memory the Python process allocates while
doing it (tracemalloc), against the size of the parts themselves. Insertion (bulk, outside the
record's write path) is not timed. Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import platform
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from anomaly import ROOT, write_section
from ocr import cpu

from lineguard.report import gather, render
from lineguard.spc import p_chart, xbar_s
from lineguard.store import Grouping, ImageArchive, RecordStore, sqlite_url
from lineguard.store.database import CheckRow, PartRow
from lineguard.store.summary import Period

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fill(store: RecordStore, n: int, seed: int = 0, chunk: int = 50_000) -> None:
    """Bulk-insert ``n`` parts with one check each (a score; NG above a threshold)."""
    store.verify()
    rng = np.random.default_rng(seed)
    parts, checks = PartRow.__table__, CheckRow.__table__
    with store.engine.begin() as connection:
        for start in range(0, n, chunk):
            count = min(chunk, n - start)
            scores = rng.gamma(2.0, 1.0, count)
            bad = scores > 7.8  # about 2 %
            rows = [
                {
                    "id": start + i + 1,
                    "station": "bench",
                    "uid": f"u{start + i}",
                    "part_id": f"P{start + i}",
                    "verdict": "NG" if bad[i] else "OK",
                    "reason": "",
                    "recipe": "r",
                    "decided_at": T0 + timedelta(seconds=0.5 * (start + i)),
                    "recorded_at": T0,
                    "via_journal": False,
                }
                for i in range(count)
            ]
            connection.execute(parts.insert(), rows)
            connection.execute(
                checks.insert(),
                [
                    {
                        "part_pk": start + i + 1,
                        "check": "surface",
                        "decision": "NG" if bad[i] else "OK",
                        "score": float(scores[i]),
                        "reason": "",
                        "bundle_sha256": "",
                        "model_version": "",
                        "thresholds": {},
                        "timings_ms": {},
                    }
                    for i in range(count)
                ],
            )


def measure(store: RecordStore, archive: Path) -> dict[str, float]:
    out = {}
    for name, work in (
        ("p", lambda: p_chart(*_counts(store))),
        ("xbar_s", lambda: xbar_s(store.value_subgroups(Grouping("bench", "surface", size=5)).stats)),
        ("report", lambda: render(gather(store, ImageArchive(archive), Period("bench")))),
    ):
        tracemalloc.start()
        start = time.perf_counter()
        result = work()
        out[f"{name}_s"] = time.perf_counter() - start
        out[f"{name}_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        if name == "report":
            out["report_mb"] = len(result.encode()) / 1e6
        else:
            chart = getattr(result, "chart", getattr(result, "location", None))
            out[f"{name}_points"] = float(len(chart.values))
    return out


def _warm_up_matplotlib() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    ax.plot([0, 1])
    figure.savefig(io.StringIO(), format="svg")
    plt.close(figure)


def _counts(store: RecordStore):
    counts = store.reject_subgroups(Grouping("bench", "surface", size=500))
    return counts.rejected, counts.inspected


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    results = {}
    _warm_up_matplotlib()  # its first import (font cache) is not the report's cost
    with tempfile.TemporaryDirectory() as folder:
        sqlite = RecordStore(sqlite_url(Path(folder) / "record.db"), Path(folder) / "journal.jsonl")
        fill(sqlite, args.parts)
        archive = Path(folder) / "images"  # no image kept: the report says so
        archive.mkdir()
        results["SQLite " + sqlite3.sqlite_version] = measure(sqlite, archive)
        sqlite.close()
        try:
            from postgres_server import PostgresServer, postgres_bin

            bindir = postgres_bin()
        except ImportError:
            bindir = None
        if bindir is not None:
            server = PostgresServer(bindir)
            server.start()
            try:
                pg = RecordStore(server.url, Path(folder) / "pg-journal.jsonl")
                fill(pg, args.parts)
                results["PostgreSQL " + bindir.parent.name] = measure(pg, archive)
                pg.close()
            finally:
                server.cleanup()
    rows = [
        f"| {db} | {r['p_s']:.2f} s, {r['p_peak_mb']:.1f} MB ({r['p_points']:.0f} points) | "
        f"{r['xbar_s_s']:.2f} s, {r['xbar_s_peak_mb']:.1f} MB ({r['xbar_s_points']:.0f} points) | "
        f"{r['report_s']:.2f} s, {r['report_peak_mb']:.1f} MB ({r['report_mb']:.2f} MB of HTML) |"
        for db, r in results.items()
    ]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {cpu()}, Python {platform.python_version()}; "
        f"`python bench/spc.py --parts {args.parts}`.",
        "",
        f"{args.parts:,} recorded parts (one check, about 2 % NG), aggregated by the database into "
        "subgroup statistics, then charted (limits, Nelson rules): time, and the Python process's peak "
        "allocation while doing it (tracemalloc); one row comes back per subgroup. The shift report "
        "covers the whole record (charts in subgroups of 2000 parts, its 500-point cap), no images kept.",
        "",
        "| database | p chart (subgroups of 500) | X̄-S of the score (subgroups of 5) | shift report |",
        "|---|---|---|---|",
        *rows,
    ]
    write_section(
        args.out,
        "spc",
        "## Control charts and the shift report over the record (`bench/spc.py`)\n\n" + "\n".join(lines),
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
