"""Run rules on a control chart: the Western Electric rules and Nelson's eight (Nelson, "The
Shewhart control chart — tests for special causes", J. Quality Technology 16(4), 1984). Each fired
rule is reported at the point that completes its pattern, in zones of the plotted statistic's own
sigma (which may differ per point: variable subgroup sizes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NELSON = {
    1: "one point beyond 3 sigma",
    2: "nine points in a row on one side of the centre line",
    3: "six points in a row steadily increasing or decreasing",
    4: "fourteen points in a row alternating up and down",
    5: "two of three points in a row beyond 2 sigma on one side",
    6: "four of five points in a row beyond 1 sigma on one side",
    7: "fifteen points in a row within 1 sigma",
    8: "eight points in a row beyond 1 sigma, on both sides",
}
WESTERN_ELECTRIC = {
    1: "one point beyond 3 sigma",
    2: "two of three points in a row beyond 2 sigma on one side",
    3: "four of five points in a row beyond 1 sigma on one side",
    4: "eight points in a row on one side of the centre line",
}


@dataclass(frozen=True)
class Violation:
    """``rule`` (e.g. ``nelson-2``) fired at point ``index`` (the last point of its pattern)."""

    rule: str
    index: int
    description: str


def _windows(mask: np.ndarray, length: int) -> np.ndarray:
    """(N,) bool: the ``length`` points ending here all hold ``mask`` (False before a full window)."""
    out = np.zeros(mask.shape[0], bool)
    if mask.shape[0] >= length:
        out[length - 1 :] = sliding_window_view(mask, length).all(axis=1)
    return out


def _k_of(mask: np.ndarray, k: int, length: int) -> np.ndarray:
    """At least ``k`` of the ``length`` points ending here hold ``mask``, the last one among them."""
    out = np.zeros(mask.shape[0], bool)
    if mask.shape[0] >= length:
        out[length - 1 :] = sliding_window_view(mask, length).sum(axis=1) >= k
    return out & mask


def zones(values: np.ndarray, center: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """Each point's distance from the centre line in its own sigmas (NaN where not plotted)."""
    values = np.asarray(values, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (values - center) / sigma


def _tests(z: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    finite = np.isfinite(z)
    above, below = finite & (z > 0), finite & (z < 0)
    diff = np.diff(values, prepend=np.nan)
    rising, falling = np.isfinite(diff) & (diff > 0), np.isfinite(diff) & (diff < 0)
    turn = np.zeros_like(finite)
    turn[1:] = (rising[1:] & falling[:-1]) | (falling[1:] & rising[:-1])
    beyond1 = finite & (np.abs(z) > 1)
    return {
        "beyond3": finite & (np.abs(z) > 3),
        "run9": _windows(above, 9) | _windows(below, 9),
        "run8": _windows(above, 8) | _windows(below, 8),
        "trend6": _windows(rising, 5) | _windows(falling, 5),  # 5 steps: 6 points
        "alternate14": _windows(turn, 12),  # 12 turns: 13 steps, 14 points
        "two_of_three": _k_of(finite & (z > 2), 2, 3) | _k_of(finite & (z < -2), 2, 3),
        "four_of_five": _k_of(finite & (z > 1), 4, 5) | _k_of(finite & (z < -1), 4, 5),
        "hug15": _windows(finite & (np.abs(z) < 1), 15),
        "mixture8": _windows(beyond1, 8) & _both_sides(z, 8),
    }


def _both_sides(z: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros(z.shape[0], bool)
    if z.shape[0] >= length:
        view = sliding_window_view(np.nan_to_num(z), length)
        out[length - 1 :] = (view > 0).any(axis=1) & (view < 0).any(axis=1)
    return out


_NELSON_TESTS = {
    1: "beyond3",
    2: "run9",
    3: "trend6",
    4: "alternate14",
    5: "two_of_three",
    6: "four_of_five",
    7: "hug15",
    8: "mixture8",
}
_WE_TESTS = {1: "beyond3", 2: "two_of_three", 3: "four_of_five", 4: "run8"}


def _fired(
    values: np.ndarray, center, sigma, tests: dict[int, str], names: dict[int, str], prefix: str, rules
) -> tuple[Violation, ...]:
    values = np.asarray(values, float)
    found = _tests(zones(values, center, sigma), values)
    out = []
    for rule in rules:
        if rule not in tests:
            raise ValueError(f"{prefix} rules are {sorted(tests)}, not {rule}")
        for index in np.flatnonzero(found[tests[rule]]):
            out.append(Violation(f"{prefix}-{rule}", int(index), names[rule]))
    return tuple(sorted(out, key=lambda v: (v.index, v.rule)))


def nelson(values, center, sigma, rules=tuple(NELSON)) -> tuple[Violation, ...]:
    """Nelson's rules (all eight by default) on a chart's points."""
    return _fired(values, center, sigma, _NELSON_TESTS, NELSON, "nelson", rules)


def western_electric(values, center, sigma, rules=tuple(WESTERN_ELECTRIC)) -> tuple[Violation, ...]:
    """The Western Electric rules (1956 handbook) on a chart's points."""
    return _fired(values, center, sigma, _WE_TESTS, WESTERN_ELECTRIC, "we", rules)
