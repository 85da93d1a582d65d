"""The station's record (SQLAlchemy): SQLite in WAL mode by default, PostgreSQL by URL.

``RecordStore.record`` returns only once the part is durable: committed to the
database or, when the database cannot take it, fsynced to the local journal.
``replay_journal`` moves journalled parts into the database once it is back;
recording is idempotent per (station, uid), so a replay interrupted half-way
can simply run again. One writer (the station's record thread) per store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
)
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    aliased,
    mapped_column,
    relationship,
    selectinload,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import ColumnElement

from lineguard.results import Measurement
from lineguard.store import audit as trail
from lineguard.store import reviews, summary
from lineguard.store import users as accounts
from lineguard.store.journal import Journal, Quarantine
from lineguard.store.records import CheckRecord, PartRecord, stored_utc
from lineguard.store.statistics import (
    Grouping,
    RejectSubgroups,
    ValueSubgroups,
    reject_subgroups,
    value_subgroups,
)


class Base(DeclarativeBase):
    pass


class PartRow(Base):
    __tablename__ = "parts"
    __table_args__ = (UniqueConstraint("station", "uid", name="uq_parts_station_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station: Mapped[str] = mapped_column(String(128), index=True)
    uid: Mapped[str] = mapped_column(String(256))
    part_id: Mapped[str] = mapped_column(String(256), index=True)
    verdict: Mapped[str] = mapped_column(String(8), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    recipe: Mapped[str] = mapped_column(String(256), default="")
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    via_journal: Mapped[bool] = mapped_column(default=False)
    checks: Mapped[list[CheckRow]] = relationship(back_populates="part", cascade="all, delete-orphan")


class CheckRow(Base):
    __tablename__ = "checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    part_pk: Mapped[int] = mapped_column(ForeignKey("parts.id", ondelete="CASCADE"), index=True)
    check: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(8))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    bundle_sha256: Mapped[str] = mapped_column(String(64), default="")
    model_version: Mapped[str] = mapped_column(String(64), default="")
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    timings_ms: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    image_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heatmap_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    part: Mapped[PartRow] = relationship(back_populates="checks")
    measurements: Mapped[list[MeasurementRow]] = relationship(
        back_populates="check_row", cascade="all, delete-orphan"
    )


class MeasurementRow(Base):
    """A tool's measured or read value, a row each: charts aggregate them in SQL by name."""

    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check_pk: Mapped[int] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(16), default="")
    lo: Mapped[float | None] = mapped_column(Float, nullable=True)
    hi: Mapped[float | None] = mapped_column(Float, nullable=True)
    decision: Mapped[str] = mapped_column(String(8), default="")
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[list[float]] = mapped_column(JSON, default=list)
    check_row: Mapped[CheckRow] = relationship(back_populates="measurements")


class EventRow(Base):
    __tablename__ = "station_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station: Mapped[str] = mapped_column(String(128), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")


class ReviewRow(Base):
    """A reviewer's verdict on a recorded part; the station's own verdict is never changed.
    ``basis``: "sample" when the part was drawn for review (in the review queue) — only these
    estimate the rates — or "chosen" when a reviewer picked it."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station: Mapped[str] = mapped_column(String(128), index=True)
    uid: Mapped[str] = mapped_column(String(256), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    result: Mapped[str] = mapped_column(String(8))  # good | defect
    defect_class: Mapped[str] = mapped_column(String(64), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    basis: Mapped[str] = mapped_column(String(8))


class QueueRow(Base):
    """A recorded part drawn for review (``reviews.ReviewSampling``), written with the part."""

    __tablename__ = "review_queue"
    __table_args__ = (UniqueConstraint("station", "uid", name="uq_review_queue_station_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station: Mapped[str] = mapped_column(String(128), index=True)
    uid: Mapped[str] = mapped_column(String(256))
    verdict: Mapped[str] = mapped_column(String(8))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ClaimRow(Base):
    """A queued part a reviewer has taken (others skip it until the claim expires)."""

    __tablename__ = "review_claims"
    __table_args__ = (UniqueConstraint("station", "uid", name="uq_review_claims_station_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station: Mapped[str] = mapped_column(String(128))
    uid: Mapped[str] = mapped_column(String(256))
    reviewer: Mapped[str] = mapped_column(String(128))
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UserRow(Base):
    """A person who may log in or hold API tokens (``lineguard.store.users``)."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TokenRow(Base):
    """A user's API token, by its sha256 digest (the token itself is never stored)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(ForeignKey("users.name"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(default=False)


class AuditRow(Base):
    """One entry of the chained, append-only audit trail (``lineguard.store.audit``)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 text: exactly what was hashed
    station: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512))
    before: Mapped[str] = mapped_column(Text)
    after: Mapped[str] = mapped_column(Text)
    previous: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))


