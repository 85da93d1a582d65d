"""What a running station reports about itself (``Station.status()``, the API's ``/status``, the
CLI's live line, the Prometheus metrics): one typed document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from lineguard.results import PublishedResult
from lineguard.station.drift import CheckDrift

StationState = Literal["created", "running", "held", "stopped", "error"]  # held: refusing new parts


class StationStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    station: str
    state: StationState
    error: str  # why the station stopped deciding or a source failed; "" when fine
    error_code: int  # lineguard.results.ErrorCode
    run_id: str
    recipe: str  # the active recipe
    started_at: str | None  # ISO 8601, UTC
    counters: dict[str, int]  # this run: parts, OK / REVIEW / NG, overload, late frames, ...
    late_results: int  # check results that came after their part was decided
    parts_per_min_last_60s: float
    latency_ms_p50: float | None  # image taken -> verdict recorded and reported
    latency_ms_p99: float | None
    queue_depth: int  # checks waiting for a worker
    parts_in_flight: int  # opened, not yet decided
    record_backlog: int  # decided, not yet recorded
    record_backlog_age_s: float
    journal_pending: int  # recorded in the journal while the database was away
    store_error: str | None
    sinks: dict[str, dict[str, Any]]  # each sink's own counters
    last_result: PublishedResult | None
    drift: list[CheckDrift]  # the active recipe's checks: watched or why not, and what moved
    drift_alarms: list[str]  # "check/statistic" of each drift alarm standing now
