"""Threshold calibration.

The NG threshold comes from good parts held out from training: the score that
only ``target_frr`` of good parts exceed. Below it sits a REVIEW band, so parts
that are close call for a person instead of a coin flip. When labelled defects
are known, the band is widened down to the score that catches
``target_sensitivity`` of them, and the F1-optimal threshold is reported.

An F1-optimal threshold is never computed on a set without defects: with no
positives every threshold has F1 = 0 and "the best" is an arbitrary number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class Decision(StrEnum):
    OK = "OK"
    REVIEW = "REVIEW"
    NG = "NG"


@dataclass(frozen=True)
class DecisionThresholds:
    """score < review -> OK; review <= score < ng -> REVIEW; score >= ng -> NG."""

    review: float
    ng: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.review) and math.isfinite(self.ng)):
            raise ValueError(f"thresholds must be finite, got review={self.review}, ng={self.ng}")
        if self.review > self.ng:
            raise ValueError(f"review threshold {self.review} is above the NG threshold {self.ng}")

    def decide(self, score: float | None) -> Decision:
        # A part without a valid score is never passed.
        if score is None or not math.isfinite(score):
            return Decision.NG
        if score >= self.ng:
            return Decision.NG
        if score >= self.review:
            return Decision.REVIEW
        return Decision.OK

    def decide_many(self, scores: np.ndarray) -> list[Decision]:
        return [self.decide(float(s)) for s in np.asarray(scores, dtype=np.float64)]

    def to_dict(self) -> dict[str, float]:
        return {"review": float(self.review), "ng": float(self.ng)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionThresholds:
        return cls(review=float(data["review"]), ng=float(data["ng"]))


def _as_scores(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"no {what} scores to calibrate from")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} scores contain NaN or infinity")
    return arr


def frr_threshold(good_scores: np.ndarray, target_frr: float) -> float:
    """Smallest observed-score threshold whose empirical FRR (score >= t) is <= target.

    With n good scores the achievable resolution is 1/n: when target_frr < 1/n
    the threshold sits just above the highest good score (an FRR of 0 observed,
    which does not prove target_frr; ``Calibration.warnings`` says so).
    """
    if not 0.0 < target_frr < 1.0:
        raise ValueError(f"target_frr must be in (0, 1), got {target_frr}")
    good = np.sort(_as_scores(good_scores, "good"))
    n = good.size
    allowed = math.floor(target_frr * n)  # number of good parts allowed at or above t
    if allowed == 0:
        return float(np.nextafter(good[-1], np.inf))
    # t just above the (allowed+1)-th highest score leaves exactly `allowed` at or above it.
    return float(np.nextafter(good[n - allowed - 1], np.inf))


def sensitivity_threshold(defect_scores: np.ndarray, target_sensitivity: float) -> float:
    """Largest threshold that still flags at least ``target_sensitivity`` of defects."""
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    defects = np.sort(_as_scores(defect_scores, "defect"))
    n_missable = math.floor((1.0 - target_sensitivity) * defects.size + 1e-9)
    return float(defects[n_missable])


def f1_optimal_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 for 'score >= threshold means defect'.

    Refuses sets without both classes: there, F1 cannot pick a meaningful value.
    """
    scores = _as_scores(scores, "labelled")
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.shape != scores.shape:
        raise ValueError("scores and labels differ in length")
    if labels.all() or not labels.any():
        raise ValueError(
            "F1-optimal threshold needs both good and defect parts; this set has "
            f"{int((~labels).sum())} good and {int(labels.sum())} defect"
        )
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    # Only the last index of each run of equal scores is a real threshold.
    last = np.r_[s[1:] != s[:-1], True]
    tp, fp, s = tp[last], fp[last], s[last]
    fn = y.sum() - tp
    f1 = 2 * tp / (2 * tp + fp + fn)
    best = int(np.argmax(f1))
    return float(s[best]), float(f1[best])


@dataclass(frozen=True)
class Calibration:
    thresholds: DecisionThresholds
    target_frr: float
    review_rate: float
    n_good: int
    n_defect: int
    frr_resolution: float
    f1_threshold: float | None = None
    f1: float | None = None
    sensitivity_threshold: float | None = None
    target_sensitivity: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # 95 % upper confidence bound on the true false-reject rate at the NG threshold (Clopper-Pearson
    # on the n good calibration images): what so few images can promise.
    frr_upper_95: float | None = None
    # Where defect scores came from ("labelled" or "synthetic"), the share of them that would pass
    # as OK (each defect judged by a REVIEW threshold set without it: leave-one-out, so the estimate
    # is not flattered by the defect that set the threshold) and the share caught at NG.
    defect_source: str | None = None
    expected_escape_rate: float | None = None
    expected_ng_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["thresholds"] = self.thresholds.to_dict()
        data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        data = dict(data)
        data["thresholds"] = DecisionThresholds.from_dict(data["thresholds"])
        data["warnings"] = tuple(data.get("warnings", ()))
        return cls(**data)


