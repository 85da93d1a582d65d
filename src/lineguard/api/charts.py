"""Control-chart data for the REST API: the record's subgroups (aggregated by the database) charted
by :mod:`lineguard.spc`, as typed documents a web page can draw. Phase II: limits from a baseline
period, the requested period charted against them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from lineguard.store import Grouping, RecordStore

VariablesKind = Literal["xbar_s", "xbar_r", "i_mr"]
MAX_POINTS = 20_000  # a response a browser can draw; more is a range or a subgroup size to change


def _bounded(points: int) -> None:
    if points > MAX_POINTS:
        raise ValueError(
            f"{points} subgroups: over {MAX_POINTS} points to draw; "
            "choose larger subgroups or a shorter range"
        )


class PointOut(BaseModel):
    start: datetime  # the subgroup's first part
    n: int
    value: float | None
    center: float
    lcl: float
    ucl: float


class ViolationOut(BaseModel):
    rule: str
    index: int
    start: datetime
    description: str


class ChartOut(BaseModel):
    name: str
    points: list[PointOut]
    violations: list[ViolationOut]


class ValueChartOut(BaseModel):
    check: str
    value: str
    kind: VariablesKind
    mean: float  # the centre the limits are set on (the baseline's in phase II)
    sigma: float  # the process standard deviation within subgroups
    location: ChartOut
    spread: ChartOut


class RejectChartOut(BaseModel):
    check: str
    rejected: list[str]
    p: float  # the share of rejected parts the limits are set on
    chart: ChartOut


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _chart_out(chart: Any, starts: tuple[datetime, ...], sizes: np.ndarray) -> ChartOut:
    points = [
        PointOut(
            start=starts[i],
            n=int(sizes[i]),
            value=_finite(chart.values[i]),
            center=float(chart.center[i]),
            lcl=float(chart.lcl[i]),
            ucl=float(chart.ucl[i]),
        )
        for i in range(len(chart.values))
    ]
    violations = [
        ViolationOut(rule=v.rule, index=v.index, start=starts[v.index], description=v.description)
        for v in chart.violations
    ]
    return ChartOut(name=chart.name, points=points, violations=violations)


def value_chart(
    store: RecordStore,
    grouping: Grouping,
    value: str,
    kind: VariablesKind,
    baseline: Grouping | None = None,
) -> ValueChartOut:
    """A variables chart of a check's score or measurement; ``i_mr`` charts each part (size 1)."""
    from lineguard import spc

    if kind == "i_mr" and grouping.size != 1:
        raise ValueError("an I-MR chart plots single parts: size=1")

    def draw(stats, frozen=None):  # one subgroup per part: an I-MR chart plots the values themselves
        if kind == "i_mr":
            return spc.i_mr(stats.mean, frozen=frozen)
        return (spc.xbar_s if kind == "xbar_s" else spc.xbar_r)(stats, frozen=frozen)

    found = store.value_subgroups(grouping, value)
    _bounded(len(found.stats))
    frozen = draw(store.value_subgroups(baseline, value).stats) if baseline is not None else None
    chart = draw(found.stats, frozen)
    return ValueChartOut(
        check=grouping.check,
        value=value,
        kind=kind,
        mean=chart.mean,
        sigma=chart.sigma,
        location=_chart_out(chart.location, found.start, found.stats.n),
        spread=_chart_out(chart.spread, found.start, found.stats.n),
    )


def reject_chart(
    store: RecordStore, grouping: Grouping, rejected: tuple[str, ...], baseline: Grouping | None = None
) -> RejectChartOut:
    """A p chart of the share of parts the check decided as one of ``rejected``."""
    from lineguard import spc

    counts = store.reject_subgroups(grouping, rejected)
    _bounded(len(counts.inspected))
    frozen = None
    if baseline is not None:
        before = store.reject_subgroups(baseline, rejected)
        frozen = spc.p_chart(before.rejected, before.inspected)
    chart = spc.p_chart(counts.rejected, counts.inspected, frozen=frozen)
    return RejectChartOut(
        check=grouping.check,
        rejected=list(rejected),
        p=chart.p,
        chart=_chart_out(chart.chart, counts.start, counts.inspected),
    )
