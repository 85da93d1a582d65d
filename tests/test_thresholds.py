import math

import numpy as np
import pytest

from lineguard.decision import (
    Calibration,
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


def test_small_calibration_set_keeps_a_review_band_and_states_its_uncertainty():
    good = np.linspace(1.0, 2.0, 19)  # 19 held-out good images, as a new user had
    cal = calibrate(good)
    th = cal.thresholds
    assert th.review < th.ng
    # the highest good score below NG goes to a person, the rest are OK
    assert th.decide(float(good[-1])) == "REVIEW" and th.decide(float(good[-2])) == "OK"
    assert 0.14 < cal.frr_upper_95 < 0.15  # 1 - 0.05 ** (1 / 19)
    assert any("below 14.6% (95 %)" in w for w in cal.warnings)
    assert any("cannot resolve" in w for w in cal.warnings)


def test_large_calibration_set_keeps_the_review_share():
    good = np.random.default_rng(0).normal(size=1000)
    cal = calibrate(good, target_frr=0.005, review_rate=0.02)
    assert np.mean(good >= cal.thresholds.review) == pytest.approx(0.025, abs=0.002)
    assert not any("cannot resolve" in w for w in cal.warnings)


def test_escape_warning_fires_when_defects_overlap_good_parts():
    rng = np.random.default_rng(0)
    good = rng.normal(0, 1, 400)
    separated = calibrate(good, defect_scores=rng.normal(8, 0.5, 40))
    assert separated.expected_escape_rate == 0 and separated.expected_ng_rate == 1
    assert not any("ESCAPES" in w for w in separated.warnings)
    # a constructed case: a third of the defects look like good parts, and the review band may only
    # be widened to catch 70 % of them
    defects = np.r_[rng.normal(0, 1, 15), rng.normal(8, 0.5, 30)]
    cal = calibrate(good, defect_scores=defects, target_sensitivity=0.7)
    assert cal.expected_escape_rate > 0.10 and cal.defect_source == "labelled"
    assert any(w.startswith("ESCAPES: ") and "labelled defects would pass as OK" in w for w in cal.warnings)
    synthetic = calibrate(good, defect_scores=defects, target_sensitivity=0.7, defect_source="synthetic")
    assert any("synthetic defects would pass as OK" in w for w in synthetic.warnings)


def test_expected_escapes_are_leave_one_out():
    good = np.linspace(0, 1, 400)
    # with the default 99 % target and 20 defects, the lowest defect sets the REVIEW threshold in
    # sample (0 escapes); judged by a threshold the others set, it escapes: 1 of 20
    defects = np.r_[0.2, np.linspace(5, 6, 19)]
    cal = calibrate(good, defect_scores=defects)
    assert cal.thresholds.decide(0.2) == "REVIEW"
    assert cal.expected_escape_rate == pytest.approx(1 / 20)


def test_old_calibration_documents_still_load():
    doc = calibrate(np.linspace(0, 1, 300)).to_dict()
    for key in ("frr_upper_95", "defect_source", "expected_escape_rate", "expected_ng_rate"):
        doc.pop(key)
    assert Calibration.from_dict(doc).expected_escape_rate is None
