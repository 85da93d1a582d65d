"""Training workflow for supervised models: read labels, split, decode, fit, save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lineguard.data import read_image
from lineguard.data.labels import AnnotatedSample, AnnotatedSet, AnnotatedSplit, labelled_split
from lineguard.data.seen import content_digests


def classification_samples(samples: tuple[AnnotatedSample, ...], where: str) -> tuple[list, list[int]]:
    unlabelled = [s.path for s in samples if s.label < 0]
    if unlabelled:
        from lineguard.errors import DataError

        raise DataError(
            unlabelled[0], f"no image class (no objects labelled); {len(unlabelled)} such images in {where}"
        )
    return [s.path for s in samples], [s.label for s in samples]


def _save(
    model,
    out,
    annotated: AnnotatedSet,
    split: AnnotatedSplit,
    format: str,
    seed: int,
    val: float,
    test: float,
):
    """Record how the data was split (evaluate re-creates it) and which files were seen, then save."""
    model.metadata["split"] = {
        "format": format,
        "seed": seed,
        "val_fraction": val,
        "test_fraction": test,
        "source": annotated.source,
        "task": model.task,
    }
    model.metadata["seen_sha256"] = content_digests(s.path for s in split.train + split.val)
    model.save(out)
    return model, split


def train_classifier(
    data: str | Path,
    format: str,
    out: str | Path,
    *,
    backbone: str = "efficientnet_lite0",
    image_size: tuple[int, int] = (224, 224),
    epochs: int = 30,
    batch_size: int = 32,
    patience: int = 5,
    lr: float = 1e-3,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    augment: dict[str, Any] | None = None,
    good_classes: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch=None,
):
    from lineguard.supervised import ImageClassifier

    annotated, split = labelled_split(data, format, seed, val_fraction, test_fraction)
    train_paths, train_labels = classification_samples(split.train, "the training split")
    val_paths, val_labels = classification_samples(split.val, "the validation split")
    model = ImageClassifier(
        backbone,
        image_size,
        annotated.classes,
        good_classes=good_classes,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        augment=augment,
    )
    model.fit(
        [read_image(p) for p in train_paths],
        train_labels,
        [read_image(p) for p in val_paths],
        val_labels,
        checkpoint_dir=Path(out) / "checkpoint",
        resume=resume,
        progress=progress,
        on_epoch=on_epoch,
    )
    return _save(model, out, annotated, split, format, seed, val_fraction, test_fraction)


def train_segmenter(
    data: str | Path,
    format: str,
    out: str | Path,
    *,
    backbone: str = "efficientnet_lite0",
    image_size: tuple[int, int] | None = None,
    epochs: int = 40,
    batch_size: int = 8,
    patience: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.3,
    augment: dict[str, Any] | None = None,
    synthetic: int = 0,
    defect_fraction: float = 1.0,
    resume: bool = False,
    progress: bool = True,
    on_epoch=None,
):
    """Fit a defect segmenter on pixel masks; ``image_size`` None: short side 256, aspect kept.

    ``synthetic``: extra synthetic defective images for training; ``defect_fraction``: train on
    only this share of the real defective training images (learning curves)."""
    from lineguard.data import read_mask
    from lineguard.data.samples import SampleRef
    from lineguard.supervised.segmenter import DefectSegmenter
    from lineguard.train.fit import auto_image_size

    annotated, split = labelled_split(data, format, seed, val_fraction, test_fraction, task="segment")
    if image_size is None:
        image_size = auto_image_size([SampleRef(s.path, s.label) for s in split.train])

    def load(samples):
        images = [read_image(s.path) for s in samples]
        masks = [
            read_mask(s.mask_path, im.shape[:2]) if s.mask_path else None
            for s, im in zip(samples, images, strict=True)
        ]
        return images, masks

    model = DefectSegmenter(
        backbone,
        image_size,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        augment=augment,
        synthetic=synthetic,
    )
    train = list(split.train)
    if defect_fraction < 1.0:  # keep a seeded share of the real defective images, every good one
        import numpy as np

        defective = [s for s in train if s.label == 1]
        keep = max(1, round(defect_fraction * len(defective)))
        chosen = {str(s.path) for s in np.random.default_rng([seed, 11]).permutation(defective)[:keep]}
        train = [s for s in train if s.label == 0 or str(s.path) in chosen]
    model.fit(
        *load(train),
        *load(split.val),
        checkpoint_dir=Path(out) / "checkpoint",
        resume=resume,
        progress=progress,
        on_epoch=on_epoch,
    )
    return _save(model, out, annotated, split, format, seed, val_fraction, test_fraction)


def train_detector(
    data: str | Path,
    format: str,
    out: str | Path,
    *,
    backbone: str = "efficientnet_lite0",
    image_size: tuple[int, int] = (256, 256),
    epochs: int = 40,
    batch_size: int = 8,
    patience: int = 8,
    lr: float = 5e-4,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    augment: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch=None,
):
    """Fit an FCOS defect detector on boxes (VOC, COCO or YOLO labels); images without boxes train
    as good parts."""
    from lineguard.supervised.detector import DefectDetector

    annotated, split = labelled_split(data, format, seed, val_fraction, test_fraction, task="detect")
    model = DefectDetector(
        backbone,
        image_size,
        annotated.classes,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        augment=augment,
    )

    def load(samples):
        return (
            [read_image(s.path) for s in samples],
            [s.boxes for s in samples],
            [s.box_labels for s in samples],
        )

    model.fit(
        *load(split.train),
        *load(split.val),
        checkpoint_dir=Path(out) / "checkpoint",
        resume=resume,
        progress=progress,
        on_epoch=on_epoch,
    )
    return _save(model, out, annotated, split, format, seed, val_fraction, test_fraction)
