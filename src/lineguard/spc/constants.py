"""Control-chart constants computed from the normal distribution (scipy), not copied from tables:
d2, d3 (the mean and standard deviation of the range of n standard normal values) and c4 (the
bias of the sample standard deviation); A2, A3, B3, B4, D3, D4 follow from them. They match the
printed tables (e.g. n = 5: d2 2.326, d3 0.864, c4 0.9400) to their decimals."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import integrate, special, stats

_X = np.linspace(-10.0, 10.0, 4001)
_PHI, _PDF = stats.norm.cdf(_X), stats.norm.pdf(_X)


def _range_cdf(r: float, n: int) -> float:
    """P(range of n standard normal values <= r)."""
    return float(n * integrate.trapezoid(_PDF * (stats.norm.cdf(_X + r) - _PHI) ** (n - 1), _X))


def _size(n: int) -> int:
    if int(n) != n or n < 2:
        raise ValueError(f"subgroup size must be an integer >= 2, got {n}")
    return int(n)


@lru_cache(maxsize=256)
def d2(n: int) -> float:
    n = _size(n)
    return float(integrate.quad(lambda r: 1.0 - _range_cdf(r, n), 0.0, np.inf, limit=200)[0])


@lru_cache(maxsize=256)
def d3(n: int) -> float:
    n = _size(n)
    second = integrate.quad(lambda r: 2.0 * r * (1.0 - _range_cdf(r, n)), 0.0, np.inf, limit=200)[0]
    return float(np.sqrt(second - d2(n) ** 2))


@lru_cache(maxsize=1024)
def c4(n: int) -> float:
    n = _size(n)
    return float(np.sqrt(2.0 / (n - 1)) * np.exp(special.gammaln(n / 2.0) - special.gammaln((n - 1) / 2.0)))


def A2(n: int) -> float:
    return 3.0 / (d2(n) * np.sqrt(n))


def A3(n: int) -> float:
    return 3.0 / (c4(n) * np.sqrt(n))


def D3(n: int) -> float:
    return max(0.0, 1.0 - 3.0 * d3(n) / d2(n))


def D4(n: int) -> float:
    return 1.0 + 3.0 * d3(n) / d2(n)


def B3(n: int) -> float:
    return max(0.0, 1.0 - 3.0 * np.sqrt(1.0 - c4(n) ** 2) / c4(n))


def B4(n: int) -> float:
    return 1.0 + 3.0 * np.sqrt(1.0 - c4(n) ** 2) / c4(n)
