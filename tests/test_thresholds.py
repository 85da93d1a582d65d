import math

import numpy as np
import pytest

from lineguard.decision import (
    Decision,
    DecisionThresholds,
    calibrate,
    f1_optimal_threshold,
    frr_threshold,
    sensitivity_threshold,
)


def test_frr_threshold_meets_target_and_is_tight():
    good = np.random.default_rng(0).normal(size=1000)
    for target in (0.005, 0.01, 0.05, 0.2):
        t = frr_threshold(good, target)
        assert np.mean(good >= t) <= target
        # one observed step lower would exceed the target
        below = np.sort(good)[np.sort(good) < t][-1]
        assert np.mean(good >= below) > target


def test_frr_threshold_with_too_few_images_sits_above_the_maximum():
    good = np.array([1.0, 2.0, 3.0])
    t = frr_threshold(good, 0.005)
    assert t > 3.0 and math.isclose(t, 3.0)


def test_sensitivity_threshold():
    defects = np.arange(1, 101, dtype=float)
    t = sensitivity_threshold(defects, 0.99)
    assert np.mean(defects >= t) >= 0.99 and t == 2.0
    assert sensitivity_threshold(defects, 1.0) == 1.0


def test_f1_optimal_matches_brute_force():
    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(0, 1, 200), rng.normal(2, 1, 40)].round(1)
    labels = np.r_[np.zeros(200), np.ones(40)].astype(bool)
    t, f1 = f1_optimal_threshold(scores, labels)

    def f1_at(th):
        p = scores >= th
        tp = (p & labels).sum()
        return 2 * tp / (p.sum() + labels.sum())

    best = max(f1_at(th) for th in np.unique(scores))
    assert f1 == pytest.approx(best) and f1_at(t) == pytest.approx(best)


def test_f1_refuses_a_set_without_defects():
    with pytest.raises(ValueError, match="needs both good and defect"):
        f1_optimal_threshold(np.arange(5.0), np.zeros(5))


def test_calibrate_good_only_gives_band_and_no_f1():
    good = np.random.default_rng(2).gamma(4.0, 1.0, 2000)
    cal = calibrate(good, target_frr=0.005, review_rate=0.02)
    assert cal.f1_threshold is None and cal.sensitivity_threshold is None and cal.n_defect == 0
    th = cal.thresholds
    assert th.review < th.ng
    assert np.mean(good >= th.ng) <= 0.005
    assert np.mean(good >= th.review) <= 0.025
    assert not cal.warnings


def test_calibrate_warns_when_target_cannot_be_resolved():
    cal = calibrate(np.arange(50.0), target_frr=0.005)
    assert cal.warnings and "1/50" in cal.warnings[0]


def test_calibrate_with_defects_lowers_review_to_catch_them():
    rng = np.random.default_rng(3)
    good = rng.normal(0, 1, 1000)
    defects = rng.normal(3, 1, 100)
    cal = calibrate(good, defect_scores=defects, target_sensitivity=0.99)
    assert cal.n_defect == 100 and cal.f1_threshold is not None
    assert cal.thresholds.review <= cal.sensitivity_threshold
    assert np.mean(defects >= cal.thresholds.review) >= 0.99


def test_decisions_and_fail_safe():
    th = DecisionThresholds(review=1.0, ng=2.0)
    assert th.decide(0.5) is Decision.OK
    assert th.decide(1.0) is Decision.REVIEW
    assert th.decide(2.0) is Decision.NG
    assert th.decide(float("nan")) is Decision.NG
    assert th.decide(None) is Decision.NG
    with pytest.raises(ValueError):
        DecisionThresholds(review=3.0, ng=2.0)


def test_calibrate_rejects_bad_scores():
    with pytest.raises(ValueError, match="NaN"):
        calibrate(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="no good scores"):
        calibrate(np.array([]))
