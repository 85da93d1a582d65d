"""Writing a bundle's files: the manifest with each file's checksum, the optional zip."""

from __future__ import annotations

import zipfile
from pathlib import Path

from lineguard.checksums import file_sha256
from lineguard.runtime.manifest import MANIFEST_FILE, BundleManifest, FileEntry, manifest_json


def file_entries(folder: Path, names: list[str]) -> dict[str, FileEntry]:
    """The manifest's record of each file: sha256 and size, checked when the bundle loads."""
    return {
        name: FileEntry(sha256=file_sha256(folder / name), bytes=(folder / name).stat().st_size)
        for name in names
    }


def write_manifest(folder: Path, manifest: BundleManifest) -> None:
    (folder / MANIFEST_FILE).write_text(manifest_json(manifest))


def zip_bundle(folder: Path, archive: Path) -> Path:
    """Pack a bundle folder into one .zip, every file at the archive root."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.iterdir()):
            if file.is_file():
                zf.write(file, file.name)
    return archive
