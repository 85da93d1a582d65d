"""Drift of the parts' image statistics and scores against a reference: PSI, the KS test, and alarms
that rise on a real shift, clear when it is gone, and stay quiet on a process in control."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from helpers import textured_part

from lineguard.spc.drift import DriftMonitor, image_statistics, ks_p_value, onset, psi, psi_floor

T0 = datetime(2026, 12, 4, tzinfo=UTC)


def test_psi_by_hand_and_the_ks_test() -> None:
    reference = np.arange(1000.0)  # its deciles are the bins
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    # everything in the top bin: (1 - 0.1)·ln(1/0.1) + 9·(1e-4 - 0.1)·ln(1e-4/0.1)
    want = 0.9 * np.log(10) + 9 * (1e-4 - 0.1) * np.log(1e-3)
    assert psi(reference, np.full(50, 995.0)) == pytest.approx(want)
    rng = np.random.default_rng(0)
    same, shifted = rng.normal(0, 1, 300), rng.normal(0.5, 1, 300)
    base = rng.normal(0, 1, 2000)
    assert psi(base, same) < 0.1 and psi(base, shifted) > 0.25
    assert ks_p_value(base, same) > 0.01 and ks_p_value(base, shifted) < 1e-6
    with pytest.raises(ValueError, match="at least 2 finite"):
        psi(base, np.array([np.nan, 1.0]))


def test_image_statistics_see_light_focus_and_saturation() -> None:
    part = np.repeat(textured_part(np.random.default_rng(1))[:, :, None], 3, axis=2)
    seen = image_statistics(part)
    brighter = image_statistics(np.clip(part.astype(float) * 1.15, 0, 255).astype(np.uint8))
    assert brighter["brightness"] == pytest.approx(1.15 * seen["brightness"], rel=0.02)
    assert image_statistics(cv2.GaussianBlur(part, (0, 0), 2.0))["focus"] < 0.2 * seen["focus"]
    burnt = part.copy()
    burnt[:32] = 255
    assert image_statistics(burnt)["saturated"] == pytest.approx(0.25, abs=0.01)


def _stream(monitor: DriftMonitor, values: np.ndarray, start: int) -> list:
    events = []
    for i, value in enumerate(values):
        events += monitor.update({"brightness": value}, T0 + timedelta(seconds=start + i))
    return events


def test_an_alarm_rises_on_a_15_percent_shift_and_clears_when_it_is_gone() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(100, 5, 2000)
    monitor = DriftMonitor({"brightness": reference}, window=200, every=20)
    assert _stream(monitor, rng.normal(100, 5, 600), 0) == []
    raised = _stream(monitor, rng.normal(115, 5.75, 400), 600)  # from part 600 on, 15 % brighter
    assert [e.state for e in raised] == ["raised"]
    event = raised[0]
    delay = (event.at - T0).total_seconds() - 600
    # within one window; the window then still holds mostly parts from before the shift
    assert delay < 200 and event.psi >= 0.25 and event.current_median > event.reference_median
    assert monitor.raised and event.since <= event.at
    cleared = _stream(monitor, rng.normal(100, 5, 400), 1000)
    assert [e.state for e in cleared] == ["cleared"] and not monitor.raised


def test_no_alarm_on_a_process_in_control_over_five_seeds() -> None:
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        monitor = DriftMonitor({"brightness": rng.normal(100, 5, 2000)}, window=200, every=20)
        assert _stream(monitor, rng.normal(100, 5, 3000), 0) == [], seed


def test_bad_monitor_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and raise_psi"):
        DriftMonitor({"x": np.arange(100.0)}, raise_psi=0.1, clear_psi=0.2)
    with pytest.raises(ValueError, match="at least 20 parts"):
        DriftMonitor({"x": np.arange(100.0)}, window=5)


def test_the_onset_of_a_shift_is_dated_to_within_a_few_parts() -> None:
    """The change-point estimate on a window whose last 30 of 150 values moved by 1.5 sigma."""
    errors = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        reference = rng.normal(0, 1, 400)
        window = np.r_[rng.normal(0, 1, 120), rng.normal(1.5, 1, 30)]
        errors.append(onset(reference, window) - 120)
    assert np.median(np.abs(errors)) <= 2 and max(np.abs(errors)) <= 6, errors


def test_psi_has_a_no_shift_floor_that_small_samples_must_clear() -> None:
    """Two samples of one distribution: PSI averages (bins - 1)(1/n + 1/m), 0.35 for a reference of
    30 against a window of 200 — above the customary 0.25 with nothing moved."""
    rng = np.random.default_rng(5)
    for n, m in ((30, 200), (200, 200), (2000, 200)):
        shown = [psi(rng.normal(0, 1, n), rng.normal(0, 1, m)) for _ in range(300)]
        floor = psi_floor(rng.normal(0, 1, n), m)
        assert floor == pytest.approx(9 * (1 / n + 1 / m))
        assert np.mean(shown) == pytest.approx(floor, rel=0.25), (n, m)


def test_a_small_reference_neither_alarms_by_chance_nor_holds_an_alarm_forever() -> None:
    """A reference of 40 calibration images: judged on PSI alone its floor (0.27) sits above the
    clear level (0.1), so a raised alarm could never clear; judged on the excess it does."""
    for seed in range(5):
        rng = np.random.default_rng(200 + seed)
        monitor = DriftMonitor({"brightness": rng.normal(100, 5, 40)}, window=200, every=20)
        assert _stream(monitor, rng.normal(100, 5, 2000), 0) == [], seed
        raised = _stream(monitor, rng.normal(115, 5, 400), 2000)
        assert [e.state for e in raised] == ["raised"], seed
        cleared = _stream(monitor, rng.normal(100, 5, 600), 2400)
        assert [e.state for e in cleared] == ["cleared"], seed
