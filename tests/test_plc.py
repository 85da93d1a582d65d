"""PLC integration on loopback: the handshake logic, a real Modbus TCP client and a real OPC UA client
(Basic256Sha256 Sign&Encrypt, user login) triggering parts and acknowledging results."""

from __future__ import annotations

import asyncio
import time

import pytest
from helpers import write_line
from postgres_server import free_port
from station_helpers import station_config, two_job_station, wait_for

from lineguard.results import ErrorCode, PublishedResult
from lineguard.sinks.handshake import Handshake
from lineguard.station import Station, build_sinks


def result(seq: int, verdict: str = "OK") -> PublishedResult:
    return PublishedResult(
        seq, f"u{seq}", f"P{seq}", verdict, "", {"c": 1.0}, "2026-11-28T08:00:00+00:00", 5.0
    )


def test_handshake_trigger_needs_a_full_cycle_and_results_wait_for_ack():
    fired = []
    hs = Handshake(buffer_size=2, on_trigger=fired.append)
    hs.set_trigger(True, "A1")
    hs.set_trigger(True, "A2")  # still high: not a new trigger
    assert fired == ["A1"] and hs.state().trigger_ack
    hs.set_trigger(False)
    assert not hs.state().trigger_ack
    hs.set_trigger(True, None)
    assert fired == ["A1", None]

    hs.publish(result(1))
    hs.publish(result(2, "NG"))
    hs.publish(result(3))  # buffer of 2 is full: not presented, error raised, still counted
    state = hs.state()
    assert state.result_valid and state.current.seq == 1 and state.buffered == 1
    assert state.error and state.error_code == ErrorCode.RESULT_BUFFER_OVERFLOW
    assert state.counters == {"total": 3, "OK": 2, "NG": 1, "REVIEW": 0, "overflowed": 1}
    hs.set_result_ack(True)
    assert not hs.state().result_valid and hs.state().current is None
    hs.set_result_ack(True)  # held high: nothing more happens
    assert hs.state().current is None
    hs.set_result_ack(False)  # the next result only after the PLC dropped its ack
    assert hs.state().result_valid and hs.state().current.seq == 2
    hs.reset_error()
    assert not hs.state().error


def test_modbus_text_and_register_encoding():
    from lineguard.sinks.modbus import registers_to_text, text_to_registers

    regs = text_to_registers("PN-0042")
    assert len(regs) == 16 and regs[0] == (ord("P") << 8) | ord("N")
    assert registers_to_text(regs) == "PN-0042"
    assert registers_to_text(text_to_registers("X" * 40)) == "X" * 32  # truncated to the field


def _triggered_station(tmp_path, bundle, sinks_doc):
    truth = write_line(tmp_path / "line", 4, defect_every=2)
    config = station_config(
        tmp_path,
        bundle,
        tmp_path / "line",
        sources={"cam1": {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 0, "trigger": "external"}},
        sinks=sinks_doc,
    )
    return Station(config, build_sinks(config)), truth


