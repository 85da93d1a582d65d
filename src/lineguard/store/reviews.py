"""The review queue on the record: which recorded parts a person should look at, who has taken
which, and what reviewers found — in tables of their own, beside the station's verdicts, which no
review changes.

The queue holds every REVIEW part and a random sample of the OK and the NG parts, drawn by
``ReviewSampling`` from the part's uid (blind to its content) and written in the same transaction
as the part — journalled parts too, when they are replayed — so the reviews of the sample estimate
the escape and false-reject rates (``lineguard.spc.review``). A part leaves the queue at its first
review.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Table, and_, delete, exists, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from lineguard.store.records import stored_utc, uid_draw

ReviewResult = Literal["good", "defect"]
MAX_NOTE_CHARS = 2000
MAX_CLASS_CHARS = 64
CLAIM_ATTEMPTS = 5  # queued parts tried in one claim before giving up to a busy queue


class ReviewError(ValueError):
    """A review that cannot be taken as asked: ``kind`` "unknown" (no such part) or "claimed"."""

    def __init__(self, message: str, kind: Literal["unknown", "claimed"]) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ReviewSampling:
    """Which recorded parts enter the queue: every REVIEW part, 1 OK part in ``ok_every`` and
    1 NG part in ``ng_every`` (0: none)."""

    ok_every: int = 50
    ng_every: int = 10

    def __post_init__(self) -> None:
        for name in ("ok_every", "ng_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (none) or a positive number of parts")

    def drawn(self, verdict: str, uid: str) -> bool:
        """Is the part in the sample? A function of its uid (a hash: the same on every replay,
        independent of what the part looks like) and its verdict."""
        if verdict == "REVIEW":
            return True
        every = {"OK": self.ok_every, "NG": self.ng_every}.get(verdict, 0)
        if not every:
            return False
        return uid_draw(uid) % every == 0


@dataclass(frozen=True)
class QueuedPart:
    uid: str
    part_id: str
    verdict: str
    reason: str
    recipe: str
    decided_at: datetime
    claimed_by: str | None  # a reviewer holding it now
    claimed_until: datetime | None


@dataclass(frozen=True)
class Review:
    station: str
    uid: str
    reviewer: str
    at: datetime
    result: ReviewResult
    defect_class: str
    note: str
    basis: Literal["sample", "chosen"]


@dataclass(frozen=True)
class Tables:
    parts: Table
    queue: Table
    reviews: Table
    claims: Table


def _waiting(t: Tables, station: str):
    """SQL: the station's queued parts that have no review yet."""
    queue, reviews = t.queue, t.reviews
    reviewed = exists().where(reviews.c.station == queue.c.station, reviews.c.uid == queue.c.uid)
    return and_(queue.c.station == station, ~reviewed)


def _listing(t: Tables, *where, now: datetime):
    """Queued parts (with their record row and who holds each now), oldest first."""
    parts, queue, claims = t.parts, t.queue, t.claims
    live = and_(claims.c.station == queue.c.station, claims.c.uid == queue.c.uid, claims.c.until > now)
    row = and_(parts.c.station == queue.c.station, parts.c.uid == queue.c.uid)
    return (
        select(parts, claims.c.reviewer, claims.c.until)
        .select_from(queue.join(parts, row).outerjoin(claims, live))
        .where(*where)
        .order_by(queue.c.decided_at, queue.c.id)
    )


def queue(
    engine: Engine, t: Tables, station: str, limit: int, offset: int, now: datetime
) -> list[QueuedPart]:
    """The parts waiting for review, oldest first, with who holds each now."""
    query = _listing(t, _waiting(t, station), now=now).limit(limit).offset(offset)
    with engine.connect() as connection:
        return [_queued_part(row) for row in connection.execute(query).mappings()]


def queue_length(engine: Engine, t: Tables, station: str) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(t.queue).where(_waiting(t, station))
        return int(connection.execute(query).scalar_one())


def _queued_part(row) -> QueuedPart:
    return QueuedPart(
        uid=row["uid"],
        part_id=row["part_id"],
        verdict=row["verdict"],
        reason=row["reason"],
        recipe=row["recipe"],
        decided_at=stored_utc(row["decided_at"]),
        claimed_by=row["reviewer"],
        claimed_until=None if row["until"] is None else stored_utc(row["until"]),
    )


