"""A real Mosquitto broker on loopback for the tests (Debian's package, installed by scripts/setup.sh):
a password file, a TLS listener with a certificate made here, and a plain one."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path

from postgres_server import free_port

# Debian puts the broker in /usr/sbin, which a non-root PATH may lack.
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("LineGuard test CA"))
        .issuer_name(name("LineGuard test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class Mosquitto:
    """``port``: plain TCP; ``tls_port``: TLS (CA in ``certificates["ca"]``); one user, no anonymous."""

    def __init__(self, folder: Path, user: str = "node", password: str = "node-password-1") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.user, self.password = user, password
        self.certificates = make_certificates(folder)
        passwords = folder / "passwords"
        subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwords), user, password], check=True)
        self.port, self.tls_port = free_port(), free_port()
        c = self.certificates
        lines = [
            "persistence false",
            "allow_anonymous false",
            f"password_file {passwords}",
            f"listener {self.port} 127.0.0.1",
            f"listener {self.tls_port} 127.0.0.1",
            f"cafile {c['ca']}",
            f"certfile {c['cert']}",
            f"keyfile {c['key']}",
            f"log_dest file {folder / 'mosquitto.log'}",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # else it drops to "mosquitto", who cannot read tmp files
        conf = folder / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        import socket

        end = time.monotonic() + 10
        for port in (self.port, self.tls_port):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.process.stderr.read().decode()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < end, "mosquitto did not start listening"
                    time.sleep(0.05)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
