"""Drift at the station: each bundle check's image statistics and score, part by part in the
order parts are decided, against the reference its bundle carries (``lineguard.spc.drift``).

Fed by the decide thread only; read by status, the API and the metrics under a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from lineguard.runtime.manifest import DriftSection
from lineguard.spc.drift import MIN_REFERENCE, DriftEvent, DriftMonitor
from lineguard.station.config import DriftConfig


class StatisticDrift(BaseModel):
    """One statistic of one check at its last comparison with the reference."""

    model_config = ConfigDict(frozen=True)

    statistic: str
    psi: float
    p_value: float
    reference_median: float
    current_median: float
    psi_floor: float  # what PSI shows with no shift at these sample sizes; alarms judge the excess
    alarm: bool
    since: datetime | None  # the standing alarm's first part; None without an alarm


class CheckDrift(BaseModel):
    """What a check's drift monitor knows: whether it watches, how far it is, what moved."""

    model_config = ConfigDict(frozen=True)

    recipe: str
    check: str
    monitored: bool
    why_not: str  # "" when monitored
    reference_images: int
    window: int
    parts_seen: int
    statistics: list[StatisticDrift]  # empty until the first full window


def describe(check: str, event: DriftEvent) -> str:
    """The record's event text: which statistic moved, how far, since when."""
    moved = (
        f"{event.statistic} median {event.reference_median:.4g} (reference) -> "
        f"{event.current_median:.4g}, PSI {event.psi:.3f} (no-shift floor {event.psi_floor:.3f}), "
        f"KS p {event.p_value:.2g}"
    )
    if event.state == "raised":
        return f"check {check}: {moved}, since {event.since.isoformat()}"
    return f"check {check}: back in line ({moved}); raised at {event.since.isoformat()}"


class DriftWatch:
    """The drift monitors of one recipe's checks: those whose bundle carries a reference large
    enough to judge; every other check is listed with the reason it is not watched."""

    def __init__(
        self, recipe: str, config: DriftConfig, references: Mapping[str, DriftSection | str | None]
    ) -> None:
        """``references``: check -> its bundle's drift section, None (the bundle has none) or a
        str (why the check has no reference, e.g. a tool)."""
        self.recipe, self.window = recipe, config.window
        self._lock = threading.Lock()
        self.monitors: dict[str, DriftMonitor] = {}
        self._images: dict[str, int] = {}
        self.unwatched: dict[str, str] = {}
        for check, reference in references.items():
            if not config.enabled:
                self.unwatched[check] = "drift: enabled is false"
            elif isinstance(reference, str):
                self.unwatched[check] = reference
            elif reference is None:
                self.unwatched[check] = "its bundle carries no drift reference (exported before them)"
            elif min(len(v) for v in reference.statistics.values()) < MIN_REFERENCE:
                self.unwatched[check] = (
                    f"a drift reference of {reference.images} calibration images; {MIN_REFERENCE} "
                    f"are needed to tell a shift from chance (calibrate on more good images)"
                )
                self._images[check] = reference.images
            else:
                self.monitors[check] = DriftMonitor(
                    reference.statistics,
                    window=config.window,
                    every=config.every,
                    raise_psi=config.raise_psi,
                    clear_psi=config.clear_psi,
                    raise_p=config.raise_p,
                )
                self._images[check] = reference.images

    def update(self, check: str, values: Mapping[str, float], at: datetime) -> list[DriftEvent]:
        monitor = self.monitors.get(check)
        if monitor is None:
            return []
        with self._lock:
            return monitor.update(values, at)

    def state(self) -> list[CheckDrift]:
        with self._lock:
            watched = [
                CheckDrift(
                    recipe=self.recipe,
                    check=check,
                    monitored=True,
                    why_not="",
                    reference_images=self._images[check],
                    window=self.window,
                    parts_seen=monitor.seen,
                    statistics=_readings(monitor),
                )
                for check, monitor in self.monitors.items()
            ]
        unwatched = [
            CheckDrift(
                recipe=self.recipe,
                check=check,
                monitored=False,
                why_not=why,
                reference_images=self._images.get(check, 0),
                window=self.window,
                parts_seen=0,
                statistics=[],
            )
            for check, why in self.unwatched.items()
        ]
        return watched + unwatched


def _readings(monitor: DriftMonitor) -> list[StatisticDrift]:
    out = []
    for reading in monitor.readings.values():
        fields = asdict(reading)
        since = fields.pop("alarm_since")
        out.append(StatisticDrift(**fields, alarm=since is not None, since=since))
    return out


def standing_alarms(drift: Sequence[CheckDrift]) -> list[str]:
    """ "check/statistic" of every alarm standing now."""
    return [f"{c.check}/{s.statistic}" for c in drift for s in c.statistics if s.alarm]
