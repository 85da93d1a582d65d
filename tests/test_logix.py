"""Rockwell Logix over EtherNet/IP on loopback: the station as a tag client of cpppo's Logix
simulator, run as a separate process (cpppo is GPL: a test tool, never imported by the package or
by these tests). The test plays the PLC program through its own connection to the simulator."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from plc_helpers import CuttableLink, PlcProgram
from postgres_server import free_port
from station_helpers import two_job_station, wait_for

from lineguard.results import ErrorCode
from lineguard.station import Station

pytest.importorskip("pycomm3")
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cpppo") is None, reason="cpppo (the Logix simulator) not installed"
)
from lineguard.sinks.logix import LogixTransport, decode_command, encode_status  # noqa: E402
from lineguard.sinks.plclink import CommandInvalid, PlcStatus  # noqa: E402

PREFIX, CHARS = "LG_", 32
VERDICTS = {1: "OK", 2: "REVIEW", 3: "NG"}
RESULT_NAMES = ("ready", "trigger_ack", "result_valid", "ok", "ng", "review", "error", "job_busy", "job_ack")


class LogixPlc(PlcProgram):
    """cpppo's simulator holding the four tags, and the PLC program's own view of them."""

    def __init__(self) -> None:
        self.port = free_port()
        tags = [f"{PREFIX}Command=DINT[4]", f"{PREFIX}Result=DINT[16]"]
        tags += [f"{PREFIX}PartIdIn=SINT[{CHARS}]", f"{PREFIX}PartId=SINT[{CHARS}]"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cpppo.server.enip", "--address", f"127.0.0.1:{self.port}", *tags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                assert self.process.poll() is None and time.monotonic() < end, "the simulator did not start"
                time.sleep(0.1)
        # No route path: cpppo refuses writes routed to a backplane slot.
        self.program = LogixTransport(
            "127.0.0.1", port=self.port, slot=None, tag_prefix=PREFIX, part_id_chars=CHARS
        )
        self.program.connect()
        self.command = [0, 0, 0, 0]
        self.chars = [0] * CHARS

    def _write_command(self) -> None:
        # Both tags in one request: the simulator mishandles a single-tag array write (the
        # multi-service request, which the station also sends, is fine).
        written = self.program.driver.write(
            (f"{PREFIX}Command{{4}}", list(self.command)), (f"{PREFIX}PartIdIn{{{CHARS}}}", self.chars)
        )
        assert not any(t.error for t in written), written

    def bit(self, n: int, value: bool) -> None:
        self.command[0] = self.command[0] | 1 << n if value else self.command[0] & ~(1 << n)
        self._write_command()

    def part_id(self, text: str, length: int | None = None) -> None:
        self.chars = list(text.encode().ljust(CHARS, b"\0"))
        self.command[3] = len(text) if length is None else length
        self._write_command()

    def job(self, number: int) -> None:
        self.command[1] = number  # written with the next bit

    def status(self) -> dict:
        words, chars = (
            t.value for t in self.program.driver.read(f"{PREFIX}Result{{16}}", f"{PREFIX}PartId{{{CHARS}}}")
        )
        out = {name: bool(words[0] >> i & 1) for i, name in enumerate(RESULT_NAMES)}
        keys = ("error_code", "job", "heartbeat", "seq", "verdict", "buffered", "total")
        out.update(zip(keys, words[1:8], strict=True))
        out["part_id"] = bytes(c & 0xFF for c in chars[: words[12]]).decode()
        return out

    def close(self) -> None:
        self.program.close()
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def plc():
    plc = LogixPlc()
    link = CuttableLink(plc.port)
    yield plc, link
    link.close()
    plc.close()


def logix_station(tmp_path, bundle, link) -> Station:
    logix = {
        "host": "127.0.0.1",
        "port": link.port,
        "slot": None,  # cpppo refuses writes routed to a backplane slot
        "tag_prefix": PREFIX,
        "poll_ms": 5,
        "reconnect_s": 0.05,
        "timeout_s": 2.0,
    }
    return two_job_station(tmp_path, bundle, {"logix": logix})


def test_logix_tag_layout_and_garbage():
    status = PlcStatus(
        *(True, True, False, False, True, False, True, False, True),
        error_code=8,
        job=3,
        heartbeat=7,
        seq=12,
        verdict=3,
        buffered=1,
        total=12,
        ok_count=9,
        ng_count=3,
        review_count=0,
        overflowed=0,
        part_id="é-1",
    )
    words, chars = encode_status(status, 4)
    assert words[:13] == [0b101010011, 8, 3, 7, 12, 3, 1, 12, 9, 3, 0, 0, 3] and len(words) == 16
    assert chars == [63, 45, 49, 0]  # not ASCII: replaced; padded to the tag
    words, chars = encode_status(replace(status, part_id="X" * 40), 4)
    assert words[12] == 4 and chars == [88] * 4  # cut to the tag
    command = decode_command([0b1001, 2, 5, 3], [80, 78, 49, 0], 4)
    assert (command.trigger, command.job_change, command.job, command.heartbeat, command.part_id) == (
        True,
        True,
        2,
        5,
        "PN1",
    )
    for words, chars, says in (
        ([1 << 4, 0, 0, 0], [0] * 4, "reserved bits"),
        ([-1, 0, 0, 0], [0] * 4, "reserved bits"),
        ([1, 0, 0, 5], [65] * 4, "length 5"),
        ([1, 0, 0, -1], [65] * 4, "length -1"),
        ([0, 0, 0, 2], [65, 7, 0, 0], "not printable"),
        ([0b1000, 0, 0, 0], [0] * 4, "JobNumber 0"),
    ):
        with pytest.raises(CommandInvalid, match=says):
            decode_command(words, chars, 4)


def test_logix_trigger_result_ack_job_change_bad_input_and_link_cut(station_bundle, tmp_path, plc):
    program, link = plc
    station = logix_station(tmp_path, station_bundle, link)
    station.start()
    try:
        wait_for(lambda: program.status()["ready"], what="Ready")
        assert program.status()["job"] == 1
        beat = program.status()["heartbeat"]
        wait_for(lambda: program.status()["heartbeat"] != beat, what="the station's heartbeat")
        for i in range(3):
            program.trigger(f"PN-{i}")
            got = program.take_result()
            assert (got["seq"], got["part_id"]) == (i + 1, f"PN-{i}")
            assert got[VERDICTS[got["verdict"]].lower()]

        got = program.change_job(2)
        assert got["job"] == 2 and not got["error"] and station.recipe.name == "parts-b"
        got = program.change_job(7)
        assert got["error_code"] == ErrorCode.JOB_UNKNOWN and got["job"] == 2
        program.reset_error()

        parts = station.counters["parts"]
        program.part_id("PN-X", length=CHARS + 1)  # longer than its tag, with Trigger set
        program.bit(0, True)
        wait_for(lambda: program.status()["error_code"] == ErrorCode.COMMAND_INVALID, what="refused")
        time.sleep(0.1)
        assert not program.status()["trigger_ack"] and station.counters["parts"] == parts
        program.bit(0, False)
        program.part_id("PN-3")  # a valid command again; then the error can be reset
        program.reset_error()
        program.trigger("PN-3")
        assert program.take_result()["seq"] == 4

        link.cut()
        wait_for(lambda: station.health()[1], what="the lost link in /health")
        station.trigger("REST-1")
        wait_for(lambda: station.counters["parts"] == 5, what="a part decided while the link is down")
        link.restore()
        got = program.take_result()
        assert (got["seq"], got["part_id"]) == (5, "REST-1")
    finally:
        station.stop()
    kinds = [e["kind"] for e in station.store.events(station.name, limit=500)]
    assert {"plc_link_lost", "plc_link_restored", "job_refused", "plc_command_refused"} <= set(kinds)


def test_logix_fifty_link_cuts_lose_no_result_and_keep_the_order(station_bundle, tmp_path, plc):
    program, link = plc
    station = logix_station(tmp_path, station_bundle, link)
    station.start()
    seen = []
    try:
        wait_for(lambda: program.status()["ready"], what="Ready")
        for i in range(55):
            program.trigger(f"C-{i}")
            if i < 50:
                if i % 3 == 1:
                    wait_for(lambda: program.status()["result_valid"], what="ResultValid")
                link.cut()
                time.sleep(0.02 * (i % 4))
                link.restore()
            got = program.take_result()
            seen.append((got["seq"], got["part_id"]))
    finally:
        station.stop()
    assert seen == [(i + 1, f"C-{i}") for i in range(55)]
    assert link.cuts >= 50 and station.sinks[0].stats()["link_lost"] >= 40
