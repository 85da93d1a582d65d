"""Rockwell Logix (ControlLogix / CompactLogix) over EtherNet/IP explicit messaging (pycomm3): the
station as a tag client of the controller, like an HMI. Every poll it reads two controller tags
the PLC program writes and writes two it reads (``<prefix>`` from the config, default
``LineGuard_``; n = ``part_id_chars``; docs/station.md has them as tables):

  <prefix>Command   DINT[4]  (PLC writes)  [0] bits: .0 Trigger .1 ResultAck .2 ErrorReset .3 JobChange
                                           (other bits reserved, 0); [1] JobNumber; [2] Heartbeat;
                                           [3] PartIdIn length (a STRING's LEN)
  <prefix>PartIdIn  SINT[n]  (PLC writes)  the part ID's characters (a STRING's DATA, COP'd)
  <prefix>Result    DINT[16] (station)     [0] bits: .0 Ready .1 TriggerAck .2 ResultValid .3 OK .4 NG
                                           .5 REVIEW .6 Error .7 JobBusy .8 JobAck; [1] ErrorCode;
                                           [2] JobActive; [3] Heartbeat; [4] ResultSeq; [5] Verdict;
                                           [6] Buffered; [7] Total; [8] OkCount; [9] NgCount;
                                           [10] ReviewCount; [11] Overflowed; [12] PartId length
  <prefix>PartId    SINT[n]  (station)     the presented result's part ID (its first n characters)

The tag types are declared here rather than uploaded from the controller (``init_tags=False``):
the layout fixes them, a big controller's tag list takes seconds to upload, and a Logix simulator
(cpppo's, which the tests use) cannot serve that upload at all. Class 1 implicit I/O needs an
EtherNet/IP adapter stack, which no maintained Python library provides: for a PLC that only
talks I/O, use a gateway (docs/station.md).
"""

from __future__ import annotations

import contextlib
from typing import Any

from lineguard.sinks.plclink import CommandInvalid, PlcClientSink, PlcCommand, PlcLinkError, PlcStatus

COMMAND_BITS = ("trigger", "result_ack", "error_reset", "job_change")
RESULT_BITS = ("ready", "trigger_ack", "result_valid", "ok", "ng", "review", "error", "job_busy", "job_ack")
COMMAND_WORDS, RESULT_WORDS = 4, 16
MAX_DINT = 2**31 - 1


def decode_command(words: list[int], chars: list[int], size: int) -> PlcCommand:
    """The Command DINT[4] and PartIdIn SINT[n] as read; CommandInvalid for what means nothing."""
    if len(words) != COMMAND_WORDS or len(chars) != size:
        raise CommandInvalid(f"Command has {len(words)} words and PartIdIn {len(chars)} characters")
    bits, job, heartbeat, length = words
    if bits & ~0b1111:
        raise CommandInvalid(f"Command[0]: reserved bits set ({bits & 0xFFFFFFFF:#010x})")
    flags = {name: bool(bits >> i & 1) for i, name in enumerate(COMMAND_BITS)}
    if flags["job_change"] and job < 1:
        raise CommandInvalid(f"JobNumber {job} with JobChange set: jobs are numbered from 1")
    if not 0 <= length <= size:
        raise CommandInvalid(f"PartIdIn length {length}: the tag holds {size} characters")
    raw = bytes(c & 0xFF for c in chars[:length])
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise CommandInvalid(f"PartIdIn: not printable ASCII: {raw!r}")
    return PlcCommand(**flags, job=job, heartbeat=heartbeat, part_id=raw.decode("ascii"))


def encode_status(status: PlcStatus, size: int) -> tuple[list[int], list[int]]:
    """The Result DINT[16] and PartId SINT[n] to write."""
    raw = status.part_id.encode("ascii", "replace")[:size]
    words = [
        sum(1 << i for i, name in enumerate(RESULT_BITS) if getattr(status, name)),
        status.error_code,
        status.job,
        status.heartbeat,
        *(
            min(v, MAX_DINT)
            for v in (
                status.seq,
                status.verdict,
                status.buffered,
                status.total,
                status.ok_count,
                status.ng_count,
                status.review_count,
                status.overflowed,
            )
        ),
        len(raw),
        0,
        0,
        0,
    ]
    chars = [b - 256 if b > 127 else b for b in raw.ljust(size, b"\0")]  # SINT is signed
    return words, chars


