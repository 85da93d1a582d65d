"""MQTT Sparkplug B on loopback: a real Mosquitto broker (password, TLS), the station as the edge
node, and a Sparkplug host application here that decodes every message with its own protobuf wire
reader (field numbers from the specification, not the sink's schema) and checks the sequence
numbers, births, deaths, commands and delivery across link cuts."""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass, field

import pytest
from mqtt_broker import MOSQUITTO, MOSQUITTO_PASSWD, Mosquitto
from plc_helpers import CuttableLink
from station_helpers import station_config, two_job_station, wait_for

from lineguard.station import Station

pytest.importorskip("paho.mqtt")
pytestmark = pytest.mark.skipif(
    MOSQUITTO is None or MOSQUITTO_PASSWD is None, reason="mosquitto not installed (scripts/setup.sh)"
)

GROUP, NODE = "plant1", "test-line"
PASSWORD_ENV = "LINEGUARD_TEST_MQTT_PASSWORD"


# -- an independent Sparkplug B payload reader (protobuf wire format) ---------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _fields(data: bytes):
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        elif wire == 2:
            n, i = _varint(data, i)
            value, i = data[i : i + n], i + n
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def read_metric(data: bytes) -> dict:
    m: dict = {"value": None, "is_null": False, "is_historical": False}
    for number, _, value in _fields(data):
        if number == 1:
            m["name"] = value.decode()
        elif number == 3:
            m["timestamp"] = value
        elif number == 4:
            m["datatype"] = value
        elif number == 5:
            m["is_historical"] = bool(value)
        elif number == 7:
            m["is_null"] = bool(value)
        elif number in (10, 11):
            m["value"] = value
        elif number == 12:
            m["value"] = struct.unpack("<f", value)[0]
        elif number == 13:
            m["value"] = struct.unpack("<d", value)[0]
        elif number == 14:
            m["value"] = bool(value)
        elif number == 15:
            m["value"] = value.decode()
    if m.get("datatype") == 3 and m["value"] is not None and m["value"] >= 2**31:  # Int32
        m["value"] -= 2**32
    return m


def read_payload(data: bytes) -> dict:
    out: dict = {"metrics": {}, "seq": None}
    for number, _, value in _fields(data):
        if number == 1:
            out["timestamp"] = value
        elif number == 2:
            metric = read_metric(value)
            out["metrics"][metric["name"]] = metric
        elif number == 3:
            out["seq"] = value
    return out


def write_command(metrics: list[tuple[str, int, object]]) -> bytes:
    """An NCMD/DCMD payload, encoded here by hand (wire format)."""

    def varint(v: int) -> bytes:
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return bytes(out)

    def ld(number: int, raw: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(raw)) + raw

    body = varint(1 << 3) + varint(int(time.time() * 1000))
    for name, datatype, value in metrics:
        m = ld(1, name.encode()) + varint(4 << 3) + varint(datatype)
        if isinstance(value, bool):
            m += varint(14 << 3) + varint(int(value))
        elif isinstance(value, int):
            m += varint(10 << 3) + varint(value & 0xFFFFFFFF)
        else:
            m += ld(15, str(value).encode())
        body += ld(2, m)
    return body


# -- the host application -------------------------------------------------------------------


