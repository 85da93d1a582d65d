"""The bundle manifest: what a bundle holds and how to check it (JSON, numpy-free)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from lineguard.checksums import file_sha256, read_versioned_json
from lineguard.errors import ModelFileError

BUNDLE_FORMAT = "lineguard-bundle"
BUNDLE_SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"


# A zipped bundle is unpacked before use; this bounds what a damaged or hostile archive can write.
MAX_UNPACKED_BYTES = 4 << 30


def is_bundle(path: str | Path) -> bool:
    """A bundle folder, or a .zip holding one (files at the archive root)."""
    path = Path(path)
    if path.is_dir():
        return (path / MANIFEST_FILE).is_file()
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return MANIFEST_FILE in zf.namelist()
    return False


def unpack_bundle(archive: Path, folder: Path) -> Path:
    """Extract a zipped bundle into ``folder``: plain files at the root only, size bounded."""
    if not zipfile.is_zipfile(archive):
        raise ModelFileError(f"{archive}: neither a bundle folder nor a zip archive")
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            name = info.filename
            if info.is_dir() or "/" in name or "\\" in name or name in ("", ".", ".."):
                raise ModelFileError(
                    f"{archive}: unexpected entry {name!r}; a bundle zip holds plain files only"
                )
        if sum(info.file_size for info in members) > MAX_UNPACKED_BYTES:
            raise ModelFileError(f"{archive}: unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB")
        if MANIFEST_FILE not in {info.filename for info in members}:
            raise ModelFileError(f"{archive}: no {MANIFEST_FILE} at the archive root; not a bundle")
        zf.extractall(folder)
    return folder


def manifest_sha256(bundle: str | Path) -> str:
    """The sha256 of a bundle's manifest.json (folder or zip): what a recipe pins and the record keeps.
    The manifest lists every other file's sha256, so this one hash pins the whole bundle."""
    import hashlib

    bundle = Path(bundle)
    if bundle.is_dir():
        return file_sha256(bundle / MANIFEST_FILE)
    with zipfile.ZipFile(bundle) as zf:
        return hashlib.sha256(zf.read(MANIFEST_FILE)).hexdigest()


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
