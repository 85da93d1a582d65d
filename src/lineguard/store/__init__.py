"""The station's record: parts, checks and events in a database, a journal for when it is down."""

from lineguard.store.database import RecordStore, sqlite_url
from lineguard.store.journal import Journal
from lineguard.store.records import CheckRecord, PartRecord

__all__ = ["CheckRecord", "Journal", "PartRecord", "RecordStore", "sqlite_url"]
