"""Part images on disk, content-addressed: a file's name is its sha256, so a record that names
it can always prove it is the very image that was judged, and duplicates are stored once."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np


def keep_image(verdict: str, ok_index: int, keep_ok_every: int) -> bool:
    """The retention policy: every NG and REVIEW part, and one OK part in ``keep_ok_every``
    (0 keeps none). ``ok_index`` counts OK parts from 0."""
    if verdict != "OK":
        return True
    return keep_ok_every > 0 and ok_index % keep_ok_every == 0


class ImageArchive:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.png"

    def put_png(self, data: bytes) -> str:
        """Store encoded PNG bytes; returns their sha256. Written whole or not at all."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        if target.exists():
            return sha
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def put_image(self, image: np.ndarray) -> str:
        """Store an RGB or grey image (8 or 16 bit) losslessly as PNG."""
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        ok, encoded = cv2.imencode(".png", bgr)
        if not ok:
            raise ValueError(f"cannot encode a {image.shape} {image.dtype} image as PNG")
        return self.put_png(encoded.tobytes())

    def get_png(self, sha256: str) -> bytes:
        """The stored bytes, verified against their name."""
        path = self.path(sha256)
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise OSError(f"{path}: content does not match its sha256 (damaged on disk)")
        return data
