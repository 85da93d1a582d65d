"""Siemens S7 on loopback: the station as an S7 client of python-snap7's own server, which holds the
PLC's command and result data blocks. The test plays the PLC program: it writes the command DB and
reads the result DB by the documented byte offsets (decoded here independently of the sink's
encoder), through a TCP link it can cut."""

from __future__ import annotations

import struct
import time

import pytest
from plc_helpers import CuttableLink, PlcProgram
from postgres_server import free_port
from station_helpers import two_job_station, wait_for

from lineguard.errors import JobRefused, TriggerRefused
from lineguard.results import ErrorCode
from lineguard.sinks.handshake import Handshake
from lineguard.sinks.plclink import CommandInvalid, PlcStatus
from lineguard.station import Station

snap7 = pytest.importorskip("snap7")
from lineguard.sinks import s7  # noqa: E402

CHARS = 32
COMMAND_DB, RESULT_DB = 10, 11
VERDICTS = {1: "OK", 2: "REVIEW", 3: "NG"}


class S7Plc(PlcProgram):
    """The PLC program's side of the two data blocks, served by python-snap7's server."""

    def __init__(self, chars: int = CHARS) -> None:
        from snap7.server import Server
        from snap7.type import SrvArea

        self.command = bytearray(s7.command_size(chars) + 4)  # a DB may be longer than the layout
        self.result = bytearray(s7.result_size(chars) + 4)
        self.command[6] = chars  # a STRING[32] as TIA Portal declares it
        self.server = Server()
        self.server.register_area(SrvArea.DB, COMMAND_DB, self.command)
        self.server.register_area(SrvArea.DB, RESULT_DB, self.result)
        self.port = free_port()
        self.server.start(tcp_port=self.port)
        self.beats = 0

    def bit(self, n: int, value: bool) -> None:
        if value:
            self.command[0] |= 1 << n
        else:
            self.command[0] &= ~(1 << n) & 0xFF

    def part_id(self, text: str) -> None:
        raw = text.encode()
        self.command[7] = len(raw)
        self.command[8 : 8 + len(raw)] = raw

    def job(self, number: int) -> None:
        struct.pack_into(">h", self.command, 2, number)

    def beat(self) -> None:
        self.beats = (self.beats + 1) % 32768
        struct.pack_into(">h", self.command, 4, self.beats)

    def status(self) -> dict:
        r = bytes(self.result)
        names = ("ready", "trigger_ack", "result_valid", "ok", "ng", "review", "error", "job_busy")
        out = {name: bool(r[0] >> i & 1) for i, name in enumerate(names)}
        out["job_ack"] = bool(r[1] & 1)
        out["error_code"], out["job"], out["heartbeat"] = struct.unpack_from(">hhh", r, 2)
        (out["seq"],) = struct.unpack_from(">i", r, 8)
        out["verdict"], out["buffered"] = struct.unpack_from(">hh", r, 12)
        out["total"], out["ok_count"], out["ng_count"], out["review_count"], out["overflowed"] = (
            struct.unpack_from(">iiiii", r, 16)
        )
        out["part_id"] = r[38 : 38 + r[37]].decode() if r[36] == CHARS else None
        return out

    def close(self) -> None:
        self.server.stop()
        self.server.destroy()


@pytest.fixture
def plc():
    plc = S7Plc()
    link = CuttableLink(plc.port)
    yield plc, link
    link.close()
    plc.close()


def s7_station(tmp_path, bundle, link, **link_options) -> Station:
    s7_doc = {
        "host": "127.0.0.1",
        "port": link.port,
        "command_db": COMMAND_DB,
        "result_db": RESULT_DB,
        "poll_ms": 5,
        "reconnect_s": 0.05,
        "timeout_s": 1.0,
        **link_options,
    }
    return two_job_station(tmp_path, bundle, {"s7": s7_doc})


def event_kinds(station: Station) -> list[str]:
    return [e["kind"] for e in reversed(station.store.events(station.name, limit=1000))]


# -- pure logic ---------------------------------------------------------------------------------


