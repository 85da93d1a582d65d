"""The bundle manifest: what a bundle holds and how to check it (JSON, numpy-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lineguard.checksums import file_sha256, read_versioned_json
from lineguard.errors import ModelFileError

BUNDLE_FORMAT = "lineguard-bundle"
BUNDLE_SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_FILE).is_file()


def read_manifest(bundle: Path) -> dict[str, Any]:
    """Parse and verify a bundle's manifest: format, schema version, every file's sha256."""
    manifest = read_versioned_json(bundle / MANIFEST_FILE, BUNDLE_FORMAT, BUNDLE_SCHEMA_VERSION, "bundle")
    for name, entry in (manifest.get("files") or {}).items():
        file = bundle / name
        if not file.is_file():
            raise ModelFileError(f"{file}: listed in the manifest but missing")
        if file_sha256(file) != entry.get("sha256"):
            raise ModelFileError(f"{file}: sha256 differs from the manifest (damaged or replaced)")
    return manifest
