"""Modbus TCP server for PLCs (pymodbus): the station's handshake in coils and registers.

Register map (zero-based addresses, device id from the config; docs/station.md has the table):

Coils (PLC writes)          Discrete inputs (station)     Holding registers (PLC writes)
  0 Trigger                   0 Ready                       0-15 PartIdIn (32 ASCII chars, 2/register,
  1 ResultAck                 1 TriggerAck                        high byte first, NUL padded)
  2 ErrorReset                2 ResultValid                 16 JobNumber
  3 JobChange                 3 OK   4 NG   5 REVIEW        17 Heartbeat (the PLC's, any change)
                              6 Error  7 JobBusy  8 JobAck
Input registers (station)
  0 ErrorCode   1-2 ResultSeq   3-4 Total   5-6 OK   7-8 NG   9-10 REVIEW   11-12 Overflowed
  13 Buffered results   14-29 PartId of the presented result (as PartIdIn)   30 Verdict (0 none,
  1 OK, 2 REVIEW, 3 NG)   31 JobActive   32 Heartbeat (+1 every 100 ms, 0..32767).
  32-bit values: high word first.

Modbus TCP has no authentication: bind it to the PLC network's interface only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

from lineguard.results import ErrorCode
from lineguard.sinks.basic import PlcServerSink, claim_port
from lineguard.sinks.handshake import Handshake
from lineguard.sinks.plclink import HEARTBEAT_MODULO, HeartbeatWatch, JobChanges, LinkState

COIL_TRIGGER, COIL_RESULT_ACK, COIL_ERROR_RESET, COIL_JOB_CHANGE = 0, 1, 2, 3
DI_READY, DI_TRIGGER_ACK, DI_RESULT_VALID, DI_OK, DI_NG, DI_REVIEW, DI_ERROR, DI_JOB_BUSY, DI_JOB_ACK = range(
    9
)
HR_PART_ID, PART_ID_REGISTERS, HR_JOB, HR_HEARTBEAT = 0, 16, 16, 17
HR_COUNT = 18
IR_ERROR_CODE, IR_SEQ, IR_TOTAL, IR_OK, IR_NG, IR_REVIEW, IR_OVERFLOWED = 0, 1, 3, 5, 7, 9, 11
IR_BUFFERED, IR_PART_ID, IR_VERDICT, IR_JOB, IR_HEARTBEAT = 13, 14, 30, 31, 32
IR_COUNT = 34
VERDICT_CODES = {"OK": 1, "REVIEW": 2, "NG": 3}


def text_to_registers(text: str, count: int = PART_ID_REGISTERS) -> list[int]:
    data = text.encode("ascii", "replace")[: 2 * count].ljust(2 * count, b"\0")
    return [(data[i] << 8) | data[i + 1] for i in range(0, 2 * count, 2)]


def registers_to_text(registers: list[int]) -> str:
    data = b"".join(int(r).to_bytes(2, "big") for r in registers)
    return data.split(b"\0", 1)[0].decode("ascii", "replace").strip()


def _u32(value: int) -> list[int]:
    value &= 0xFFFFFFFF
    return [value >> 16, value & 0xFFFF]


def input_registers(handshake: Handshake) -> list[int]:
    """The station's input registers for the current handshake state."""
    state = handshake.state()
    counters = state.counters
    current = state.current
    regs = [0] * IR_COUNT
    regs[IR_ERROR_CODE] = state.error_code
    regs[IR_SEQ : IR_SEQ + 2] = _u32(current.seq if current else 0)
    for address, key in (
        (IR_TOTAL, "total"),
        (IR_OK, "OK"),
        (IR_NG, "NG"),
        (IR_REVIEW, "REVIEW"),
        (IR_OVERFLOWED, "overflowed"),
    ):
        regs[address : address + 2] = _u32(counters.get(key, 0))
    regs[IR_BUFFERED] = min(state.buffered, 0xFFFF)
    regs[IR_PART_ID : IR_PART_ID + PART_ID_REGISTERS] = text_to_registers(current.part_id if current else "")
    regs[IR_VERDICT] = VERDICT_CODES.get(current.verdict, 0) if current else 0
    regs[IR_JOB] = state.job
    regs[IR_HEARTBEAT] = int(time.monotonic() * 10) % HEARTBEAT_MODULO  # a server ticks by the clock
    return regs


