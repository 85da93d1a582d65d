"""Synthetic defects (numpy + OpenCV): CutPaste, Perlin-noise texture patches, and copy-paste of
real labelled defects with feathered masks.

Each function takes a good part image (HxW or HxWx3, uint8) and a numpy Generator
and returns ``(image, mask)``: the defective image and the boolean mask of what
was changed. Use them to enlarge scarce defect classes for supervised training,
or to make validation defects for the anomaly thresholds when no real ones exist
(:func:`synthetic_defect_set`). Synthetic defects are a stand-in: thresholds set on
them should be confirmed on real defects as soon as there are some.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

KINDS = ("cutpaste", "scar", "perlin")


def _box(rng: np.random.Generator, h: int, w: int, area: tuple[float, float], aspect: tuple[float, float]):
    target = rng.uniform(*area) * h * w
    ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
    bh = int(np.clip(round(np.sqrt(target / ratio)), 2, h - 1))
    bw = int(np.clip(round(np.sqrt(target * ratio)), 2, w - 1))
    return bh, bw


def cutpaste(
    image: np.ndarray,
    rng: np.random.Generator,
    area: tuple[float, float] = (0.02, 0.15),
    aspect: tuple[float, float] = (0.3, 3.3),
    jitter: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """A patch of the part, brightness-jittered, pasted somewhere else (Li et al., CutPaste, 2021)."""
    h, w = image.shape[:2]
    bh, bw = _box(rng, h, w, area, aspect)
    sy, sx = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
    ty, tx = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
    patch = image[sy : sy + bh, sx : sx + bw].astype(np.float32)
    patch = np.clip(patch * (1 + rng.uniform(-jitter, jitter)) + rng.uniform(-25, 25) * jitter * 4, 0, 255)
    out = image.copy()
    out[ty : ty + bh, tx : tx + bw] = patch.astype(image.dtype)
    mask = np.zeros((h, w), bool)
    mask[ty : ty + bh, tx : tx + bw] = True
    return out, mask


def scar(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CutPaste-scar: a thin, long, rotated patch — a stand-in for scratches."""
    h, w = image.shape[:2]
    length = int(rng.uniform(0.15, 0.4) * min(h, w))
    thick = int(rng.integers(2, max(3, min(h, w) // 40 + 3)))
    sy, sx = rng.integers(0, h - thick), rng.integers(0, w - length)
    patch = image[sy : sy + thick, sx : sx + length]
    shade = rng.uniform(-60, 60)
    patch = np.clip(patch.astype(np.float32) + shade, 0, 255).astype(image.dtype)
    canvas = np.zeros_like(image)
    stencil = np.zeros((h, w), np.uint8)
    cy, cx = rng.integers(length // 2, h - length // 2), rng.integers(length // 2, w - length // 2)
    y0, x0 = cy - thick // 2, cx - length // 2
    canvas[y0 : y0 + thick, x0 : x0 + length] = patch
    stencil[y0 : y0 + thick, x0 : x0 + length] = 255
    rotation = cv2.getRotationMatrix2D((float(cx), float(cy)), float(rng.uniform(0, 180)), 1.0)
    canvas = np.asarray(cv2.warpAffine(canvas, rotation, (w, h), flags=cv2.INTER_NEAREST))
    stencil = np.asarray(cv2.warpAffine(stencil, rotation, (w, h), flags=cv2.INTER_NEAREST))
    mask = stencil > 0
    out = image.copy()
    out[mask] = canvas[mask]
    return out, mask


def perlin_noise(shape: tuple[int, int], rng: np.random.Generator, cells: tuple[int, int]) -> np.ndarray:
    """2D Perlin gradient noise in about [-1, 1], ``cells`` lattice cells along (y, x)."""
    h, w = shape
    gy, gx = cells
    angles = rng.uniform(0, 2 * np.pi, (gy + 1, gx + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    y = np.linspace(0, gy, h, endpoint=False)
    x = np.linspace(0, gx, w, endpoint=False)
    yi, xi = np.floor(y).astype(int), np.floor(x).astype(int)
    yf, xf = (y - yi)[:, None], (x - xi)[None, :]

    def dot(oy: int, ox: int) -> np.ndarray:
        g = grads[yi[:, None] + oy, xi[None, :] + ox]
        return g[..., 0] * (yf - oy) + g[..., 1] * (xf - ox)

    def fade(t: np.ndarray) -> np.ndarray:
        return t * t * t * (t * (t * 6 - 15) + 10)

    u, v = fade(xf), fade(yf)
    top = dot(0, 0) * (1 - u) + dot(0, 1) * u
    bottom = dot(1, 0) * (1 - u) + dot(1, 1) * u
    return (top * (1 - v) + bottom * v) * np.sqrt(2)


def perlin(
    image: np.ndarray,
    rng: np.random.Generator,
    texture: np.ndarray | None = None,
    threshold: float = 0.5,
    opacity: tuple[float, float] = (0.3, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """A Perlin-shaped blotch of foreign texture blended in (as in DRAEM, Zavrtanik et al., 2021).

    ``texture``: any image (resized to the part); default: the part itself, shuffled in blocks,
    so the defect keeps the part's grey levels but not its structure.
    """
    h, w = image.shape[:2]
    for _ in range(20):
        cells = (int(2 ** rng.integers(1, 4)), int(2 ** rng.integers(1, 4)))
        mask = perlin_noise((h, w), rng, cells) > threshold
        if mask.sum() >= max(16, 0.002 * h * w):
            break
    if texture is None:
        texture = (
            cv2.resize(image[::-1, ::-1], (w, h))
            if rng.random() < 0.5
            else np.roll(image, (h // 3, w // 3), (0, 1))
        )
        texture = np.clip(texture.astype(np.float32) * rng.uniform(0.6, 1.4), 0, 255)
    else:
        texture = cv2.resize(texture, (w, h)).astype(np.float32)
        if texture.ndim != image.ndim:
            texture = (
                cv2.cvtColor(texture, cv2.COLOR_RGB2GRAY)
                if image.ndim == 2
                else np.repeat(texture[:, :, None], 3, 2)
            )
    alpha = rng.uniform(*opacity)
    weight = (mask * alpha).astype(np.float32)
    if image.ndim == 3:
        weight = weight[:, :, None]
    out = image.astype(np.float32) * (1 - weight) + texture * weight
    return np.clip(out, 0, 255).astype(image.dtype), mask


def copy_paste(
    image: np.ndarray,
    defect_image: np.ndarray,
    defect_mask: np.ndarray,
    rng: np.random.Generator,
    feather_px: int = 3,
    flip: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """A real labelled defect (its masked pixels) moved onto a good part at a random place,
    its edge feathered so no hard seam gives it away."""
    ys, xs = np.nonzero(defect_mask)
    if ys.size == 0:
        raise ValueError("the defect mask is empty")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    patch = defect_image[y0:y1, x0:x1]
    patch_mask = defect_mask[y0:y1, x0:x1].astype(np.float32)
    if flip and rng.random() < 0.5:
        patch, patch_mask = patch[:, ::-1], patch_mask[:, ::-1]
    if flip and rng.random() < 0.5:
        patch, patch_mask = patch[::-1], patch_mask[::-1]
    h, w = image.shape[:2]
    ph, pw = patch_mask.shape
    if ph > h or pw > w:
        raise ValueError(f"the defect ({pw}x{ph}) is larger than the part ({w}x{h})")
    if patch.ndim != image.ndim:
        patch = (
            cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY) if image.ndim == 2 else np.repeat(patch[:, :, None], 3, 2)
        )
    ty, tx = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
    alpha: np.ndarray = patch_mask
    if feather_px > 0:
        k = 2 * feather_px + 1
        alpha = cv2.GaussianBlur(patch_mask, (k, k), 0) * (cv2.dilate(patch_mask, np.ones((k, k))) > 0)
    if image.ndim == 3:
        alpha = alpha[:, :, None]
    out = image.astype(np.float32)
    region = out[ty : ty + ph, tx : tx + pw]
    out[ty : ty + ph, tx : tx + pw] = region * (1 - alpha) + patch.astype(np.float32) * alpha
    mask = np.zeros((h, w), bool)
    mask[ty : ty + ph, tx : tx + pw] = patch_mask > 0.5
    return np.clip(out, 0, 255).astype(image.dtype), mask


def synthesize(image: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "cutpaste":
        return cutpaste(image, rng)
    if kind == "scar":
        return scar(image, rng)
    if kind == "perlin":
        return perlin(image, rng)
    raise ValueError(f"unknown synthetic defect {kind!r}; use one of {KINDS}")


def synthetic_defect_set(
    good: Sequence[np.ndarray], n: int, kinds: Sequence[str] = KINDS, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` synthetic defects made from the given good parts (round robin over ``kinds``)."""
    if not good:
        raise ValueError("need good parts to make synthetic defects from")
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for i in range(n):
        image, mask = synthesize(good[int(rng.integers(len(good)))], kinds[i % len(kinds)], rng)
        images.append(image)
        masks.append(mask)
    return images, masks
