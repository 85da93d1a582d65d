"""Augmentation per recipe (torchvision v2): geometric, photometric, noise, blur — applied to the
image and, identically, to its boxes and mask, so labels stay on the defect they mark. The settings
are ``AugmentConfig`` (lineguard.augment.config).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lineguard.augment.config import AugmentConfig

__all__ = ["AugmentConfig", "augment_sample", "build_augmentation"]


class _Rot90:
    """A random multiple of 90 degrees, for images, boxes and masks alike."""

    def __init__(self) -> None:
        from torchvision.transforms import v2

        self.choices = [v2.RandomRotation((angle, angle), expand=True) for angle in (0, 90, 180, 270)]

    def __call__(self, *inputs):
        return self.choices[int(torch.randint(4, ()).item())](*inputs)


def build_augmentation(config: AugmentConfig):
    """A callable taking (image tensor CHW uint8 [, BoundingBoxes][, Mask]) and returning the same."""
    from torchvision.transforms import v2

    steps: list[Any] = []
    if config.hflip:
        steps.append(v2.RandomHorizontalFlip(config.hflip))
    if config.vflip:
        steps.append(v2.RandomVerticalFlip(config.vflip))
    if config.rot90:
        steps.append(_Rot90())
    if config.degrees or config.translate or config.scale != (1.0, 1.0):
        steps.append(
            v2.RandomAffine(
                degrees=config.degrees,
                translate=(config.translate, config.translate) if config.translate else None,
                scale=config.scale if config.scale != (1.0, 1.0) else None,
            )
        )
    if config.brightness or config.contrast:
        steps.append(v2.ColorJitter(brightness=config.brightness, contrast=config.contrast))
    if config.blur:
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel_size=(5, 5), sigma=(0.1, 1.5))], p=config.blur))
    if config.noise_std:
        steps += [
            v2.ToDtype(torch.float32, scale=True),
            v2.GaussianNoise(sigma=config.noise_std, clip=True),
            v2.ToDtype(torch.uint8, scale=True),
        ]
    # Boxes pushed out of the image by a rotation or shift are dropped with their labels.
    steps.append(v2.SanitizeBoundingBoxes(min_size=2))
    return v2.Compose(steps)


def augment_sample(
    transform,
    image: np.ndarray,
    boxes: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Apply one random draw of ``transform`` to an HxW[x3] uint8 image and its labels (numpy in and out)."""
    from torchvision import tv_tensors

    h, w = image.shape[:2]
    chw = torch.from_numpy(np.ascontiguousarray(image if image.ndim == 3 else image[:, :, None])).permute(
        2, 0, 1
    )
    sample: dict[str, Any] = {"image": tv_tensors.Image(chw)}
    if boxes is not None:
        sample["boxes"] = tv_tensors.BoundingBoxes(
            torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=(h, w)
        )
        sample["labels"] = torch.as_tensor(
            labels if labels is not None else np.zeros(len(boxes)), dtype=torch.int64
        )
    if mask is not None:
        sample["mask"] = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask.astype(np.uint8))))
    if boxes is None:
        sample["boxes"] = tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(h, w))
        sample["labels"] = torch.zeros(0, dtype=torch.int64)
    out = transform(sample)
    image_out = out["image"].permute(1, 2, 0).numpy()
    if image.ndim == 2:
        image_out = image_out[:, :, 0]
    boxes_out = out["boxes"].numpy().astype(np.float32) if boxes is not None else None
    labels_out = out["labels"].numpy() if boxes is not None else None
    mask_out = out["mask"].numpy() if mask is not None else None
    return np.ascontiguousarray(image_out), boxes_out, labels_out, mask_out
