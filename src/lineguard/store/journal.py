"""An append-only local journal: where decisions go while the database cannot take them.

One JSON line per part, flushed and fsynced before ``append`` returns, so a
decision reported to the line survives a crash or power cut. A torn last line
(the process killed mid-write: that part was never reported) is cut off when
the journal is opened, and its size reported; every whole line before it is kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from lineguard.errors import DataError
from lineguard.store.records import PartRecord


class JournalError(DataError):
    """The journal holds a line that is not a part record (disk damage, an edit by hand)."""


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.torn_bytes = self._cut_torn_tail()
        self._count = sum(1 for _ in self.records())  # kept in memory: one writer per journal

    def _cut_torn_tail(self) -> int:
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return 0
        with self.path.open("r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        return len(data) - keep

    def append(self, record: PartRecord) -> None:
        self.append_many([record])

    def append_many(self, records: list[PartRecord]) -> None:
        """All of them, with one fsync (group commit)."""
        append_json_lines(self.path, [r.to_dict() for r in records])
        self._count += len(records)

    def __len__(self) -> int:
        return self._count

    def records(self) -> Iterator[PartRecord]:
        """Every whole record, oldest first."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8", errors="surrogateescape") as fh:
            for number, line in enumerate(fh, 1):
                if not line.endswith("\n"):
                    break  # torn by a crash mid-write after this journal was opened
                try:
                    record = PartRecord.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    # Not a torn tail: damage inside the file. Stop rather than guess; say where.
                    raise JournalError(
                        self.path,
                        f"line {number} is damaged ({type(exc).__name__}: {exc}); the parts on it "
                        f"are not in the database yet: repair or remove that line, keeping the file",
                    ) from None
                yield record

    def consume(self, count: int) -> None:
        """Drop the first ``count`` records (they are in the database now), atomically."""
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True) if self.path.exists() else []
        replace_lines(self.path, lines[count:])
        self._count = max(0, self._count - count)


def append_json_lines(path: Path, docs: list[dict]) -> None:
    """One JSON line per document, appended and fsynced before returning (one fsync for all)."""
    text = "".join(json.dumps(doc, separators=(",", ":")) + "\n" for doc in docs)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def replace_lines(path: Path, lines: list[str]) -> None:
    """Replace the file's content with ``lines``, atomically: the old or the new file, never half."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Quarantine:
    """Parts the database refused for their content (not for being down), each with the reason:
    kept, fsynced, out of the way of the parts behind them. An engineer reads and re-enters them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: PartRecord, reason: str) -> None:
        append_json_lines(self.path, [{"reason": reason, "part": record.to_dict()}])

    def _docs(self) -> Iterator[dict]:
        if self.path.exists():
            with self.path.open(encoding="utf-8") as fh:
                yield from (json.loads(line) for line in fh if line.endswith("\n"))

    def records(self) -> Iterator[PartRecord]:
        return (PartRecord.from_dict(doc["part"]) for doc in self._docs())

    def reasons(self) -> list[str]:
        return [doc["reason"] for doc in self._docs()]

    def __len__(self) -> int:
        return sum(1 for _ in self._docs())
