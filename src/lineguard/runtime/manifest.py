"""The bundle manifest: what a bundle holds and how to check it (JSON, numpy-free)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lineguard.checksums import file_sha256
from lineguard.errors import ModelFileError

BUNDLE_FORMAT = "lineguard-bundle"
BUNDLE_SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_FILE).is_file()


def read_manifest(bundle: Path) -> dict[str, Any]:
    """Parse and verify a bundle's manifest: format, schema version, every file's sha256."""
    path = bundle / MANIFEST_FILE
    if not path.is_file():
        raise ModelFileError(f"{path}: not found (is {bundle} a LineGuard bundle?)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise ModelFileError(f"{path}: not a LineGuard bundle manifest")
    version = int(manifest.get("schema_version", 0))
    if version > BUNDLE_SCHEMA_VERSION:
        raise ModelFileError(
            f"{path}: bundle schema {version} is newer than this runtime reads "
            f"({BUNDLE_SCHEMA_VERSION}); upgrade lineguard on this machine"
        )
    for name, entry in (manifest.get("files") or {}).items():
        file = bundle / name
        if not file.is_file():
            raise ModelFileError(f"{file}: listed in the manifest but missing")
        if file_sha256(file) != entry.get("sha256"):
            raise ModelFileError(f"{file}: sha256 differs from the manifest (damaged or replaced)")
    return manifest
