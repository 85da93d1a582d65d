"""Subgroup statistics of the record, aggregated by the database (SQLite or PostgreSQL): what
control charts are drawn from. Nothing here loads parts into memory — one row comes back per
subgroup, so a chart over a million recorded parts costs a GROUP BY, not a million objects.

A value is a check's ``score`` or one of its measurements (by name); subgroups are consecutive
runs of ``size`` parts in decision order, or windows of ``seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Float, case, cast, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from lineguard.spc.subgroups import Subgroups
from lineguard.store.records import stored_utc

MAX_SUBGROUPS = 1_000_000  # a chart of more points than this is a query mistake, not a chart


class NoData(ValueError):
    """Nothing recorded matches: a chart of nothing is refused, not drawn."""


@dataclass(frozen=True)
class ValueSubgroups:
    """Per subgroup: when it began (its first part's decision time) and its statistics."""

    start: tuple[datetime, ...]
    stats: Subgroups


@dataclass(frozen=True)
class RejectSubgroups:
    """Per subgroup: when it began, how many parts the check judged and how many it rejected."""

    start: tuple[datetime, ...]
    rejected: np.ndarray
    inspected: np.ndarray


@dataclass(frozen=True)
class Grouping:
    """Which parts and how to group them. ``until`` is exclusive."""

    station: str
    check: str
    size: int | None = None
    seconds: int | None = None  # whole seconds
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if (self.size is None) == (self.seconds is None):
            raise ValueError("group by a number of parts (size) or by a time window (seconds), one of them")
        if self.size is not None and self.size < 1:
            raise ValueError(f"subgroup size must be at least 1, got {self.size}")
        if self.seconds is not None and (int(self.seconds) != self.seconds or self.seconds < 1):
            raise ValueError(f"subgroup window must be a whole number of seconds >= 1, got {self.seconds}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must carry a time zone")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(
                f"empty time range: since {self.since.isoformat()} is not before "
                f"until {self.until.isoformat()}"
            )


def value_subgroups(engine: Engine, tables, grouping: Grouping, value: str = "score") -> ValueSubgroups:
    """Subgroup n, mean, sample standard deviation and range of a check's score or measurement."""
    parts, checks, measurements = tables
    x = checks.c.score if value == "score" else measurements.c.value
    source = parts.join(checks, checks.c.part_pk == parts.c.id)
    if value != "score":
        source = source.join(
            measurements, (measurements.c.check_pk == checks.c.id) & (measurements.c.name == value)
        )
    where = [*_filters(parts, checks, grouping), x.is_not(None)]
    with engine.connect() as connection:
        # sums about a reference value: the variance from sums of squares keeps its digits
        reference = connection.execute(select(func.avg(x)).select_from(source).where(*where)).scalar()
        if reference is None:
            raise NoData(
                f"station {grouping.station!r}, check {grouping.check!r}: no recorded {value} in this range"
            )
        shifted = (cast(x, Float) - float(reference)).label("x")
        rows = connection.execute(_grouped(source, where, parts, shifted, grouping, engine)).all()
    if len(rows) > MAX_SUBGROUPS:
        raise ValueError(f"{len(rows)} subgroups: more than {MAX_SUBGROUPS}; choose larger subgroups")
    n = np.array([r.n for r in rows], float)
    total = np.array([r.total for r in rows], float)
    squares = np.array([r.squares for r in rows], float)
    mean = total / n
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.where(n > 1, (squares - n * mean**2) / (n - 1), np.nan)
    stats = Subgroups(
        n=n,
        mean=mean + float(reference),
        std=np.sqrt(np.maximum(variance, 0.0)),
        range=np.array([r.high - r.low for r in rows], float),
    )
    return ValueSubgroups(tuple(stored_utc(r.start) for r in rows), stats)


def reject_subgroups(
    engine: Engine, tables, grouping: Grouping, rejected: tuple[str, ...] = ("NG",)
) -> RejectSubgroups:
    """Per subgroup, the parts the check judged and those it decided as one of ``rejected``."""
    parts, checks, _ = tables
    source = parts.join(checks, checks.c.part_pk == parts.c.id)
    bad = case((checks.c.decision.in_(rejected), 1), else_=0).label("x")
    with engine.connect() as connection:
        rows = connection.execute(
            _grouped(source, _filters(parts, checks, grouping), parts, bad, grouping, engine)
        ).all()
    if not rows:
        raise NoData(
            f"station {grouping.station!r}, check {grouping.check!r}: no recorded parts in this range"
        )
    return RejectSubgroups(
        tuple(stored_utc(r.start) for r in rows),
        np.array([r.total for r in rows], float),
        np.array([r.n for r in rows], float),
    )


def _filters(parts, checks, grouping: Grouping) -> list[ColumnElement[bool]]:
    where = [parts.c.station == grouping.station, checks.c.check == grouping.check]
    if grouping.since is not None:
        where.append(parts.c.decided_at >= grouping.since.astimezone(UTC))
    if grouping.until is not None:
        where.append(parts.c.decided_at < grouping.until.astimezone(UTC))
    return where


def _grouped(source, where, parts, x, grouping: Grouping, engine: Engine):
    """One row per subgroup: n, sum, sum of squares, min, max of ``x``, and its first time."""
    if grouping.size is not None:
        order = func.row_number().over(order_by=(parts.c.decided_at, parts.c.id)) - 1
        key_column = order
    else:
        key_column = _epoch(parts.c.decided_at, engine)
    inner = (
        select(x, parts.c.decided_at.label("at"), key_column.label("k"))
        .select_from(source)
        .where(*where)
        .subquery()
    )
    # floor division by a whole number, which each dialect renders as its own integer division
    key: Any = (inner.c.k // int(grouping.size or grouping.seconds or 1)).label("g")
    return (
        select(
            key,
            func.count(inner.c.x).label("n"),
            func.sum(inner.c.x).label("total"),
            func.sum(inner.c.x * inner.c.x).label("squares"),
            func.min(inner.c.x).label("low"),
            func.max(inner.c.x).label("high"),
            func.min(inner.c.at).label("start"),
        )
        .group_by(key)
        .order_by(key)
    )


def _epoch(column, engine: Engine):
    """Whole seconds since 1970 of a stored (UTC) time, in the database's own dialect."""
    if engine.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), BigInteger)
    return cast(func.floor(func.extract("epoch", column)), BigInteger)
