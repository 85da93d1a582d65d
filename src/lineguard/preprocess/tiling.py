"""Overlapping tiles for parts larger than the network input (numpy only).

A part is brought to a fixed working size, cut into tiles of the network's
input size that overlap by ``overlap`` pixels (the last row and column of
tiles sit flush with the far edges), scored tile by tile, and the tile maps
are averaged back into one map of the whole part. The part score is then taken
over that whole map. Training, evaluation and the runtime all call these
functions, so a bundle tiles exactly as the model it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lineguard.preprocess.transforms import as_rgb, resize_to, to_uint8_scale


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if tile >= length:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class Tiling:
    """Working size (height, width) of the whole part, tile size, overlap in pixels."""

    height: int
    width: int
    tile_height: int
    tile_width: int
    overlap: int

    def __post_init__(self) -> None:
        if self.tile_height > self.height or self.tile_width > self.width:
            raise ValueError(
                f"tile {self.tile_width}x{self.tile_height} is larger than the part "
                f"{self.width}x{self.height}"
            )
        if not 0 <= self.overlap < min(self.tile_height, self.tile_width):
            raise ValueError(f"overlap {self.overlap} must be >= 0 and smaller than a tile side")

    @property
    def origins(self) -> list[tuple[int, int]]:
        """Top-left corner (y, x) of every tile, row by row."""
        ys = _starts(self.height, self.tile_height, self.overlap)
        xs = _starts(self.width, self.tile_width, self.overlap)
        return [(y, x) for y in ys for x in xs]

    def split(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) at the working size -> (T, tile_h, tile_w, C)."""
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"expected a {self.width}x{self.height} image, got {image.shape[1]}x{image.shape[0]}"
            )
        th, tw = self.tile_height, self.tile_width
        return np.stack([image[y : y + th, x : x + tw] for y, x in self.origins])

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Decoded image (any size, grey/RGB, 8/16 bit) -> (T, tile_h, tile_w, 3) float32 0..255."""
        x = as_rgb(resize_to(to_uint8_scale(image), self.height, self.width), image.shape)
        return self.split(np.ascontiguousarray(x, dtype=np.float32))

    def merge(self, tile_maps: np.ndarray) -> np.ndarray:
        """(T, tile_h, tile_w) -> (H, W): overlapping pixels take the mean of their tiles."""
        total = np.zeros((self.height, self.width), np.float64)
        count = np.zeros((self.height, self.width), np.float64)
        th, tw = self.tile_height, self.tile_width
        for (y, x), tile_map in zip(self.origins, tile_maps, strict=True):
            total[y : y + th, x : x + tw] += tile_map
            count[y : y + th, x : x + tw] += 1.0
        return (total / count).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "tile_height": self.tile_height,
            "tile_width": self.tile_width,
            "overlap": self.overlap,
            "n_tiles": len(self.origins),
            "merge": "mean of overlapping tile maps",
            "score": "over the merged map of the whole part",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tiling:
        return cls(
            int(data["height"]),
            int(data["width"]),
            int(data["tile_height"]),
            int(data["tile_width"]),
            int(data["overlap"]),
        )


def part_score(amap: np.ndarray, tile_scores: np.ndarray, top_k: int) -> float:
    """Score of a whole tiled part: the mean of its ``top_k`` highest map pixels, or, with
    ``top_k`` = 0, the highest tile score (each the tile's highest patch score)."""
    if top_k <= 0:
        return float(np.max(tile_scores))
    flat = amap.ravel()
    k = min(top_k, flat.size)
    return float(np.partition(flat, flat.size - k)[flat.size - k :].mean())


def merge_tiles(
    tiling: Tiling, tile_scores: np.ndarray, tile_maps: np.ndarray, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile outputs of several parts (tiles in order) -> (part scores, merged maps)."""
    n_tiles = len(tiling.origins)
    if len(tile_scores) % n_tiles:
        raise ValueError(f"{len(tile_scores)} tile results is not a multiple of {n_tiles} tiles per part")
    scores, maps = [], []
    for i in range(0, len(tile_scores), n_tiles):
        merged = tiling.merge(tile_maps[i : i + n_tiles])
        maps.append(merged)
        scores.append(part_score(merged, tile_scores[i : i + n_tiles], top_k))
    return np.asarray(scores, np.float32), np.stack(maps)
