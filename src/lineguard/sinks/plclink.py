"""A PLC the station polls as a client (S7 data blocks, Logix tags): the shared handshake over a
transport, with a heartbeat, a watchdog and results kept in order across link cuts.

One thread per link reads the PLC's command area, feeds its edges to the ``Handshake`` and writes
the station's status back, every ``poll_ms``. A read or write that fails (or takes longer than
``timeout_s``), or a PLC heartbeat that stops changing, is a lost link: recorded as a
``plc_link_lost`` station event, then reconnected every ``reconnect_s``. While it is down, decided
parts are recorded as always and their results wait in the handshake's buffer; after the reconnect
the PLC gets them one by one, in order, through the usual ResultValid / ResultAck cycle. With
``on_plc_lost: hold`` the station also refuses new parts until the link is back.

A command area holding what no command means (bits that are reserved, a part ID longer than its
field, a negative job) is refused whole: the error code says COMMAND_INVALID, it is logged once
per distinct problem, and nothing else changes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from lineguard.results import ErrorCode, PublishedResult
from lineguard.sinks.basic import Sink
from lineguard.sinks.handshake import Handshake, HandshakeState

log = logging.getLogger("lineguard.sinks.plc")

VERDICT_CODES = {"OK": 1, "REVIEW": 2, "NG": 3}
HEARTBEAT_MODULO = 32768  # the station's heartbeat counts 0..32767 (fits an S7 INT / Logix INT)


class CommandInvalid(ValueError):
    """The PLC's command area holds something no command means (the whole command is ignored)."""


class PlcLinkError(OSError):
    """The PLC did not answer a read or a write (the link is lost)."""


@dataclass(frozen=True)
class PlcCommand:
    """What the PLC wrote, decoded and checked."""

    trigger: bool = False
    result_ack: bool = False
    error_reset: bool = False
    job_change: bool = False
    job: int = 0
    heartbeat: int = 0  # the PLC's own counter or toggle; any change shows it is alive
    part_id: str = ""


@dataclass(frozen=True)
class PlcStatus:
    """What the station writes back: the handshake's state, flattened to the PLC's signals."""

    ready: bool
    trigger_ack: bool
    result_valid: bool
    ok: bool
    ng: bool
    review: bool
    error: bool
    job_busy: bool
    job_ack: bool
    error_code: int
    job: int
    heartbeat: int
    seq: int
    verdict: int  # 0 none, 1 OK, 2 REVIEW, 3 NG
    buffered: int
    total: int
    ok_count: int
    ng_count: int
    review_count: int
    overflowed: int
    part_id: str

    @classmethod
    def of(cls, state: HandshakeState, heartbeat: int) -> PlcStatus:
        current: PublishedResult | None = state.current
        verdict = current.verdict if current is not None and state.result_valid else ""
        counters = state.counters
        return cls(
            ready=state.ready,
            trigger_ack=state.trigger_ack,
            result_valid=state.result_valid,
            ok=verdict == "OK",
            ng=verdict == "NG",
            review=verdict == "REVIEW",
            error=state.error,
            job_busy=state.job_busy,
            job_ack=state.job_ack,
            error_code=state.error_code,
            job=state.job,
            heartbeat=heartbeat % HEARTBEAT_MODULO,
            seq=current.seq if current is not None else 0,
            verdict=VERDICT_CODES.get(verdict, 0),
            buffered=state.buffered,
            total=counters.get("total", 0),
            ok_count=counters.get("OK", 0),
            ng_count=counters.get("NG", 0),
            review_count=counters.get("REVIEW", 0),
            overflowed=counters.get("overflowed", 0),
            part_id=current.part_id if current is not None else "",
        )


class JobChanges:
    """JobChange edges handed to the handshake on a thread of their own: a changeover takes
    seconds, and the PLC link (its heartbeat, the other signals) must not wait for it."""

    def __init__(self, handshake: Handshake) -> None:
        self.handshake = handshake
        self._edges: queue.Queue[tuple[bool, int] | None] = queue.Queue()
        self._last = False
        self._thread = threading.Thread(target=self._run, name="plc-jobs", daemon=True)
        self._thread.start()

    def offer(self, value: bool, number: int) -> None:
        """The JobChange signal as the PLC wrote it now (only its changes count)."""
        if value != self._last:
            self._last = value
            self._edges.put((value, number))

    def _run(self) -> None:
        while (edge := self._edges.get()) is not None:
            try:
                self.handshake.set_job_change(*edge)
            except Exception as exc:  # the station refused in a way it should not have: say so
                log.exception("job change %s: %s", edge, exc)
                self.handshake.set_error(ErrorCode.JOB_REFUSED)

    def close(self) -> None:
        self._edges.put(None)
        self._thread.join(timeout=5.0)