def test_command_and_status_layouts():
    raw = bytearray(s7.command_size(CHARS))
    raw[0] = 0b1011  # Trigger, ResultAck, JobChange
    struct.pack_into(">hh", raw, 2, 7, 123)
    raw[6], raw[7] = CHARS, 5
    raw[8:13] = b"PN-42"
    command = s7.decode_command(bytes(raw), CHARS)
    assert (command.trigger, command.result_ack, command.error_reset, command.job_change) == (
        True,
        True,
        False,
        True,
    )
    assert (command.job, command.heartbeat, command.part_id) == (7, 123, "PN-42")

    status = PlcStatus(
        *(True, False, True, False, True, False, True, False, True),
        error_code=5,
        job=2,
        heartbeat=99,
        seq=70000,
        verdict=3,
        buffered=4,
        total=10,
        ok_count=6,
        ng_count=3,
        review_count=1,
        overflowed=0,
        part_id="X" * 40,
    )
    data = s7.encode_status(status, CHARS)
    assert len(data) == s7.result_size(CHARS) == 70
    assert data[0] == 0b01010101 and data[1] == 1
    assert struct.unpack_from(">hhhihh", data, 2) == (5, 2, 99, 70000, 3, 4)
    assert struct.unpack_from(">iiiii", data, 16) == (10, 6, 3, 1, 0)
    assert data[36:38] == bytes([CHARS, CHARS]) and data[38:70] == b"X" * 32  # cut to the field


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda raw: raw.__setitem__(0, 0x10), "reserved bits"),
        (lambda raw: raw.__setitem__(1, 0x01), "reserved bits"),
        (lambda raw: raw.__setitem__(7, CHARS + 8), r"40 characters in a STRING\[32\]"),
        (lambda raw: raw.__setitem__(6, 16), r"declared STRING\[16\]"),
        (lambda raw: (raw.__setitem__(7, 2), raw.__setitem__(8, 0x07)), "not printable"),
        (lambda raw: (raw.__setitem__(0, 0b1000), struct.pack_into(">h", raw, 2, -3)), "JobNumber -3"),
    ],
)
def test_garbage_in_the_command_area_is_refused_whole(edit, says):
    raw = bytearray(s7.command_size(CHARS))
    raw[6] = CHARS
    edit(raw)
    with pytest.raises(CommandInvalid, match=says):
        s7.decode_command(bytes(raw), CHARS)


def test_handshake_job_change():
    asked: list[int] = []

    def on_job(number: int) -> None:
        if number == 9:
            raise JobRefused("no recipe has job 9", ErrorCode.JOB_UNKNOWN)
        asked.append(number)

    hs = Handshake(4, on_trigger=lambda _: None, on_job=on_job)
    hs.set_job(1)
    hs.set_job_change(True, 2)
    state = hs.state()
    assert asked == [2] and state.job == 2 and state.job_ack and not state.error
    hs.set_job_change(True, 3)  # still high: not a new request
    assert asked == [2]
    hs.set_job_change(False, 3)
    assert not hs.state().job_ack

    hs.set_job_change(True, 9)  # unknown: answered, refused, the job stays
    state = hs.state()
    assert state.job_ack and state.error_code == ErrorCode.JOB_UNKNOWN and state.job == 2
    hs.set_job_change(False, 9)
    hs.reset_error()

    hs.set_trigger(True, "P1")  # mid-part: the trigger cycle is open
    hs.set_job_change(True, 3)
    state = hs.state()
    assert asked == [2] and state.job_ack and state.error_code == ErrorCode.JOB_REFUSED
    assert state.counters["jobs"] == 1 and state.counters["jobs_refused"] == 2


# -- end to end against the snap7 server --------------------------------------------------------


def test_s7_trigger_result_ack_job_change_bad_input_and_link_cut(station_bundle, tmp_path, plc):
    server, link = plc
    station = s7_station(tmp_path, station_bundle, link)
    station.start()
    try:
        wait_for(lambda: server.status()["ready"], what="Ready")
        status = server.status()
        assert status["job"] == 1 and status["error_code"] == 0
        beat = status["heartbeat"]
        wait_for(lambda: server.status()["heartbeat"] != beat, what="the station's heartbeat")

        for i in range(3):
            server.trigger(f"PN-{i}")
            got = server.take_result()
            verdict = VERDICTS[got["verdict"]]
            assert (got["seq"], got["part_id"]) == (i + 1, f"PN-{i}")
            assert got[verdict.lower()] and sum(got[v] for v in ("ok", "ng", "review")) == 1
        assert server.status()["total"] == 3

        got = server.change_job(2)
        assert got["job"] == 2 and not got["error"] and station.recipe.name == "parts-b"
        server.trigger("PN-3")
        assert server.take_result()["seq"] == 4

        # Bad input: nothing changes but the error code.
        got = server.change_job(9)
        assert got["error_code"] == ErrorCode.JOB_UNKNOWN and got["job"] == 2
        assert station.recipe.name == "parts-b"
        server.reset_error()
        server.part_id("PN-4")
        server.bit(0, True)  # mid-part: Trigger high, then a job change
        wait_for(lambda: server.status()["trigger_ack"], what="TriggerAck")
        got = server.change_job(1)
        assert got["error_code"] == ErrorCode.JOB_REFUSED and got["job"] == 2
        server.bit(0, False)
        assert server.take_result()["seq"] == 5
        server.reset_error()

        triggers = station.counters["parts"]
        server.command[7] = CHARS + 8  # a part ID longer than its field, with Trigger set
        server.bit(0, True)
        wait_for(lambda: server.status()["error_code"] == ErrorCode.COMMAND_INVALID, what="refused")
        time.sleep(0.05)
        assert not server.status()["trigger_ack"] and station.counters["parts"] == triggers
        server.bit(0, False)
        server.part_id("PN-5")
        server.reset_error()
        server.trigger("PN-5")
        assert server.take_result()["seq"] == 6

        # Link cut: the station keeps deciding (a REST trigger), the result waits for the PLC.
        link.cut()
        wait_for(lambda: station.health()[1], what="the lost link in /health")
        assert "PLC link" in " ".join(station.health()[1])
        station.trigger("REST-1")
        wait_for(lambda: station.counters["parts"] == 7, what="the part decided while the link is down")
        link.restore()
        got = server.take_result()
        assert (got["seq"], got["part_id"]) == (7, "REST-1")
        wait_for(lambda: not station.health()[1], what="the link back in /health")
    finally:
        station.stop()
    kinds = event_kinds(station)
    assert kinds.count("plc_link_lost") == 1 and kinds.count("plc_link_restored") == 1
    assert "job_refused" in kinds and "plc_command_refused" in kinds
    changes = [e for e in station.store.audit_entries() if e.action == "changeover"]
    assert [e.actor.startswith("plc:S7 PLC 127.0.0.1") for e in changes] == [True]


