"""Reliability figures: hostile images and names, random kill -9, overload, record + archive capacity.

Fits the station benchmark's bundle (PatchCore EfficientNet-Lite0 256x256 on 200 good ELPV
cells, see bench/station.py), then, each in a fresh `lineguard run` process unless said:

* **hostile images**: generated here from held-out good ELPV cells — PNG, JPEG, BMP and TIFF,
  grey and colour, each cut short at several points with and without an end marker appended,
  with random bit flips; decompression bombs (a 81 MP PNG of zeros, headers claiming 100000 px);
  odd modes (16-bit, RGBA, palette, 1-bit, grey+alpha, CMYK, float, PAM). One station run over
  them all, with hostile file names beside them (not UTF-8, 200 characters, control characters).
  A *wrong OK* is a part decided OK whose pixels are not the intact image's. Special files (a
  FIFO, a link to /dev/zero, a directory, an empty file, a 600 MB sparse file) go through
  `read_image`, as `lineguard predict` reads them.
* **kill -9**: a station replaying the cells is killed at a random moment, restarted, killed
  again, N times; then every part the sink was told of must be in the record.
* **overload**: the sustained rate at full speed (back-pressure), then a line at 2x and 3x that
  rate (it does not wait) for a set time, stopped with SIGTERM; the memory high-water mark and
  every image taken accounted for: recorded, refused at the source, or late.
* **record + archive** (in this process): SQLite group commits with every NG image and heatmap
  archived and 1 OK in 50, the capacity against a 1,200 parts/min line.

Writes its section of docs/benchmarks.md.

    python bench/reliability.py [--kills 20] [--overload-seconds 180]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly import ROOT, machine, write_section
from station import prepare

LINEGUARD = [sys.executable, "-m", "lineguard.cli"]


# -- hostile images ------------------------------------------------------------------------


def _encode(image: np.ndarray, ext: str) -> bytes:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, data = cv2.imencode(ext, bgr)
    assert ok, ext
    return data.tobytes()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _pil_bytes(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def hostile_images(
    cells: list[Path], folder: Path, seed: int = 0
) -> dict[str, tuple[str, np.ndarray | None]]:
    """Write the hostile files; {file stem: (class, the intact pixels it was made from or None)}."""
    from lineguard.data.image_io import decode_image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    truth: dict[str, tuple[str, np.ndarray | None]] = {}

    def put(stem: str, suffix: str, data: bytes, kind: str, intact: np.ndarray | None) -> None:
        (folder / f"{stem}{suffix}").write_bytes(data)
        truth[stem] = (kind, intact)

    for i, cell in enumerate(cells):
        grey = cv2.imread(str(cell), cv2.IMREAD_GRAYSCALE)
        colour = np.dstack([grey, (grey * 0.9).astype(np.uint8), grey])
        for image, tone in ((grey, "grey"), (colour, "colour")):
            for ext in (".png", ".jpg", ".bmp", ".tif"):
                data = _encode(image, ext)
                intact = decode_image(data, "intact")
                stem = f"c{i}-{tone}-{ext[1:]}"
                put(f"{stem}-intact", ext, data, "intact", intact)
                end = {".jpg": b"\xff\xd9", ".png": data[-12:]}.get(ext)
                for cut in (0.1, 0.5, 0.9, 0.99):
                    short = data[: int(len(data) * cut)]
                    put(f"{stem}-cut{int(cut * 100)}", ext, short, "cut short", intact)
                    if end is not None:
                        put(
                            f"{stem}-cut{int(cut * 100)}-end",
                            ext,
                            short + end,
                            "cut short + end marker",
                            intact,
                        )
                for k in range(4):
                    flipped = bytearray(data)
                    for _ in range(1 + 3 * (k % 2)):
                        flipped[int(rng.integers(16, len(data)))] ^= 1 << int(rng.integers(8))
                    put(f"{stem}-flip{k}", ext, bytes(flipped), f"bit flips ({ext[1:].upper()})", intact)
    # Decompression bombs: a real one (81 MP of zeros compresses to ~80 KB), and lying headers.
    put("bomb-81mp", ".png", _encode(np.zeros((9000, 9000), np.uint8), ".png"), "bomb", None)
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    lie = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    put("bomb-header-png", ".png", lie + _png_chunk(b"IEND", b""), "bomb", None)
    jpeg = bytearray(_encode(cv2.imread(str(cells[0]), cv2.IMREAD_GRAYSCALE), ".jpg"))
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    put("bomb-header-jpg", ".jpg", bytes(jpeg), "bomb", None)
    # Odd modes: intact content in unusual layouts (decoded, or refused with a reason).
    base = cv2.imread(str(cells[0]), cv2.IMREAD_GRAYSCALE)
    pil = Image.fromarray(base)
    odd = {
        "odd-grey16": (".png", _encode(base.astype(np.uint16) * 257, ".png")),
        "odd-colour16": (".png", _encode(np.dstack([base] * 3).astype(np.uint16) * 257, ".png")),
        "odd-rgba": (".png", _pil_bytes(pil.convert("RGBA"), "PNG")),
        "odd-palette": (".png", _pil_bytes(pil.convert("P"), "PNG")),
        "odd-1bit": (".png", _pil_bytes(pil.convert("1"), "PNG")),
        "odd-grey-alpha": (".png", _pil_bytes(pil.convert("LA"), "PNG")),
        "odd-cmyk": (".jpg", _pil_bytes(pil.convert("CMYK"), "JPEG")),
        "odd-float": (".tif", _pil_bytes(Image.fromarray(base.astype(np.float32)), "TIFF")),
        "odd-pam": (".png", _encode(base, ".pam")),
    }
    for stem, (suffix, data) in odd.items():
        put(stem, suffix, data, "odd mode", None)
    return truth


def hostile_names(cell: Path, folder: Path) -> int:
    """Part images under names no database or PLC string takes as they are."""
    data = cell.read_bytes()
    names = [b"name-\xff\xfe-latin1.png", ("L" * 200 + ".png").encode(), b"ctrl-\x01\x1b[31m-\n.png"]
    for name in names:
        with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
            fh.write(data)
    return len(names)


def special_files(folder: Path) -> dict[str, str]:
    """Files `lineguard predict` may be pointed at; {name: what happened}."""
    from lineguard.data.image_io import read_image
    from lineguard.errors import DataError

    folder.mkdir()
    os.mkfifo(folder / "fifo.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "dir.png").mkdir()
    (folder / "empty.png").write_bytes(b"")
    with open(folder / "sparse-600mb.png", "wb") as fh:
        fh.truncate(600 * 1024 * 1024)
    outcome = {}
    for path in sorted(folder.iterdir()):
        start = time.monotonic()
        try:
            read_image(path)
            outcome[path.name] = "decoded (!)"
        except DataError as exc:
            outcome[path.name] = f"refused in {1e3 * (time.monotonic() - start):.1f} ms: {exc.problem}"
    return outcome


def station_doc(workdir: Path, name: str, bundle: Path, source: dict, **extra) -> Path:
    state = workdir / f"state-{name}"
    doc = {
        "station": f"reliability-{name}",
        "state_dir": str(state),
        "sources": {"cam": source},
        "recipes": {"cells": {"checks": [{"name": "cell", "bundle": str(bundle), "source": "cam"}]}},
        "recipe": "cells",
        "deadline_ms": 2000,
        "store": {"keep_ok_every": 50},
        "sinks": {"jsonl": {"path": str(state / "results.jsonl")}},
        **extra,
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def open_record(config_file: Path):
    from lineguard.station import load_config
    from lineguard.store import RecordStore, sqlite_url

    config = load_config(config_file)
    state = Path(config.state_dir)
    return config, RecordStore(sqlite_url(state / "record.db"), state / "journal.jsonl")


def run_hostile(workdir: Path, bundle: Path, cells: list[Path]) -> dict:
    from lineguard.data.image_io import decode_image
    from lineguard.errors import DataError

    folder = workdir / "hostile"
    truth = hostile_images(cells, folder)
    n_names = hostile_names(cells[0], folder)
    config_file = station_doc(workdir, "hostile", bundle, {"kind": "folder", "path": str(folder)})
    done = subprocess.run(
        [*LINEGUARD, "run", str(config_file), "--quiet"], capture_output=True, text=True, timeout=900
    )
    config, store = open_record(config_file)
    try:
        parts = store.parts(config.station, limit=1000)
    finally:
        store.close()
    by_stem = {p.part_id: p for p in parts}
    rows: dict[str, Counter] = {}
    changes: dict[str, list[tuple[int, int]]] = {}  # per class: (pixels changed, of) per wrong OK
    for stem, (kind, intact) in truth.items():
        row = rows.setdefault(kind, Counter())
        row["tried"] += 1
        part = by_stem.get(stem)
        if part is None:
            row["not recorded"] += 1
            continue
        failed = any(c.score is None for c in part.checks)
        row["refused (fail-safe)" if failed else "inspected"] += 1
        row[part.verdict] += 1
        if part.verdict == "OK":
            path = next(folder.glob(f"{stem}.*"))
            changed = -1  # pixels that differ from the intact image; -1: not comparable
            try:
                pixels = decode_image(path.read_bytes(), path)
                if intact is not None and pixels.shape == intact.shape:
                    delta = pixels.astype(np.int32) != intact.astype(np.int32)
                    changed = int(delta.any(axis=2).sum() if delta.ndim == 3 else delta.sum())
                damaged = changed != 0
            except DataError:
                damaged = True
            if damaged and kind != "odd mode":
                row["wrong OK"] += 1
                total = int(np.prod(intact.shape[:2])) if intact is not None else 0
                changes.setdefault(kind, []).append((changed, total))
    named = [p for p in parts if p.part_id not in truth]
    return {
        "rows": {k: dict(v) for k, v in rows.items()},
        "changed_pixels": changes,
        "exit_code": done.returncode,
        "traceback": "Traceback" in done.stderr,
        "names_tried": n_names,
        "names_recorded": len(named),
        "names": sorted(p.part_id for p in named),
        "special": special_files(workdir / "special"),
    }


# -- kill -9 -------------------------------------------------------------------------------


def complete_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines(keepends=True):
        if line.endswith("\n"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def run_kills(workdir: Path, bundle: Path, cells_dir: Path, kills: int, seed: int = 0) -> dict:
    config_file = station_doc(
        workdir, "kill", bundle, {"kind": "replay", "path": str(cells_dir), "ppm": 0, "loop": True}
    )
    results = workdir / "state-kill" / "results.jsonl"
    rng = random.Random(seed)
    for _ in range(kills):
        before = len(complete_lines(results))
        proc = subprocess.Popen(
            [*LINEGUARD, "run", str(config_file), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 60
        while len(complete_lines(results)) <= before and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))  # a random moment while parts are being decided
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    config, store = open_record(config_file)
    try:
        store.replay_journal()
        recorded = {p.uid for p in _all_parts(store, config.station)}
    finally:
        store.close()
    reported = {r["uid"] for r in complete_lines(results)}
    return {
        "kills": kills,
        "reported": len(reported),
        "recorded": len(recorded),
        "reported_not_recorded": len(reported - recorded),
    }


def _all_parts(store, station: str) -> list:
    parts, offset = [], 0
    while True:
        page = store.parts(station, limit=1000, offset=offset)
        parts += page
        offset += len(page)
        if len(page) < 1000:
            return parts


# -- overload ------------------------------------------------------------------------------


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_line(workdir: Path, bundle: Path, cells_dir: Path, name: str, ppm: float, seconds: float) -> dict:
    ppm = round(float(ppm), 1)
    config_file = station_doc(
        workdir, name, bundle, {"kind": "replay", "path": str(cells_dir), "ppm": ppm, "loop": True}
    )
    proc = subprocess.Popen(
        [*LINEGUARD, "run", str(config_file), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = workdir / f"state-{name}" / "results.jsonl"
    while not results.exists() and proc.poll() is None:  # start-up (imports, bundle) is not the run
        time.sleep(0.05)
    start, hwm = time.monotonic(), 0.0
    while time.monotonic() - start < seconds and proc.poll() is None:
        hwm = max(hwm, _hwm_mb(proc.pid))
        time.sleep(0.5)
    hwm = max(hwm, _hwm_mb(proc.pid))
    proc.send_signal(signal.SIGTERM)  # mid-run: every decided part must still be recorded
    proc.communicate(timeout=600)
    config, store = open_record(config_file)
    try:
        parts = _all_parts(store, config.station)
        stop = next(e for e in store.events(config.station) if e["kind"] == "stop")["detail"]
    finally:
        store.close()
    taken = int(stop.rsplit("cam ", 1)[1])
    refused = int(stop.split(" refused at the source")[0].rsplit(", ", 1)[1])
    late = int(stop.split(" late frames")[0].rsplit(", ", 1)[1])
    decided = np.array(sorted(p.decided_at.timestamp() for p in parts))
    span = decided[-1] - decided[min(9, len(decided) - 1)]
    return {
        "ppm": ppm,
        "seconds": seconds,
        "exit_code": proc.returncode,
        "taken": taken,
        "recorded": len(parts),
        "refused": refused,
        "late": late,
        "lost": taken - len(parts) - refused - late,
        "overload_ng": sum(any("overload" in c.reason for c in p.checks) for p in parts),
        "sustained_ppm": float(60.0 * (len(decided) - 10) / span) if span > 0 else 0.0,
        "hwm_mb": hwm,
    }


# -- record + archive capacity ---------------------------------------------------------------


def record_capacity(workdir: Path, cells: list[Path], ng_share: float, n: int = 3000, seed: int = 0) -> float:
    """Parts/min through group commits of 64 with the station's archive policy (NG: image and
    heatmap; 1 OK in 50: image), ROI 256x256 grey images from the cells."""
    from lineguard.station.station import heatmap_png
    from lineguard.store import CheckRecord, ImageArchive, PartRecord, RecordStore, keep_image, sqlite_url

    folder = Path(tempfile.mkdtemp(dir=workdir))
    store = RecordStore(sqlite_url(folder / "record.db"), folder / "journal.jsonl")
    archive = ImageArchive(folder / "images")
    rng = np.random.default_rng(seed)
    images = [cv2.resize(cv2.imread(str(c), cv2.IMREAD_GRAYSCALE), (256, 256)) for c in cells]
    maps = [cv2.GaussianBlur(rng.random((256, 256), np.float32), (0, 0), 8) * 2 for _ in cells]
    ok_index = 0
    store.record(PartRecord("cap", "warm-up", "warm-up", "NG", (CheckRecord("cell", "NG", 9.0),)))
    start = time.perf_counter()
    for first in range(0, n, 64):
        batch = []
        for i in range(first, min(n, first + 64)):
            verdict = "NG" if rng.random() < ng_share else "OK"
            image_sha = heatmap_sha = None
            if keep_image(verdict, ok_index, 50):
                k = i % len(images)
                image = images[k].copy()
                image[0, :8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)  # a new image each part
                image_sha = archive.put_image(image)
                if verdict == "NG":
                    heatmap_sha = archive.put_image(heatmap_png(maps[k], 1.0))
            ok_index += verdict == "OK"
            score = 9.0 if verdict == "NG" else 1.0
            check = CheckRecord(
                "cell",
                verdict,
                score,
                bundle_sha256="a" * 64,
                image_sha256=image_sha,
                heatmap_sha256=heatmap_sha,
            )
            batch.append(PartRecord("cap", f"p{i}", f"p{i}", verdict, (check,)))
        assert set(store.record_many(batch)) == {"database"}
    elapsed = time.perf_counter() - start
    store.close()
    return 60.0 * n / elapsed


# -- the table -------------------------------------------------------------------------------


def _spread(values: list | None) -> str:
    """Median and largest number of pixels a wrong OK's image differs by, of the image's pixels."""
    if not values:
        return "-"
    changed = [c for c, _ in values]
    return f"{int(np.median(changed))}, {max(changed)} of {values[0][1]}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--overload-seconds", type=float, default=180.0, help="length of each overload run")
    parser.add_argument("--capacity-seconds", type=float, default=30.0, help="length of the full-speed run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        workdir = Path(tmp)
        print("fitting and exporting the bundle ...", file=sys.stderr, flush=True)
        bundle, cells_dir = prepare(workdir)
        cells = sorted(cells_dir.iterdir())
        print("hostile images and names ...", file=sys.stderr, flush=True)
        hostile = run_hostile(workdir, bundle, cells[:4])
        print(f"{args.kills} x kill -9 ...", file=sys.stderr, flush=True)
        kills = run_kills(workdir, bundle, cells_dir, args.kills)
        print("capacity ...", file=sys.stderr, flush=True)
        full = run_line(workdir, bundle, cells_dir, "full", 0, args.capacity_seconds)
        capacity = full["sustained_ppm"]
        lines_run = {}
        for k in (2, 3):
            print(f"overload {k}x ...", file=sys.stderr, flush=True)
            lines_run[k] = run_line(
                workdir, bundle, cells_dir, f"over{k}", k * capacity, args.overload_seconds
            )
        print("record + archive capacity ...", file=sys.stderr, flush=True)
        capacity_all_ng = record_capacity(workdir, cells, ng_share=1.0)
        capacity_line = record_capacity(workdir, cells, ng_share=0.05)
    text = [
        "## Reliability (`bench/reliability.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}; command: `python bench/reliability.py "
        f"--kills {args.kills} --overload-seconds {args.overload_seconds:g}`. Bundle: PatchCore "
        "EfficientNet-Lite0 256x256 fitted on 200 good ELPV cells (as `bench/station.py`); every station "
        "run is a `lineguard run` process (SQLite record, JSON-lines sink, NG images + heatmaps and 1 OK "
        "in 50 archived). Hostile images are generated by the benchmark from held-out good cells; a "
        "**wrong OK** is a damaged file decided OK with pixels other than the intact image's.",
        "",
        "| hostile images | tried | refused (fail-safe) | inspected | OK | REVIEW | NG | wrong OK "
        "| pixels changed in them (median, max) | not recorded |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, row in hostile["rows"].items():
        text.append(
            f"| {kind} | {row.get('tried', 0)} | {row.get('refused (fail-safe)', 0)} | "
            f"{row.get('inspected', 0)} | "
            f"{row.get('OK', 0)} | {row.get('REVIEW', 0)} | {row.get('NG', 0)} | {row.get('wrong OK', 0)} | "
            f"{_spread(hostile['changed_pixels'].get(kind))} | {row.get('not recorded', 0)} |"
        )
    wrong = sum(r.get("wrong OK", 0) for r in hostile["rows"].values())
    halts = hostile["names_tried"] - hostile["names_recorded"] + (hostile["exit_code"] not in (0, 1))
    flips = {k: v for k, v in hostile["rows"].items() if k.startswith("bit flips")}
    unchecked = ", ".join(
        f"{k[11:-1]} {v.get('wrong OK', 0)}/{v['tried']}" for k, v in flips.items() if v.get("wrong OK")
    )
    png = hostile["rows"].get("bit flips (PNG)", {})
    text += [
        "",
        f"Station exit code {hostile['exit_code']}, traceback shown: "
        f"{'yes' if hostile['traceback'] else 'no'}; "
        f"**{wrong} wrong OK**. Hostile names: {hostile['names_tried']} tried, {hostile['names_recorded']} "
        f"recorded, **{halts} halts** (recorded as {', '.join(repr(n[:40]) for n in hostile['names'])}).",
        "",
        "The wrong OKs are bit flips in formats that carry no checksum of their pixels ("
        + (unchecked or "none")
        + "): the flipped file is a valid image of other pixels, which no decoder can tell from a real "
        "one, and the model judged those pixels. PNG checks every chunk (CRC-32) and its pixel data "
        f"(Adler-32): {png.get('refused (fail-safe)', 0)} of {png.get('tried', 0)} flipped PNGs were "
        "refused. Where images cross a network or a share, send PNG.",
        "",
        "Special files through `read_image` (`lineguard predict`): "
        + "; ".join(f"`{name}` {what}" for name, what in hostile["special"].items())
        + ".",
        "",
        f"**kill -9**: {kills['kills']} kills at random moments, restarting each time: "
        f"{kills['reported']} parts reported to the sink, {kills['recorded']} recorded, "
        f"**{kills['reported_not_recorded']} reported but not recorded**.",
        "",
        "| run | line parts/min | seconds | images taken | recorded | refused at source | late | lost | "
        "overload NG | memory high-water MB | exit code |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in (
        ("full speed (back-pressure)", full),
        *((f"{k}x capacity, SIGTERM at the end", lines_run[k]) for k in (2, 3)),
    ):
        rate = f"{r['ppm']:.0f}" if r["ppm"] else "as fast as taken"
        text.append(
            f"| {label} | {rate} | {r['seconds']:g} | {r['taken']} | {r['recorded']} | {r['refused']} | "
            f"{r['late']} | {r['lost']} | {r['overload_ng']} | {r['hwm_mb']:.0f} | {r['exit_code']} |"
        )
    text += [
        "",
        f"Capacity (full speed, sustained): {capacity:.0f} parts/min; "
        "lost = taken − recorded − refused − late. "
        "At 2x and 3x the inspection queue is full: the parts it cannot take are decided NG as overload "
        f"(fail-safe) and recorded ({sum(lines_run[k]['overload_ng'] for k in (2, 3))} parts); "
        f"{sum(lines_run[k]['refused'] for k in (2, 3))} were refused at the source because the record "
        "fell behind.",
        "",
        f"**Record + archive** alone (SQLite group commits of 64, WAL, synchronous=FULL; 256x256 images): "
        f"every part NG (image + heatmap archived) **{capacity_all_ng:.0f} parts/min** "
        f"({capacity_all_ng / 1200:.1f}x a 1,200/min line); 5 % NG + 1 OK in 50 **{capacity_line:.0f} "
        f"parts/min** ({capacity_line / 1200:.1f}x).",
    ]
    raw = {"hostile": hostile, "kills": kills, "full": full, "overload": lines_run}
    print(json.dumps(raw, default=str), file=sys.stderr)
    write_section(args.out, "reliability", "\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