class LogixTransport:
    """The four tags of one Logix controller, through pycomm3's LogixDriver."""

    def __init__(
        self,
        host: str,
        *,
        port: int = 44818,
        slot: int | None = 0,
        tag_prefix: str = "LineGuard_",
        part_id_chars: int = 32,
        timeout_s: float = 1.0,
    ) -> None:
        self.path = f"{host}:{port}" + (f"/{slot}" if slot is not None else "")
        self.prefix, self.chars, self.timeout_s = tag_prefix, part_id_chars, timeout_s
        self.describe = f"Logix PLC {self.path}, tags {tag_prefix}*"
        self._driver: Any = None

    def _declare(self, driver: Any) -> None:
        from pycomm3.cip import DataTypes
        from pycomm3.cip.data_types import Array

        for name, kind, n in (
            ("Command", "DINT", COMMAND_WORDS),
            ("PartIdIn", "SINT", self.chars),
            ("Result", "DINT", RESULT_WORDS),
            ("PartId", "SINT", self.chars),
        ):
            tag = self.prefix + name
            # pycomm3's tag definition, as its tag list upload would have made it.
            driver._tags[tag] = {
                "tag_name": tag,
                "dim": 1,
                "dimensions": [n, 0, 0],
                "alias": False,
                "instance_id": 0,
                "external_access": "Read/Write",
                "data_type": kind,
                "data_type_name": kind,
                "tag_type": "atomic",
                "type_class": Array(length_=n, element_type_=DataTypes.get(kind)),
            }

    def connect(self) -> None:
        from pycomm3 import LogixDriver

        self.close()
        driver = LogixDriver(self.path, init_tags=False, init_program_tags=False)
        driver._cfg["socket_timeout"] = self.timeout_s
        try:
            opened = driver.open()
        except Exception as exc:
            raise PlcLinkError(f"cannot connect: {exc}") from None
        if not opened:
            raise PlcLinkError("cannot connect: no EtherNet/IP session")
        self._declare(driver)
        self._driver = driver

    @property
    def driver(self) -> Any:
        """The connected pycomm3 LogixDriver with the four tags declared (None when not connected)."""
        return self._driver

    def _call(self, what: str, operation) -> list[Any]:
        driver = self._driver
        if driver is None:
            raise PlcLinkError("not connected")
        try:
            tags = operation(driver)
        except Exception as exc:
            raise PlcLinkError(f"{what}: {exc}") from None
        failed = [f"{t.tag}: {t.error}" for t in tags if t.error]
        if failed:
            # The controller answers but refuses: missing tags, wrong types, no external access.
            raise PlcLinkError(f"{what}: {'; '.join(failed)} (check the tag names, types and sizes)")
        return [t.value for t in tags]

    def read_command(self) -> PlcCommand:
        p, n = self.prefix, self.chars
        words, chars = self._call(
            "reading", lambda d: d.read(f"{p}Command{{{COMMAND_WORDS}}}", f"{p}PartIdIn{{{n}}}")
        )
        return decode_command(list(words), list(chars), n)

    def write_status(self, status: PlcStatus) -> None:
        p, n = self.prefix, self.chars
        words, chars = encode_status(status, n)
        self._call(
            "writing",
            lambda d: d.write((f"{p}Result{{{RESULT_WORDS}}}", words), (f"{p}PartId{{{n}}}", chars)),
        )

    def close(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                driver.close()


def logix_sink(config: Any) -> PlcClientSink:
    """The sink for a ``sinks.logix`` section (LogixSinkConfig)."""
    transport = LogixTransport(
        config.host,
        port=config.port,
        slot=config.slot,
        tag_prefix=config.tag_prefix,
        part_id_chars=config.part_id_chars,
        timeout_s=config.timeout_s,
    )
    return PlcClientSink.from_config(transport, config)