class HeartbeatWatch:
    """The PLC's heartbeat (a counter or toggle it writes): alive while it keeps changing."""

    def __init__(self, limit_s: float | None) -> None:
        self.limit_s = limit_s
        self.reset()

    def reset(self) -> None:
        self._beat: int | None = None
        self._changed_at = time.monotonic()

    def alive(self, beat: int) -> bool:
        """False once it has stood still for ``limit_s`` (the PLC program stopped while its CPU
        still answers); true again as soon as it moves. Always true without a limit."""
        now = time.monotonic()
        if beat != self._beat:
            self._beat, self._changed_at = beat, now
            return True
        return self.limit_s is None or now - self._changed_at <= self.limit_s


class LinkState:
    """Whether a PLC link is up, as every PLC link reports it: ``plc_link_lost`` /
    ``plc_link_restored`` station events (one per loss), /health, and ``on_plc_lost: hold``."""

    def __init__(self, describe: str, on_plc_lost: str = "continue") -> None:
        self.describe = describe
        self.on_plc_lost = on_plc_lost
        self.station: Any = None
        self.lost_since: datetime | None = None
        self.counters = {"link_lost": 0, "reconnects": 0}

    def lose(self, why: str) -> None:
        if self.lost_since is not None:
            return
        self.lost_since = datetime.now(UTC)
        self.counters["link_lost"] += 1
        detail = f"{self.describe}: {why}"
        log.error("PLC link lost: %s", detail)
        if self.station is not None:
            self.station.store.add_event(self.station.name, "plc_link_lost", detail)
            if self.on_plc_lost == "hold":
                self.station.hold(f"PLC link lost ({detail})")

    def restore(self) -> None:
        if self.lost_since is None:
            return
        down_s = (datetime.now(UTC) - self.lost_since).total_seconds()
        self.lost_since = None
        self.counters["reconnects"] += 1
        detail = f"{self.describe}: back after {down_s:.1f} s"
        log.warning("PLC link restored: %s", detail)
        if self.station is not None:
            self.station.store.add_event(self.station.name, "plc_link_restored", detail)
            if self.on_plc_lost == "hold":
                self.station.release(f"PLC link restored ({detail})")

    def problem(self) -> str | None:
        if self.lost_since is None:
            return None
        return f"PLC link to {self.describe} lost since {self.lost_since.isoformat()}"


class PlcTransport(Protocol):
    """One PLC's command and result areas. Every method raises PlcLinkError when the PLC does not
    answer; ``read_command`` raises CommandInvalid for a command area that means nothing."""

    describe: str  # "S7 PLC 10.0.0.5, DB 100 / DB 101": for events and /status

    def connect(self) -> None: ...

    def read_command(self) -> PlcCommand: ...

    def write_status(self, status: PlcStatus) -> None: ...

    def close(self) -> None: ...


