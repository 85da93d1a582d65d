"""Subgroup statistics aggregated by the database (SQLite, and a real PostgreSQL), equal to the same
statistics computed from the parts in Python, and charts drawn from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lineguard.results import Measurement
from lineguard.store import CheckRecord, Grouping, NoData, PartRecord, RecordStore, sqlite_url

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def _line(n: int = 53, seed: int = 0) -> list[PartRecord]:
    """Parts 7 s apart with a gap measurement near 12 mm and an anomaly score; every 9th is NG."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n):
        bad = i % 9 == 8
        gap = Measurement("gap", float(12.0 + rng.normal(0, 0.01)), "mm", lo=11.95, hi=12.05, decision="OK")
        checks = (
            CheckRecord("surface", "NG" if bad else "OK", float(rng.uniform(0, 5)) + (6 if bad else 0)),
            CheckRecord("gauge", "OK", 0.2, measurements=(gap,)),
        )
        verdict = "NG" if bad else "OK"
        parts.append(
            PartRecord(
                "line1", f"u{i:04d}", f"P{i}", verdict, checks, decided_at=T0 + timedelta(seconds=7 * i)
            )
        )
    return parts


def _by_hand(values: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    groups = [values[i : i + size] for i in range(0, len(values), size)]
    return (
        np.array([len(g) for g in groups], float),
        np.array([g.mean() for g in groups]),
        np.array([g.std(ddof=1) if len(g) > 1 else np.nan for g in groups]),
        np.array([np.ptp(g) for g in groups]),
    )


def _check(store: RecordStore, parts: list[PartRecord]) -> None:
    gaps = np.array([p.checks[1].measurements[0].value for p in parts])
    got = store.value_subgroups(Grouping("line1", "gauge", size=5), value="gap")
    n, mean, std, spread = _by_hand(gaps, 5)
    assert got.stats.n.tolist() == n.tolist()  # the last subgroup holds the 3 parts left
    assert np.allclose(got.stats.mean, mean, rtol=0, atol=1e-12)
    assert np.allclose(got.stats.std, std, rtol=1e-6, atol=1e-12, equal_nan=True)
    assert np.allclose(got.stats.range, spread, atol=1e-12)
    assert got.start[0] == T0 and got.start[1] == T0 + timedelta(seconds=35)
    # the surface check's rejects per minute: 60 s windows from the epoch's whole minutes
    rejects = store.reject_subgroups(Grouping("line1", "surface", seconds=60))
    minute = np.array([int((p.decided_at.timestamp()) // 60) for p in parts])
    bad = np.array([p.checks[0].decision == "NG" for p in parts])
    keys = np.unique(minute)
    assert rejects.inspected.tolist() == [float((minute == key).sum()) for key in keys]
    assert rejects.rejected.tolist() == [float(bad[minute == key].sum()) for key in keys]
    assert rejects.rejected.sum() == bad.sum() == 5
    scores = store.value_subgroups(Grouping("line1", "surface", size=10, since=T0 + timedelta(seconds=70)))
    assert scores.stats.n.sum() == len(parts) - 10  # since: inclusive, from part 10 on
    with pytest.raises(NoData, match="station 'nowhere'"):
        store.value_subgroups(Grouping("nowhere", "gauge", size=5), value="gap")
    with pytest.raises(NoData, match="no recorded width"):
        store.value_subgroups(Grouping("line1", "gauge", size=5), value="width")


def test_sqlite_aggregates_subgroups_as_python_would(tmp_path) -> None:
    store = RecordStore(sqlite_url(tmp_path / "record.db"), tmp_path / "journal.jsonl")
    parts = _line()
    store.record_many(parts)
    _check(store, parts)
    from lineguard.spc import p_chart, xbar_s

    chart = xbar_s(store.value_subgroups(Grouping("line1", "gauge", size=5), value="gap").stats)
    assert abs(chart.mean - 12.0) < 0.01 and 0.005 < chart.sigma < 0.02
    counts = store.reject_subgroups(Grouping("line1", "surface", size=9))
    assert p_chart(counts.rejected, counts.inspected).p == pytest.approx(5 / 53)
    store.close()


def test_postgres_aggregates_the_same(postgres, tmp_path) -> None:
    store = RecordStore(postgres.url, tmp_path / "journal.jsonl")
    parts = _line(seed=1)
    store.record_many(parts)
    _check(store, parts)
    store.close()


def test_bad_groupings_are_refused() -> None:
    with pytest.raises(ValueError, match="one of them"):
        Grouping("s", "c")
    with pytest.raises(ValueError, match="one of them"):
        Grouping("s", "c", size=5, seconds=60)
    with pytest.raises(ValueError, match="empty time range"):
        Grouping("s", "c", size=5, since=T0, until=T0)
    with pytest.raises(ValueError, match="time zone"):
        Grouping("s", "c", size=5, since=datetime(2026, 1, 1))
