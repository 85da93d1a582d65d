"""Siemens S7 (python-snap7): the station as an S7 client of the PLC, the usual pattern for an
S7-1200/1500 with PUT/GET enabled (non-optimised data blocks): it reads a command data block the
PLC program writes and writes a result data block the program reads.

Layouts (byte offsets from ``command_start`` / ``result_start``; S7 byte order; n =
``part_id_chars``; docs/station.md has them as tables to copy into TIA Portal):

Command DB (PLC writes)                      Result DB (station writes)
  0.0 Trigger       BOOL                       0.0 Ready  0.1 TriggerAck  0.2 ResultValid  BOOL
  0.1 ResultAck     BOOL                       0.3 OK  0.4 NG  0.5 REVIEW  0.6 Error       BOOL
  0.2 ErrorReset    BOOL                       0.7 JobBusy  1.0 JobAck                      BOOL
  0.3 JobChange     BOOL                       2  ErrorCode INT     4  JobActive INT
  2   JobNumber     INT                        6  Heartbeat INT (0..32767, +1 every poll)
  4   Heartbeat     INT (the PLC's, any change) 8  ResultSeq DINT    12 Verdict INT (0/1 OK/2 REVIEW/3 NG)
  6   PartId        STRING[n] (2 + n bytes)    14 Buffered INT      16 Total DINT  20 OkCount DINT
                                               24 NgCount DINT      28 ReviewCount DINT
                                               32 Overflowed DINT   36 PartId STRING[n]

Every other bit of bytes 0-1 of the command DB is reserved and must be 0. Unused trailing bytes
may follow either layout.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

from lineguard.sinks.plclink import CommandInvalid, PlcClientSink, PlcCommand, PlcLinkError, PlcStatus

COMMAND_BITS = ("trigger", "result_ack", "error_reset", "job_change")
RESULT_BITS = ("ready", "trigger_ack", "result_valid", "ok", "ng", "review", "error", "job_busy", "job_ack")
COMMAND_FIXED = 6  # bytes before PartId
RESULT_FIXED = 36


def command_size(chars: int) -> int:
    return COMMAND_FIXED + 2 + chars


def result_size(chars: int) -> int:
    return RESULT_FIXED + 2 + chars


def decode_string(data: bytes, chars: int, what: str) -> str:
    """An S7 STRING[chars]: declared length, actual length, then the characters."""
    declared, actual = data[0], data[1]
    if declared != chars:
        raise CommandInvalid(f"{what}: declared STRING[{declared}], the station expects STRING[{chars}]")
    if actual > declared:
        raise CommandInvalid(f"{what}: {actual} characters in a STRING[{declared}]")
    raw = bytes(data[2 : 2 + actual])
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise CommandInvalid(f"{what}: not printable ASCII: {raw!r}")
    return raw.decode("ascii")


def encode_string(text: str, chars: int) -> bytes:
    """The first ``chars`` characters (the record keeps the whole ID; ResultSeq names the part)."""
    raw = text.encode("ascii", "replace")[:chars]
    return bytes([chars, len(raw)]) + raw.ljust(chars, b"\0")


def decode_command(data: bytes, chars: int) -> PlcCommand:
    if len(data) < command_size(chars):
        raise CommandInvalid(f"command area: {len(data)} bytes, needs {command_size(chars)}")
    if data[0] & 0xF0 or data[1]:
        raise CommandInvalid(f"command bytes 0-1: reserved bits set ({data[0]:08b} {data[1]:08b})")
    job, heartbeat = struct.unpack_from(">hh", data, 2)
    bits = {name: bool(data[0] >> i & 1) for i, name in enumerate(COMMAND_BITS)}
    if bits["job_change"] and job < 1:
        raise CommandInvalid(f"JobNumber {job} with JobChange set: jobs are numbered from 1")
    part_id = decode_string(data[COMMAND_FIXED:], chars, "PartId")
    return PlcCommand(**bits, job=job, heartbeat=heartbeat, part_id=part_id)


def encode_status(status: PlcStatus, chars: int) -> bytes:
    flags = sum(1 << i for i, name in enumerate(RESULT_BITS) if getattr(status, name))
    fixed = struct.pack(
        ">Hhhhihhiiiii",
        ((flags & 0xFF) << 8) | (flags >> 8),  # byte 0: bits 0-7, byte 1: JobAck
        min(status.error_code, 32767),
        status.job,
        status.heartbeat,
        status.seq & 0x7FFFFFFF,
        status.verdict,
        min(status.buffered, 32767),
        *(v & 0x7FFFFFFF for v in (status.total, status.ok_count, status.ng_count, status.review_count)),
        status.overflowed & 0x7FFFFFFF,
    )
    assert len(fixed) == RESULT_FIXED
    return fixed + encode_string(status.part_id, chars)


class S7Transport:
    """The command and result data blocks of one S7 PLC, through python-snap7's client."""

    def __init__(
        self,
        host: str,
        *,
        port: int = 102,
        rack: int = 0,
        slot: int = 1,
        command_db: int,
        command_start: int = 0,
        result_db: int,
        result_start: int = 0,
        part_id_chars: int = 32,
        timeout_s: float = 1.0,
    ) -> None:
        self.host, self.port, self.rack, self.slot = host, port, rack, slot
        self.command_db, self.command_start = command_db, command_start
        self.result_db, self.result_start = result_db, result_start
        self.chars = part_id_chars
        self.timeout_s = timeout_s
        self.describe = f"S7 PLC {host}:{port}, command DB{command_db}, result DB{result_db}"
        self._client: Any = None

    def connect(self) -> None:
        import snap7

        self.close()
        client = snap7.client.Client()
        try:
            client.connect(self.host, self.rack, self.slot, self.port)
        except Exception as exc:
            raise PlcLinkError(f"cannot connect: {exc}") from None
        connection = getattr(client, "connection", None)  # python-snap7 3: the ISO-on-TCP socket
        if connection is not None and getattr(connection, "socket", None) is not None:
            connection.timeout = self.timeout_s
            connection.socket.settimeout(self.timeout_s)
        self._client = client

    def _call(self, what: str, operation):
        client = self._client
        if client is None:
            raise PlcLinkError("not connected")
        try:
            return operation(client)
        except Exception as exc:
            text = str(exc)
            if "protocol" in type(exc).__name__.lower():
                # The PLC answers but refuses: a missing or short DB, PUT/GET off, an optimised DB.
                # Reported as a lost link so that it shows (and is retried after a download).
                text += " (check the DB number and size, PUT/GET access, and that the DB is not optimised)"
            raise PlcLinkError(f"{what}: {text}") from None

    def read_command(self) -> PlcCommand:
        db, start, size = self.command_db, self.command_start, command_size(self.chars)
        data = self._call(f"reading DB{db}", lambda client: client.db_read(db, start, size))
        return decode_command(bytes(data), self.chars)

    def write_status(self, status: PlcStatus) -> None:
        db, start, data = self.result_db, self.result_start, bytearray(encode_status(status, self.chars))
        self._call(f"writing DB{db}", lambda client: client.db_write(db, start, data))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # already gone; nothing to release
                client.disconnect()


def s7_sink(config: Any) -> PlcClientSink:
    """The sink for a ``sinks.s7`` section (S7SinkConfig)."""
    transport = S7Transport(
        config.host,
        port=config.port,
        rack=config.rack,
        slot=config.slot,
        command_db=config.command_db,
        command_start=config.command_start,
        result_db=config.result_db,
        result_start=config.result_start,
        part_id_chars=config.part_id_chars,
        timeout_s=config.timeout_s,
    )
    return PlcClientSink.from_config(transport, config)