class PlcClientSink(Sink):
    """The station's link to one PLC it polls (see the module docstring)."""

    def __init__(
        self,
        transport: PlcTransport,
        *,
        poll_ms: float = 10.0,
        reconnect_s: float = 0.5,
        plc_heartbeat_s: float | None = None,
        on_plc_lost: str = "continue",
        result_buffer: int = 1024,
    ) -> None:
        self.transport = transport
        self.poll_s = poll_ms / 1e3
        self.reconnect_s = reconnect_s
        self.plc_heartbeat_s = plc_heartbeat_s
        self.link = LinkState(transport.describe, on_plc_lost)
        self.heartbeat = HeartbeatWatch(plc_heartbeat_s)
        self.handshake = Handshake(result_buffer)
        self._station: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs: JobChanges | None = None
        self._connected = False
        self._heartbeat = 0
        self._refused: str | None = None  # the command problem last logged (logged once while it lasts)
        self._cycles = 0
        self._cycle_s = 0.0
        self.counters = {"commands_refused": 0, "cycles": 0}

    @classmethod
    def from_config(cls, transport: PlcTransport, config: Any) -> PlcClientSink:
        """The link for a PLC section of STATION.yaml (a PlcLinkConfig) over ``transport``."""
        return cls(
            transport,
            poll_ms=config.poll_ms,
            reconnect_s=config.reconnect_s,
            plc_heartbeat_s=config.plc_heartbeat_s,
            on_plc_lost=config.on_plc_lost,
            result_buffer=config.result_buffer,
        )

    # -- the station's side ---------------------------------------------------------------

    def start(self, station: Any) -> None:
        self._station = station
        self.link.station = station
        self.handshake.on_trigger = lambda part_id: station.trigger(part_id)
        self.handshake.on_job = lambda number: station.change_job(number, f"plc:{self.transport.describe}")
        self.handshake.set_job(station.job)
        self._jobs = JobChanges(self.handshake)
        self._thread = threading.Thread(target=self._run, name="plc-link", daemon=True)
        self._thread.start()

    def publish(self, result: PublishedResult) -> None:
        self.handshake.publish(result)

    def set_state(self, state: str, error_code: ErrorCode) -> None:
        self.handshake.set_ready(state == "running", error_code)

    def stats(self) -> dict[str, Any]:
        return {
            **self.handshake.state().counters,
            **self.counters,
            **self.link.counters,
            "connected": self._connected,
            "cycle_ms": round(self._cycle_s * 1e3, 3),
        }

    def problem(self) -> str | None:
        if self._thread is not None and not self._thread.is_alive():
            return f"PLC link to {self.transport.describe} stopped"
        return self.link.problem()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._jobs is not None:
            self._jobs.close()
        try:
            self.transport.close()
        except Exception as exc:  # closing a link that is already gone
            log.debug("closing %s: %s", self.transport.describe, exc)

    # -- the link -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._connected:
                try:
                    self.transport.connect()
                except Exception as exc:
                    self._lose(f"connect: {exc}", connected=False)
                    self._stop.wait(self.reconnect_s)
                    continue
                self._connected = True
                self.heartbeat.reset()
            start = time.perf_counter()
            try:
                self._cycle()
            except PlcLinkError as exc:
                self._lose(str(exc), connected=False)
                self._close_transport()
                continue
            except Exception as exc:  # a bug here must not kill the link: log it, keep polling
                log.exception("PLC link %s: %s", self.transport.describe, exc)
            elapsed = time.perf_counter() - start
            self._cycle_s = 0.9 * self._cycle_s + 0.1 * elapsed if self._cycles else elapsed
            self._cycles += 1
            self.counters["cycles"] = self._cycles
            self._stop.wait(max(0.0, self.poll_s - elapsed))

    def _cycle(self) -> None:
        alive = True  # a PLC answering with nonsense is still there
        try:
            command = self.transport.read_command()
        except CommandInvalid as exc:
            self._refuse(str(exc))
            command = None
        if command is not None:
            self._refused = None
            alive = self.heartbeat.alive(command.heartbeat)
            self._apply(command)
        if self._station is not None:
            self.handshake.set_job(self._station.job)  # a changeover by another path shows too
        self._heartbeat = (self._heartbeat + 1) % HEARTBEAT_MODULO
        self.transport.write_status(PlcStatus.of(self.handshake.state(), self._heartbeat))
        if alive:  # back only after a whole cycle: a PLC that answers reads but refuses writes is not
            self.link.restore()
        else:
            self._lose(f"the PLC's heartbeat has not changed for {self.plc_heartbeat_s:g} s")

    def _apply(self, command: PlcCommand) -> None:
        handshake = self.handshake
        if command.error_reset:
            handshake.reset_error()
        handshake.set_result_ack(command.result_ack)
        if self._jobs is not None:
            self._jobs.offer(command.job_change, command.job)
        handshake.set_trigger(command.trigger, command.part_id or None)

    def _refuse(self, why: str) -> None:
        self.handshake.set_error(ErrorCode.COMMAND_INVALID)
        if why != self._refused:
            self._refused = why
            self.counters["commands_refused"] += 1
            log.warning("PLC %s: command refused: %s", self.transport.describe, why)
            if self._station is not None:
                self._station.store.add_event(self._station.name, "plc_command_refused", why)

    def _lose(self, why: str, connected: bool = True) -> None:
        self._connected = self._connected and connected
        self.link.lose(why)

    def _close_transport(self) -> None:
        try:
            self.transport.close()
        except Exception as exc:
            log.debug("closing %s after a lost link: %s", self.transport.describe, exc)
