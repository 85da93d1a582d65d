"""Typed samples: small frozen dataclasses that say where an image is and what it is."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lineguard.data.image_io import read_image, read_mask

GOOD = 0
DEFECT = 1
# Folder / class names that mean a good part, in every layout that names classes by folder.
GOOD_CLASS_NAMES = ("good", "ok", "pass", "normal")


@dataclass(frozen=True)
class LabeledImage:
    """A decoded sample: the image, its label, its mask (if any) and where it came from."""

    image: np.ndarray
    label: int
    mask: np.ndarray | None
    path: Path
    defect_type: str = "good"


@dataclass(frozen=True)
class SampleRef:
    """A sample not yet decoded: reading stays lazy so large sets fit in memory."""

    path: Path
    label: int
    defect_type: str = "good"
    mask_path: Path | None = None
    group: str | None = None  # physical item the image shows; splits keep groups together

    def load(self) -> LabeledImage:
        image = read_image(self.path)
        mask = None
        if self.mask_path is not None:
            mask = read_mask(self.mask_path, expected_shape=image.shape[:2])
        return LabeledImage(image, self.label, mask, self.path, self.defect_type)


@dataclass(frozen=True)
class DataSplit:
    """Good images to learn from, and a test set with both classes.

    ``train`` holds good parts only; the fit step holds some of them out to
    calibrate the threshold. ``test`` is never seen during fitting.
    """

    name: str
    train: tuple[SampleRef, ...]
    test: tuple[SampleRef, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Labelled defects that may tune thresholds but are never in the test set
    # (e.g. defective images of KolektorSDD items assigned to training).
    calibration_defects: tuple[SampleRef, ...] = field(default_factory=tuple)

    @property
    def has_masks(self) -> bool:
        return any(s.mask_path is not None for s in self.test if s.label == DEFECT)


def fingerprint(samples: Sequence[SampleRef], root: Path | None = None) -> str:
    """A stable sha256 over the sample list (paths relative to root, labels, sizes).

    File sizes and modification-free names make it cheap to compute on thousands
    of files while still changing when an image is swapped for another.
    """
    digest = hashlib.sha256()
    for s in sorted(samples, key=lambda s: str(s.path)):
        name = str(s.path.relative_to(root)) if root and s.path.is_relative_to(root) else s.path.name
        size = s.path.stat().st_size if s.path.exists() else -1
        digest.update(f"{name}|{s.label}|{size}\n".encode())
    return digest.hexdigest()