def test_s7_fifty_link_cuts_lose_no_result_and_keep_the_order(station_bundle, tmp_path, plc):
    server, link = plc
    station = s7_station(tmp_path, station_bundle, link)
    station.start()
    seen: list[tuple[int, str]] = []
    try:
        wait_for(lambda: server.status()["ready"], what="Ready")
        for i in range(60):
            server.trigger(f"C-{i}")
            if i < 50:  # cut at a different point of the result cycle each time
                if i % 3 == 1:
                    wait_for(lambda: server.status()["result_valid"], what="ResultValid")
                link.cut()
                time.sleep(0.02 * (i % 4))
                link.restore()
            got = server.take_result()
            seen.append((got["seq"], got["part_id"]))
    finally:
        station.stop()
    assert seen == [(i + 1, f"C-{i}") for i in range(60)]
    assert link.cuts >= 50
    assert station.sinks[0].stats()["link_lost"] >= 40  # a cut between two polls may go unseen


def test_s7_on_plc_lost_hold_refuses_parts_until_the_link_is_back(station_bundle, tmp_path, plc):
    server, link = plc
    station = s7_station(tmp_path, station_bundle, link, on_plc_lost="hold")
    station.start()
    try:
        wait_for(lambda: server.status()["ready"], what="Ready")
        link.cut()
        wait_for(lambda: station.state == "held", what="held")
        with pytest.raises(TriggerRefused, match="held"):
            station.trigger("REST-1")
        link.restore()
        wait_for(lambda: station.state == "running", what="released")
        wait_for(lambda: server.status()["ready"], what="Ready again")
        server.trigger("PN-1")
        assert server.take_result()["seq"] == 1
    finally:
        station.stop()
    kinds = event_kinds(station)
    assert "held" in kinds and "released" in kinds and "trigger_refused" in kinds


def test_s7_a_silent_plc_heartbeat_is_a_lost_link(station_bundle, tmp_path, plc):
    server, link = plc
    station = s7_station(tmp_path, station_bundle, link, plc_heartbeat_s=0.2)
    station.start()
    try:
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # the PLC program beats
            server.beat()
            time.sleep(0.02)
        assert station.sinks[0].stats()["link_lost"] == 0
        wait_for(lambda: station.sinks[0].stats()["link_lost"] == 1, what="the stale heartbeat")
        server.beat()
        wait_for(lambda: not station.health()[1], what="back once it beats")
    finally:
        station.stop()
    assert "plc_link_restored" in event_kinds(station)


def test_s7_missing_data_block_is_reported(station_bundle, tmp_path, plc):
    _, link = plc
    station = s7_station(tmp_path, station_bundle, link, result_db=99)
    station.start()
    try:
        wait_for(lambda: station.store.events(station.name, kinds=["plc_link_lost"]), what="the event")
        time.sleep(0.3)  # several reconnects: still one event, still lost
        assert "PLC link" in " ".join(station.health()[1])
    finally:
        station.stop()
    (lost,) = station.store.events(station.name, kinds=["plc_link_lost", "plc_link_restored"])
    assert lost["kind"] == "plc_link_lost"
    assert "writing DB99" in lost["detail"] and "PUT/GET" in lost["detail"]
