"""Line-scan assembly (pure logic): strips of lines in, one part image per frame out.

Two modes. By line count: every ``lines_per_frame`` lines make a frame. By encoder:
each line carries the encoder position at which it was taken; a frame spans
``ticks_per_frame`` ticks and is resampled to ``lines_per_frame`` rows at evenly
spaced positions, so a millimetre of the part is the same number of rows whatever
the conveyor speed (what a fixed line rate cannot give on a line that speeds up).
"""

from __future__ import annotations

import numpy as np


class LineScanAssembler:
    def __init__(self, lines_per_frame: int, ticks_per_frame: int | None = None) -> None:
        if lines_per_frame <= 0:
            raise ValueError(f"lines_per_frame must be positive, got {lines_per_frame}")
        if ticks_per_frame is not None and ticks_per_frame <= 0:
            raise ValueError(f"ticks_per_frame must be positive, got {ticks_per_frame}")
        self.lines_per_frame = lines_per_frame
        self.ticks_per_frame = ticks_per_frame
        self._lines: list[np.ndarray] = []
        self._positions: list[float] = []
        self._frame_start: float | None = None

    @property
    def buffered_lines(self) -> int:
        return len(self._lines)

    def push(self, strip: np.ndarray, positions: np.ndarray | None = None) -> list[np.ndarray]:
        """Add a strip (lines × width [× channels]); returns the frames it completed.

        ``positions``: the encoder count of each line (needed in encoder mode, ignored otherwise).
        """
        strip = np.asarray(strip)
        if strip.ndim < 2:
            raise ValueError(f"a strip is lines x width [x channels], got shape {strip.shape}")
        if self._lines and strip.shape[1:] != self._lines[0].shape:
            raise ValueError(f"strip lines are {strip.shape[1:]}, earlier lines were {self._lines[0].shape}")
        if self.ticks_per_frame is None:
            self._lines.extend(strip)
            return self._by_count()
        if positions is None or len(positions) != len(strip):
            raise ValueError("encoder mode needs one encoder position per line")
        positions = np.asarray(positions, np.float64)
        previous = self._positions[-1] if self._positions else -np.inf
        if np.any(np.diff(np.concatenate([[previous], positions])) < 0):
            raise ValueError("encoder positions must not go backwards (direction change or counter wrap)")
        self._lines.extend(strip)
        self._positions.extend(positions.tolist())
        return self._by_encoder()

    def _by_count(self) -> list[np.ndarray]:
        frames = []
        while len(self._lines) >= self.lines_per_frame:
            frames.append(np.stack(self._lines[: self.lines_per_frame]))
            del self._lines[: self.lines_per_frame]
        return frames

    def _by_encoder(self) -> list[np.ndarray]:
        assert self.ticks_per_frame is not None
        if self._frame_start is None:
            self._frame_start = self._positions[0]
        frames = []
        span = float(self.ticks_per_frame)
        while self._positions[-1] >= self._frame_start + span:
            pos = np.asarray(self._positions)
            stack = np.stack(self._lines).astype(np.float32)
            # Row j samples the middle of its slice of the frame's span.
            targets = (
                self._frame_start + (np.arange(self.lines_per_frame) + 0.5) * span / self.lines_per_frame
            )
            upper = np.clip(np.searchsorted(pos, targets, side="left"), 1, len(pos) - 1)
            lower = upper - 1
            gap = pos[upper] - pos[lower]
            weight = np.where(gap > 0, (targets - pos[lower]) / np.where(gap > 0, gap, 1), 0.0)
            weight = np.clip(weight, 0.0, 1.0).reshape((-1,) + (1,) * (stack.ndim - 1))
            frame = (1 - weight) * stack[lower] + weight * stack[upper]
            dtype = self._lines[0].dtype
            if np.issubdtype(dtype, np.integer):
                frame = np.clip(np.rint(frame), np.iinfo(dtype).min, np.iinfo(dtype).max)
            frames.append(frame.astype(dtype))
            self._frame_start += span
            # Keep one line before the next frame's start for interpolation.
            keep_from = max(0, int(np.searchsorted(pos, self._frame_start, side="left")) - 1)
            del self._lines[:keep_from]
            del self._positions[:keep_from]
        return frames


class EncoderStrips:
    """Per-line encoder positions for strips that carry one encoder value each (a GenICam line-scan
    camera's ``ChunkEncoderValue``: the count at the strip's first line), fed to an assembler.

    A strip's lines are spread evenly between its encoder value and the next strip's, so each
    strip is held until the next one arrives (one strip of latency). Without encoder mode the
    strips go straight to the assembler.
    """

    def __init__(self, assembler: LineScanAssembler) -> None:
        self.assembler = assembler
        self._held: tuple[np.ndarray, float] | None = None

    def push(self, strip: np.ndarray, encoder_value: float | None) -> list[np.ndarray]:
        if self.assembler.ticks_per_frame is None:
            return self.assembler.push(strip)
        if encoder_value is None:
            raise ValueError("encoder mode: the strip carries no encoder value")
        held, self._held = self._held, (np.asarray(strip), float(encoder_value))
        if held is None:
            return []
        lines, start = held
        if encoder_value < start:
            raise ValueError("encoder positions must not go backwards (direction change or counter wrap)")
        positions = start + (encoder_value - start) * np.arange(len(lines)) / len(lines)
        return self.assembler.push(lines, positions)