def test_modbus_client_does_the_handshake(station_bundle, tmp_path):
    from pymodbus.client import ModbusTcpClient

    from lineguard.sinks import modbus as m

    port = free_port()
    station, truth = _triggered_station(tmp_path, station_bundle, {"modbus": {"port": port, "device_id": 1}})
    station.start()
    client = ModbusTcpClient("127.0.0.1", port=port)
    assert client.connect()

    def bits():
        return client.read_discrete_inputs(0, count=8, device_id=1).bits

    try:
        assert bits()[m.DI_READY] and not bits()[m.DI_RESULT_VALID]
        verdicts = []
        for i in range(4):
            # Every register-writing function code a PLC may use for PartIdIn: 16, 23, 16 then 22.
            if i == 1:
                regs = m.text_to_registers(f"PN-{i}")
                client.readwrite_registers(
                    read_address=0, read_count=1, write_address=m.HR_PART_ID, values=regs, device_id=1
                )
            elif i == 3:
                client.write_registers(m.HR_PART_ID, m.text_to_registers("PN-9"), device_id=1)
                # "-9" -> "-3": keep the high byte, replace the low one.
                client.mask_write_register(address=1, and_mask=0xFF00, or_mask=ord("3"), device_id=1)
            else:
                client.write_registers(m.HR_PART_ID, m.text_to_registers(f"PN-{i}"), device_id=1)
            client.write_coil(m.COIL_TRIGGER, True, device_id=1)
            wait_for(lambda: bits()[m.DI_TRIGGER_ACK], what="TriggerAck")
            client.write_coil(m.COIL_TRIGGER, False, device_id=1)
            wait_for(lambda: not bits()[m.DI_TRIGGER_ACK], what="TriggerAck cleared")
            wait_for(lambda: bits()[m.DI_RESULT_VALID], what="ResultValid")
            regs = client.read_input_registers(0, count=m.IR_COUNT, device_id=1).registers
            flags = bits()
            part_id = m.registers_to_text(regs[m.IR_PART_ID : m.IR_PART_ID + m.PART_ID_REGISTERS])
            seq = (regs[m.IR_SEQ] << 16) | regs[m.IR_SEQ + 1]
            verdict = {1: "OK", 2: "REVIEW", 3: "NG"}[regs[m.IR_VERDICT]]
            assert flags[{"OK": m.DI_OK, "NG": m.DI_NG, "REVIEW": m.DI_REVIEW}[verdict]]
            assert (part_id, seq) == (f"PN-{i}", i + 1)
            verdicts.append(verdict)
            client.write_coil(m.COIL_RESULT_ACK, True, device_id=1)
            wait_for(lambda: not bits()[m.DI_RESULT_VALID], what="ResultValid cleared")
            client.write_coil(m.COIL_RESULT_ACK, False, device_id=1)
        regs = client.read_input_registers(0, count=m.IR_COUNT, device_id=1).registers
        assert (regs[m.IR_TOTAL + 1], regs[m.IR_NG + 1]) == (4, 2)
        assert verdicts == ["NG" if truth[f"p{i:03d}"] else "OK" for i in range(4)]
    finally:
        client.close()
        station.stop()


def _client_certificate(folder):
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key, cert = folder / "client-key.pem", folder / "client-cert.der"
    asyncio.run(
        setup_self_signed_certificate(
            key,
            cert,
            "urn:lineguard:test-plc",
            "localhost",
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": "test PLC"},
        )
    )
    return cert, key


async def _opcua_plc(url, cert, key, user, password, n_parts):
    from asyncua import Client, ua

    client = Client(url, timeout=10)
    await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
    if user:
        client.set_user(user)
        client.set_password(password)
    async with client:
        ns = await client.get_namespace_index("urn:lineguard:station")
        base = ["0:Objects", f"{ns}:LineGuard", f"{ns}:test-line"]
        node = {}
        for name in ("Trigger", "PartIdIn", "TriggerAck", "ResultValid", "ResultAck", "Ready", "State"):
            node[name] = await client.nodes.root.get_child([*base, f"{ns}:{name}"])
        for name in ("Verdict", "PartId", "Seq", "Scores"):
            node[name] = await client.nodes.root.get_child([*base, f"{ns}:Result", f"{ns}:{name}"])
        node["Total"] = await client.nodes.root.get_child([*base, f"{ns}:Counters", f"{ns}:Total"])
        assert await node["Ready"].read_value() and await node["State"].read_value() == "running"
        if not user:
            with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
                await node["Trigger"].write_value(True)
            return []

        async def until(name, value):
            end = time.monotonic() + 20
            while await node[name].read_value() != value:
                assert time.monotonic() < end, f"{name} never became {value}"
                await asyncio.sleep(0.02)

        seen = []
        for i in range(n_parts):
            await node["PartIdIn"].write_value(f"UA-{i}")
            await node["Trigger"].write_value(True)
            await until("TriggerAck", True)
            await node["Trigger"].write_value(False)
            await until("ResultValid", True)
            seen.append(
                (
                    await node["PartId"].read_value(),
                    await node["Verdict"].read_value(),
                    await node["Seq"].read_value(),
                )
            )
            await node["ResultAck"].write_value(True)
            await until("ResultValid", False)
            await node["ResultAck"].write_value(False)
        seen.append(await node["Total"].read_value())
        return seen


