"""Process capability of a measured value against its specification limits: Cp, Cpk (within-
subgroup sigma) and Pp, Ppk (overall sigma), with confidence intervals — chi-square for Cp / Pp,
Bissell's normal approximation for Cpk / Ppk (Bissell, "How reliable is your capability index?",
Applied Statistics 39, 1990)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from lineguard.spc import constants as k
from lineguard.spc.subgroups import Subgroups

Interval = tuple[float, float]


@dataclass(frozen=True)
class Capability:
    n: int
    mean: float
    sigma_within: float
    sigma_overall: float
    lsl: float | None
    usl: float | None
    cp: float | None  # None with a one-sided specification
    cpk: float
    pp: float | None
    ppk: float
    cp_interval: Interval | None
    cpk_interval: Interval
    pp_interval: Interval | None
    ppk_interval: Interval
    confidence: float


def _k_index(mean: float, sigma: float, lsl: float | None, usl: float | None) -> float:
    sides = []
    if usl is not None:
        sides.append((usl - mean) / (3 * sigma))
    if lsl is not None:
        sides.append((mean - lsl) / (3 * sigma))
    return float(min(sides))


def _from_subgroups(stats: Subgroups) -> tuple[int, float, float, float]:
    """(n, mean, overall sigma, pooled within sigma) from per-subgroup statistics: the total sum of
    squares is the within-subgroup part plus the between-subgroup part."""
    n = int(stats.n.sum())
    if n < 2:
        raise ValueError(f"capability needs at least 2 values, got {n}")
    mean = float(np.average(stats.mean, weights=stats.n))
    within_ss = float(np.nansum((stats.n - 1) * stats.std**2))
    between_ss = float((stats.n * (stats.mean - mean) ** 2).sum())
    overall = float(np.sqrt((within_ss + between_ss) / (n - 1)))
    dof = float((stats.n - 1).sum())
    pooled = float(np.sqrt(within_ss / dof) / k.c4(int(dof) + 1)) if dof >= 1 else float("nan")
    return n, mean, overall, pooled


def capability(
    values,
    lsl: float | None = None,
    usl: float | None = None,
    sigma_within: float | None = None,
    confidence: float = 0.95,
) -> Capability:
    """``values``: the values in production order, or their ``Subgroups`` (what the record
    aggregates). ``sigma_within``: from the subgroups' chart (its ``sigma``); else the pooled
    within-subgroup deviation (subgroups) or the moving range of the values (MR̄ / d2(2))."""
    if isinstance(values, Subgroups):
        n, mean, overall, pooled = _from_subgroups(values)
    else:
        x = np.asarray(values, float).ravel()
        if x.size < 2 or not np.isfinite(x).all():
            raise ValueError(f"capability needs at least 2 finite values, got {x.size}")
        n, mean, overall = x.size, float(x.mean()), float(x.std(ddof=1))
        pooled = float(np.abs(np.diff(x)).mean() / k.d2(2))
    if lsl is None and usl is None:
        raise ValueError("give a lower and/or an upper specification limit")
    if lsl is not None and usl is not None and lsl >= usl:
        raise ValueError(f"specification limits upside down: lower {lsl} is not below upper {usl}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} is not in (0, 1)")
    within = float(sigma_within) if sigma_within is not None else pooled
    if not within > 0 or not overall > 0:
        raise ValueError("the values do not vary: capability is undefined")
    two_sided = lsl is not None and usl is not None
    cp = (usl - lsl) / (6 * within) if two_sided else None  # type: ignore[operator]
    pp = (usl - lsl) / (6 * overall) if two_sided else None  # type: ignore[operator]
    cpk, ppk = _k_index(mean, within, lsl, usl), _k_index(mean, overall, lsl, usl)
    alpha = 1 - confidence
    dof = n - 1
    low, high = stats.chi2.ppf([alpha / 2, 1 - alpha / 2], dof)

    def ratio(index: float | None) -> Interval | None:
        if index is None:
            return None
        return float(index * np.sqrt(low / dof)), float(index * np.sqrt(high / dof))

    z = stats.norm.ppf(1 - alpha / 2)

    def bissell(index: float) -> Interval:
        half = z * np.sqrt(1 / (9 * n) + index**2 / (2 * dof))
        return float(index - half), float(index + half)

    return Capability(
        n,
        mean,
        within,
        overall,
        lsl,
        usl,
        cp,
        cpk,
        pp,
        ppk,
        ratio(cp),
        bissell(cpk),
        ratio(pp),
        bissell(ppk),
        confidence,
    )