def discrete_inputs(handshake: Handshake) -> int:
    """The station's status bits packed into one register (bit n = discrete input n)."""
    state = handshake.state()
    verdict = state.current.verdict if state.current and state.result_valid else ""
    bits = {
        DI_READY: state.ready,
        DI_TRIGGER_ACK: state.trigger_ack,
        DI_RESULT_VALID: state.result_valid,
        DI_OK: verdict == "OK",
        DI_NG: verdict == "NG",
        DI_REVIEW: verdict == "REVIEW",
        DI_ERROR: state.error,
        DI_JOB_BUSY: state.job_busy,
        DI_JOB_ACK: state.job_ack,
    }
    return sum(1 << n for n, on in bits.items() if on)


class ModbusSink(PlcServerSink):
    server = "Modbus server"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 502,
        device_id: int = 1,
        result_buffer: int = 16,
        plc_heartbeat_s: float | None = None,
        on_plc_lost: str = "continue",
    ):
        self.host, self.port, self.device_id = host, port, device_id
        self.handshake = Handshake(result_buffer)
        self._holding = [0] * HR_COUNT  # PartIdIn, JobNumber, the PLC's heartbeat
        # A server cannot see its client go; the PLC's heartbeat register can (when watched).
        self.link = LinkState(f"Modbus client of {host}:{port}", on_plc_lost)
        self.heartbeat = HeartbeatWatch(plc_heartbeat_s)
        self._jobs: JobChanges | None = None
        self._watching = threading.Event()
        self._station: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    async def _action(self, function_code, start_address, address, count, registers, values) -> None:
        offset = address - start_address
        if function_code == 2:  # read discrete inputs
            registers[0] = discrete_inputs(self.handshake)
        elif function_code == 4:  # read input registers
            if self._station is not None:  # a changeover by another path shows too
                self.handshake.set_job(self._station.job)
            registers[:] = input_registers(self.handshake)
        elif function_code in (6, 16, 22, 23) and values is not None:  # PLC writes holding registers
            for i, value in enumerate(values):
                if 0 <= offset + i < HR_COUNT:
                    self._holding[offset + i] = int(value)
        elif function_code in (5, 15) and values is not None:  # PLC writes coils
            for i, value in enumerate(values):
                coil = address + i
                if coil == COIL_TRIGGER:
                    part_id = registers_to_text(self._holding[HR_PART_ID : HR_PART_ID + PART_ID_REGISTERS])
                    self.handshake.set_trigger(bool(value), part_id)
                elif coil == COIL_JOB_CHANGE and self._jobs is not None:
                    self._jobs.offer(bool(value), self._holding[HR_JOB])
                elif coil == COIL_RESULT_ACK:
                    self.handshake.set_result_ack(bool(value))
                elif coil == COIL_ERROR_RESET and value:
                    self.handshake.reset_error()
        return None

    def start(self, station: Any) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        self.handshake.on_trigger = lambda part_id: station.trigger(part_id)
        self.handshake.on_job = lambda number: station.change_job(number, f"plc:{self.link.describe}")
        self.handshake.set_job(station.job)
        self._jobs = JobChanges(self.handshake)
        self.link.station = self._station = station
        if self.heartbeat.limit_s is not None:
            threading.Thread(target=self._watch, name="modbus-watchdog", daemon=True).start()
        device = SimDevice(
            id=self.device_id,
            simdata=(
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=HR_COUNT, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=IR_COUNT, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        claim_port(self.host, self.port, "Modbus server")
        self._loop = loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self._server = ModbusTcpServer(device, address=(self.host, self.port))  # needs the running loop
            ready.set()
            await self._server.serve_forever()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="modbus", daemon=True)
        self._thread.start()
        ready.wait(5)
        _wait_listening(self.host, self.port, f"Modbus server on {self.host}:{self.port}")

    def _watch(self) -> None:
        """The PLC's heartbeat register must keep changing: else the link counts as lost."""
        while not self._watching.wait(0.1):
            if self.heartbeat.alive(self._holding[HR_HEARTBEAT]):
                self.link.restore()
            else:
                self.link.lose(f"the PLC's heartbeat has not changed for {self.heartbeat.limit_s:g} s")

    def set_state(self, state: str, error_code: ErrorCode) -> None:
        self.handshake.set_ready(state == "running", error_code)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), **self.link.counters}

    def problem(self) -> str | None:
        return super().problem() or self.link.problem()

    def close(self) -> None:
        self._watching.set()
        if self._jobs is not None:
            self._jobs.close()
        if self._loop is None:
            return
        if self._server is not None:
            future = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            with contextlib.suppress(Exception):  # already down; the thread join below is what matters
                future.result(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None


def _wait_listening(host: str, port: int, what: str, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise OSError(f"{what} did not start listening within {timeout_s:.0f} s (port in use?)")