async def _opcua_write(url, cert, key, user, name, value) -> str:
    """Write one station node as ``user``: "ok" or the status code's name."""
    from asyncua import Client, ua

    client = Client(url, timeout=10)
    await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
    client.set_user(user)
    client.set_password("s3cret-for-tests")
    async with client:
        ns = await client.get_namespace_index("urn:lineguard:station")
        node = await client.nodes.root.get_child(
            ["0:Objects", f"{ns}:LineGuard", f"{ns}:test-line", f"{ns}:{name}"]
        )
        variant = ua.VariantType.Int32 if isinstance(value, int) and not isinstance(value, bool) else None
        try:
            await node.write_value(ua.Variant(value, variant) if variant else value)
        except ua.UaStatusCodeError as exc:
            return type(exc).__name__
    return "ok"


def test_opcua_client_does_the_handshake_encrypted_and_anonymous_cannot_write(
    station_bundle, tmp_path, monkeypatch
):
    ua = pytest.importorskip("asyncua").ua
    monkeypatch.setenv("LG_TEST_PLC_PASSWORD", "s3cret-for-tests")
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/lineguard/"
    station, truth = _triggered_station(
        tmp_path,
        station_bundle,
        {
            "opcua": {
                "endpoint": url,
                "users": [
                    {"name": "plc", "password_env": "LG_TEST_PLC_PASSWORD"},  # operate
                    {"name": "scada", "password_env": "LG_TEST_PLC_PASSWORD", "role": "read"},
                    {"name": "engineer", "password_env": "LG_TEST_PLC_PASSWORD", "role": "engineer"},
                ],
            }
        },
    )
    station.start()
    try:
        cert, key = _client_certificate(tmp_path)
        with pytest.raises(Exception, match=r"(?i)untrusted|BadCertificate|closed|reset"):
            asyncio.run(_opcua_plc(url, cert, key, "plc", "s3cret-for-tests", 0))  # not trusted yet
        (rejected,) = (tmp_path / "state" / "opcua" / "rejected").glob("*.der")
        refused = station.store.events(station.name, kinds=["opcua_certificate_refused"])
        assert refused and "urn:lineguard:test-plc" in refused[0]["detail"]
        from lineguard.sinks.opcua_trust import TrustList

        TrustList(tmp_path / "state" / "opcua").trust(rejected)  # what `lineguard opcua trust` does
        seen = asyncio.run(_opcua_plc(url, cert, key, "plc", "s3cret-for-tests", 3))
        assert seen[:3] == [(f"UA-{i}", "NG" if truth[f"p{i:03d}"] else "OK", i + 1) for i in range(3)]
        assert seen[3] == 3
        assert asyncio.run(_opcua_plc(url, cert, key, None, None, 0)) == []  # read yes, write refused
        with pytest.raises(ua.UaError):  # a wrong password gets no session at all
            asyncio.run(_opcua_plc(url, cert, key, "plc", "wrong", 0))
        # Roles, node by node: read writes nothing; operate triggers but cannot change the job.
        assert asyncio.run(_opcua_write(url, cert, key, "scada", "Trigger", False)) == "BadUserAccessDenied"
        assert asyncio.run(_opcua_write(url, cert, key, "plc", "JobNumber", 2)) == "BadUserAccessDenied"
        assert asyncio.run(_opcua_write(url, cert, key, "plc", "ErrorReset", False)) == "ok"
        assert asyncio.run(_opcua_write(url, cert, key, "engineer", "JobNumber", 2)) == "ok"
    finally:
        station.stop()
    assert (tmp_path / "state" / "opcua" / "server-cert.der").is_file()  # self-signed on first start


