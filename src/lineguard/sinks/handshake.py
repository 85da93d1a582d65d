"""The PLC handshake (pure logic), shared by the OPC UA and Modbus sinks.

Trigger: the PLC sets Trigger (with PartId written first, if it numbers parts);
the station fires one acquisition and sets TriggerAck; the PLC clears Trigger;
the station clears TriggerAck. A new trigger needs that full cycle.

Result: the station presents the oldest unacknowledged result (verdict bits,
PartId, sequence number) and sets ResultValid; the PLC reads it and sets
ResultAck; the station clears ResultValid; the PLC clears ResultAck; the next
buffered result is presented. Results wait in a small buffer while the PLC is
busy; when it is full, newer results are not presented (they are recorded all
the same), Error is set with ``ErrorCode.RESULT_BUFFER_OVERFLOW`` and the gap shows
in the sequence numbers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lineguard.errors import TriggerRefused
from lineguard.results import ErrorCode, PublishedResult


@dataclass(frozen=True)
class HandshakeState:
    ready: bool
    error: bool
    error_code: int
    trigger_ack: bool
    result_valid: bool
    current: PublishedResult | None
    buffered: int
    counters: dict[str, int] = field(default_factory=dict)  # total, OK, NG, REVIEW, overflowed


class Handshake:
    def __init__(self, buffer_size: int, on_trigger: Callable[[str | None], None] | None = None) -> None:
        if buffer_size <= 0:
            raise ValueError("the result buffer holds at least one result")
        self.buffer_size = buffer_size
        self.on_trigger = on_trigger
        self._lock = threading.Lock()
        self._pending: deque[PublishedResult] = deque()
        self._current: PublishedResult | None = None
        self._result_valid = False
        self._ack = False
        self._trigger = False
        self._trigger_ack = False
        self._ready = False
        self._error_code = ErrorCode.NONE
        self._counters = {"total": 0, "OK": 0, "NG": 0, "REVIEW": 0, "overflowed": 0}

    # -- station side ------------------------------------------------------------------

    def set_ready(self, ready: bool, error_code: ErrorCode | None = None) -> None:
        with self._lock:
            self._ready = ready
            if error_code is not None:
                self._error_code = error_code

    def publish(self, result: PublishedResult) -> None:
        with self._lock:
            self._counters["total"] += 1
            self._counters[result.verdict] = self._counters.get(result.verdict, 0) + 1
            if len(self._pending) + (self._current is not None) >= self.buffer_size:
                self._counters["overflowed"] += 1
                self._error_code = ErrorCode.RESULT_BUFFER_OVERFLOW
                return
            self._pending.append(result)
            self._present_next()

    def _present_next(self) -> None:
        if self._current is None and not self._ack and self._pending:
            self._current = self._pending.popleft()
            self._result_valid = True

    # -- PLC side ----------------------------------------------------------------------

    def set_trigger(self, value: bool, part_id: str | None = None) -> None:
        fire = False
        with self._lock:
            if value and not self._trigger and not self._trigger_ack:
                self._trigger_ack = fire = True
            elif not value:
                self._trigger_ack = False
            self._trigger = value
        if fire and self.on_trigger is not None:
            try:
                self.on_trigger(part_id or None)
            except TriggerRefused:  # the station recorded why; the PLC sees the error code
                with self._lock:
                    self._counters["refused"] = self._counters.get("refused", 0) + 1
                    self._error_code = ErrorCode.TRIGGER_REFUSED

    def set_result_ack(self, value: bool) -> None:
        with self._lock:
            if value and not self._ack and self._result_valid:
                self._result_valid = False
                self._current = None
            self._ack = value
            if not value:
                self._present_next()

    def reset_error(self) -> None:
        with self._lock:
            if self._error_code in (ErrorCode.RESULT_BUFFER_OVERFLOW, ErrorCode.TRIGGER_REFUSED):
                self._error_code = ErrorCode.NONE

    def state(self) -> HandshakeState:
        with self._lock:
            return HandshakeState(
                ready=self._ready,
                error=self._error_code != ErrorCode.NONE,
                error_code=int(self._error_code),
                trigger_ack=self._trigger_ack,
                result_valid=self._result_valid,
                current=self._current,
                buffered=len(self._pending),
                counters=dict(self._counters),
            )
