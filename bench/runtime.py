"""Runtime speed: PyTorch eager vs ONNX Runtime fp32 vs INT8 (bundles), 1 and 2 threads, per backbone.

Fits each model on 200 good ELPV cells at 256x256, exports a bundle (and an
INT8 one, calibrated on 100 of the fitted cells, its scores mapped on the 50
threshold cells), then times one part at a time (batch 1, as on a line) over
100 other cells, preprocessing included, after 5 warm-up parts. The INT8 row
is timed whatever the guard says; the guard's verdict at the default limits is
reported beside it. Writes its section of docs/benchmarks.md.

    python bench/runtime.py [--backbones efficientnet_lite0 mobilenetv2] [--models patchcore padim]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly import ROOT, machine, write_section

N_FIT, N_TIME, WARMUP = 200, 100, 5


def timed(fn, images) -> np.ndarray:
    for im in images[:WARMUP]:
        fn(im)
    out = []
    for im in images:
        start = time.perf_counter()
        fn(im)
        out.append(1e3 * (time.perf_counter() - start))
    return np.asarray(out)


def run(model_kind: str, backbone: str, threads: int, workdir: Path, ratio: float = 0.01) -> list[dict]:
    """Fit once (cached in workdir), then time torch and ONNX Runtime with ``threads``."""
    import torch

    from lineguard.bundle import export_bundle, quantize_bundle
    from lineguard.bundle.quantize import guard_reasons
    from lineguard.data import open_dataset
    from lineguard.metrics import image_auroc
    from lineguard.models import MODELS, CalibrationSet, load_model
    from lineguard.runtime import load_bundle
    from lineguard.train.fit import iter_images

    torch.set_num_threads(threads)
    split = open_dataset("elpv", "elpv", seed=0)
    threshold_cells = split.train[N_FIT : N_FIT + 50]
    name = f"{model_kind}-{backbone}-{ratio}"
    model_dir = workdir / name
    searches = ("graph", "faiss-flat", "faiss-hnsw") if model_kind == "patchcore" else ("graph",)
    if not model_dir.exists():
        options = {"coreset_ratio": ratio} if model_kind == "patchcore" else {}
        model = MODELS[model_kind](backbone, (256, 256), seed=0, **options)
        held_out = CalibrationSet(list(iter_images(threshold_cells)))
        model.fit(iter_images(split.train[:N_FIT]), total=N_FIT, calibration=held_out)
        model.save(model_dir)
        for search in searches:
            export_bundle(model, workdir / f"{name}.{search}", search=search)
    model = load_model(str(model_dir))
    # Half good, half defective cells, so each engine's AUROC shows what its search costs.
    good = [s for s in split.test if not s.label][: N_TIME // 2]
    bad = [s for s in split.test if s.label][: N_TIME // 2]
    images = list(iter_images(good + bad))
    labels = np.r_[np.zeros(len(good)), np.ones(len(bad))]
    int8_dir = workdir / f"{name}.int8"
    if not int8_dir.exists():
        guard = quantize_bundle(
            workdir / f"{name}.graph",
            int8_dir,
            list(iter_images(split.train[: N_FIT : N_FIT // 100])),
            images,
            labels,
            score_images=list(iter_images(threshold_cells)),
            max_auroc_drop=float("inf"),  # keep it whatever, to time it; the verdict is judged below
            max_decision_change=float("inf"),
            threads=threads,
        )
        (workdir / f"{name}.int8.json").write_text(json.dumps(guard.to_dict()))
    guard = json.loads((workdir / f"{name}.int8.json").read_text())
    kept = not guard_reasons(
        guard["fp32_image_auroc"], guard["int8_image_auroc"], guard["decisions_changed"], 0.005, 0.005
    )
    int8_note = f"guard {'keeps' if kept else 'refuses'}: {guard['decisions_changed']:.1%} decisions changed"
    engines = [("torch eager", model.predict, lambda im: model.predict([im]), "")]
    for search in searches:
        inspector = load_bundle(workdir / f"{name}.{search}", threads=threads)
        label = "ONNX Runtime fp32" + ("" if search == "graph" else f" + {search}")
        engines.append((label, inspector.predict, inspector.inspect, ""))
    inspector = load_bundle(int8_dir, threads=threads)
    engines.append(("ONNX Runtime int8", inspector.predict, inspector.inspect, int8_note))
    rows = []
    for engine, predict_all, fn, note in engines:
        auroc = image_auroc(labels, predict_all(images).scores)
        ms = timed(fn, images)
        rows.append(
            {
                "model": model_kind,
                "backbone": backbone,
                "engine": engine,
                "threads": threads,
                "median": float(np.median(ms)),
                "p99": float(np.percentile(ms, 99)),
                "bank": model.metadata.get("memory_bank_size") or "-",
                "auroc": auroc,
                "note": note,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "mobilenetv2"])
    parser.add_argument("--models", nargs="+", default=["patchcore", "padim"])
    parser.add_argument(
        "--ratios",
        nargs="+",
        type=float,
        default=[0.01, 0.1],
        help="PatchCore coreset ratios (memory-bank sizes) to time",
    )
    parser.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.one:
        kind, backbone, threads, workdir, ratio = args.one
        print(json.dumps(run(kind, backbone, int(threads), Path(workdir), float(ratio))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models:
            for backbone in args.backbones:
                ratios = args.ratios if kind == "patchcore" and backbone == args.backbones[0] else [0.01]
                for ratio in ratios:
                    for threads in (1, 2):  # a fresh process per thread count: torch keeps its pool
                        print(
                            f"running {kind} {backbone} ratio {ratio} {threads} thread(s) ...",
                            file=sys.stderr,
                            flush=True,
                        )
                        out = subprocess.run(
                            [
                                sys.executable,
                                __file__,
                                "--one",
                                kind,
                                backbone,
                                str(threads),
                                tmp,
                                str(ratio),
                            ],
                            capture_output=True,
                            text=True,
                            check=True,
                        )
                        rows += json.loads(out.stdout.strip().splitlines()[-1])
    lines = [
        "## Runtime speed (`bench/runtime.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}; command: `python bench/runtime.py "
        f"--backbones {' '.join(args.backbones)} --models {' '.join(args.models)} "
        f"--ratios {' '.join(map(str, args.ratios))}`. "
        f"Models fitted on {N_FIT} good ELPV cells at 256x256; one part at a time (batch 1) over "
        f"{N_TIME} held-out ELPV cells (half good, half defective), decode excluded, preprocessing "
        "(resize, normalise) included. AUROC on those cells shows what each search costs in accuracy. "
        "faiss-hnsw: HNSW, M 32, efSearch 64. int8: feature network quantised (static QDQ, per-channel "
        "weights), its scores mapped onto the fp32 scale; the note gives the accuracy guard's verdict at "
        "its default limits (AUROC drop <= 0.005, <= 0.5 % of decisions changed) on these cells.",
        "",
        "| model | backbone | memory bank | engine | threads | median ms | p99 ms | parts/min (median) "
        "| AUROC | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['backbone']} | {r['bank']} | {r['engine']} | {r['threads']} "
            f"| {r['median']:.1f} | {r['p99']:.1f} | {60000 / r['median']:.0f} | {r['auroc']:.4f} "
            f"| {r['note']} |"
        )
    write_section(args.out, "runtime", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
