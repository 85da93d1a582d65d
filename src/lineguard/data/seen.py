"""Which images a model has seen, told by their content, not their path.

A fit records the digest of every image it fitted, validated or calibrated on; ``evaluate``
then leaves those images out of the test split, and says how many, wherever the dataset lies
now — moved, copied to another machine or renamed. Models saved before digests (a list of
absolute paths) are still honoured by path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lineguard.checksums import file_sha256

T = TypeVar("T")

# 128 bits of the file's sha256: collisions are out of reach, and a 10,000-image fit record
# stays a few hundred kB.
DIGEST_HEX = 32


def content_digest(path: str | Path) -> str:
    return file_sha256(Path(path))[:DIGEST_HEX]


def content_digests(paths: Iterable[str | Path]) -> list[str]:
    """Sorted, distinct digests (what a fit record keeps)."""
    return sorted({content_digest(p) for p in paths})


@dataclass(frozen=True)
class SeenImages:
    digests: frozenset[str] = frozenset()
    paths: frozenset[str] = frozenset()  # older fit records: resolved paths on the training machine

    @classmethod
    def of(cls, metadata: Mapping[str, Any], key: str = "seen") -> SeenImages:
        """From a fit record: ``{key}_sha256`` digests and, from older records, ``{key}_files``."""
        return cls(
            frozenset(metadata.get(f"{key}_sha256") or ()),
            frozenset(str(p) for p in metadata.get(f"{key}_files") or ()),
        )

    def __bool__(self) -> bool:
        return bool(self.digests or self.paths)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str | Path) or not self:
            return False
        path = Path(path)
        if str(path.resolve()) in self.paths:
            return True
        return bool(self.digests) and path.is_file() and content_digest(path) in self.digests

    def leave_out(self, samples: Sequence[T], what: str = "the test split") -> tuple[list[T], int]:
        """``samples`` without the seen ones, and how many were left out. Datasets hold byte-identical
        images under other names (KolektorSDD: 17 pairs, some across items), so a test split can
        hold a training image by content even when no path repeats."""
        kept = [s for s in samples if getattr(s, "path", None) not in self]
        if samples and not kept:
            raise ValueError(f"{what}: no test images left (all were used in fitting or validation)")
        return kept, len(samples) - len(kept)


NONE_SEEN = SeenImages()
