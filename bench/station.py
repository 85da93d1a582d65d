"""Station throughput: sustained parts/min, latency and memory with recording on, on one CPU core.

Fits PatchCore (EfficientNet-Lite0, 256x256, coreset 1 %) on 200 good ELPV cells,
calibrates on 50 more, exports the bundle, and copies 300 held-out cells (PNG,
300x300) into a folder. Then runs `lineguard.station` in a fresh process pinned
to CPU 0 (one core; ONNX Runtime with one thread), with the full path on:
decode, inspect, verdict, SQLite record (WAL, synchronous=FULL, group commits of
what waits), image archive (every NG/REVIEW image and heatmap, 1 OK in 100) and a
JSON-lines sink. Two runs:

* **max**: a replay with back-pressure (ppm 0): the sustained rate the station reaches;
* **line**: a replay at a fixed 1200 parts/min (the stretch goal), which does not wait:
  parts the station cannot take become overload NG, counted here.

Latency is from the moment a part's image is read to the moment its verdict is
recorded and reported. RSS is sampled every second. Writes its section of
docs/benchmarks.md.

    python bench/station.py [--parts 1500] [--line-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly import ROOT, machine, write_section

N_FIT, N_THRESHOLD, N_REPLAY = 200, 50, 300


def prepare(workdir: Path) -> tuple[Path, Path]:
    from lineguard.bundle import export_bundle
    from lineguard.data import open_dataset
    from lineguard.models import CalibrationSet, PatchCore
    from lineguard.train.fit import iter_images

    split = open_dataset("elpv", "elpv", seed=0)
    model = PatchCore("efficientnet_lite0", (256, 256), seed=0, coreset_ratio=0.01)
    threshold_cells = list(iter_images(split.train[N_FIT : N_FIT + N_THRESHOLD]))
    model.fit(iter_images(split.train[:N_FIT]), total=N_FIT, calibration=CalibrationSet(threshold_cells))
    bundle = export_bundle(model, workdir / "bundle")
    cells = workdir / "cells"
    cells.mkdir()
    for i, sample in enumerate(split.test[:N_REPLAY]):
        shutil.copy(sample.path, cells / f"cell{i:04d}{Path(sample.path).suffix}")
    return bundle, cells


def station_yaml(workdir: Path, name: str, bundle: Path, cells: Path, ppm: float, parts: int) -> Path:
    doc = {
        "station": f"bench-{name}",
        "state_dir": str(workdir / f"state-{name}"),
        "sources": {"cam": {"kind": "replay", "path": str(cells), "ppm": ppm, "loop": True, "limit": parts}},
        "recipes": {"cells": {"checks": [{"name": "cell", "bundle": str(bundle), "source": "cam"}]}},
        "recipe": "cells",
        "deadline_ms": 2000,
        "queue_size": 8,
        "workers": 1,
        "threads_per_worker": 1,
        "store": {"keep_ok_every": 100},
        "sinks": {"jsonl": {"path": str(workdir / f"state-{name}" / "results.jsonl")}},
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_one(config_file: Path) -> dict:
    """In the pinned child process: run the station to the end of its replay."""
    from lineguard.station import load_config, run_station

    config = load_config(config_file)
    samples: list[tuple[float, float, int]] = []
    start = time.monotonic()
    station = run_station(
        config,
        on_tick=lambda st: samples.append((time.monotonic() - start, rss_mb(), st.counters["parts"])),
        api=False,
    )
    messages = [json.loads(x) for x in Path(config.sinks.jsonl.path).read_text().splitlines()]
    lines = [m for m in messages if "type" not in m]  # parts; a drift alarm is "type": "drift"
    decided = np.array([datetime.fromisoformat(r["decided_at"]).timestamp() for r in lines])
    latencies = np.array([r["latency_ms"] for r in lines])
    # Sustained rate: parts between the 10th and the last decision (start-up excluded).
    span = decided[-1] - decided[9]
    return {
        "parts": len(lines),
        "sustained_ppm": 60.0 * (len(lines) - 10) / span,
        "latency_p50": float(np.percentile(latencies, 50)),
        "latency_p99": float(np.percentile(latencies, 99)),
        "overload": station.counters["overload"],
        "verdicts": {v: station.counters[v] for v in ("OK", "REVIEW", "NG")},
        "rss_mb": [(round(t, 1), round(m, 1), n) for t, m, n in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", type=int, default=1500, help="parts in the max-rate run")
    parser.add_argument("--line-seconds", type=float, default=60.0, help="length of the 1200/min run")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.one:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, threads included
        print(json.dumps(run_one(args.one)))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print("fitting and exporting the bundle ...", file=sys.stderr, flush=True)
        bundle, cells = prepare(workdir)
        runs = {
            "max": station_yaml(workdir, "max", bundle, cells, 0, args.parts),
            "line": station_yaml(workdir, "line", bundle, cells, 1200, int(args.line_seconds * 20)),
        }
        for name, config_file in runs.items():
            print(f"running {name} ...", file=sys.stderr, flush=True)
            command = [sys.executable, __file__, "--one", str(config_file)]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    best = results["max"]["sustained_ppm"]
    lines = [
        "## Station throughput (`bench/station.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}, the station process pinned to **one core**; "
        f"command: `python bench/station.py --parts {args.parts} --line-seconds {args.line_seconds:g}`. "
        f"PatchCore EfficientNet-Lite0 256x256 bundle (fitted on {N_FIT} good ELPV cells), "
        f"{N_REPLAY} held-out ELPV cells (300x300 PNG) replayed in a loop; every part decoded, inspected, "
        "recorded in SQLite (WAL, synchronous=FULL, group commits of what waits), NG/REVIEW images + "
        "heatmaps and 1 OK in 100 archived, reported to a JSON-lines sink. Latency: image read → "
        "verdict recorded and reported; in the max-rate run it includes the wait in the 8-part "
        "inspection queue, which back-pressure keeps full on purpose.",
        "",
        "| run | parts | sustained parts/min | latency p50 ms | p99 ms | overload | RSS start → end MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("max", "replay, back-pressure (max rate)"), ("line", "line at 1200 parts/min")):
        r = results[name]
        rss = r["rss_mb"]
        memory = f"{rss[0][1]:.0f} → {rss[-1][1]:.0f}" if rss else "-"
        lines.append(
            f"| {label} | {r['parts']} | {r['sustained_ppm']:.0f} | {r['latency_p50']:.1f} | "
            f"{r['latency_p99']:.1f} | {r['overload']} | {memory} |"
        )
    lines += [
        "",
        f"Goal 400 parts/min: {'met' if best >= 400 else 'NOT met'} ({best:.0f}). "
        "Stretch goal 1200 parts/min: "
        + (f"met, {best / 1200:.1f}× of it." if best >= 1200 else f"{best / 1200:.0%} of it."),
    ]
    write_section(args.out, "station", "\n".join(lines))
    print("\n".join(lines))
    print(json.dumps(results)[:2000], file=sys.stderr)


if __name__ == "__main__":
    main()
