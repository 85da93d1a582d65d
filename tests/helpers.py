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


# -- labelled sets for the supervised tasks ---------------------------------------------------

SIZE = (64, 64)  # the classifier's network input


def write_classes(root: Path, n: int = 14, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for cls in ("good", "scratch", "spot"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(root / "good" / f"g{i}.png"), textured_part(rng, 96))
        cv2.imwrite(str(root / "scratch" / f"s{i}.png"), add_scratch(rng, textured_part(rng, 96))[0])
        spot = textured_part(rng, 96)
        cv2.circle(spot, tuple(int(v) for v in rng.integers(25, 70, 2)), int(rng.integers(8, 14)), 250, -1)
        cv2.imwrite(str(root / "spot" / f"p{i}.png"), spot)
    return root


DETECT_SIZE = 96
DETECT_CLASSES = ("spot", "scratch")


def draw_part(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """A textured part with 0-2 defects: bright round spots (class 0) and dark bars (class 1)."""
    image = textured_part(rng, DETECT_SIZE)
    objects: list[tuple[int, list[float]]] = []
    for _ in range(int(rng.integers(0, 3))):
        if rng.random() < 0.5:
            r = int(rng.integers(6, 11))
            cx, cy = (int(v) for v in rng.integers(r + 2, DETECT_SIZE - r - 2, 2))
            cv2.circle(image, (cx, cy), r, 250, -1)
            objects.append((0, [cx - r, cy - r, cx + r + 1, cy + r + 1]))
        else:
            w, h = int(rng.integers(30, 50)), int(rng.integers(4, 7))
            x, y = int(rng.integers(2, DETECT_SIZE - w - 2)), int(rng.integers(2, DETECT_SIZE - h - 2))
            image[y : y + h, x : x + w] = 15
            objects.append((1, [x, y, x + w, y + h]))
    return image, objects


def write_yolo_parts(root: Path, n: int = 60, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(DETECT_CLASSES) + "\n")
    for i in range(n):
        image, objects = draw_part(rng)
        cv2.imwrite(str(root / "images" / f"p{i:03d}.png"), image)
        lines = [
            f"{c} {(b[0] + b[2]) / 2 / DETECT_SIZE:.6f} {(b[1] + b[3]) / 2 / DETECT_SIZE:.6f} "
            f"{(b[2] - b[0]) / DETECT_SIZE:.6f} {(b[3] - b[1]) / DETECT_SIZE:.6f}"
            for c, b in objects
        ]
        (root / "labels" / f"p{i:03d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return root
