"""The OPC UA server's trust list: which client application certificates may open a secure
channel. A certificate is trusted when its file (DER or PEM) is in the trusted folder; any other is
refused (BadCertificateUntrusted) and a copy is kept in the rejected folder, so that an engineer
can look at it and trust it (``lineguard opcua trust STATION.yaml CERT``), as OPC UA tools do.
The folders are read on every new channel: trusting a client needs no restart.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("lineguard.sinks.opcua")

MAX_CERTIFICATE_BYTES = 64 * 1024


def load_certificate(path: Path) -> Any:
    """An x509 certificate from a DER or PEM file; ValueError naming the file otherwise."""
    from cryptography import x509

    data = path.read_bytes()
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise ValueError(f"{path}: {len(data)} bytes is no certificate (limit {MAX_CERTIFICATE_BYTES})")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{path}: not an X.509 certificate (DER or PEM): {exc}") from None


def fingerprint(certificate: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def describe(certificate: Any) -> str:
    return f"{certificate.subject.rfc4514_string()} (sha256 {fingerprint(certificate)[:16]}…)"


class TrustList:
    def __init__(self, folder: Path, on_refused: Callable[[str], None] | None = None) -> None:
        self.trusted = folder / "trusted"
        self.rejected = folder / "rejected"
        self.on_refused = on_refused

    def fingerprints(self) -> set[str]:
        found = set()
        for path in sorted(self.trusted.glob("*")):
            if path.suffix.lower() not in (".der", ".pem", ".crt"):
                continue
            try:
                found.add(fingerprint(load_certificate(path)))
            except (ValueError, OSError) as exc:
                log.error("OPC UA trust list: %s (ignored)", exc)
        return found

    def trust(self, path: Path) -> Path:
        """Add a client certificate (copied as DER, named by its fingerprint)."""
        from cryptography.hazmat.primitives import serialization

        certificate = load_certificate(path)
        self.trusted.mkdir(parents=True, exist_ok=True)
        target = self.trusted / f"{fingerprint(certificate)[:32]}.der"
        target.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
        return target

    async def validate(self, certificate: Any, application: Any) -> None:
        """asyncua's certificate validator: refuse what is not trusted or not valid now."""
        from datetime import UTC, datetime

        from asyncua import ua
        from asyncua.common.utils import ServiceError
        from cryptography.hazmat.primitives import serialization

        now = datetime.now(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            self._refused(f"expired or not yet valid: {describe(certificate)}")
            raise ServiceError(ua.StatusCodes.BadCertificateTimeInvalid)
        if fingerprint(certificate) in self.fingerprints():
            return
        self.rejected.mkdir(parents=True, exist_ok=True)
        kept = self.rejected / f"{fingerprint(certificate)[:32]}.der"
        kept.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
        uri = getattr(application, "ApplicationUri", "") or "?"
        self._refused(f"untrusted client {uri}: {describe(certificate)}; kept as {kept}")
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    def _refused(self, why: str) -> None:
        log.warning("OPC UA certificate refused: %s", why)
        if self.on_refused is not None:
            self.on_refused(why)
