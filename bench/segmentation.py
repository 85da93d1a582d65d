"""Supervised benchmark: KolektorSDD defect segmentation, image-level AP.

Trains `lineguard train kolektorsdd --task segment --format kolektor` (same code path) on a split by
item (the 50 commutators; stratified, 55 % train / 15 % validation / 30 % test by seed), input
size auto (short side 256, aspect kept: 256x640), then evaluates the test items through the exported
bundle (ONNX Runtime). Writes its section of docs/benchmarks.md.

    python bench/segmentation.py [--epochs 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly import ROOT, SHARED, machine, write_section

KSDD = SHARED / "kolektorsdd"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if not KSDD.is_dir():
        sys.exit(f"{KSDD} not found")
    import torch

    from lineguard.bundle import export_bundle
    from lineguard.evaluation.segmentation import evaluate_segmenter
    from lineguard.runtime import load_bundle
    from lineguard.train.supervised import train_segmenter

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model, split = train_segmenter(
            KSDD,
            "kolektor",
            Path(tmp) / "model",
            epochs=args.epochs,
            patience=args.patience,
            seed=args.seed,
            progress=False,
            on_epoch=lambda r: print(json.dumps(r), file=sys.stderr, flush=True),
        )
        fit_s = time.perf_counter() - start
        inspector = load_bundle(export_bundle(model, Path(tmp) / "bundle"), threads=1)
        metrics = evaluate_segmenter(
            inspector, split.test, Path(tmp) / "report", model.metadata["seen_files"]
        )
    meta = model.metadata
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = (
        f"python bench/segmentation.py --epochs {args.epochs} --patience {args.patience} --seed {args.seed}"
    )
    lines = [
        "## Supervised: KolektorSDD segmentation (`bench/segmentation.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}; command: `{command}`. Split by item "
        "(stratified by seed: 55 % train / 15 % validation / 30 % test items), EfficientNet-Lite0 + "
        f"FPN-style decoder at {model.image_size[1]}x{model.image_size[0]}, BCE + Dice on the pixel masks, "
        "defective images shown 3x per epoch, flips + light brightness/contrast jitter, early stopping on "
        "validation image AP. "
        "Test metrics through the exported bundle (ONNX Runtime, 1 thread); NG at defect probability 0.5.",
        "",
        "| train (defective) | test good / defective | image AP | image AUROC | FRR | sensitivity | mask IoU "
        "| mask F1 | epochs (best) | fit | ms/img | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {meta['n_train']} ({meta['n_train_defect']}) | {metrics['n_good']} / {metrics['n_defect']} "
        f"| {metrics['image_ap']:.4f} | {metrics['image_auroc']:.4f} | {metrics['false_reject_rate']:.4f} "
        f"| {metrics['sensitivity']:.4f} | {metrics['mask_iou']:.4f} | {metrics['mask_f1']:.4f} "
        f"| {meta['epochs_run']} ({meta['best_epoch']}) | {fit_s / 60:.1f} min "
        f"| {metrics['ms_per_image']:.1f} | {peak:.0f} MB |",
        "",
        "Acceptance (issue 5): KolektorSDD segmentation image-level AP >= 0.99: "
        f"**{'met' if metrics['image_ap'] >= 0.99 else 'not met'}**.",
    ]
    write_section(args.out, "supervised-kolektor-seg", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
