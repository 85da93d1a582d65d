"""Synthetic dot-matrix and inkjet print, with the truth, for testing OCR configurations anywhere.

A line of text is laid out in 5 x 7 dot cells (as continuous inkjet and dot-matrix coders print
lot codes and dates), then printed as round dots of a chosen diameter and pitch, with jitter in
dot place and size, skew, blur, an uneven background and sensor noise. numpy + OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The classic 5 x 7 dot-matrix character cell ("#" a dot), rows top to bottom.
_CELL_5X7 = {
    "0": ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",
    "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
    "2": ".###.|#...#|....#|...#.|..#..|.#...|#####",
    "3": "#####|...#.|..#..|...#.|....#|#...#|.###.",
    "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",
    "5": "#####|#....|####.|....#|....#|#...#|.###.",
    "6": "..##.|.#...|#....|####.|#...#|#...#|.###.",
    "7": "#####|....#|...#.|..#..|.#...|.#...|.#...",
    "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.",
    "9": ".###.|#...#|#...#|.####|....#|...#.|.##..",
    "A": ".###.|#...#|#...#|#####|#...#|#...#|#...#",
    "B": "####.|#...#|#...#|####.|#...#|#...#|####.",
    "C": ".###.|#...#|#....|#....|#....|#...#|.###.",
    "D": "###..|#..#.|#...#|#...#|#...#|#..#.|###..",
    "E": "#####|#....|#....|####.|#....|#....|#####",
    "F": "#####|#....|#....|####.|#....|#....|#....",
    "G": ".###.|#...#|#....|#.###|#...#|#...#|.####",
    "H": "#...#|#...#|#...#|#####|#...#|#...#|#...#",
    "I": ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
    "J": "..###|...#.|...#.|...#.|...#.|#..#.|.##..",
    "K": "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#",
    "L": "#....|#....|#....|#....|#....|#....|#####",
    "M": "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#",
    "N": "#...#|#...#|##..#|#.#.#|#..##|#...#|#...#",
    "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
    "P": "####.|#...#|#...#|####.|#....|#....|#....",
    "Q": ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#",
    "R": "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
    "S": ".####|#....|#....|.###.|....#|....#|####.",
    "T": "#####|..#..|..#..|..#..|..#..|..#..|..#..",
    "U": "#...#|#...#|#...#|#...#|#...#|#...#|.###.",
    "V": "#...#|#...#|#...#|#...#|#...#|.#.#.|..#..",
    "W": "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.",
    "X": "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#",
    "Y": "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..",
    "Z": "#####|....#|...#.|..#..|.#...|#....|#####",
    "-": ".....|.....|.....|#####|.....|.....|.....",
    ".": ".....|.....|.....|.....|.....|.##..|.##..",
    ":": ".....|.##..|.##..|.....|.##..|.##..|.....",
    "/": ".....|....#|...#.|..#..|.#...|#....|.....",
}
# Fonts a coder offers: the plain cell, and the bold one that strikes every dot twice, one
# column apart (as continuous inkjet printers do for thicker print).
FONTS = ("5x7", "5x7_bold")
CODE_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I/O: codes avoid them, as printers do


@dataclass(frozen=True)
class DotPrint:
    """How a line is printed. Lengths in pixels."""

    font: str = "5x7"
    dot_diameter: float = 6.0
    pitch: float = 8.0  # dot centre to dot centre
    jitter: float = 0.6  # dot placement, std in px
    skew_deg: float = 0.0
    blur_sigma: float = 0.8
    noise: float = 6.0  # grey levels, std
    contrast: float = 150.0  # background minus print, grey levels
    shading: float = 30.0  # background brightness change across the frame

    def __post_init__(self) -> None:
        if self.font not in FONTS:
            raise ValueError(f"font: {self.font!r} is not one of {FONTS}")
        if not 0 < self.dot_diameter <= 2 * self.pitch:
            raise ValueError("dot_diameter must be > 0 and at most twice the pitch")


def _glyph(char: str, font: str) -> np.ndarray:
    """``char`` as a boolean dot grid (7 rows)."""
    if char not in _CELL_5X7:
        raise ValueError(f"{char!r}: the synthetic dot-matrix font has only {''.join(sorted(_CELL_5X7))}")
    grid = np.array([[dot == "#" for dot in row] for row in _CELL_5X7[char].split("|")])
    if font == "5x7_bold":
        bold = np.zeros((grid.shape[0], grid.shape[1] + 1), bool)
        bold[:, :-1] |= grid
        bold[:, 1:] |= grid
        grid = bold
    return grid


def render_lines(
    lines: list[str],
    style: DotPrint,
    rng: np.random.Generator,
    margin: int = 40,
    frame: tuple[int, int] | None = None,
) -> np.ndarray:
    """Grey uint8 image of ``lines`` printed dark on a light surface; with ``frame`` (height,
    width), the print lies at a random place of a frame that size, as a camera sees a code."""
    cols = 6 if style.font == "5x7_bold" else 5
    advance = (cols + 1) * style.pitch
    line_step = 10 * style.pitch  # 7 rows and 3 between lines
    width = int(2 * margin + max(len(t) for t in lines) * advance)
    height = int(2 * margin + len(lines) * line_step)
    ink: np.ndarray = np.zeros((height, width), np.float32)
    at = (0, 0)
    if frame is not None:
        if frame[0] < height or frame[1] < width:
            raise ValueError(f"frame {frame} is smaller than the print ({height}, {width})")
        at = (int(rng.integers(0, frame[0] - height + 1)), int(rng.integers(0, frame[1] - width + 1)))
    for li, text in enumerate(lines):
        for ci, char in enumerate(text):
            if char == " ":
                continue
            grid = _glyph(char, style.font)
            for r, c in zip(*np.nonzero(grid), strict=True):
                x = margin + ci * advance + c * style.pitch + rng.normal(0, style.jitter)
                y = margin + li * line_step + r * style.pitch + rng.normal(0, style.jitter)
                radius = max(0.5, style.dot_diameter / 2 * rng.uniform(0.85, 1.15))
                cv2.circle(ink, (round(x * 4), round(y * 4)), round(radius * 4), 1.0, -1, cv2.LINE_AA, 2)
    if frame is not None:
        placed = np.zeros(frame, np.float32)
        placed[at[0] : at[0] + height, at[1] : at[1] + width] = ink
        ink, (height, width) = placed, frame
    if style.skew_deg:
        rotation = cv2.getRotationMatrix2D((width / 2, height / 2), style.skew_deg, 1.0)
        ink = cv2.warpAffine(ink, rotation, (width, height))
    if style.blur_sigma > 0:
        ink = cv2.GaussianBlur(ink, (0, 0), style.blur_sigma)
    ramp = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :] * style.shading
    background = 215.0 + ramp + np.zeros((height, 1), np.float32)
    image = background - style.contrast * np.clip(ink, 0, 1) + rng.normal(0, style.noise, ink.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def random_code(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list(CODE_CHARS), size=length))


def random_style(rng: np.random.Generator) -> DotPrint:
    """A print style drawn over the range real coders cover."""
    pitch = float(rng.uniform(6.0, 12.0))
    return DotPrint(
        font=str(rng.choice(FONTS)),
        dot_diameter=pitch * float(rng.uniform(0.55, 0.85)),
        pitch=pitch,
        jitter=float(rng.uniform(0.0, 0.08 * pitch)),
        skew_deg=float(rng.uniform(-8.0, 8.0)),
        blur_sigma=float(rng.uniform(0.3, 1.2)),
        noise=float(rng.uniform(2.0, 10.0)),
        contrast=float(rng.uniform(90.0, 170.0)),
        shading=float(rng.uniform(0.0, 50.0)),
    )