@dataclass
class Host:
    broker: Mosquitto
    messages: list[tuple[str, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-host")
        self.client.username_pw_set(self.broker.user, self.broker.password)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.subscribe(f"spBv1.0/{GROUP}/#", qos=1)
        self.client.loop_start()
        time.sleep(0.2)

    def _on_message(self, _client, _userdata, msg) -> None:
        kind = msg.topic.split("/")[2]
        if kind in ("NCMD", "DCMD"):
            return
        with self.lock:
            self.messages.append((msg.topic, read_payload(msg.payload)))

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [p for t, p in self.messages if t.split("/")[2] == kind]

    def command(self, metrics, device: str | None = None) -> None:
        topic = f"spBv1.0/{GROUP}/{'DCMD' if device else 'NCMD'}/{NODE}" + (f"/{device}" if device else "")
        self.client.publish(topic, write_command(metrics), qos=1).wait_for_publish(5)

    def part_seqs(self) -> list[int]:
        """Part/Seq of every DDATA in arrival order, duplicates dropped (at-least-once delivery)."""
        seen: list[int] = []
        for p in self.of("DDATA"):
            seq = p["metrics"]["Part/Seq"]["value"]
            if seq not in seen:
                seen.append(seq)
        return seen

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker(tmp_path, monkeypatch):
    broker = Mosquitto(tmp_path / "mosquitto")
    monkeypatch.setenv(PASSWORD_ENV, broker.password)
    yield broker
    broker.close()


def sparkplug_station(tmp_path, bundle, broker, link, *, tls: bool = True, **options) -> Station:
    doc = {
        "host": "127.0.0.1",
        "port": link.port,
        "group_id": GROUP,
        "username": broker.user,
        "password_env": PASSWORD_ENV,
        "keepalive_s": 2,
        "reconnect_s": 0.1,
        **options,
    }
    if tls:
        doc["tls"] = {"ca_file": str(broker.certificates["ca"])}
    else:
        doc.update(tls=None, allow_plaintext=True)
    return two_job_station(tmp_path, bundle, {"sparkplug": doc})


def check_sequence_numbers(host: Host) -> None:
    """Within each birth: NBIRTH seq 0, then every message +1 (mod 256); NDEATH carries none."""
    expected = None
    with host.lock:
        messages = list(host.messages)
    for topic, payload in messages:
        kind = topic.split("/")[2]
        if kind == "NDEATH":
            assert payload["seq"] is None
            expected = None
            continue
        if kind == "NBIRTH":
            assert payload["seq"] == 0
        else:
            assert expected is not None, f"{kind} before any NBIRTH"
            assert payload["seq"] == expected, f"{kind}: seq {payload['seq']}, expected {expected}"
        expected = (payload["seq"] + 1) % 256


def test_sparkplug_edge_node_births_commands_deaths_and_link_cut(station_bundle, tmp_path, broker):
    link = CuttableLink(broker.tls_port)
    host = Host(broker)
    station = sparkplug_station(tmp_path, station_bundle, broker, link)
    station.start()
    try:
        wait_for(lambda: host.of("DBIRTH"), what="NBIRTH and DBIRTH")
        (birth,) = host.of("NBIRTH")
        metrics = birth["metrics"]
        assert metrics["bdSeq"]["value"] == 0 and metrics["Job"]["value"] == 1
        assert metrics["Recipe"]["value"] == "parts" and metrics["State"]["value"] == "running"
        assert {"Node Control/Rebirth", "Node Control/Trigger", "Node Control/Job"} <= set(metrics)
        (dbirth,) = host.of("DBIRTH")
        assert {"Part/Seq", "Part/Id", "Decision", "Score"} <= set(dbirth["metrics"])

        host.command([("Node Control/Trigger", 12, "PN-1")])
        wait_for(lambda: host.of("DDATA"), what="DDATA")
        data = host.of("DDATA")[0]["metrics"]
        assert data["Part/Id"]["value"] == "PN-1" and data["Part/Seq"]["value"] == 1
        assert data["Decision"]["value"] in ("OK", "REVIEW", "NG")
        assert isinstance(data["Score"]["value"], float)
        assert not data["Score"]["is_historical"]

        host.command([("Node Control/Job", 3, 2)])  # Int32
        wait_for(lambda: station.recipe.name == "parts-b", what="job 2")
        jobs = lambda: [p["metrics"]["Job"]["value"] for p in host.of("NDATA") if "Job" in p["metrics"]]  # noqa: E731
        wait_for(lambda: 2 in jobs(), what="NDATA with the new job")

        # Bad input: a wrong type and an unknown metric change nothing but say why.
        host.command([("Node Control/Job", 12, "one")])
        host.command([("Node Control/Self Destruct", 11, True)])

        def errors() -> list[str]:
            return [
                p["metrics"]["Node Info/Last Command Error"]["value"]
                for p in host.of("NDATA")
                if p["metrics"].get("Node Info/Last Command Error", {}).get("value")
            ]

        wait_for(lambda: len(errors()) == 2, what="both refusals in NDATA")
        assert "wants an integer type" in errors()[0] and "not a command" in errors()[1]
        assert station.recipe.name == "parts-b" and station.sinks[0].stats()["commands_refused"] == 2

        host.command([("Node Control/Rebirth", 11, True)])
        wait_for(lambda: len(host.of("NBIRTH")) == 2, what="rebirth")
        assert host.of("NBIRTH")[1]["metrics"]["bdSeq"]["value"] == 0  # same session

        # The link drops: the broker sends the will; the part decided meanwhile comes after the new birth.
        link.cut()
        wait_for(lambda: host.of("NDEATH"), what="NDEATH (the last will)")
        assert host.of("NDEATH")[0]["metrics"]["bdSeq"]["value"] == 0
        station.trigger("REST-1")
        wait_for(lambda: station.counters["parts"] == 2, what="a part decided while the broker is away")
        link.restore()
        wait_for(lambda: len(host.of("NBIRTH")) == 3, what="birth after the reconnect")
        assert host.of("NBIRTH")[2]["metrics"]["bdSeq"]["value"] == 1
        wait_for(lambda: len(host.of("DDATA")) == 2, what="the waiting result")
        late = host.of("DDATA")[1]["metrics"]
        assert late["Part/Id"]["value"] == "REST-1" and late["Part/Seq"]["value"] == 2
        assert late["Score"]["is_historical"]
        deaths = len(host.of("NDEATH"))
        station.stop()
        wait_for(lambda: len(host.of("NDEATH")) == deaths + 1, what="NDEATH at a clean stop")
        assert host.of("NDEATH")[-1]["metrics"]["bdSeq"]["value"] == 1
    finally:
        station.stop()
        host.close()
        link.close()
    check_sequence_numbers(host)
    kinds = [e["kind"] for e in station.store.events(station.name, limit=500)]
    assert "sparkplug_command_refused" in kinds and "sparkplug_link_lost" in kinds
    assert "sparkplug_link_restored" in kinds


def test_sparkplug_fifty_link_cuts_lose_no_result_with_qos_1(station_bundle, tmp_path, broker):
    link = CuttableLink(broker.port)
    host = Host(broker)
    station = sparkplug_station(tmp_path, station_bundle, broker, link, tls=False, data_qos=1)
    station.start()
    try:
        wait_for(lambda: host.of("DBIRTH"), what="births")
        node = station.sinks[0]
        for i in range(60):
            if i < 50:  # every cut hits a live session (born after the last cut), at another moment
                wait_for(lambda i=i: len(host.of("NBIRTH")) > i, what="the session back")
            station.trigger(f"C-{i}")
            if i < 50:
                time.sleep(0.015 * (i % 4))
                link.cut()
                time.sleep(0.02 * (i % 3))
                link.restore()
        wait_for(lambda: len(host.part_seqs()) == 60, timeout_s=60, what="every result")
    finally:
        station.stop()
        host.close()
        link.close()
    assert host.part_seqs() == list(range(1, 61))
    ids = {p["metrics"]["Part/Seq"]["value"]: p["metrics"]["Part/Id"]["value"] for p in host.of("DDATA")}
    assert [ids[s] for s in range(1, 61)] == [f"C-{i}" for i in range(60)]
    assert link.cuts >= 50 and len(host.of("NBIRTH")) >= 50 and node.stats()["link_lost"] >= 50
    check_sequence_numbers(host)


def test_sparkplug_refuses_plaintext_unless_asked(tmp_path, station_bundle):
    with pytest.raises(ValueError, match="allow_plaintext"):
        station_config(
            tmp_path,
            station_bundle,
            tmp_path,
            sinks={"sparkplug": {"host": "127.0.0.1", "group_id": GROUP, "tls": None}},
        )
