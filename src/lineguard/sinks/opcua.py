"""OPC UA server for PLCs, SCADA and MES (asyncua): station state, last result, counters, and the
result-valid / result-acknowledge handshake (:mod:`lineguard.sinks.handshake`).

Address space, under Objects/LineGuard/<station> (namespace from the config)::

    State, Ready, Error, ErrorCode, Recipe, Heartbeat           read
    Trigger, PartIdIn, ResultAck, ErrorReset                    written by the PLC (authenticated)
    JobChange, JobNumber, PlcHeartbeat                          written by the PLC (authenticated)
    TriggerAck, ResultValid, JobBusy, JobAck, JobActive         read
    Result/ Seq, PartId, Uid, Verdict, OK, NG, REVIEW, Reason, Scores (JSON), DecidedAt, LatencyMs
    Counters/ Total, OK, NG, REVIEW, Overflowed, Buffered

The names follow the spirit of OPC 40100 (Machine Vision: state, results with a
validity flag) without claiming conformance to that companion specification.
Security: Basic256Sha256 Sign&Encrypt by default (a self-signed server certificate is
made on first start if none is configured); only client certificates on the trust list may open
a channel (:mod:`lineguard.sinks.opcua_trust`); anonymous sessions may read but never
write; users log in with a name and a password kept in an environment variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lineguard.results import ErrorCode
from lineguard.sinks.basic import PlcServerSink, claim_port
from lineguard.sinks.handshake import Handshake
from lineguard.sinks.opcua_trust import TrustList
from lineguard.sinks.plclink import HEARTBEAT_MODULO, HeartbeatWatch, JobChanges, LinkState

# What each user role may write (node names under the station object); "read" writes nothing.
OPERATE_NODES = ("Trigger", "PartIdIn", "ResultAck", "ErrorReset", "PlcHeartbeat")
ROLE_NODES = {"read": (), "operate": OPERATE_NODES, "engineer": (*OPERATE_NODES, "JobChange", "JobNumber")}


def _ruleset(allow_anonymous_writes: bool, roles: dict[str, str], writable: dict[str, set[Any]]):
    """Which requests each session may make. Writes are checked node by node against the user's
    role (``writable``: role -> node ids, filled once the nodes exist); anonymous sessions read."""
    from asyncua import ua
    from asyncua.crypto.permission_rules import ADMIN_TYPES, USER_TYPES, PermissionRuleset, UserRole
    from asyncua.ua.ua_binary import struct_from_binary

    # asyncua's stubs type numeric identifiers as its Int32 wrapper; plain ints are what it takes.
    node: Any = ua.NodeId
    write, call = (
        node(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
        node(ua.ObjectIds.CallRequest_Encoding_DefaultBinary),
    )
    user_ids = {node(t) for t in USER_TYPES}
    allowed = {
        UserRole.Admin: user_ids | {node(t) for t in ADMIN_TYPES},
        UserRole.User: user_ids,
        UserRole.Anonymous: user_ids if allow_anonymous_writes else user_ids - {write, call},
    }

    class StationRuleset(PermissionRuleset):
        def check_validity(self, user, action_type_id, body) -> bool:
            if action_type_id not in allowed.get(user.role, set()):
                return False
            if user.role == UserRole.Admin or action_type_id not in (write, call):
                return True
            role = "engineer" if user.role == UserRole.Anonymous else roles.get(user.name or "", "read")
            if action_type_id == call:
                return role != "read"
            # A shadow copy: the server reads the request from ``body`` after this check.
            params = struct_from_binary(ua.WriteParameters, body.copy())
            return all(item.NodeId in writable.get(role, set()) for item in params.NodesToWrite)

    return StationRuleset()


def _user_manager(users: dict[str, str]) -> Any:
    """Name + password (from environment variables) -> User; anything else -> anonymous (read only)."""
    from asyncua.crypto.permission_rules import User, UserRole
    from asyncua.server.user_managers import UserManager

    class Users(UserManager):
        def get_user(self, iserver, username=None, password=None, certificate=None) -> User | None:
            if username is None:
                return User(role=UserRole.Anonymous)
            expected = users.get(username)
            given = password.decode() if isinstance(password, bytes) else (password or "")
            if expected is not None and hmac.compare_digest(expected.encode(), given.encode()):
                return User(role=UserRole.User, name=username)
            return None  # wrong name or password: the session is refused

    return Users()


class OpcUaSink(PlcServerSink):
    server = "OPC UA server"

    def __init__(
        self,
        endpoint: str = "opc.tcp://127.0.0.1:4840/lineguard/",
        namespace: str = "urn:lineguard:station",
        security: tuple[str, ...] = ("sign_encrypt",),
        certificate: Path | None = None,
        private_key: Path | None = None,
        users: dict[str, str] | None = None,
        allow_anonymous_writes: bool = False,
        result_buffer: int = 16,
        state_dir: Path = Path("."),
        poll_s: float = 0.01,
        trust_all_clients: bool = False,
        plc_heartbeat_s: float | None = None,
        on_plc_lost: str = "continue",
        roles: dict[str, str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self.security = tuple(security)
        self.certificate, self.private_key = certificate, private_key
        self.users = dict(users or {})
        self.roles = {name: (roles or {}).get(name, "operate") for name in self.users}
        self._writable: dict[str, set[Any]] = {}
        self.allow_anonymous_writes = allow_anonymous_writes
        self.state_dir = Path(state_dir)
        self.poll_s = poll_s
        self.handshake = Handshake(result_buffer)
        self.trust_all_clients = trust_all_clients
        self.trust = TrustList(self.state_dir / "opcua", self._certificate_refused)
        self.link = LinkState(f"OPC UA client of {endpoint}", on_plc_lost)
        self.heartbeat = HeartbeatWatch(plc_heartbeat_s)
        self._jobs: JobChanges | None = None
        self._state = "created"
        self._recipe = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    @classmethod
    def from_config(cls, config: Any, state_dir: Path) -> OpcUaSink:
        users = {}
        for user in config.users:
            password = os.environ.get(user.password_env)
            if not password:
                raise ValueError(
                    f"sinks.opcua.users: {user.name}'s password variable {user.password_env} is not set"
                )
            users[user.name] = password
        return cls(
            config.endpoint,
            config.namespace,
            tuple(config.security),
            config.certificate,
            config.private_key,
            users,
            config.allow_anonymous_writes,
            config.result_buffer,
            state_dir,
            trust_all_clients=config.trust_all_clients,
            plc_heartbeat_s=config.plc_heartbeat_s,
            on_plc_lost=config.on_plc_lost,
            roles={user.name: user.role for user in config.users},
        )

    # -- life cycle --------------------------------------------------------------------

    def start(self, station: Any) -> None:
        self.handshake.on_trigger = lambda part_id: station.trigger(part_id)
        self.handshake.on_job = lambda number: station.change_job(number, f"plc:{self.link.describe}")
        self.handshake.set_job(station.job)
        self._jobs = JobChanges(self.handshake)
        self._recipe = station.recipe.name
        self._station = self.link.station = station
        from urllib.parse import urlsplit

        where = urlsplit(self.endpoint)
        claim_port(where.hostname or "0.0.0.0", where.port or 4840, f"OPC UA server {self.endpoint}")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="opcua", daemon=True)
        self._thread.start()
        if not self._started.wait(30):
            raise OSError(f"OPC UA server {self.endpoint} did not start within 30 s")
        if self._failure is not None:
            raise OSError(
                f"OPC UA server {self.endpoint} failed to start: {self._failure}"
            ) from self._failure

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None  # set by start() before the thread runs
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._started.set()

    async def _certificates(self) -> tuple[Path, Path]:
        if self.certificate is not None and self.private_key is not None:
            return self.certificate, self.private_key
        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID

        folder = self.state_dir / "opcua"
        folder.mkdir(parents=True, exist_ok=True)
        key, cert = folder / "server-key.pem", folder / "server-cert.der"
        await setup_self_signed_certificate(
            key,
            cert,
            self.namespace,
            "localhost",
            [ExtendedKeyUsageOID.SERVER_AUTH],
            {"organizationName": "LineGuard", "commonName": "LineGuard station"},
        )
        os.chmod(key, 0o600)
        return cert, key

    async def _serve(self) -> None:
        from asyncua import Server, ua

        server = Server(user_manager=_user_manager(self.users))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("LineGuard inspection station")
        policies = []
        if "sign_encrypt" in self.security:
            cert, key = await self._certificates()
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            policies.append(ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt)
            if not self.trust_all_clients:
                server.set_certificate_validator(self.trust.validate)
        if "none" in self.security:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        ruleset = _ruleset(self.allow_anonymous_writes, self.roles, self._writable)
        server.set_security_policy(policies, permission_ruleset=ruleset)
        tokens: list[type] = [ua.AnonymousIdentityToken]
        if self.users:
            tokens.append(ua.UserNameIdentityToken)
        server.set_identity_tokens(tokens)
        idx = await server.register_namespace(self.namespace)
        root = await server.nodes.objects.add_object(idx, "LineGuard")
        station = await root.add_object(idx, self._station.name)
        nodes: dict[str, Any] = {}

        async def var(parent, name, value, variant, writable=False):
            node = await parent.add_variable(idx, name, ua.Variant(value, variant))
            if writable:
                await node.set_writable()
            nodes[name] = node

        V = ua.VariantType
        for name, value, variant in (
            ("State", "", V.String),
            ("Ready", False, V.Boolean),
            ("Error", False, V.Boolean),
            ("ErrorCode", 0, V.UInt32),
            ("Recipe", "", V.String),
            ("TriggerAck", False, V.Boolean),
            ("ResultValid", False, V.Boolean),
            ("JobBusy", False, V.Boolean),
            ("JobAck", False, V.Boolean),
            ("JobActive", 0, V.Int32),
            ("Heartbeat", 0, V.Int32),
        ):
            await var(station, name, value, variant)
        for name, value, variant in (
            ("Trigger", False, V.Boolean),
            ("PartIdIn", "", V.String),
            ("ResultAck", False, V.Boolean),
            ("ErrorReset", False, V.Boolean),
            ("JobChange", False, V.Boolean),
            ("JobNumber", 0, V.Int32),
            ("PlcHeartbeat", 0, V.Int32),
        ):
            await var(station, name, value, variant, writable=True)
        result = await station.add_object(idx, "Result")
        fields: tuple[tuple[str, Any, Any], ...] = (
            ("Seq", 0, V.UInt32),
            ("PartId", "", V.String),
            ("Uid", "", V.String),
            ("Verdict", "", V.String),
            ("OK", False, V.Boolean),
            ("NG", False, V.Boolean),
            ("REVIEW", False, V.Boolean),
            ("Reason", "", V.String),
            ("Scores", "{}", V.String),
            ("DecidedAt", datetime.now(UTC), V.DateTime),
            ("LatencyMs", 0.0, V.Double),
        )
        for name, value, variant in fields:
            nodes[f"Result.{name}"] = await result.add_variable(idx, name, ua.Variant(value, variant))
        counters = await station.add_object(idx, "Counters")
        for name in ("Total", "OK", "NG", "REVIEW", "Overflowed", "Buffered"):
            nodes[f"Counters.{name}"] = await counters.add_variable(idx, name, ua.Variant(0, V.UInt32))

        for role, names in ROLE_NODES.items():
            self._writable[role] = {nodes[name].nodeid for name in names}
        self._stop = asyncio.Event()
        async with server:
            self._started.set()
            written: dict[str, Any] = {}

            async def put(name: str, value: Any, variant) -> None:
                if written.get(name) != value:
                    await nodes[name].write_value(ua.DataValue(ua.Variant(value, variant)))
                    written[name] = value

            while not self._stop.is_set():
                trigger = await nodes["Trigger"].read_value()
                part_id = await nodes["PartIdIn"].read_value()
                self.handshake.set_trigger(bool(trigger), part_id or None)
                self.handshake.set_result_ack(bool(await nodes["ResultAck"].read_value()))
                if await nodes["ErrorReset"].read_value():
                    self.handshake.reset_error()
                    await nodes["ErrorReset"].write_value(False)
                if self._jobs is not None:
                    number = await nodes["JobNumber"].read_value()
                    self._jobs.offer(bool(await nodes["JobChange"].read_value()), int(number or 0))
                if self.heartbeat.limit_s is not None:
                    if self.heartbeat.alive(int(await nodes["PlcHeartbeat"].read_value() or 0)):
                        self.link.restore()
                    else:
                        self.link.lose(
                            f"the PLC's heartbeat has not changed for {self.heartbeat.limit_s:g} s"
                        )
                self.handshake.set_job(self._station.job)
                state = self.handshake.state()
                current = state.current
                await put("State", self._state, V.String)
                await put("Ready", state.ready, V.Boolean)
                await put("Error", state.error, V.Boolean)
                await put("ErrorCode", state.error_code, V.UInt32)
                await put("Recipe", getattr(self._station.recipe, "name", ""), V.String)
                if current is not None:  # result fields first, then the flag that says they are valid
                    await put("Result.Seq", current.seq, V.UInt32)
                    await put("Result.PartId", current.part_id, V.String)
                    await put("Result.Uid", current.uid, V.String)
                    await put("Result.Verdict", current.verdict, V.String)
                    for verdict in ("OK", "NG", "REVIEW"):
                        await put(f"Result.{verdict}", current.verdict == verdict, V.Boolean)
                    await put("Result.Reason", current.reason[:4000], V.String)
                    await put("Result.Scores", json.dumps(current.scores), V.String)
                    await put("Result.DecidedAt", datetime.fromisoformat(current.decided_at), V.DateTime)
                    await put("Result.LatencyMs", float(current.latency_ms), V.Double)
                await put("TriggerAck", state.trigger_ack, V.Boolean)
                await put("ResultValid", state.result_valid, V.Boolean)
                await put("JobBusy", state.job_busy, V.Boolean)
                await put("JobAck", state.job_ack, V.Boolean)
                await put("JobActive", state.job, V.Int32)
                await put("Heartbeat", int(time.monotonic() * 10) % HEARTBEAT_MODULO, V.Int32)
                for name, counter in (
                    ("Total", "total"),
                    ("OK", "OK"),
                    ("NG", "NG"),
                    ("REVIEW", "REVIEW"),
                    ("Overflowed", "overflowed"),
                ):
                    await put(f"Counters.{name}", int(state.counters.get(counter, 0)), V.UInt32)
                await put("Counters.Buffered", state.buffered, V.UInt32)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_s)

    def _certificate_refused(self, why: str) -> None:
        station = getattr(self, "_station", None)
        if station is not None:
            station.store.add_event(station.name, "opcua_certificate_refused", why)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), **self.link.counters}

    def problem(self) -> str | None:
        return super().problem() or self.link.problem()

    def set_state(self, state: str, error_code: ErrorCode) -> None:
        self._state = state
        self.handshake.set_ready(state == "running", error_code)

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.close()
            self._jobs = None
        if self._loop is None or self._thread is None:
            return
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None
