"""What the reviewers' verdicts say about the deployed thresholds: the escape rate (defective parts
passed as OK) and the false-reject rate (good parts failed as NG), estimated from reviews of a
random sample of each verdict (every REVIEW part, 1 in N of the OK and of the NG parts).

Each verdict is a stratum: ``decided`` parts, of which ``reviewed`` were drawn at random and
reviewed, ``defect`` of them found defective. The rates weight each stratum's defect share by its
size (the stratified estimator); their 95 % intervals come from each share's Jeffreys posterior,
Beta(defect + ½, good + ½), drawn together (seeded Monte Carlo). Pure: numpy and scipy, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

VERDICTS = ("OK", "REVIEW", "NG")
DRAWS = 20_000  # Monte Carlo draws for the rates' intervals
LEVEL = 0.95


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n``, with its exact (Clopper-Pearson) 95 % interval; None when ``n`` is 0."""

    k: int
    n: int
    estimate: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Stratum:
    verdict: str
    decided: int  # parts the station decided so
    reviewed: int  # of them, drawn for review (the queue) and reviewed
    defect: int  # of those, found defective
    defect_share: Proportion


@dataclass(frozen=True)
class Rate:
    """A rate over all parts: its plug-in estimate and 95 % interval, or why there is none."""

    estimate: float | None
    low: float | None
    high: float | None
    why_not: str = ""


@dataclass(frozen=True)
class ReviewRates:
    strata: tuple[Stratum, ...]
    escape_rate: Rate  # P(OK | defective)
    false_reject_rate: Rate  # P(NG | good)
    good_sent_to_review: Rate  # P(REVIEW | good): the reviewers' load the thresholds cost


def proportion(k: int, n: int) -> Proportion:
    if n == 0:
        return Proportion(k, n, None, None, None)
    from scipy import stats

    interval = stats.binomtest(k, n).proportion_ci(LEVEL, method="exact")
    return Proportion(k, n, k / n, float(interval.low), float(interval.high))


def review_rates(
    decided: Mapping[str, int], reviewed: Mapping[str, tuple[int, int]], seed: int = 0
) -> ReviewRates:
    """``decided``: verdict -> parts decided; ``reviewed``: verdict -> (good, defect) among its
    sampled, reviewed parts."""
    for verdict in (*decided, *reviewed):
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}; verdicts are {VERDICTS}")
    strata = []
    for verdict in VERDICTS:
        good, defect = reviewed.get(verdict, (0, 0))
        n_decided = int(decided.get(verdict, 0))
        if good < 0 or defect < 0 or good + defect > max(n_decided, 0):
            raise ValueError(
                f"{verdict}: {good} good + {defect} defective reviews, but {n_decided} parts decided"
            )
        strata.append(Stratum(verdict, n_decided, good + defect, defect, proportion(defect, good + defect)))
    unreviewed = [s.verdict for s in strata if s.decided and not s.reviewed]
    if not any(s.decided for s in strata):
        why = "no parts decided in this period"
        return ReviewRates(tuple(strata), *(Rate(None, None, None, why) for _ in range(3)))
    if unreviewed:
        why = f"no sampled {'/'.join(unreviewed)} parts reviewed yet: their share is unknown"
        return ReviewRates(tuple(strata), *(Rate(None, None, None, why) for _ in range(3)))
    weights = np.asarray([s.decided for s in strata], float)
    point = np.asarray([s.defect / s.reviewed if s.reviewed else 0.0 for s in strata])
    rng = np.random.default_rng(seed)
    draws = np.stack(
        [
            rng.beta(s.defect + 0.5, s.reviewed - s.defect + 0.5, DRAWS) if s.reviewed else np.zeros(DRAWS)
            for s in strata
        ],
        axis=1,
    )
    ok, review, ng = VERDICTS.index("OK"), VERDICTS.index("REVIEW"), VERDICTS.index("NG")
    escape = _rate(weights, point, draws, ok, defective=True)
    false_reject = _rate(weights, point, draws, ng, defective=False)
    to_review = _rate(weights, point, draws, review, defective=False)
    return ReviewRates(tuple(strata), escape, false_reject, to_review)


def _rate(weights: np.ndarray, point: np.ndarray, draws: np.ndarray, verdict: int, defective: bool) -> Rate:
    """The share of the (defective or good) parts that got ``verdict``: its plug-in estimate from
    ``point`` and its interval from the posterior ``draws`` of each stratum's defect share."""

    def share(p: np.ndarray) -> np.ndarray:
        q = p if defective else 1.0 - p
        return (weights[verdict] * q[..., verdict]) / np.maximum((weights * q).sum(axis=-1), 1e-300)

    kind = "defective" if defective else "good"
    # None: no part of this kind among the reviews anywhere; the interval alone says something
    none_seen = (weights * (point if defective else 1.0 - point)).sum() == 0
    estimate = None if none_seen else float(share(point))
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(share(draws), [tail, 1 - tail])
    why = "" if estimate is not None else f"no {kind} part among the reviews; the interval is the prior's"
    return Rate(estimate, float(low), float(high), why)
