"""Supervised benchmark: how many real defects does the segmenter need, and do synthetic ones help?

KolektorSDD, the same split by item as `bench/segmentation.py` (seed 0: 55 % train / 15 %
validation / 30 % test items). Six trainings with the code path of `lineguard train
--task segment` at a reduced size (128x320, fewer epochs) so the curve fits a CPU
afternoon: 25 / 50 / 100 % of the training split's real defective images (a seeded
subset; every good image kept), each without and with `--synthetic N` (CutPaste, scar,
Perlin and copy-paste of the kept real defects, made from the good training images).
Validation and test splits are the same for every row. Test metrics from the PyTorch
model (the bundle's parity is tested separately). Writes its section of docs/benchmarks.md.

    python bench/learning_curve.py [--epochs 15] [--synthetic 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly import ROOT, SHARED, machine, write_section

KSDD = SHARED / "kolektorsdd"
FRACTIONS = (0.25, 0.5, 1.0)


def write_table(args, rows: list[dict]) -> str:
    """The section so far (rewritten after every training, so a stopped run keeps its rows)."""
    command = (
        f"python bench/learning_curve.py --epochs {args.epochs} --patience {args.patience} "
        f"--synthetic {args.synthetic} --width {args.width} --height {args.height} --seed {args.seed}"
    )
    lines = [
        "## Supervised: learning curve on KolektorSDD (`bench/learning_curve.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}; command: `{command}`. Same split by item "
        f"as the segmentation benchmark (test good / defective: {rows[0]['n_test']}); segmenter at "
        f"{args.width}x{args.height}, at most {args.epochs} epochs (patience {args.patience}); a seeded "
        "share of the training split's real defective images, every good one; with synthetic: "
        f"{args.synthetic} synthetic defective images (CutPaste, scar, Perlin, copy-paste of the kept "
        "real defects). Thresholds calibrated on the validation items; test metrics from the PyTorch model.",
        "",
        "| real defects (share) | synthetic | image AP | image AUROC | sensitivity at NG | FRR | caught "
        "(REVIEW or NG) | mask F1 | epochs (best) | fit |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['n_train_defect']} ({r['fraction']:.0%}) | {r['n_synthetic']} | {r['image_ap']:.4f} "
            f"| {r['image_auroc']:.4f} | {r['sensitivity']:.4f} | {r['frr']:.4f} | {r['caught']:.4f} "
            f"| {r['mask_f1']:.4f} | {r['epochs']} | {r['fit_min']:.1f} min |"
            for r in rows
        ],
    ]
    if len(rows) < 2 * len(FRACTIONS):
        lines += ["", f"({len(rows)} of {2 * len(FRACTIONS)} rows measured so far.)"]
    text = "\n".join(lines)
    write_section(args.out, "supervised-learning-curve", text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--synthetic", type=int, default=60)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if not KSDD.is_dir():
        sys.exit(f"{KSDD} not found")
    import torch

    from lineguard.data.seen import SeenImages
    from lineguard.evaluation.segmentation import evaluate_segmenter
    from lineguard.train import TrainingHooks, train
    from lineguard.train.config import SegmentConfig

    torch.set_num_threads(2)
    rows = []
    for fraction in FRACTIONS:
        for synthetic in (0, args.synthetic):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                config = SegmentConfig(
                    image_size=(args.height, args.width),
                    epochs=args.epochs,
                    patience=args.patience,
                    seed=args.seed,
                    synthetic=synthetic,
                    defect_fraction=fraction,
                )
                out, quiet = Path(tmp) / "model", TrainingHooks(progress=False)
                model, split = train("segment", KSDD, "kolektor", out, config, hooks=quiet)
                fit_s = time.perf_counter() - start
                metrics = evaluate_segmenter(model, split.test, None, SeenImages.of(model.metadata))
            row = {
                "fraction": fraction,
                "synthetic": synthetic,
                "n_train_defect": model.metadata["n_train_defect"],
                "n_synthetic": model.metadata["n_synthetic"],
                "image_ap": metrics["image_ap"],
                "image_auroc": metrics["image_auroc"],
                "sensitivity": metrics["sensitivity"],
                "frr": metrics["false_reject_rate"],
                "caught": metrics["defects_caught_review_or_ng"],
                "mask_f1": metrics["mask_f1"],
                "epochs": f"{model.metadata['epochs_run']} ({model.metadata['best_epoch']})",
                "fit_min": fit_s / 60,
                "n_test": f"{metrics['n_good']} / {metrics['n_defect']}",
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            text = write_table(args, rows)
    print(text)


if __name__ == "__main__":
    main()