def test_modbus_job_change_and_the_plc_heartbeat_watchdog(station_bundle, tmp_path):
    from pymodbus.client import ModbusTcpClient

    from lineguard.sinks import modbus as m

    port = free_port()
    modbus = {"modbus": {"port": port, "plc_heartbeat_s": 0.3, "on_plc_lost": "hold"}}
    station = two_job_station(tmp_path, station_bundle, modbus)
    station.start()
    client = ModbusTcpClient("127.0.0.1", port=port)
    assert client.connect()
    beat = [0]

    def plc_beat() -> None:
        beat[0] += 1
        client.write_register(m.HR_HEARTBEAT, beat[0], device_id=1)

    def bits():
        return client.read_discrete_inputs(0, count=16, device_id=1).bits

    def regs():
        return client.read_input_registers(0, count=m.IR_COUNT, device_id=1).registers

    def change_job(number: int) -> list[int]:
        client.write_register(m.HR_JOB, number, device_id=1)
        client.write_coil(m.COIL_JOB_CHANGE, True, device_id=1)
        wait_for(lambda: (plc_beat(), bits()[m.DI_JOB_ACK])[1], what="JobAck")
        answer = regs()
        client.write_coil(m.COIL_JOB_CHANGE, False, device_id=1)
        wait_for(lambda: (plc_beat(), not bits()[m.DI_JOB_ACK])[1], what="JobAck cleared")
        return answer

    try:
        plc_beat()
        assert regs()[m.IR_JOB] == 1
        heartbeat = regs()[m.IR_HEARTBEAT]
        wait_for(lambda: regs()[m.IR_HEARTBEAT] != heartbeat, what="the station's heartbeat")
        answer = change_job(2)
        assert answer[m.IR_JOB] == 2 and answer[m.IR_ERROR_CODE] == 0 and station.recipe.name == "parts-b"
        answer = change_job(5)
        assert answer[m.IR_ERROR_CODE] == ErrorCode.JOB_UNKNOWN and answer[m.IR_JOB] == 2

        # The PLC program stops beating: the link counts as lost and the station holds.
        wait_for(lambda: station.state == "held", what="held on a silent PLC")
        assert not bits()[m.DI_READY] and regs()[m.IR_ERROR_CODE] == ErrorCode.PLC_LINK_LOST
        plc_beat()
        wait_for(lambda: station.state == "running", what="released once it beats")
    finally:
        client.close()
        station.stop()
    kinds = [e["kind"] for e in station.store.events(station.name, limit=200)]
    assert {"plc_link_lost", "plc_link_restored", "held", "released", "job_refused"} <= set(kinds)


def test_modbus_fifty_link_cuts_lose_no_result_and_keep_the_order(station_bundle, tmp_path):
    """The PLC's connection to the station's server drops 50 times (at every point of the result
    cycle); the station keeps deciding, and the PLC, reconnecting, takes every result in order."""
    from plc_helpers import CuttableLink
    from pymodbus.client import ModbusTcpClient

    from lineguard.sinks import modbus as m

    port = free_port()
    station = two_job_station(tmp_path, station_bundle, {"modbus": {"port": port, "result_buffer": 64}})
    station.start()
    link = CuttableLink(port)
    client = ModbusTcpClient("127.0.0.1", port=link.port, timeout=1, retries=0)

    def call(fn):
        """A PLC retries a failed request once its connection is back."""
        end = time.monotonic() + 20
        while True:
            try:
                if not client.connected:
                    client.connect()
                reply = fn()
                if not reply.isError():
                    return reply
            except Exception:
                client.close()
            assert time.monotonic() < end, "the PLC never got through"
            time.sleep(0.01)

    def valid() -> bool:
        return call(lambda: client.read_discrete_inputs(0, count=8, device_id=1)).bits[m.DI_RESULT_VALID]

    seen = []
    try:
        for i in range(55):
            station.trigger(f"M-{i}")  # the station's own trigger: parts come while the link is down
            if i < 50:
                link.cut()
                time.sleep(0.01 * (i % 4))
                link.restore()
            wait_for(valid, what="ResultValid")
            regs = call(lambda: client.read_input_registers(0, count=m.IR_COUNT, device_id=1)).registers
            part = m.registers_to_text(regs[m.IR_PART_ID : m.IR_PART_ID + m.PART_ID_REGISTERS])
            seen.append(((regs[m.IR_SEQ] << 16) | regs[m.IR_SEQ + 1], part))
            call(lambda: client.write_coil(m.COIL_RESULT_ACK, True, device_id=1))
            wait_for(lambda: not valid(), what="ResultValid cleared")
            call(lambda: client.write_coil(m.COIL_RESULT_ACK, False, device_id=1))
    finally:
        client.close()
        link.close()
        station.stop()
    assert seen == [(i + 1, f"M-{i}") for i in range(55)] and link.cuts >= 50
