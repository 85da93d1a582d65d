"""What a shift report reads from the record, aggregated by the database (SQLite or PostgreSQL):
counts by recipe and verdict, each check's decisions, why checks could not judge, the reviewers'
defect classes, the measurements that carry specification limits, and the highest-scoring parts.
One row comes back per group, never one per part."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Table, and_, desc, func, select
from sqlalchemy.engine import Engine

from lineguard.store.records import stored_utc


@dataclass(frozen=True)
class Period:
    """A station's parts decided in [since, until) (either end open)."""

    station: str
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must carry a time zone")
        if self.since is not None and self.until is not None and self.since >= self.until:
            since, until = self.since.isoformat(), self.until.isoformat()
            raise ValueError(f"empty time range: since {since} is not before until {until}")

    def of(self, parts: Table) -> list:
        where = [parts.c.station == self.station]
        if self.since is not None:
            where.append(parts.c.decided_at >= self.since.astimezone(UTC))
        if self.until is not None:
            where.append(parts.c.decided_at < self.until.astimezone(UTC))
        return where


@dataclass(frozen=True)
class Worst:
    uid: str
    part_id: str
    verdict: str
    score: float
    decided_at: datetime
    image_sha256: str | None
    heatmap_sha256: str | None


@dataclass(frozen=True)
class Specified:
    """A measurement with specification limits, as recorded in the period."""

    check: str
    name: str
    unit: str
    lo: float | None
    hi: float | None
    n: int


@dataclass(frozen=True)
class Tables:
    parts: Table
    checks: Table
    measurements: Table
    reviews: Table


def _checked(t: Tables):
    return t.parts.join(t.checks, t.checks.c.part_pk == t.parts.c.id)


def verdict_counts(engine: Engine, t: Tables, period: Period) -> dict[tuple[str, str], int]:
    """(recipe, verdict) -> parts."""
    query = (
        select(t.parts.c.recipe, t.parts.c.verdict, func.count())
        .where(*period.of(t.parts))
        .group_by(t.parts.c.recipe, t.parts.c.verdict)
    )
    with engine.connect() as connection:
        return {(recipe, verdict): int(n) for recipe, verdict, n in connection.execute(query)}


def check_decisions(engine: Engine, t: Tables, period: Period) -> dict[tuple[str, str], int]:
    """(check, decision) -> parts."""
    query = (
        select(t.checks.c.check, t.checks.c.decision, func.count())
        .select_from(_checked(t))
        .where(*period.of(t.parts))
        .group_by(t.checks.c.check, t.checks.c.decision)
    )
    with engine.connect() as connection:
        return {(check, decision): int(n) for check, decision, n in connection.execute(query)}


def unjudged_reasons(
    engine: Engine, t: Tables, period: Period, limit: int = 10
) -> list[tuple[str, str, int]]:
    """Why checks gave no score (overload, a model error, an unreadable image...): the most frequent
    (check, reason, parts) first."""
    n = func.count().label("n")
    query = (
        select(t.checks.c.check, t.checks.c.reason, n)
        .select_from(_checked(t))
        .where(*period.of(t.parts), t.checks.c.score.is_(None))
        .group_by(t.checks.c.check, t.checks.c.reason)
        .order_by(desc(n))
        .limit(limit)
    )
    with engine.connect() as connection:
        return [(check, reason, int(count)) for check, reason, count in connection.execute(query)]


def defect_classes(engine: Engine, t: Tables, period: Period) -> dict[str, int]:
    """Defect class -> parts, from each part's latest review in the period."""
    reviews, parts = t.reviews, t.parts
    latest = (
        select(func.max(reviews.c.id).label("id"))
        .where(reviews.c.station == period.station)
        .group_by(reviews.c.uid)
        .subquery()
    )
    query = (
        select(reviews.c.defect_class, func.count())
        .select_from(
            reviews.join(latest, latest.c.id == reviews.c.id).join(
                parts, and_(parts.c.station == reviews.c.station, parts.c.uid == reviews.c.uid)
            )
        )
        .where(*period.of(parts), reviews.c.result == "defect")
        .group_by(reviews.c.defect_class)
    )
    with engine.connect() as connection:
        return {(name or "unclassified"): int(n) for name, n in connection.execute(query)}


def specified_measurements(engine: Engine, t: Tables, period: Period) -> list[Specified]:
    """The measurements recorded with a specification limit, and how many values each has."""
    m = t.measurements
    query = (
        select(t.checks.c.check, m.c.name, m.c.unit, m.c.lo, m.c.hi, func.count())
        .select_from(_checked(t).join(m, m.c.check_pk == t.checks.c.id))
        .where(*period.of(t.parts), m.c.value.is_not(None), (m.c.lo.is_not(None)) | (m.c.hi.is_not(None)))
        .group_by(t.checks.c.check, m.c.name, m.c.unit, m.c.lo, m.c.hi)
        .order_by(t.checks.c.check, m.c.name)
    )
    with engine.connect() as connection:
        return [
            Specified(c, name, unit, lo, hi, int(n)) for c, name, unit, lo, hi, n in connection.execute(query)
        ]


def worst_parts(engine: Engine, t: Tables, period: Period, check: str, n: int) -> list[Worst]:
    """The ``n`` highest-scoring parts of a check whose image the archive kept."""
    c = t.checks
    query = (
        select(
            t.parts.c.uid,
            t.parts.c.part_id,
            t.parts.c.verdict,
            c.c.score,
            t.parts.c.decided_at,
            c.c.image_sha256,
            c.c.heatmap_sha256,
        )
        .select_from(_checked(t))
        .where(*period.of(t.parts), c.c.check == check, c.c.score.is_not(None), c.c.image_sha256.is_not(None))
        .order_by(desc(c.c.score))
        .limit(n)
    )
    with engine.connect() as connection:
        return [
            Worst(uid, part_id, verdict, float(score), stored_utc(at), image, heat)
            for uid, part_id, verdict, score, at, image, heat in connection.execute(query)
        ]


@dataclass(frozen=True)
class ShiftCounts:
    verdicts: dict[tuple[str, str], int]  # (recipe, verdict) -> parts
    decisions: dict[tuple[str, str], int]  # (check, decision) -> parts
    unjudged: list[tuple[str, str, int]]  # (check, reason, parts), most frequent first
    defect_classes: dict[str, int]  # reviewers' defect class -> parts
    specified: list[Specified]

    @property
    def parts(self) -> int:
        return sum(self.verdicts.values())

    @property
    def checks(self) -> list[str]:
        return sorted({check for check, _ in self.decisions})


def shift_counts(engine: Engine, t: Tables, period: Period) -> ShiftCounts:
    return ShiftCounts(
        verdict_counts(engine, t, period),
        check_decisions(engine, t, period),
        unjudged_reasons(engine, t, period),
        defect_classes(engine, t, period),
        specified_measurements(engine, t, period),
    )
