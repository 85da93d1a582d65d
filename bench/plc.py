"""Latency from a verdict to the result being visible on the PLC side, per protocol.

Each protocol runs against the same real counterpart the tests use, on loopback: a pymodbus client
(Modbus TCP server sink), asyncua client over Basic256Sha256 Sign & Encrypt (OPC UA server sink),
python-snap7's server holding the DBs (S7 link), cpppo's Logix simulator (EtherNet/IP link) and a
Mosquitto broker with a Sparkplug host (MQTT). The sink is started with a stand-in for the station
(no inference: this measures the link, not the model). For each part: the clock starts when the
station hands the result to the sink (``publish``, the moment the verdict exists) and stops when the
PLC side first sees it: ResultValid with that sequence number in the PLC's memory / registers /
nodes / tags, or the DDATA at the host. The PLC side then acknowledges it (ResultAck cycle) before
the next part. The PLC side looks every 1 ms (a fast PLC scan); the station's own poll is its
default (S7 / Logix ``poll_ms`` 10).

    python bench/plc.py --parts 1000          # writes its section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' broker and link helpers

from lineguard.results import PublishedResult  # noqa: E402

SCAN_S = 0.001


class StandInStation:
    """What a sink asks of the station, without cameras or models."""

    def __init__(self) -> None:
        self.name, self.state, self.job = "bench", "running", 1
        self.recipe = SimpleNamespace(name="parts")
        self.recipe_names = ["parts"]
        self.counters = {"parts": 0, "OK": 0, "REVIEW": 0, "NG": 0}
        check = SimpleNamespace(name="surface")
        self.config = SimpleNamespace(recipes={"parts": SimpleNamespace(checks=[check], job=1)})
        self.store = SimpleNamespace(add_event=lambda *a, **k: None)

    def trigger(self, part_id=None, source=None) -> int:
        return 1

    def change_job(self, number: int, actor: str) -> None:
        self.job = number


def result(seq: int) -> PublishedResult:
    return PublishedResult(
        seq,
        f"bench-{seq}",
        f"P-{seq}",
        "OK" if seq % 4 else "NG",
        "",
        {"surface": 0.5},
        datetime.now(UTC).isoformat(),
        1.0,
        "parts",
        {"surface": "OK" if seq % 4 else "NG"},
    )


def until(predicate, timeout_s: float = 10.0):
    end = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError("the PLC side never saw it")
        time.sleep(SCAN_S)


def run_parts(sink, n: int, seen_seq, ack, start: bool = True) -> list[float]:
    """Publish n results; the PLC side's ``seen_seq()`` returns the presented seq (0 none)."""
    if start:
        sink.start(StandInStation())
    time.sleep(0.5)
    latencies = []
    try:
        for seq in range(1, n + 1):
            start = time.perf_counter()
            sink.publish(result(seq))
            until(lambda seq=seq: seen_seq() == seq)
            latencies.append(1e3 * (time.perf_counter() - start))
            ack()
    finally:
        sink.close()
    return latencies


def free_port() -> int:
    from postgres_server import free_port as port

    return port()


def bench_modbus(n: int) -> list[float]:
    from pymodbus.client import ModbusTcpClient

    from lineguard.sinks import modbus as m

    port = free_port()
    sink = m.ModbusSink("127.0.0.1", port, 1, 16)
    client = ModbusTcpClient("127.0.0.1", port=port)

    def seen() -> int:
        bits = client.read_discrete_inputs(0, count=8, device_id=1).bits
        if not bits[m.DI_RESULT_VALID]:
            return 0
        regs = client.read_input_registers(m.IR_SEQ, count=2, device_id=1).registers
        return regs[0] << 16 | regs[1]

    def ack() -> None:
        client.write_coil(m.COIL_RESULT_ACK, True, device_id=1)
        until(lambda: not client.read_discrete_inputs(0, count=8, device_id=1).bits[m.DI_RESULT_VALID])
        client.write_coil(m.COIL_RESULT_ACK, False, device_id=1)

    sink.start(StandInStation())  # the server first, then the PLC's client
    sink.set_state("running", 0)
    assert client.connect()
    try:
        return run_parts(sink, n, seen, ack, start=False)
    finally:
        client.close()


