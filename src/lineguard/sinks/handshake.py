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

Job change: the PLC writes the job number and sets JobChange; the station sets JobBusy, switches
to the recipe with that job number (parts in flight finish under the old one), then clears JobBusy
and sets JobAck; the PLC clears JobChange; the station clears JobAck. JobActive says which job
runs. A job change while the trigger cycle is open (Trigger or TriggerAck set: mid-part), for a
number no recipe has, or that fails to load is answered with JobAck and Error (``JOB_REFUSED`` /
``JOB_UNKNOWN``), and the running job stays.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from lineguard.errors import JobRefused, TriggerRefused
from lineguard.results import RESETTABLE_ERRORS, ErrorCode, PublishedResult


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
    job: int = 0  # the running job's number (0: the recipe has none)
    job_busy: bool = False
    job_ack: bool = False


class Handshake:
    def __init__(
        self,
        buffer_size: int,
        on_trigger: Callable[[str | None], None] | None = None,
        on_job: Callable[[int], None] | None = None,
    ) -> None:
        if buffer_size <= 0:
            raise ValueError("the result buffer holds at least one result")
        self.buffer_size = buffer_size
        self.on_trigger = on_trigger
        # Makes the change (blocking) or raises JobRefused; called outside the lock, on the thread
        # that calls ``set_job_change`` (a PLC link gives it a thread of its own).
        self.on_job = on_job
        self._job = 0
        self._job_change = False
        self._job_busy = False
        self._job_ack = False
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

    def set_job(self, number: int) -> None:
        """The job now running (the station says so at start and after every changeover)."""
        with self._lock:
            self._job = number

    def set_error(self, code: ErrorCode) -> None:
        with self._lock:
            self._error_code = code

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

    def set_job_change(self, value: bool, number: int) -> None:
        """JobChange from the PLC with the job number it wrote: a rising edge asks for the change."""
        with self._lock:
            rising = value and not self._job_change and not self._job_busy and not self._job_ack
            self._job_change = value
            if not value:
                self._job_ack = False
            if not rising:
                return
            if self._trigger or self._trigger_ack:
                self._error_code = ErrorCode.JOB_REFUSED
                self._counters["jobs_refused"] = self._counters.get("jobs_refused", 0) + 1
                self._job_ack = True
                return
            self._job_busy = True
        code: ErrorCode | None = None
        try:
            if self.on_job is not None:
                self.on_job(number)
        except JobRefused as exc:
            code = ErrorCode(exc.code)
        with self._lock:
            self._job_busy = False
            self._job_ack = self._job_change  # the PLC may have given up meanwhile: nothing to answer
            if code is None:
                self._job = number
                self._counters["jobs"] = self._counters.get("jobs", 0) + 1
            else:
                self._error_code = code
                self._counters["jobs_refused"] = self._counters.get("jobs_refused", 0) + 1

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
            if self._error_code in RESETTABLE_ERRORS:
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
                job=self._job,
                job_busy=self._job_busy,
                job_ack=self._job_ack,
            )
