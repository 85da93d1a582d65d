"""Drift alarms on real images: ELPV solar cells (installed from PyPI). The reference is the image
statistics (brightness, contrast, focus, saturation) of 400 good cells, both cell types; a line of
1000 other good cells is streamed through `DriftMonitor` (window 200, compared every 20 parts), once as it
is and once 15 % brighter from part 500 on, for 5 seeds (the order of the line). Reported: the
parts from the shift to the brightness alarm, and any alarm on the unshifted line (false alarms).

The monitor runs on the statistics alone, outside a station. Writes its section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly import ROOT, write_section
from ocr import cpu

from lineguard.data.image_io import read_image
from lineguard.data.readers import elpv_root, read_elpv
from lineguard.spc.drift import STATISTICS, DriftMonitor, image_statistics

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def stream(monitor: DriftMonitor, images: list[np.ndarray], shift_at: int | None) -> list:
    events = []
    for i, image in enumerate(images):
        if shift_at is not None and i >= shift_at:
            image = np.clip(image.astype(np.float32) * 1.15, 0, 255).astype(np.uint8)
        events += monitor.update(image_statistics(image), T0 + timedelta(seconds=i))
    return events


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    split = read_elpv(elpv_root(), seed=0)
    good = [s for s in (*split.train, *split.test) if s.label == 0]  # both cell types, shuffled
    good = [good[i] for i in np.random.default_rng(1234).permutation(len(good))]
    train = [read_image(s.path) for s in good[:400]]
    line_pool = [read_image(s.path) for s in good[400:]]
    reference = {name: [image_statistics(im)[name] for im in train] for name in STATISTICS}
    rows, delays, false_alarms = [], [], 0
    for seed in range(args.seeds):
        order = np.random.default_rng(seed).permutation(len(line_pool))[:1000]
        line = [line_pool[i] for i in order]
        quiet = stream(DriftMonitor(reference), line, None)
        shifted = stream(DriftMonitor(reference), line, 500)
        after = [e for e in shifted if e.state == "raised" and (e.at - T0).total_seconds() >= 500]
        first = next((e for e in after if e.statistic == "brightness"), None)
        delay = None if first is None else int((first.at - T0).total_seconds()) - 500
        if delay is not None:
            delays.append(delay)
        false_alarms += len([e for e in quiet if e.state == "raised"])
        also = sorted({e.statistic for e in after} - {"brightness"})
        rows.append(
            f"| {seed} | {'missed' if delay is None else delay} | {', '.join(also) or '-'} | "
            f"{', '.join(e.statistic for e in quiet if e.state == 'raised') or 'none'} |"
        )
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {cpu()}, Python {platform.python_version()}; "
        f"`python bench/drift.py --seeds {args.seeds}`.",
        "",
        "ELPV cells: reference statistics of 400 good cells (both cell types, a seeded draw); a line of "
        "1000 other good cells (their order drawn by the seed), 15 % brighter from part 500 on. "
        "DriftMonitor defaults: window 200, every 20 parts, raise at PSI ≥ 0.25 with KS p < 0.001, "
        "clear below PSI 0.1.",
        "",
        "| seed | parts from shift to brightness alarm | also raised after the shift | alarms, no shift |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Brightness alarm after {min(delays) if delays else '-'}-{max(delays) if delays else '-'} parts "
        f"(median {int(np.median(delays)) if delays else '-'}); {false_alarms} false alarms over "
        f"{args.seeds} unshifted lines of 1000 parts.",
    ]
    write_section(
        args.out, "drift", "## Drift alarms on real images (`bench/drift.py`)\n\n" + "\n".join(lines)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
