"""Report channels that need no PLC: a JSON-lines file and a webhook (HTTP POST per part).

Sinks get a part only after the record holds it. They must not block the station:
the webhook posts from its own thread through a bounded queue.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lineguard.results import ErrorCode, PublishedResult
from lineguard.sinks.handshake import Handshake
from lineguard.spc.drift import DriftEvent

log = logging.getLogger("lineguard.sinks")


def claim_port(host: str, port: int, what: str) -> None:
    """Refuse to start a server on a port someone else holds: a check that merely connects would
    talk to that other program and call it ours."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(f"{what}: cannot listen on {host}:{port} ({exc.strerror}; port in use?)") from None


def drift_message(check: str, event: DriftEvent) -> dict[str, Any]:
    """A drift alarm as the JSON sinks send it: ``"type": "drift"`` tells it from a part's result."""
    return {
        "type": "drift",
        "check": check,
        **asdict(event),
        "at": event.at.isoformat(),
        "since": event.since.isoformat(),
    }


class Sink:
    """The interface every sink implements; ``start`` gets the station (for triggers and status)."""

    def start(self, station: Any) -> None:
        pass

    def publish(self, result: PublishedResult) -> None:
        raise NotImplementedError

    def set_state(self, state: str, error_code: ErrorCode) -> None:
        pass

    def drift(self, check: str, event: DriftEvent) -> None:
        """A drift alarm rose or cleared at ``check`` (``drift_message`` says it as JSON)."""

    def stats(self) -> dict[str, Any]:
        """What the sink has done (sent, failed, dropped...), for /status and /metrics."""
        return {}

    def problem(self) -> str | None:
        """Why the sink is not doing its job right now (a server down, results dropped); None if fine."""
        return None

    def close(self) -> None:
        pass


class PlcServerSink(Sink):
    """A PLC server (Modbus, OPC UA): results go through the shared handshake; the server runs in
    its own thread, and a dead thread is the sink's problem."""

    server = "PLC server"
    handshake: Handshake
    _thread: threading.Thread | None = None

    def publish(self, result: PublishedResult) -> None:
        self.handshake.publish(result)

    def stats(self) -> dict[str, Any]:
        return dict(self.handshake.state().counters)

    def problem(self) -> str | None:
        if self._thread is not None and not self._thread.is_alive():
            return f"{self.server} stopped"
        return None


class JsonlSink(Sink):
    """One JSON object per decided part, appended and flushed (a line a log shipper can follow)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def publish(self, result: PublishedResult) -> None:
        self._write(asdict(result))

    def drift(self, check: str, event: DriftEvent) -> None:
        self._write(drift_message(check, event))

    def _write(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class WebhookSink(Sink):
    """POSTs each result as JSON to a URL (MES, a message bridge). Bounded: when the receiver is down
    longer than the queue lasts, results are counted as dropped (they stay in the record)."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 2.0,
        queue_size: int = 1000,
        token_env: str | None = None,
        retries: int = 2,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s)://, got {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.token = os.environ.get(token_env, "") if token_env else ""
        if token_env and not self.token:
            raise ValueError(f"webhook: environment variable {token_env} (its bearer token) is not set")
        # Each queued item: (what it is, for the log; its JSON body)
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=queue_size)
        self.sent = self.failed = self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def publish(self, result: PublishedResult) -> None:
        self._put(f"part {result.uid}", asdict(result))

    def drift(self, check: str, event: DriftEvent) -> None:
        self._put(f"drift alarm {check}/{event.statistic} {event.state}", drift_message(check, event))

    def _put(self, what: str, message: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((what, message))
        except queue.Full:
            self.dropped += 1

    def _post(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, allow_nan=False).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            what, message = item
            for attempt in range(self.retries + 1):
                try:
                    self._post(message)
                    self.sent += 1
                    break
                except (urllib.error.URLError, OSError) as exc:
                    if attempt == self.retries:
                        self.failed += 1
                        log.warning("webhook %s: %s not delivered (%s)", self.url, what, exc)

    def stats(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "queued": self._queue.qsize(),
        }

    def problem(self) -> str | None:
        if self.dropped or self.failed:
            return (
                f"webhook {self.url}: {self.failed} results not delivered, "
                f"{self.dropped} dropped (queue full)"
            )
        return None

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=self.timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout=self.timeout_s * (self.retries + 1) + 1)
