"""Augmentation (torchvision v2, boxes and masks kept in step) and synthetic defects (numpy + OpenCV)."""

from lineguard.augment.synthetic import (
    KINDS,
    copy_paste,
    cutpaste,
    perlin,
    perlin_noise,
    scar,
    synthesize,
    synthetic_defect_set,
)

__all__ = [
    "KINDS",
    "copy_paste",
    "cutpaste",
    "perlin",
    "perlin_noise",
    "scar",
    "synthesize",
    "synthetic_defect_set",
]
