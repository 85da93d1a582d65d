"""The audit trail: every change people make — a changeover, a review, a user added, a token issued
— appended with who, when, what, and the state before and after. Append-only and chained: each
entry carries the sha256 of the one before it, so an entry edited or deleted afterwards breaks
the chain at that point (``verify``). Deleting the newest entries leaves an intact shorter chain;
compare the head (count and hash) with one kept elsewhere (the station writes it to
``STATE/audit-head`` on every append) to catch that too.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

GENESIS = "0" * 64  # the "previous hash" of the first entry
APPEND_ATTEMPTS = 5
MAX_TEXT = 4000  # characters of a before/after document kept (bounded: input enters here)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str  # ISO 8601, UTC, as hashed
    station: str
    actor: str
    action: str
    target: str
    before: str  # JSON
    after: str  # JSON
    previous: str
    digest: str


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str  # the last entry's hash (GENESIS when empty)
    broken_at: int | None  # seq of the first entry that does not chain; None when intact
    why: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def _document(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_TEXT else json.dumps({"truncated": text[:MAX_TEXT]})


def digest(previous: str, seq: int, at: str, station: str, actor: str, action: str, target: str,
           before: str, after: str) -> str:  # fmt: skip
    """The entry's sha256 over the previous hash and every field, in a fixed order."""
    fields = [previous, str(seq), at, station, actor, action, target, before, after]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()


_append_lock = threading.Lock()  # one appender at a time in this process: the chain is a sequence


def append(
    engine: Engine, table: Table, station: str, actor: str, action: str, target: str, before: Any, after: Any
) -> AuditEntry:
    """Add one entry after the newest. Serialised in-process; across processes the sequence
    number is the key, so of two appends chaining to one predecessor one is refused and retried."""
    before_text, after_text = _document(before), _document(after)
    for attempt in range(APPEND_ATTEMPTS):
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        try:
            with _append_lock, engine.begin() as connection:
                newest = select(table.c.seq, table.c.digest).order_by(table.c.seq.desc()).limit(1)
                if engine.dialect.name == "postgresql":
                    newest = newest.with_for_update()
                last = connection.execute(newest).first()
                seq, previous = (1, GENESIS) if last is None else (last.seq + 1, last.digest)
                entry = AuditEntry(
                    seq, at, station, actor, action, target, before_text, after_text, previous,
                    digest(previous, seq, at, station, actor, action, target, before_text, after_text),
                )  # fmt: skip
                connection.execute(table.insert().values(**entry.__dict__))
            return entry
        except IntegrityError:  # another process appended the same seq first: chain after it
            if attempt == APPEND_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def entries(engine: Engine, table: Table, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
    query = select(table).where(table.c.seq > after_seq).order_by(table.c.seq).limit(limit)
    with engine.connect() as connection:
        return [
            AuditEntry(**{k: row[k] for k in AuditEntry.__dataclass_fields__})
            for row in connection.execute(query).mappings()
        ]


def verify(engine: Engine, table: Table, page: int = 5000) -> Verification:
    """Walk the chain in order, a page at a time: each entry's hash recomputed and its link to the
    one before checked, and the sequence checked for gaps (a deleted entry)."""
    previous, expected, count = GENESIS, 1, 0
    while True:
        batch = entries(engine, table, expected - 1, page)
        if not batch:
            return Verification(count, previous, None)
        for e in batch:
            if e.seq != expected:
                return Verification(count, previous, expected, f"entry {expected} is missing (deleted)")
            if e.previous != previous:
                return Verification(
                    count, previous, e.seq, f"entry {e.seq} does not follow entry {e.seq - 1}"
                )
            fields = (e.seq, e.at, e.station, e.actor, e.action, e.target, e.before, e.after)
            if digest(previous, *fields) != e.digest:
                return Verification(count, previous, e.seq, f"entry {e.seq} was changed after it was written")
            previous, expected, count = e.digest, expected + 1, count + 1


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def write_head(path, entry: AuditEntry) -> None:
    """Keep the chain's head (``seq digest``) outside the database, replaced atomically: what a
    truncated chain is checked against."""
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{entry.seq} {entry.digest}\n")
    os.replace(partial, path)


def check_head(found: Verification, entries_at, path) -> str:
    """ "" when the chain reaches the head kept at ``path`` (or there is none); else why not.
    ``entries_at(seq)``: the chain's entry of that number, or None."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        return ""
    try:
        seq_text, kept = path.read_text().split()
        seq = int(seq_text)
    except ValueError:
        return f"{path}: not a chain head (expected 'SEQ SHA256')"
    if seq > found.entries:
        ends = found.entries
        return f"the chain ends at entry {ends}, but {path} says it reached entry {seq}: entries were deleted"
    entry = entries_at(seq)
    if entry is None or entry.digest != kept:
        return f"entry {seq} is not the one {path} recorded: the chain was rewritten"
    return ""


HEAD_FILE = "audit-head"  # in the station's state folder


def record_change(store, state_dir, station: str, actor: str, action: str, target: str,
                  before: Any = None, after: Any = None) -> AuditEntry:  # fmt: skip
    """Append a change to ``store``'s trail and keep the new head in ``state_dir``."""
    from pathlib import Path

    entry = store.audit(station, actor, action, target, before, after)
    write_head(Path(state_dir) / HEAD_FILE, entry)
    return entry
