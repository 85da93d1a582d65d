"""Control charts on numpy arrays (pure: no I/O): X̄-R, X̄-S and I-MR for any numeric per-part value,
p and np for the share of rejected parts, EWMA and tabular CUSUM for small shifts.

Phase I: a chart computed from its data estimates the centre line and sigma. Phase II: pass that
chart (``frozen=``) to chart new data against the baseline's limits. Variable subgroup sizes give
limits per point. Formulas: Montgomery, *Introduction to Statistical Quality Control*, ch. 6, 7, 9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lineguard.spc import constants as k
from lineguard.spc.rules import NELSON, Violation, nelson
from lineguard.spc.subgroups import Subgroups


@dataclass(frozen=True)
class Chart:
    """One chart: the plotted statistic per point, its centre line, limits and own sigma per point
    (the rules' zones), and the Nelson rules that fired (rule 1 = beyond the limits)."""

    name: str
    values: np.ndarray
    center: np.ndarray
    lcl: np.ndarray
    ucl: np.ndarray
    sigma: np.ndarray
    violations: tuple[Violation, ...] = ()

    @property
    def out_of_control(self) -> np.ndarray:
        """Indices of the points beyond a control limit."""
        v = self.values
        return np.flatnonzero(np.isfinite(v) & ((v > self.ucl) | (v < self.lcl)))


@dataclass(frozen=True)
class VariablesChart:
    """A location chart and its spread chart (X̄ with R or S, I with MR); ``sigma``: the process
    standard deviation within subgroups, ``mean``: the centre — the phase I estimates a later
    call freezes."""

    location: Chart
    spread: Chart
    mean: float
    sigma: float


def _full(value, like: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, float), like.shape).copy()


def _chart(name: str, values, center, lcl, ucl, sigma, rules: Sequence[int]) -> Chart:
    values = np.asarray(values, float)
    center, sigma = _full(center, values), _full(sigma, values)
    return Chart(
        name,
        values,
        center,
        _full(lcl, values),
        _full(ucl, values),
        sigma,
        nelson(values, center, sigma, rules),
    )


def _spread(name: str, values, center: np.ndarray | float, sigma, rules: Sequence[int]) -> Chart:
    """A spread chart (R, S, MR): limits 3 of the statistic's own sigmas about its centre, none
    below 0."""
    return _chart(name, values, center, np.maximum(0, center - 3 * sigma), center + 3 * sigma, sigma, rules)


def _location(name: str, means, n, mean: float, sigma: float, rules: Sequence[int]) -> Chart:
    """A location chart (X̄, individuals): the mean ± 3 standard errors of a subgroup of ``n``."""
    se = sigma / np.sqrt(n)
    return _chart(name, means, mean, mean - 3 * se, mean + 3 * se, se, rules)


def _need(stats: Subgroups, least: int, what: str) -> None:
    if (stats.n < least).any():
        raise ValueError(
            f"{what} needs subgroups of at least {least} values; smallest is {stats.n.min():.0f}"
        )


def xbar_r(
    stats: Subgroups, frozen: VariablesChart | None = None, rules: Sequence[int] = tuple(NELSON)
) -> VariablesChart:
    """X̄ and R charts; sigma = mean of R / d2(n) over the subgroups (R̄ / d2 at one size)."""
    _need(stats, 2, "an X̄-R chart")
    sizes = stats.n.astype(int)
    d2 = np.array([k.d2(n) for n in sizes])
    d3 = np.array([k.d3(n) for n in sizes])
    mean = frozen.mean if frozen else float(np.average(stats.mean, weights=stats.n))
    sigma = frozen.sigma if frozen else float(np.mean(stats.range / d2))
    location = _location("xbar", stats.mean, stats.n, mean, sigma, rules)
    spread = _spread("range", stats.range, d2 * sigma, d3 * sigma, rules)
    return VariablesChart(location, spread, mean, sigma)


def xbar_s(
    stats: Subgroups, frozen: VariablesChart | None = None, rules: Sequence[int] = tuple(NELSON)
) -> VariablesChart:
    """X̄ and S charts; sigma = s̄ / c4(n) at one subgroup size, the pooled standard deviation over
    c4 of its degrees of freedom when sizes vary."""
    _need(stats, 2, "an X̄-S chart")
    sizes = stats.n.astype(int)
    c4 = np.array([k.c4(n) for n in sizes])
    mean = frozen.mean if frozen else float(np.average(stats.mean, weights=stats.n))
    if frozen:
        sigma = frozen.sigma
    elif (sizes == sizes[0]).all():
        sigma = float(stats.std.mean() / c4[0])
    else:
        dof = float((stats.n - 1).sum())
        sigma = float(np.sqrt(((stats.n - 1) * stats.std**2).sum() / dof) / k.c4(int(dof) + 1))
    location = _location("xbar", stats.mean, stats.n, mean, sigma, rules)
    spread = _spread("std", stats.std, c4 * sigma, sigma * np.sqrt(1 - c4**2), rules)
    return VariablesChart(location, spread, mean, sigma)


