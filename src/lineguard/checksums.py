"""Reading and verifying the files LineGuard saves: versioned JSON documents, checksums."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lineguard import __version__
from lineguard.errors import ModelFileError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_versioned_json(path: Path, fmt: str, max_schema: int, what: str) -> dict[str, Any]:
    """Parse a saved JSON document; refuse another format or a schema newer than this code reads."""
    if not path.is_file():
        raise ModelFileError(f"{path}: not found (is {path.parent} a LineGuard {what}?)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise ModelFileError(f"{path}: not a LineGuard {what}")
    version = int(doc.get("schema_version", 0))
    if version > max_schema:
        raise ModelFileError(
            f"{path}: {what} schema {version} is newer than this LineGuard ({__version__}) "
            f"reads ({max_schema}); upgrade lineguard on this machine"
        )
    return doc
