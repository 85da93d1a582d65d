"""Runtime speed: PyTorch eager vs ONNX Runtime (bundle), 1 and 2 threads, per backbone.

Fits each model on 200 good ELPV cells at 256x256, exports a bundle, then times
one part at a time (batch 1, as on a line) over 100 other cells, preprocessing
included, after 5 warm-up parts. Writes its section of docs/benchmarks.md.

    python bench/runtime.py [--backbones efficientnet_lite0 mobilenetv2] [--models patchcore padim]
"""

from __future__ import annotations

import argparse
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


def run(model_kind: str, backbone: str, threads: int, workdir: Path) -> list[dict]:
    """Fit once (cached in workdir), then time torch and ONNX Runtime with ``threads``."""
    import torch

    from lineguard.bundle import export_bundle
    from lineguard.data import open_dataset
    from lineguard.decision import calibrate
    from lineguard.models import MODELS, load_model
    from lineguard.runtime import load_bundle
    from lineguard.train.fit import iter_images

    torch.set_num_threads(threads)
    split = open_dataset("elpv", "elpv", seed=0)
    model_dir, bundle_dir = workdir / f"{model_kind}-{backbone}", workdir / f"{model_kind}-{backbone}.bundle"
    if not model_dir.exists():
        model = MODELS[model_kind](backbone, (256, 256), seed=0)
        model.fit(iter_images(split.train[:N_FIT]), total=N_FIT)
        model.calibration = calibrate(
            model.predict(list(iter_images(split.train[N_FIT : N_FIT + 50]))).scores
        )
        model.save(model_dir)
        export_bundle(model, bundle_dir)
    model = load_model(str(model_dir))
    images = list(iter_images(split.test[:N_TIME]))
    inspector = load_bundle(bundle_dir, threads=threads)
    rows = []
    for engine, fn in (
        ("torch eager", lambda im: model.predict([im])),
        ("ONNX Runtime fp32", inspector.inspect),
    ):
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
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "mobilenetv2"])
    parser.add_argument("--models", nargs="+", default=["patchcore", "padim"])
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.one:
        import json

        kind, backbone, threads, workdir = args.one
        print(json.dumps(run(kind, backbone, int(threads), Path(workdir))))
        return
    import json

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models:
            for backbone in args.backbones:
                for threads in (1, 2):  # a fresh process per thread count: torch keeps its pool
                    print(f"running {kind} {backbone} {threads} thread(s) ...", file=sys.stderr, flush=True)
                    out = subprocess.run(
                        [sys.executable, __file__, "--one", kind, backbone, str(threads), tmp],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    rows += json.loads(out.stdout.strip().splitlines()[-1])
    lines = [
        "## Runtime speed (`bench/runtime.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}; command: `python bench/runtime.py "
        f"--backbones {' '.join(args.backbones)} --models {' '.join(args.models)}`. "
        f"Models fitted on {N_FIT} good ELPV cells at 256x256; one part at a time (batch 1) over "
        f"{N_TIME} ELPV cells, decode excluded, preprocessing (resize, normalise) included.",
        "",
        "| model | backbone | memory bank | engine | threads | median ms | p99 ms | parts/min (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['backbone']} | {r['bank']} | {r['engine']} | {r['threads']} "
            f"| {r['median']:.1f} | {r['p99']:.1f} | {60000 / r['median']:.0f} |"
        )
    write_section(args.out, "runtime", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
