"""Training workflows for supervised models: read labels, split, decode, fit, save."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lineguard.data import read_image
from lineguard.data.labels import AnnotatedSample, AnnotatedSet, AnnotatedSplit, labelled_split
from lineguard.data.seen import content_digests
from lineguard.train.config import ClassifyConfig, DetectConfig, SegmentConfig, SupervisedConfig
from lineguard.train.workflow import Trained, TrainingHooks

if TYPE_CHECKING:
    from lineguard.station.preparation import PreparedCheck


def classification_samples(samples: tuple[AnnotatedSample, ...], where: str) -> tuple[list, list[int]]:
    unlabelled = [s.path for s in samples if s.label < 0]
    if unlabelled:
        from lineguard.errors import DataError

        raise DataError(
            unlabelled[0], f"no image class (no objects labelled); {len(unlabelled)} such images in {where}"
        )
    return [s.path for s in samples], [s.label for s in samples]


def _split(
    data: str | Path,
    format: str,
    config: SupervisedConfig,
    task: str = "classify",
    prepare: PreparedCheck | None = None,
    hooks: TrainingHooks | None = None,
):
    annotated, split = labelled_split(
        data, format, config.seed, config.val_fraction, config.test_fraction, task=task
    )
    if prepare is not None:  # split first, as evaluate re-creates it; then the check's crop
        if hooks is not None:
            hooks.tell(f"preparing every image as check {prepare.record['check']} does")
        split = prepare.split(split, progress=hooks is not None and hooks.progress)
    return annotated, split


def _fit_options(out: Path, resume: bool, hooks: TrainingHooks) -> dict:
    return {
        "checkpoint_dir": out / "checkpoint",
        "resume": resume,
        "progress": hooks.progress,
        "on_epoch": hooks.on_epoch,
    }


def _save(
    model,
    out: Path,
    annotated: AnnotatedSet,
    split: AnnotatedSplit,
    format: str,
    prepare: PreparedCheck | None = None,
) -> Trained:
    """Record how the data was split (evaluate re-creates it) and which files were seen, then save."""
    config = model.config
    if prepare is not None:
        model.metadata["check_from"] = prepare.record
    model.metadata["split"] = {
        "format": format,
        "seed": config.seed,
        "val_fraction": config.val_fraction,
        "test_fraction": config.test_fraction,
        "source": annotated.source,
        "task": model.task,
    }
    model.metadata["seen_sha256"] = content_digests(s.path for s in split.train + split.val)
    model.save(out)
    return Trained(model, split)


def train_classifier(
    data: str | Path,
    format: str,
    out: Path,
    config: ClassifyConfig,
    *,
    resume: bool,
    hooks: TrainingHooks,
    prepare: PreparedCheck | None = None,
) -> Trained:
    from lineguard.supervised import ImageClassifier

    annotated, split = _split(data, format, config, prepare=prepare, hooks=hooks)
    train_paths, train_labels = classification_samples(split.train, "the training split")
    val_paths, val_labels = classification_samples(split.val, "the validation split")
    model = ImageClassifier(config, annotated.classes)
    model.fit(
        [read_image(p) for p in train_paths],
        train_labels,
        [read_image(p) for p in val_paths],
        val_labels,
        **_fit_options(out, resume, hooks),
    )
    return _save(model, out, annotated, split, format, prepare)


def train_segmenter(
    data: str | Path,
    format: str,
    out: Path,
    config: SegmentConfig,
    *,
    resume: bool,
    hooks: TrainingHooks,
    prepare: PreparedCheck | None = None,
) -> Trained:
    """Fit a defect segmenter on pixel masks; no image size in the config: short side 256, the
    training images' aspect kept. ``config.defect_fraction`` < 1 trains on only that seeded share
    of the real defective training images (learning curves)."""
    from lineguard.data import read_mask
    from lineguard.data.samples import SampleRef
    from lineguard.supervised.segmenter import DefectSegmenter
    from lineguard.train.fit import auto_image_size

    annotated, split = _split(data, format, config, task="segment", prepare=prepare, hooks=hooks)
    image_size = config.image_size or auto_image_size([SampleRef(s.path, s.label) for s in split.train])

    def load(samples):
        images = [read_image(s.path) for s in samples]
        masks = [
            read_mask(s.mask_path, im.shape[:2]) if s.mask_path else None
            for s, im in zip(samples, images, strict=True)
        ]
        return images, masks

    model = DefectSegmenter(config, image_size=image_size)
    train = list(split.train)
    if config.defect_fraction < 1.0:  # keep a seeded share of the real defective images, every good one
        defective = [s for s in train if s.label == 1]
        keep = max(1, round(config.defect_fraction * len(defective)))
        rng = np.random.default_rng([config.seed, 11])
        chosen = {str(s.path) for s in rng.permutation(defective)[:keep]}
        train = [s for s in train if s.label == 0 or str(s.path) in chosen]
    model.fit(*load(train), *load(split.val), **_fit_options(out, resume, hooks))
    return _save(model, out, annotated, split, format, prepare)


def train_detector(
    data: str | Path,
    format: str,
    out: Path,
    config: DetectConfig,
    *,
    resume: bool,
    hooks: TrainingHooks,
    prepare: PreparedCheck | None = None,
) -> Trained:
    """Fit an FCOS defect detector on boxes (VOC, COCO or YOLO labels); images without boxes train
    as good parts."""
    from lineguard.supervised.detector import DefectDetector

    annotated, split = _split(data, format, config, task="detect", prepare=prepare, hooks=hooks)
    model = DefectDetector(config, annotated.classes)

    def load(samples):
        return (
            [read_image(s.path) for s in samples],
            [s.boxes for s in samples],
            [s.box_labels for s in samples],
        )

    model.fit(*load(split.train), *load(split.val), **_fit_options(out, resume, hooks))
    return _save(model, out, annotated, split, format, prepare)


def epoch_line(task: str, record: dict) -> str:
    """One line per training epoch: the loss and the validation quality that stops training."""
    if task == "detect":
        quality = f"mAP@0.5 {record['val_map50']:.4f} mAP@0.5:0.95 {record['val_map']:.4f}"
    elif task == "segment":
        quality = f"val loss {record['val_loss']:.4f} image AP {record['val_image_ap']:.4f}"
    else:
        quality = f"val loss {record['val_loss']:.4f} accuracy {record['val_accuracy']:.4f}"
    return f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} | {quality}"


def training_summary(trained: Trained) -> str:
    """What was trained on, the best epoch and the time, in one line."""
    model, split = trained
    meta = model.metadata
    size = f"{model.image_size[1]}x{model.image_size[0]}"
    run = f"best epoch {meta['best_epoch']} of {meta['epochs_run']}"
    if model.task == "segment":
        return (
            f"{meta['n_train']} train ({meta['n_train_defect']} defective, {meta['n_synthetic']} "
            f"synthetic) / {meta['n_val']} val / {len(split.test)} test images at {size} | {run} | "
            f"{meta['fit_seconds']:.0f} s"
        )
    if model.task == "detect":
        return (
            f"{len(model.classes)} classes, {meta['n_train']} train ({meta['n_train_boxes']} boxes) / "
            f"{meta['n_val']} val / {len(split.test)} test images at {size} | {run} | "
            f"{meta['fit_seconds']:.0f} s"
        )
    return (
        f"{len(model.classes)} classes, {meta['n_train']} train / {meta['n_val']} val / "
        f"{len(split.test)} test images | {run} | temperature {meta['temperature']:.3f}, val ECE "
        f"{meta['val_ece_before']:.4f} -> {meta['val_ece_after']:.4f} | {meta['fit_seconds']:.0f} s"
    )
