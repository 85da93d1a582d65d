"""Test helpers: generated parts, datasets and lines, and the shared real data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def shared_dataset(name: str) -> Path:
    """Path to a dataset in ../shared, or skip the test cleanly when it is absent."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def textured_part(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """A grey part surface: a regular machining pattern plus sensor noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    pattern = 128 + 40 * np.sin(x / 3.0 + phase) * np.cos(y / 5.0)
    noise = rng.normal(0, 6, (size, size))
    return np.clip(pattern + noise, 0, 255).astype(np.uint8)


def add_scratch(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw a dark scratch; return the image and its boolean mask."""
    size = image.shape[0]
    mask = np.zeros_like(image)
    p0 = rng.integers(size // 5, size // 2, 2)
    p1 = p0 + rng.integers(size // 5, size // 3, 2)
    cv2.line(mask, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 255, 4)
    out = image.copy()
    out[mask > 0] = 20
    return out, mask > 0


def write_folder_dataset(root: Path, n_good: int = 30, n_defect: int = 8, seed: int = 0) -> Path:
    """good/ + scratch/ + masks/scratch/ in the 'folder' layout."""
    rng = np.random.default_rng(seed)
    (root / "good").mkdir(parents=True)
    (root / "scratch").mkdir()
    (root / "masks" / "scratch").mkdir(parents=True)
    for i in range(n_good):
        cv2.imwrite(str(root / "good" / f"g{i:03d}.png"), textured_part(rng))
    for i in range(n_defect):
        image, mask = add_scratch(rng, textured_part(rng))
        cv2.imwrite(str(root / "scratch" / f"d{i:03d}.png"), image)
        cv2.imwrite(str(root / "masks" / "scratch" / f"d{i:03d}.png"), mask.astype(np.uint8) * 255)
    return root


def write_line(folder: Path, n: int, defect_every: int = 5, seed: int = 3) -> dict[str, bool]:
    """Part images as a camera would drop them: {file stem: is defective}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(n):
        image = textured_part(rng)
        bad = defect_every > 0 and i % defect_every == defect_every - 1
        if bad:
            image, _ = add_scratch(rng, image)
        cv2.imwrite(str(folder / f"p{i:03d}.png"), image)
        truth[f"p{i:03d}"] = bad
    return truth
