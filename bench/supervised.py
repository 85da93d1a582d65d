"""Supervised benchmark: NEU surface defects as 6-class classification (NEU-CLS convention).

NEU-DET's 1800 images (IMAGES + Validation_Images) are labelled by their file-name
prefix (the NEU-CLS convention; VOC box names disagree with it on a few images),
laid out as class folders (symlinks), and trained with the same code path as
`lineguard train DIR --task classify --format folder`: fixed split by seed
(stratified, 70 % train / 10 % validation / 20 % test), early stopping on the
validation split, temperature scaling on it, then evaluated on the test split
through the exported bundle (ONNX Runtime), with the PyTorch model's accuracy
beside it. Writes its section of docs/benchmarks.md.

    python bench/supervised.py [--size 192] [--epochs 15] [--seed 0]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly import ROOT, SHARED, machine, print_epoch, write_section

NEU = SHARED / "neu-det"


def class_folders(target: Path) -> Path:
    images = sorted(p for folder in ("IMAGES", "Validation_Images") for p in (NEU / folder).glob("*.jpg"))
    for path in images:
        cls = path.stem.rsplit("_", 1)[0]
        (target / cls).mkdir(parents=True, exist_ok=True)
        (target / cls / path.name).symlink_to(path)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if not NEU.is_dir():
        sys.exit(f"{NEU} not found")
    import torch

    from lineguard.bundle import export_bundle
    from lineguard.data import read_image
    from lineguard.evaluation.classification import classification_metrics
    from lineguard.runtime import load_bundle
    from lineguard.train import TrainingHooks, train
    from lineguard.train.config import ClassifyConfig

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        data = class_folders(Path(tmp) / "neu-cls")
        start = time.perf_counter()
        config = ClassifyConfig(
            image_size=(args.size, args.size), epochs=args.epochs, patience=args.patience, seed=args.seed
        )
        model, split = train(
            "classify",
            data,
            "folder",
            Path(tmp) / "model",
            config,
            hooks=TrainingHooks(progress=False, on_epoch=print_epoch),
        )
        fit_s = time.perf_counter() - start
        images = [read_image(s.path) for s in split.test]
        labels = [s.label for s in split.test]
        torch_probs = model.predict(images).probabilities
        bundle = export_bundle(model, Path(tmp) / "bundle")
        inspector = load_bundle(bundle, threads=1)
        timings = []
        probs = []
        for image in images:
            t = time.perf_counter()
            probs.append(inspector.classify([image]).probabilities[0])
            timings.append(1e3 * (time.perf_counter() - t))
        probs = np.stack(probs)
        metrics = classification_metrics(labels, probs, model.classes)
        torch_accuracy = float((torch_probs.argmax(1) == np.asarray(labels)).mean())
    meta = model.metadata
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = (
        f"python bench/supervised.py --size {args.size} --epochs {args.epochs} "
        f"--patience {args.patience} --seed {args.seed}"
    )
    lines = [
        "## Supervised: NEU 6-class classification (`bench/supervised.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}; command: `{command}`. NEU-DET's 1800 "
        "images labelled by file-name prefix (NEU-CLS), split by seed (stratified 70 / 10 / 20 %); "
        f"EfficientNet-Lite0 fine-tuned end to end at {args.size}x{args.size}, AdamW + cosine schedule, "
        "class-balanced loss, horizontal flips + light brightness/contrast jitter, "
        "early stopping on validation accuracy, "
        "temperature scaling on the validation split. Test accuracy through the exported bundle "
        "(ONNX Runtime, 1 thread); the PyTorch model's beside it.",
        "",
        "| test images | accuracy (bundle) | accuracy (torch) | macro F1 | ECE | epochs (best) | fit "
        "| ms/img (bundle, 1 thread) | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {metrics['n_images']} | {metrics['accuracy']:.4f} | {torch_accuracy:.4f} "
        f"| {metrics['macro_f1']:.4f} | {metrics['ece']:.2g} | {meta['epochs_run']} ({meta['best_epoch']}) "
        f"| {fit_s / 60:.1f} min "
        f"| {np.median(timings):.1f} | {peak:.0f} MB |",
        "",
        "Per class (precision / recall): "
        + ", ".join(
            f"{name} {v['precision']:.3f} / {v['recall']:.3f}" for name, v in metrics["per_class"].items()
        )
        + ".",
        "",
        "Acceptance (issue 5): NEU 6-class accuracy >= 0.99: "
        f"**{'met' if metrics['accuracy'] >= 0.99 else 'not met'}**.",
    ]
    write_section(args.out, "supervised-neu-cls", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