def claim(
    engine: Engine, t: Tables, station: str, reviewer: str, minutes: float, now: datetime
) -> QueuedPart | None:
    """The next part for ``reviewer``: the one they already hold, else the oldest nobody holds,
    taken for ``minutes``. None when the queue is empty (or every part is held by others)."""
    claims = t.claims
    until = now + timedelta(minutes=minutes)
    # The listing joins only live claims: no reviewer means nobody holds the part now.
    mine = _listing(t, _waiting(t, station), claims.c.reviewer == reviewer, now=now).limit(1)
    free = _listing(t, _waiting(t, station), claims.c.reviewer.is_(None), now=now).limit(1)
    with engine.connect() as connection:
        held = connection.execute(mine).mappings().first()
    if held is not None:
        with engine.begin() as connection:
            connection.execute(
                update(claims)
                .where(claims.c.station == station, claims.c.uid == held["uid"])
                .values(until=until)
            )
        return _held(_queued_part(held), reviewer, until)
    for _ in range(CLAIM_ATTEMPTS):
        with engine.connect() as connection:
            row = connection.execute(free).mappings().first()
        if row is None:
            return None
        try:
            with engine.begin() as connection:
                taken = connection.execute(  # an expired claim is taken over; a live one is not
                    update(claims)
                    .where(claims.c.station == station, claims.c.uid == row["uid"], claims.c.until <= now)
                    .values(reviewer=reviewer, until=until)
                ).rowcount
                if not taken:
                    values = {"station": station, "uid": row["uid"], "reviewer": reviewer, "until": until}
                    connection.execute(claims.insert().values(**values))
        except IntegrityError:
            continue  # another reviewer took it a moment ago: the next one
        return _held(_queued_part(row), reviewer, until)
    return None


def _held(part: QueuedPart, reviewer: str, until: datetime) -> QueuedPart:
    return QueuedPart(**{**part.__dict__, "claimed_by": reviewer, "claimed_until": until})


def submit(
    engine: Engine,
    t: Tables,
    station: str,
    uid: str,
    reviewer: str,
    result: ReviewResult,
    defect_class: str,
    note: str,
    now: datetime,
) -> Review:
    """Record ``reviewer``'s verdict on a recorded part (a second review adds, never replaces)."""
    if result not in ("good", "defect"):
        raise ValueError(f"a review is 'good' or 'defect', not {result!r}")
    if result == "good" and defect_class:
        raise ValueError("a good part has no defect class")
    if len(defect_class) > MAX_CLASS_CHARS or len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"defect class at most {MAX_CLASS_CHARS} characters, note at most {MAX_NOTE_CHARS}")
    parts, queue, reviews, claims = t.parts, t.queue, t.reviews, t.claims
    this = (claims.c.station == station, claims.c.uid == uid)
    with engine.begin() as connection:
        known = connection.execute(select(parts.c.id).where(parts.c.station == station, parts.c.uid == uid))
        if known.first() is None:
            raise ReviewError(f"no part {uid!r} recorded at station {station!r}", "unknown")
        other = connection.execute(
            select(claims.c.reviewer).where(*this, claims.c.until > now, claims.c.reviewer != reviewer)
        ).scalar()
        if other is not None:
            raise ReviewError(f"part {uid!r} is being reviewed by {other}", "claimed")
        queued = connection.execute(select(queue.c.id).where(queue.c.station == station, queue.c.uid == uid))
        basis: Literal["sample", "chosen"] = "sample" if queued.first() is not None else "chosen"
        review = Review(station, uid, reviewer, now, result, defect_class, note, basis)
        connection.execute(reviews.insert().values(**review.__dict__))
        connection.execute(delete(claims).where(*this))
    return review


def reviews_of(engine: Engine, t: Tables, station: str, uid: str) -> list[Review]:
    reviews = t.reviews
    query = select(reviews).where(reviews.c.station == station, reviews.c.uid == uid).order_by(reviews.c.id)
    with engine.connect() as connection:
        return [
            Review(**{k: row[k] for k in Review.__dataclass_fields__} | {"at": stored_utc(row["at"])})
            for row in connection.execute(query).mappings()
        ]


def review_counts(
    engine: Engine, t: Tables, station: str, since: datetime | None, until: datetime | None
) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Parts decided per verdict in the period, and per verdict (good, defect) among the sampled
    parts' reviews (each part's latest). Aggregated by the database."""
    parts, reviews = t.parts, t.reviews
    period = [parts.c.station == station]
    if since is not None:
        period.append(parts.c.decided_at >= since)
    if until is not None:
        period.append(parts.c.decided_at < until)
    latest = (
        select(func.max(reviews.c.id).label("id"))
        .where(reviews.c.station == station, reviews.c.basis == "sample")
        .group_by(reviews.c.uid)
        .subquery()
    )
    sampled = (
        select(parts.c.verdict, reviews.c.result, func.count())
        .select_from(
            reviews.join(latest, latest.c.id == reviews.c.id).join(
                parts, and_(parts.c.station == reviews.c.station, parts.c.uid == reviews.c.uid)
            )
        )
        .where(*period)
        .group_by(parts.c.verdict, reviews.c.result)
    )
    with engine.connect() as connection:
        decided = {
            verdict: int(n)
            for verdict, n in connection.execute(
                select(parts.c.verdict, func.count()).where(*period).group_by(parts.c.verdict)
            )
        }
        found: dict[str, list[int]] = {}
        for verdict, result, n in connection.execute(sampled):
            found.setdefault(verdict, [0, 0])[result == "defect"] += int(n)
    return decided, {verdict: (good, defect) for verdict, (good, defect) in found.items()}