def i_mr(
    values, frozen: VariablesChart | None = None, rules: Sequence[int] = tuple(NELSON)
) -> VariablesChart:
    """Individuals and moving-range charts for one value per part; sigma = MR̄ / d2(2)."""
    x = _finite(values, 2, "an I-MR chart")
    mr = np.abs(np.diff(x, prepend=np.nan))
    mean = frozen.mean if frozen else float(x.mean())
    sigma = frozen.sigma if frozen else float(np.nanmean(mr) / k.d2(2))
    location = _location("individuals", x, 1, mean, sigma, rules)
    spread = _spread("moving_range", mr, k.d2(2) * sigma, k.d3(2) * sigma, rules)
    return VariablesChart(location, spread, mean, sigma)


def _finite(values, least: int, what: str) -> np.ndarray:
    x = np.asarray(values, float).ravel()
    if x.size < least:
        raise ValueError(f"{what} needs at least {least} values, got {x.size}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: values must be finite")
    return x


@dataclass(frozen=True)
class AttributeChart:
    chart: Chart
    p: float  # the share of rejected parts the limits are set from (phase I estimate, or frozen)


def p_chart(
    rejected, inspected, frozen: AttributeChart | None = None, rules: Sequence[int] = (1, 2, 3, 4)
) -> AttributeChart:
    """The share of rejected parts per subgroup, limits per subgroup size."""
    d, n = _counts(rejected, inspected)
    p = frozen.p if frozen else float(d.sum() / n.sum())
    sigma = np.sqrt(p * (1 - p) / n)
    chart = _chart("p", d / n, p, np.maximum(0, p - 3 * sigma), np.minimum(1, p + 3 * sigma), sigma, rules)
    return AttributeChart(chart, p)


def np_chart(
    rejected, inspected, frozen: AttributeChart | None = None, rules: Sequence[int] = (1, 2, 3, 4)
) -> AttributeChart:
    """The number of rejected parts per subgroup, for subgroups of one size."""
    d, n = _counts(rejected, inspected)
    if not (n == n[0]).all():
        raise ValueError("an np chart needs subgroups of one size; use a p chart for varying sizes")
    p = frozen.p if frozen else float(d.sum() / n.sum())
    center, sigma = n[0] * p, np.sqrt(n[0] * p * (1 - p))
    chart = _chart("np", d, center, max(0.0, center - 3 * sigma), min(n[0], center + 3 * sigma), sigma, rules)
    return AttributeChart(chart, p)


def _counts(rejected, inspected) -> tuple[np.ndarray, np.ndarray]:
    d, n = np.asarray(rejected, float).ravel(), np.asarray(inspected, float).ravel()
    if d.shape != n.shape or not d.size:
        raise ValueError("rejected and inspected: one count each per subgroup")
    if (n <= 0).any() or (d < 0).any() or (d > n).any():
        raise ValueError("every subgroup needs 0 <= rejected <= inspected and inspected > 0")
    return d, n


def ewma(values, target: float, sigma: float, lam: float = 0.2, L: float = 3.0) -> Chart:
    """EWMA z_i = λ x_i + (1 − λ) z_{i−1}, z_0 = target, with the exact (widening) limits
    target ± L σ √(λ / (2 − λ) · (1 − (1 − λ)^{2i})). Only rule 1 applies (z is autocorrelated)."""
    x = _finite(values, 1, "an EWMA chart")
    if not 0 < lam <= 1 or sigma <= 0 or L <= 0:
        raise ValueError("EWMA needs 0 < lambda <= 1, sigma > 0 and L > 0")
    z = np.empty_like(x)
    previous = target
    for i, value in enumerate(x):
        previous = z[i] = lam * value + (1 - lam) * previous
    steps = np.arange(1, x.size + 1)
    sz = sigma * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * steps)))
    return _chart("ewma", z, target, target - L * sz, target + L * sz, sz, (1,))


@dataclass(frozen=True)
class Cusum:
    """Tabular CUSUM: the upper and lower sums, the decision interval ``h·σ``, the points where a
    sum first goes beyond it, and for each signal where the shift likely began (the point after
    the sum last stood at 0)."""

    upper: np.ndarray
    lower: np.ndarray
    limit: float
    signals: tuple[int, ...]
    began: tuple[int, ...]


def cusum(values, target: float, sigma: float, k_sigma: float = 0.5, h_sigma: float = 5.0) -> Cusum:
    """C⁺_i = max(0, x_i − (μ0 + kσ) + C⁺_{i−1}), C⁻_i = max(0, (μ0 − kσ) − x_i + C⁻_{i−1})."""
    x = _finite(values, 1, "a CUSUM")
    if sigma <= 0 or k_sigma < 0 or h_sigma <= 0:
        raise ValueError("CUSUM needs sigma > 0, k >= 0 and h > 0")
    slack, limit = k_sigma * sigma, h_sigma * sigma
    upper, lower = np.zeros_like(x), np.zeros_like(x)
    hi = lo = 0.0
    for i, value in enumerate(x):
        hi = upper[i] = max(0.0, value - target - slack + hi)
        lo = lower[i] = max(0.0, target - slack - value + lo)
    signals, began = [], []
    for sums in (upper, lower):
        beyond = sums > limit
        for at in np.flatnonzero(beyond & ~np.concatenate([[False], beyond[:-1]])):
            zeros = np.flatnonzero(sums[:at] == 0)
            signals.append(int(at))
            began.append(int(zeros[-1]) + 1 if zeros.size else 0)
    order = np.argsort(signals, kind="stable")
    return Cusum(upper, lower, limit, tuple(signals[j] for j in order), tuple(began[j] for j in order))