def bench_s7(n: int) -> list[float]:
    from snap7.server import Server
    from snap7.type import SrvArea

    from lineguard.sinks import s7

    command, result_db = bytearray(s7.command_size(32)), bytearray(s7.result_size(32))
    command[6] = 32
    server = Server()
    server.register_area(SrvArea.DB, 10, command)
    server.register_area(SrvArea.DB, 11, result_db)
    port = free_port()
    server.start(tcp_port=port)
    sink = s7.PlcClientSink(s7.S7Transport("127.0.0.1", port=port, command_db=10, result_db=11))

    def seen() -> int:
        return struct.unpack_from(">i", result_db, 8)[0] if result_db[0] & 0b100 else 0

    def ack() -> None:
        command[0] |= 0b10
        until(lambda: not result_db[0] & 0b100)
        command[0] &= ~0b10

    try:
        return run_parts(sink, n, seen, ack)
    finally:
        server.stop()
        server.destroy()


def bench_logix(n: int) -> list[float]:
    from lineguard.sinks.logix import LogixTransport, PlcClientSink

    port = free_port()
    tags = ["B_Command=DINT[4]", "B_Result=DINT[16]", "B_PartIdIn=SINT[32]", "B_PartId=SINT[32]"]
    simulator = subprocess.Popen(
        [sys.executable, "-m", "cpppo.server.enip", "--address", f"127.0.0.1:{port}", *tags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2.0)
    program = LogixTransport("127.0.0.1", port=port, slot=None, tag_prefix="B_")
    program.connect()
    sink = PlcClientSink(LogixTransport("127.0.0.1", port=port, slot=None, tag_prefix="B_"))
    command = [0, 0, 0, 0]

    def words() -> list[int]:
        return program.driver.read("B_Result{16}", "B_PartId{32}")[0].value

    def seen() -> int:
        w = words()
        return w[4] if w[0] & 0b100 else 0

    def write_command() -> None:
        program.driver.write(("B_Command{4}", list(command)), ("B_PartIdIn{32}", [0] * 32))

    def ack() -> None:
        command[0] |= 0b10
        write_command()
        until(lambda: not words()[0] & 0b100)
        command[0] &= ~0b10
        write_command()

    try:
        return run_parts(sink, n, seen, ack)
    finally:
        program.close()
        simulator.terminate()
        simulator.wait(10)


def bench_sparkplug(n: int, qos: int) -> list[float]:
    import paho.mqtt.client as mqtt
    from mqtt_broker import Mosquitto
    from test_sparkplug import read_payload

    from lineguard.sinks.sparkplug import SparkplugSink

    folder = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    broker = Mosquitto(folder)
    arrived: dict[int, float] = {}
    host = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-host")
    host.username_pw_set(broker.user, broker.password)

    def on_message(_client, _userdata, msg) -> None:
        if "/DDATA/" in msg.topic:
            arrived.setdefault(read_payload(msg.payload)["metrics"]["Part/Seq"]["value"], time.perf_counter())

    host.on_message = on_message
    host.connect("127.0.0.1", broker.port)
    host.subscribe("spBv1.0/bench/#", qos=1)
    host.loop_start()
    sink = SparkplugSink(
        "127.0.0.1",
        broker.tls_port,
        "bench",
        "node",
        username=broker.user,
        password=broker.password,
        tls={"ca_file": str(broker.certificates["ca"])},
        data_qos=qos,
    )
    station = StandInStation()
    sink.start(station)
    time.sleep(1.0)
    latencies = []
    try:
        for seq in range(1, n + 1):
            start = time.perf_counter()
            sink.publish(result(seq))
            until(lambda seq=seq: seq in arrived)
            latencies.append(1e3 * (arrived[seq] - start))
    finally:
        sink.close()
        host.loop_stop()
        broker.close()
    return latencies


def bench_opcua(n: int) -> list[float]:
    from asyncua import Client
    from test_plc import _client_certificate

    from lineguard.sinks.opcua import OpcUaSink
    from lineguard.sinks.opcua_trust import TrustList

    folder = Path(tempfile.mkdtemp(prefix="bench-opcua-"))
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/lineguard/"
    sink = OpcUaSink(
        url, "urn:lineguard:station", ("sign_encrypt",), None, None, {"plc": "bench-pass"}, False, 16, folder
    )
    station = StandInStation()
    sink.start(station)
    sink.set_state("running", 0)
    cert, key = _client_certificate(folder)
    TrustList(folder / "opcua").trust(cert)  # the PLC's certificate, on the station's trust list
    latencies: list[float] = []

    async def plc() -> None:
        client = Client(url, timeout=10)
        await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
        client.set_user("plc")
        client.set_password("bench-pass")
        async with client:
            ns = await client.get_namespace_index("urn:lineguard:station")
            base = ["0:Objects", f"{ns}:LineGuard", f"{ns}:bench"]
            valid = await client.nodes.root.get_child([*base, f"{ns}:ResultValid"])
            ack = await client.nodes.root.get_child([*base, f"{ns}:ResultAck"])
            seq_node = await client.nodes.root.get_child([*base, f"{ns}:Result", f"{ns}:Seq"])
            for seq in range(1, n + 1):
                start = time.perf_counter()
                sink.publish(result(seq))
                while not (await valid.read_value() and await seq_node.read_value() == seq):
                    await asyncio.sleep(SCAN_S)
                latencies.append(1e3 * (time.perf_counter() - start))
                await ack.write_value(True)
                while await valid.read_value():
                    await asyncio.sleep(SCAN_S)
                await ack.write_value(False)

    try:
        asyncio.run(plc())
    finally:
        sink.close()
    return latencies


PROTOCOLS = {
    "Modbus TCP (server; pymodbus client)": bench_modbus,
    "OPC UA (server, Sign & Encrypt; asyncua client)": bench_opcua,
    "Siemens S7 (client, poll 10 ms; snap7 server)": bench_s7,
    "EtherNet/IP Logix (client, poll 10 ms; cpppo simulator)": bench_logix,
    "MQTT Sparkplug B, QoS 0 (TLS; Mosquitto, host)": lambda n: bench_sparkplug(n, 0),
    "MQTT Sparkplug B, QoS 1 (TLS; Mosquitto, host)": lambda n: bench_sparkplug(n, 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", type=int, default=1000)
    parser.add_argument("--only", help="run only the protocols whose name holds this text")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    rows = []
    for name, run in PROTOCOLS.items():
        if args.only and args.only not in name:
            continue
        print(f"{name}: {args.parts} parts", file=sys.stderr, flush=True)
        ms = np.asarray(run(args.parts))
        rows.append((name, len(ms), *np.percentile(ms, [50, 99]), ms.max()))
        print(f"  p50 {rows[-1][2]:.2f} ms, p99 {rows[-1][3]:.2f} ms", file=sys.stderr, flush=True)
    cpu = platform.processor() or platform.machine()
    lines = [
        "<!-- plc start -->",
        "## PLC and MES links: verdict to the PLC side (`bench/plc.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {cpu}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, loopback, command: `python bench/plc.py --parts {args.parts}`. "
        "From the moment the station hands a result to the sink to the moment the PLC side (scanning "
        "every 1 ms) first sees ResultValid with its sequence number, or the Sparkplug host receives its "
        "DDATA; the PLC acknowledges each result before the next. A stand-in station (no inference).",
        "",
        "| protocol | parts | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        *(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} |" for r in rows),
        "<!-- plc end -->",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.only:
        text = args.out.read_text()
        start, end = "<!-- plc start -->", "<!-- plc end -->"
        if start in text:
            text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        args.out.write_text(text)


if __name__ == "__main__":
    main()
