"""The station's record: parts, checks and events in a database, a journal for when it is down."""

from lineguard.store.archive import ImageArchive, keep_image
from lineguard.store.database import RecordStore, sqlite_url
from lineguard.store.journal import Journal
from lineguard.store.records import CheckRecord, PartRecord
from lineguard.store.statistics import Grouping, NoData, RejectSubgroups, ValueSubgroups

__all__ = [
    "CheckRecord",
    "Grouping",
    "ImageArchive",
    "Journal",
    "NoData",
    "PartRecord",
    "RecordStore",
    "RejectSubgroups",
    "ValueSubgroups",
    "keep_image",
    "sqlite_url",
]