# A page of parts is read in three queries (parts, their checks, their measurements), not one per row.
_WITH_CHECKS = selectinload(PartRow.checks).selectinload(CheckRow.measurements)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL: readers (REST API, reports) never block the writer; FULL: a commit is on disk.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


_TABLES = (PartRow.__table__, CheckRow.__table__, MeasurementRow.__table__)
_SUMMARY_TABLES = summary.Tables(
    PartRow.__table__,  # type: ignore[arg-type]
    CheckRow.__table__,  # type: ignore[arg-type]
    MeasurementRow.__table__,  # type: ignore[arg-type]
    ReviewRow.__table__,  # type: ignore[arg-type]
)
_USER_TABLES = accounts.Tables(UserRow.__table__, TokenRow.__table__)  # type: ignore[arg-type]
_AUDIT_TABLE: Any = AuditRow.__table__
_REVIEW_TABLES = reviews.Tables(
    PartRow.__table__,  # type: ignore[arg-type]
    QueueRow.__table__,  # type: ignore[arg-type]
    ReviewRow.__table__,  # type: ignore[arg-type]
    ClaimRow.__table__,  # type: ignore[arg-type]
)


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


class RecordStore:
    """Parts, their checks and station events; a journal catches what the database cannot take."""

    def __init__(
        self,
        url: str,
        journal: str | Path,
        *,
        connect_timeout_s: float = 3.0,
        retry_after_s: float = 5.0,
        review_sampling: reviews.ReviewSampling | None = None,
    ) -> None:
        """``retry_after_s``: while parts wait in the journal, how often to try the database again;
        ``review_sampling``: which parts enter the review queue as they are recorded (None: none)."""
        self.url = url
        self.review_sampling = review_sampling
        self.retry_after_s = retry_after_s
        self._next_try = 0.0
        self.journal = Journal(journal)
        journal = Path(journal)
        self.quarantine = Quarantine(journal.with_name(journal.stem + ".quarantine.jsonl"))
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            # A fresh connection per transaction: cheap for a file, and a file that went away
            # (unmounted share, replaced disk) fails at once instead of behind a pooled handle.
            options["poolclass"] = NullPool
            options["connect_args"] = {"timeout": connect_timeout_s}
        elif url.startswith("postgresql"):
            options["connect_args"] = {"connect_timeout": max(1, round(connect_timeout_s))}
        self.engine = create_engine(url, **options)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self.last_error: str | None = None

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:  # the API's threads may all arrive first on a new database
            if not self._schema_ready:
                Base.metadata.create_all(self.engine)
                self._schema_ready = True

    def verify(self) -> None:
        """Raise OSError, naming the database (password hidden), unless it answers and has the schema."""
        try:
            self._ensure_schema()
            with self.engine.connect() as connection:
                connection.execute(select(1))
        except (SQLAlchemyError, OSError) as exc:
            where = self.engine.url.render_as_string(hide_password=True)
            raise OSError(f"record database {where} unreachable: {str(exc).splitlines()[0]}") from None

    # -- writing -------------------------------------------------------------------------

    def record(self, part: PartRecord) -> str:
        """Make the part durable; returns "database", "journal" (the database is down) or
        "quarantine" (the database refused this part's content: it must not block the next ones)."""
        return self.record_many([part])[0]

    def record_many(self, parts: Sequence[PartRecord]) -> list[str]:
        """Make parts durable together (one transaction, or one journal fsync: group commit);
        where each went, in order."""
        parts = list(parts)
        if not parts:
            return []
        if len(self.journal):
            # Keep order: older journalled parts go in first, else the journal takes these too.
            if time.monotonic() >= self._next_try:
                self.replay_journal()
            if len(self.journal):
                self.journal.append_many(parts)
                return ["journal"] * len(parts)
        try:
            self._insert(parts, via_journal=False)
            return ["database"] * len(parts)
        except Exception as exc:
            if _refused_for_content(exc):
                wheres = self._insert_each(parts, via_journal=False)  # find the one(s) refused
            elif isinstance(exc, (SQLAlchemyError, OSError)):
                self._failed(exc)
                wheres = []
            else:
                raise
        rest = parts[len(wheres) :]
        if rest:
            self.journal.append_many(rest)
        return wheres + ["journal"] * len(rest)

    def _quarantine(self, part: PartRecord, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]
        self.quarantine.append(part, reason)
        self.add_event(part.station, "quarantined", f"part {part.uid}: {reason}")

    def _failed(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        self._next_try = time.monotonic() + self.retry_after_s

    def replay_journal(self) -> int:
        """Move journalled parts into the database; returns how many went in (0 if it is still down)."""
        pending = list(self.journal.records())
        if not pending:
            return 0
        try:
            self._insert(pending, via_journal=True)
        except Exception as exc:
            if not _refused_for_content(exc):
                if not isinstance(exc, (SQLAlchemyError, OSError)):
                    raise
                self._failed(exc)
                return 0
            wheres = self._insert_each(pending, via_journal=True)
            self.journal.consume(len(wheres))  # what is left stays in the journal, in order
            return wheres.count("database")
        self.journal.consume(len(pending))
        return len(pending)

    def _insert_each(self, parts: Sequence[PartRecord], via_journal: bool) -> list[str]:
        """After a batch was refused for its content: one part at a time, each into the database or
        the quarantine. Stops at the first part the database cannot take for being down; returns
        where each part before it went ("database" / "quarantine")."""
        wheres: list[str] = []
        for part in parts:
            try:
                self._insert([part], via_journal=via_journal)
                wheres.append("database")
            except Exception as exc:
                if _refused_for_content(exc):
                    self._quarantine(part, exc)
                    wheres.append("quarantine")
                elif isinstance(exc, (SQLAlchemyError, OSError)):
                    self._failed(exc)
                    break
                else:
                    raise
        return wheres

    def _insert(self, parts: Sequence[PartRecord], via_journal: bool) -> None:
        self._ensure_schema()
        with Session(self.engine) as session, session.begin():
            found = session.execute(
                select(PartRow.station, PartRow.uid).where(PartRow.uid.in_({p.uid for p in parts}))
            )
            known = {tuple(row) for row in found}
            for part in parts:
                if (part.station, part.uid) in known:
                    continue  # already recorded (a replay after a crash between commit and consume)
                known.add((part.station, part.uid))
                session.add(_to_row(part, via_journal))
                if self.review_sampling is not None and self.review_sampling.drawn(part.verdict, part.uid):
                    session.add(
                        QueueRow(
                            station=part.station,
                            uid=part.uid,
                            verdict=part.verdict,
                            decided_at=_utc(part.decided_at),
                        )
                    )
        # session.begin() commits here; with synchronous=FULL / PostgreSQL's defaults it is on disk.

    def add_event(self, station: str, kind: str, detail: str = "") -> None:
        """Station events (start, stop, changeover, faults); best effort, never blocks a decision."""
        try:
            self._ensure_schema()
            with Session(self.engine) as session, session.begin():
                session.add(EventRow(station=station, at=datetime.now(UTC), kind=kind, detail=detail))
        except (SQLAlchemyError, OSError) as exc:
            self._failed(exc)

    # -- reading -------------------------------------------------------------------------

    def parts(
        self,
        station: str | None = None,
        verdict: str | None = None,
        part_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[PartRecord]:
        """Recorded parts, newest first, filtered and paged."""
        self._ensure_schema()
        query = select(PartRow).options(_WITH_CHECKS).order_by(PartRow.decided_at.desc(), PartRow.id.desc())
        if station is not None:
            query = query.where(PartRow.station == station)
        if verdict is not None:
            query = query.where(PartRow.verdict == verdict)
        if part_id is not None:
            query = query.where(PartRow.part_id == part_id)
        if since is not None:
            query = query.where(PartRow.decided_at >= _utc(since))
        if until is not None:
            query = query.where(PartRow.decided_at < _utc(until))
        with Session(self.engine) as session:
            rows = session.scalars(query.limit(max(0, min(limit, 1000))).offset(max(0, offset))).all()
            return [_from_row(r) for r in rows]

    def part(self, station: str, uid: str) -> PartRecord | None:
        self._ensure_schema()
        query = select(PartRow).options(_WITH_CHECKS).where(PartRow.station == station, PartRow.uid == uid)
        with Session(self.engine) as session:
            row = session.scalars(query).first()
            return None if row is None else _from_row(row)

    def stations(self) -> list[str]:
        """The stations this record holds parts of."""
        self._ensure_schema()
        with Session(self.engine) as session:
            return sorted(session.scalars(select(PartRow.station).distinct()))

    def counts(self, station: str | None = None) -> dict[str, int]:
        self._ensure_schema()
        query = select(PartRow.verdict, func.count()).group_by(PartRow.verdict)
        if station is not None:
            query = query.where(PartRow.station == station)
        with Session(self.engine) as session:
            found = dict(session.execute(query).all())
        return {v: int(found.get(v, 0)) for v in ("OK", "REVIEW", "NG")}

    def events(
        self,
        station: str | None = None,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Station events, newest first: of a station, in [since, until), of some kinds."""
        self._ensure_schema()
        query = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
        if station is not None:
            query = query.where(EventRow.station == station)
        if since is not None:
            query = query.where(EventRow.at >= _utc(since))
        if until is not None:
            query = query.where(EventRow.at < _utc(until))
        if kinds is not None:
            query = query.where(EventRow.kind.in_(list(kinds)))
        with Session(self.engine) as session:
            return [
                {"station": e.station, "at": stored_utc(e.at).isoformat(), "kind": e.kind, "detail": e.detail}
                for e in session.scalars(query)
            ]

    # -- users, tokens and the audit trail (lineguard.store.users, .audit) -------------

    def add_user(self, name: str, role: str, password: str) -> accounts.User:
        self._ensure_schema()
        return accounts.add_user(self.engine, _USER_TABLES, name, role, password)

    def users(self) -> list[accounts.User]:
        self._ensure_schema()
        return accounts.users(self.engine, _USER_TABLES)

    def set_user(
        self, name: str, *, role: str | None = None, disabled: bool | None = None, password: str | None = None
    ) -> accounts.User:
        self._ensure_schema()
        return accounts.set_user(
            self.engine, _USER_TABLES, name, role=role, disabled=disabled, password=password
        )

    def check_password(self, name: str, password: str) -> accounts.User | None:
        self._ensure_schema()
        return accounts.check_password(self.engine, _USER_TABLES, name, password)

    def issue_token(self, name: str, label: str = "") -> str:
        self._ensure_schema()
        return accounts.issue_token(self.engine, _USER_TABLES, name, label)

    def revoke_tokens(self, name: str) -> int:
        self._ensure_schema()
        return accounts.revoke_tokens(self.engine, _USER_TABLES, name)

    def token_user(self, token: str) -> accounts.User | None:
        self._ensure_schema()
        return accounts.token_user(self.engine, _USER_TABLES, token)

    def audit(
        self, station: str, actor: str, action: str, target: str, before: Any = None, after: Any = None
    ) -> trail.AuditEntry:
        """Append to the audit trail (raises when the database cannot take it: a change that
        cannot be audited should not be made)."""
        self._ensure_schema()
        return trail.append(self.engine, _AUDIT_TABLE, station, actor, action, target, before, after)

    def audit_entries(self, after_seq: int = 0, limit: int = 1000) -> list[trail.AuditEntry]:
        self._ensure_schema()
        return trail.entries(self.engine, _AUDIT_TABLE, after_seq, limit)

    def verify_audit(self) -> trail.Verification:
        self._ensure_schema()
        return trail.verify(self.engine, _AUDIT_TABLE)

    # -- a shift's summary (lineguard.store.summary) --------------------------------------

    def shift_counts(self, period: summary.Period) -> summary.ShiftCounts:
        """Counts by recipe and verdict, by check and decision, the reasons checks could not
        judge, the reviewers' defect classes, and the measurements with specification limits."""
        self._ensure_schema()
        return summary.shift_counts(self.engine, _SUMMARY_TABLES, period)

    def worst_parts(self, period: summary.Period, check: str, n: int = 6) -> list[summary.Worst]:
        self._ensure_schema()
        return summary.worst_parts(self.engine, _SUMMARY_TABLES, period, check, n)

    # -- the review queue (lineguard.store.reviews) ---------------------------------------

    def review_queue(self, station: str, limit: int = 100, offset: int = 0) -> list[reviews.QueuedPart]:
        """Parts waiting for review, oldest first."""
        self._ensure_schema()
        return reviews.queue(self.engine, _REVIEW_TABLES, station, limit, offset, datetime.now(UTC))

    def review_queue_length(self, station: str) -> int:
        self._ensure_schema()
        return reviews.queue_length(self.engine, _REVIEW_TABLES, station)

    def claim_review(self, station: str, reviewer: str, minutes: float) -> reviews.QueuedPart | None:
        """The next part for ``reviewer`` (held for ``minutes``); None when nothing waits."""
        self._ensure_schema()
        return reviews.claim(self.engine, _REVIEW_TABLES, station, reviewer, minutes, datetime.now(UTC))

    def add_review(
        self,
        station: str,
        uid: str,
        reviewer: str,
        result: reviews.ReviewResult,
        defect_class: str = "",
        note: str = "",
    ) -> reviews.Review:
        self._ensure_schema()
        return reviews.submit(
            self.engine,
            _REVIEW_TABLES,
            station,
            uid,
            reviewer,
            result,
            defect_class,
            note,
            datetime.now(UTC),
        )

    def reviews_of(self, station: str, uid: str) -> list[reviews.Review]:
        self._ensure_schema()
        return reviews.reviews_of(self.engine, _REVIEW_TABLES, station, uid)

    def review_counts(
        self, station: str, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
        """Parts decided per verdict, and (good, defect) reviews of the sampled ones."""
        self._ensure_schema()
        return reviews.review_counts(self.engine, _REVIEW_TABLES, station, since, until)

    def labelled_parts(
        self,
        station: str,
        since: datetime | None = None,
        until: datetime | None = None,
        station_ok: bool = True,
        page: int = 500,
    ) -> Iterator[tuple[PartRecord, reviews.Review | None]]:
        """The parts a person labelled, each with its latest review, and (``station_ok``) the OK
        parts nobody reviewed, oldest first; read a page at a time, never all at once."""
        self._ensure_schema()
        latest = (
            select(func.max(ReviewRow.id).label("id"))
            .where(ReviewRow.station == station)
            .group_by(ReviewRow.uid)
            .subquery()
        )
        review = aliased(ReviewRow, select(ReviewRow).join(latest, latest.c.id == ReviewRow.id).subquery())
        wanted: ColumnElement[bool] = review.id.is_not(None)
        if station_ok:
            wanted = or_(wanted, PartRow.verdict == "OK")
        query = (
            select(PartRow, review)
            .options(_WITH_CHECKS)
            .outerjoin(review, and_(review.station == PartRow.station, review.uid == PartRow.uid))
            .where(PartRow.station == station, wanted)
            .order_by(PartRow.id)
            .limit(page)
        )
        if since is not None:
            query = query.where(PartRow.decided_at >= _utc(since))
        if until is not None:
            query = query.where(PartRow.decided_at < _utc(until))
        after = 0
        while True:
            with Session(self.engine) as session:
                rows = session.execute(query.where(PartRow.id > after)).all()
                found = [(_from_row(part), None if r is None else _review(r)) for part, r in rows]
            if not found:
                return
            after = rows[-1][0].id
            yield from found

    def value_subgroups(self, grouping: Grouping, value: str = "score") -> ValueSubgroups:
        """A check's score or measurement ``value``, aggregated per subgroup by the database."""
        self._ensure_schema()
        return value_subgroups(self.engine, _TABLES, grouping, value)

    def reject_subgroups(self, grouping: Grouping, rejected: tuple[str, ...] = ("NG",)) -> RejectSubgroups:
        """Parts a check judged, and rejected, per subgroup (a p chart's counts)."""
        self._ensure_schema()
        return reject_subgroups(self.engine, _TABLES, grouping, rejected)

    def close(self) -> None:
        self.engine.dispose()


def _refused_for_content(exc: Exception) -> bool:
    """The database took the statement and said no to the values (too long, invalid text, a
    constraint), as opposed to being unreachable: retrying the same record can never succeed."""
    # ValueError / TypeError (UnicodeEncodeError among them): raised while binding the values,
    # before the database is even asked.
    return isinstance(exc, DataError | IntegrityError | ValueError | TypeError)


# Part and check fields stored as they are; the times get their own handling below.
PART_FIELDS = ("station", "uid", "part_id", "verdict", "reason", "recipe")
CHECK_FIELDS = tuple(f.name for f in fields(CheckRecord) if f.name != "measurements")
MEASUREMENT_FIELDS = tuple(f.name for f in fields(Measurement))


def _check_values(source: object) -> dict[str, Any]:
    values = {name: getattr(source, name) for name in CHECK_FIELDS}
    # Plain float dicts in both directions (no numpy scalars into JSON, no shared dicts out).
    for name in ("thresholds", "timings_ms"):
        values[name] = {str(k): float(v) for k, v in (values[name] or {}).items()}
    return values


def _review(row: ReviewRow) -> reviews.Review:
    return reviews.Review(
        station=row.station,
        uid=row.uid,
        reviewer=row.reviewer,
        at=stored_utc(row.at),
        result=row.result,  # type: ignore[arg-type]
        defect_class=row.defect_class,
        note=row.note,
        basis=row.basis,  # type: ignore[arg-type]
    )


def _to_row(part: PartRecord, via_journal: bool) -> PartRow:
    return PartRow(
        **{name: getattr(part, name) for name in PART_FIELDS},
        decided_at=_utc(part.decided_at),
        recorded_at=datetime.now(UTC),
        via_journal=via_journal,
        checks=[
            CheckRow(
                **_check_values(c),
                measurements=[_measurement_row(m) for m in c.measurements],
            )
            for c in part.checks
        ],
    )


def _utc(value: datetime) -> datetime:
    """Stored in UTC: SQLite keeps no time zone, so every value must share one."""
    if value.tzinfo is None:
        raise ValueError("times given to the record must carry a time zone")
    return value.astimezone(UTC)


def _from_row(row: PartRow) -> PartRecord:
    return PartRecord(
        **{name: getattr(row, name) for name in PART_FIELDS},
        decided_at=stored_utc(row.decided_at),
        checks=tuple(_check_from_row(c) for c in sorted(row.checks, key=lambda c: c.id)),
    )


def _measurement_row(m: Measurement) -> MeasurementRow:
    return MeasurementRow(**{**{k: getattr(m, k) for k in MEASUREMENT_FIELDS}, "detail": list(m.detail)})


def _check_from_row(row: CheckRow) -> CheckRecord:
    measurements = tuple(
        Measurement(**{**{k: getattr(m, k) for k in MEASUREMENT_FIELDS}, "detail": tuple(m.detail or ())})
        for m in sorted(row.measurements, key=lambda m: m.id)
    )
    return CheckRecord(**_check_values(row), measurements=measurements)