# Above this expected share of defects passing as OK, calibration warns loudly.
MAX_EXPECTED_ESCAPE = 0.10


def upper_bound_95(k: int, n: int) -> float:
    """Clopper-Pearson one-sided 95 % upper bound on a rate seen k times in n trials."""
    if k >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(0.95, k + 1, n - k))


def leave_one_out_escapes(defects: np.ndarray, review: float, target_sensitivity: float) -> float:
    """Share of defects below the REVIEW threshold that the other defects would have set."""
    if defects.size < 2:
        return float(np.mean(defects < review))
    escaped = 0
    for i in range(defects.size):
        others = np.delete(defects, i)
        escaped += defects[i] < min(review, sensitivity_threshold(others, target_sensitivity))
    return escaped / defects.size


def calibrate(
    good_scores: np.ndarray,
    *,
    target_frr: float = 0.005,
    review_rate: float = 0.02,
    defect_scores: np.ndarray | None = None,
    target_sensitivity: float = 0.99,
    defect_source: str = "labelled",
    widen: bool = True,
) -> Calibration:
    """NG threshold at ``target_frr`` on held-out good parts, REVIEW band below it.

    The review threshold is where ``target_frr + review_rate`` of good parts would
    score at or above it; with labelled defects it moves down (never up) to the
    score that catches ``target_sensitivity`` of them, so escapes go to review.
    With too few good parts to resolve that share, the band still holds the highest
    good score below NG, so a borderline part goes to a person rather than straight to OK.
    ``widen=False`` only measures the defects: the share expected to pass as OK and to reach NG.
    """
    good = _as_scores(good_scores, "good")
    warnings: list[str] = []
    n = good.size
    ng = frr_threshold(good, target_frr)
    frr_upper = upper_bound_95(int(np.sum(good >= ng)), n)
    if target_frr * n < 1:
        warnings.append(
            f"{n} good calibration images resolve a false-reject rate of 1/{n} = {1 / n:.4f} "
            f"at best, coarser than the {target_frr} target; the NG threshold sits just "
            f"above the highest good score, and the true false-reject rate is only known to be "
            f"below {frr_upper:.1%} (95 %). Hold out at least {math.ceil(1 / target_frr)} "
            "good images to measure the target."
        )
    review = frr_threshold(good, min(target_frr + review_rate, 0.5)) if review_rate > 0 else ng
    review = min(review, ng)
    below_ng = good[good < ng]
    if review_rate > 0 and below_ng.size and not np.any((good >= review) & (good < ng)):
        # The set is too small to resolve target_frr + review_rate: a zero-width band would
        # send the next-highest good part straight to OK. Keep one good score in the band.
        review = float(below_ng.max())
        warnings.append(
            f"{n} good calibration images cannot resolve a {review_rate:.1%} REVIEW band; it holds "
            f"the highest good score below NG (1/{n} of good parts)"
        )
    frr_review = review
    f1_t = f1 = sens_t = None
    escape = ng_rate = None
    n_defect = 0
    if defect_scores is not None and np.asarray(defect_scores).size:
        defects = _as_scores(defect_scores, "defect")
        n_defect = defects.size
        ng_rate = float(np.mean(defects >= ng))
        if widen:
            labels = np.r_[np.zeros(n, bool), np.ones(n_defect, bool)]
            f1_t, f1 = f1_optimal_threshold(np.r_[good, defects], labels)
            sens_t = sensitivity_threshold(defects, target_sensitivity)
            if sens_t < review:
                review = sens_t
            if sens_t < ng and np.mean(good >= sens_t) > target_frr + review_rate:
                warnings.append(
                    f"catching {target_sensitivity:.0%} of the {defect_source} defects sends "
                    f"{np.mean(good >= sens_t):.1%} of good parts to review"
                )
            escape = leave_one_out_escapes(defects, frr_review, target_sensitivity)
        else:  # the defects set nothing, so their own share below REVIEW is a fair estimate
            escape = float(np.mean(defects < review))
        if escape > MAX_EXPECTED_ESCAPE:
            warnings.append(
                f"ESCAPES: {escape:.0%} of the {n_defect} {defect_source} defects would pass as OK at these "
                f"thresholds{' (leave-one-out)' if widen else ''}; more than {MAX_EXPECTED_ESCAPE:.0%} — the "
                "model does not separate these defects from good parts"
            )
    return Calibration(
        thresholds=DecisionThresholds(review=review, ng=ng),
        target_frr=target_frr,
        review_rate=review_rate,
        n_good=n,
        n_defect=n_defect,
        frr_resolution=1.0 / n,
        f1_threshold=f1_t,
        f1=f1,
        sensitivity_threshold=sens_t,
        target_sensitivity=target_sensitivity if sens_t is not None else None,
        warnings=tuple(warnings),
        frr_upper_95=frr_upper,
        defect_source=defect_source if n_defect else None,
        expected_escape_rate=escape,
        expected_ng_rate=ng_rate,
    )
