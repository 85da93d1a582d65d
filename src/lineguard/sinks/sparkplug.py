"""MQTT Sparkplug B (v3.0) edge node: the station on an MES / SCADA broker (Ignition and the like).

Topics ``spBv1.0/<group_id>/<type>/<edge_node_id>[/<device>]``; one device per check (any recipe's).

* On every MQTT session: the broker's last will is an NDEATH carrying ``bdSeq``; the station then
  publishes NBIRTH (``seq`` 0, the same ``bdSeq``, its state, job, recipe, counters and the
  commands it takes) and one DBIRTH per device. ``seq`` counts 0..255 over every message after.
* Per decided part: one DDATA per check of the part: the part's sequence number, ID, uid and
  verdict, the check's decision, score and measured values (``Measurements/<name>``; a name not
  seen before makes the node rebirth first, since every metric must be in a BIRTH).
* NDATA when the station's state, job or recipe changes, and its counters every ``status_every_s``.
* NCMD: ``Node Control/Rebirth`` (Boolean), ``Node Control/Trigger`` (String: the part ID, may be
  empty), ``Node Control/Job`` (an integer type), ``Node Control/Recipe`` (String). DCMD
  ``Device Control/Rebirth``. A command with an unknown name or a wrong type is refused: logged,
  a ``sparkplug_command_refused`` station event, ``Node Info/Last Command Error`` says why, and
  nothing else changes.

Results wait in order while the broker is unreachable and are sent after the next BIRTH, flagged
``is_historical``. Sparkplug asks for QoS 0 on DATA messages (``data_qos: 0``, the default): a
message written to the socket just before the link drops may then be lost (the part stays in the
record, and its ``Part/Seq`` gap shows). ``data_qos: 1`` makes delivery at-least-once: a message
counts as sent only once the broker acknowledged it, and anything not acknowledged is sent again,
in order, after the reconnect (a host dedups by ``Part/Seq``).

The payload is the Sparkplug B protobuf schema (Eclipse Tahu's ``sparkplug_b.proto``), built here
with protobuf's descriptor API rather than generated code: only the fields this node uses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from lineguard.errors import JobRefused, TriggerRefused
from lineguard.results import PublishedResult
from lineguard.sinks.basic import Sink

log = logging.getLogger("lineguard.sinks.sparkplug")

NAMESPACE = "spBv1.0"
# Sparkplug B data types (specification 3.0, section 6.4.16).
INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64 = range(1, 9)
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12
INTEGER_TYPES = frozenset({INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64})
_VALUE_FIELD = {
    **dict.fromkeys((INT8, INT16, INT32, UINT8, UINT16, UINT32), "int_value"),
    **dict.fromkeys((INT64, UINT64), "long_value"),
    FLOAT: "float_value",
    DOUBLE: "double_value",
    BOOLEAN: "boolean_value",
    STRING: "string_value",
}
_ID = re.compile(r"[+#/\s]")  # not allowed in a Sparkplug group, node or device ID


def sparkplug_id(text: str) -> str:
    return _ID.sub("_", text) or "_"


@cache
def payload_class() -> Any:
    """The Sparkplug B ``Payload`` message class (proto2, Tahu's field numbers)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    optional, repeated = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    proto = descriptor_pb2.FileDescriptorProto(
        name="lineguard/sparkplug_b.proto", package="lineguard.sparkplug_b", syntax="proto2"
    )
    payload = proto.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind in (
        ("name", 1, f.TYPE_STRING),
        ("alias", 2, f.TYPE_UINT64),
        ("timestamp", 3, f.TYPE_UINT64),
        ("datatype", 4, f.TYPE_UINT32),
        ("is_historical", 5, f.TYPE_BOOL),
        ("is_transient", 6, f.TYPE_BOOL),
        ("is_null", 7, f.TYPE_BOOL),
    ):
        metric.field.add(name=name, number=number, type=kind, label=optional)
    for name, number, kind in (
        ("int_value", 10, f.TYPE_UINT32),
        ("long_value", 11, f.TYPE_UINT64),
        ("float_value", 12, f.TYPE_FLOAT),
        ("double_value", 13, f.TYPE_DOUBLE),
        ("boolean_value", 14, f.TYPE_BOOL),
        ("string_value", 15, f.TYPE_STRING),
        ("bytes_value", 16, f.TYPE_BYTES),
    ):
        metric.field.add(name=name, number=number, type=kind, label=optional, oneof_index=0)
    payload.field.add(name="timestamp", number=1, type=f.TYPE_UINT64, label=optional)
    payload.field.add(
        name="metrics",
        number=2,
        type=f.TYPE_MESSAGE,
        label=repeated,
        type_name=".lineguard.sparkplug_b.Payload.Metric",
    )
    payload.field.add(name="seq", number=3, type=f.TYPE_UINT64, label=optional)
    payload.field.add(name="uuid", number=4, type=f.TYPE_STRING, label=optional)
    payload.field.add(name="body", number=5, type=f.TYPE_BYTES, label=optional)
    pool = descriptor_pool.DescriptorPool()  # private: no clash with another Sparkplug library
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("lineguard.sparkplug_b.Payload"))


@dataclass(frozen=True)
class Metric:
    name: str
    datatype: int
    value: Any  # None: is_null
    timestamp_ms: int | None = None
    historical: bool = False


def encode(metrics: list[Metric], timestamp_ms: int, seq: int | None) -> bytes:
    payload = payload_class()()
    payload.timestamp = timestamp_ms
    if seq is not None:
        payload.seq = seq
    for m in metrics:
        out = payload.metrics.add()
        out.name, out.datatype = m.name, m.datatype
        out.timestamp = m.timestamp_ms if m.timestamp_ms is not None else timestamp_ms
        if m.historical:
            out.is_historical = True
        if m.value is None:
            out.is_null = True
        else:
            value = m.value
            if m.datatype in (INT8, INT16, INT32, INT64):  # two's complement in the unsigned field
                value = int(value) & (0xFFFFFFFF if m.datatype != INT64 else 0xFFFFFFFFFFFFFFFF)
            setattr(out, _VALUE_FIELD[m.datatype], value)
    return payload.SerializeToString()


def decode(data: bytes) -> Any:
    """A received payload (an NCMD / DCMD); raises ValueError when it is not one."""
    from google.protobuf.message import DecodeError

    payload = payload_class()()
    try:
        payload.ParseFromString(data)
    except DecodeError as exc:
        raise ValueError(f"not a Sparkplug B payload: {exc}") from None
    return payload


def _value(metric: Any) -> Any:
    kind = metric.WhichOneof("value")
    return None if kind is None else getattr(metric, kind)


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


@dataclass
class _Message:
    device: str
    result: PublishedResult
    session: int  # the MQTT session live when it was decided (0: none; any other sends it as historical)


@dataclass
class _Session:
    client: Any
    number: int
    connected: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    unconfirmed: dict[int, _Message] = field(default_factory=dict)  # mid -> message
    sent_order: list[int] = field(default_factory=list)


class SparkplugSink(Sink):
    """The station as a Sparkplug B edge node (see the module docstring)."""

    def __init__(
        self,
        host: str,
        port: int,
        group_id: str,
        edge_node_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: dict[str, Any] | None = None,
        keepalive_s: int = 10,
        data_qos: int = 0,
        result_buffer: int = 10_000,
        reconnect_s: float = 1.0,
        status_every_s: float = 10.0,
        client_id: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.group_id, self.node_id = sparkplug_id(group_id), sparkplug_id(edge_node_id)
        self.username, self.password = username, password
        self.tls = tls
        self.keepalive_s, self.data_qos = keepalive_s, data_qos
        self.result_buffer = result_buffer
        self.reconnect_s, self.status_every_s = reconnect_s, status_every_s
        self.client_id = client_id or f"lineguard-{self.group_id}-{self.node_id}"
        self.describe = f"Sparkplug B {host}:{port} {self.group_id}/{self.node_id}"
        self._station: Any = None
        self._pending: deque[_Message] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._commands: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._bdseq = 0
        self._seq = 0
        self._devices: dict[str, str] = {}  # check name -> device ID
        self._measurements: dict[str, set[str]] = {}  # device -> measurement names in its DBIRTH
        self._rebirth = threading.Event()
        self._last_error = ""
        self._errors: deque[str] = deque(maxlen=100)  # refusals not yet sent, each in an NDATA of its own
        self._published_state: tuple = ()
        self._status_at = 0.0
        self._session_number = 0
        self._live_session = 0
        self._connected = False
        self._lost_since: str | None = None
        self.counters = {
            "sent": 0,
            "dropped": 0,
            "births": 0,
            "link_lost": 0,
            "commands": 0,
            "commands_refused": 0,
        }

    # -- the station's side ---------------------------------------------------------------

    def start(self, station: Any) -> None:
        self._station = station
        names = [c.name for recipe in station.config.recipes.values() for c in recipe.checks]
        self._devices = {name: sparkplug_id(name) for name in dict.fromkeys(names)}
        self._measurements = {device: set() for device in self._devices.values()}
        threading.Thread(target=self._run_commands, name="sparkplug-commands", daemon=True).start()
        self._thread = threading.Thread(target=self._run, name="sparkplug", daemon=True)
        self._thread.start()

    def publish(self, result: PublishedResult) -> None:
        with self._lock:
            for check in result.scores:
                device = self._devices.get(check, sparkplug_id(check))
                if len(self._pending) >= self.result_buffer:
                    self.counters["dropped"] += 1  # the record has it; Part/Seq shows the gap
                    continue
                self._pending.append(_Message(device, result, self._live_session))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self.counters, "waiting": len(self._pending), "connected": self._connected}

    def problem(self) -> str | None:
        if self._thread is not None and not self._thread.is_alive():
            return f"{self.describe} stopped"
        if self._lost_since is not None:
            return f"{self.describe}: broker unreachable since {self._lost_since}"
        if self.counters["dropped"]:
            return f"{self.describe}: {self.counters['dropped']} results dropped (buffer full)"
        return None

    def close(self) -> None:
        self._stop.set()
        self._commands.put(("stop", None))
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    # -- topics and payloads --------------------------------------------------------------

    def topic(self, kind: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group_id}/{kind}/{self.node_id}"
        return f"{base}/{device}" if device else base

    @staticmethod
    def _bdseq_of(session: _Session) -> int:
        """The birth-death sequence number of a session: 0, 1, ... 255, 0 (the will carries it too)."""
        return (session.number - 1) % 256

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def _node_metrics(self) -> list[Metric]:
        station = self._station
        counters = station.counters
        return [
            Metric("State", STRING, station.state),
            Metric("Job", INT32, station.job),
            Metric("Recipe", STRING, station.recipe.name),
            Metric("Node Info/Last Command Error", STRING, self._last_error),
            *(Metric(f"Parts/{k}", UINT64, int(counters[k])) for k in ("parts", "OK", "REVIEW", "NG")),
        ]

    def _birth(self, session: _Session) -> None:
        """NBIRTH (seq 0) and every DBIRTH: what a host needs to know every metric."""
        self._seq = 0
        now = int(time.time() * 1000)
        station = self._station
        node = [
            Metric("bdSeq", UINT64, self._bdseq_of(session)),
            Metric("Node Control/Rebirth", BOOLEAN, False),
            Metric("Node Control/Trigger", STRING, ""),
            Metric("Node Control/Job", INT32, station.job),
            Metric("Node Control/Recipe", STRING, station.recipe.name),
            *self._node_metrics(),
        ]
        self._send(session, self.topic("NBIRTH"), encode(node, now, self._next_seq()), 0)
        for device, names in self._measurements.items():
            metrics = [
                Metric("Part/Seq", UINT64, None),
                Metric("Part/Id", STRING, None),
                Metric("Part/Uid", STRING, None),
                Metric("Part/Verdict", STRING, None),
                Metric("Recipe", STRING, None),
                Metric("Decision", STRING, None),
                Metric("Score", DOUBLE, None),
                *(Metric(f"Measurements/{n}", DOUBLE, None) for n in sorted(names)),
                Metric("Device Control/Rebirth", BOOLEAN, False),
            ]
            self._send(session, self.topic("DBIRTH", device), encode(metrics, now, self._next_seq()), 0)
        self._published_state = self._state_key()
        self._status_at = time.monotonic()
        self.counters["births"] += 1

    def _data(self, message: _Message, session: _Session) -> bytes:
        result = message.result
        check = next((c for c, d in self._devices.items() if d == message.device), message.device)
        at = _ms(result.decided_at)
        historical = message.session != session.number
        values = [
            Metric("Part/Seq", UINT64, result.seq),
            Metric("Part/Id", STRING, result.part_id),
            Metric("Part/Uid", STRING, result.uid),
            Metric("Part/Verdict", STRING, result.verdict),
            Metric("Recipe", STRING, result.recipe),
            Metric("Decision", STRING, result.decisions.get(check, result.verdict)),
            Metric("Score", DOUBLE, result.scores.get(check)),
            *(
                Metric(f"Measurements/{name}", DOUBLE, value)
                for name, value in sorted(result.measurements.get(check, {}).items())
            ),
        ]
        metrics = [Metric(m.name, m.datatype, m.value, at, historical) for m in values]
        return encode(metrics, int(time.time() * 1000), self._next_seq())

    def _state_key(self) -> tuple:
        station = self._station
        return (station.state, station.job, station.recipe.name)

    # -- the connection -------------------------------------------------------------------

    def _client(self, number: int) -> _Session:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        session = _Session(client, number)
        death = encode([Metric("bdSeq", UINT64, self._bdseq_of(session))], int(time.time() * 1000), None)
        client.will_set(self.topic("NDEATH"), death, qos=1, retain=False)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls is not None:
            client.tls_set(
                ca_certs=self.tls.get("ca_file"),
                certfile=self.tls.get("cert_file"),
                keyfile=self.tls.get("key_file"),
            )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)

        def on_connect(_client, _userdata, _flags, reason_code, _properties=None):
            if reason_code == 0:
                session.connected.set()
            else:
                log.error("%s: broker refused the connection: %s", self.describe, reason_code)
                session.lost.set()

        def on_disconnect(_client, _userdata, _flags, _reason_code, _properties=None):
            session.lost.set()

        def on_publish(_client, _userdata, mid, _reason_code=None, _properties=None):
            self._confirm(session, mid)

        def on_message(_client, _userdata, msg):
            self._commands.put((msg.topic, msg.payload))

        client.on_connect, client.on_disconnect = on_connect, on_disconnect
        client.on_publish, client.on_message = on_publish, on_message
        return session

    def _send(self, session: _Session, topic: str, payload: bytes, qos: int, message: _Message | None = None):
        info = session.client.publish(topic, payload, qos=qos)
        if info.rc != 0:
            session.lost.set()
            raise ConnectionError(f"publish to {topic}: {info.rc}")
        if message is not None:
            with self._lock:
                session.unconfirmed[info.mid] = message
                session.sent_order.append(info.mid)
            if info.is_published():  # confirmed before it was registered above
                self._confirm(session, info.mid)

    def _confirm(self, session: _Session, mid: int) -> None:
        """QoS 0: written to the socket; QoS 1: acknowledged by the broker."""
        with self._lock:
            if session.unconfirmed.pop(mid, None) is not None:
                self.counters["sent"] += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._session_number += 1
            session = self._client(self._session_number)
            try:
                self._serve(session)
            except Exception as exc:
                self._lose(f"{type(exc).__name__}: {exc}")
            finally:
                self._end(session)
            self._stop.wait(self.reconnect_s)

    def _serve(self, session: _Session) -> None:
        client = session.client
        # The network loop runs here, on this thread (no thread of paho's to join after a cut).
        client.connect(self.host, self.port, keepalive=self.keepalive_s)
        end = time.monotonic() + max(5.0, 2.0 * self.keepalive_s)
        while not session.connected.is_set() and not session.lost.is_set() and time.monotonic() < end:
            self._loop(session, 0.01)
        if not session.connected.is_set() or session.lost.is_set():
            raise ConnectionError("no answer from the broker")
        client.subscribe([(self.topic("NCMD"), 1), (self.topic("DCMD") + "/+", 1)])
        self._birth(session)
        self._live_session = session.number
        self._restore()
        while not self._stop.is_set() and not session.lost.is_set():
            if self._rebirth.is_set():
                self._rebirth.clear()
                self._birth(session)
            self._publish_pending(session)
            self._publish_state(session)
            self._loop(session, 0.005)
        if session.lost.is_set() and not self._stop.is_set():
            raise ConnectionError("connection lost")
        if self._stop.is_set():
            self._drain(session, timeout_s=2.0)
            death = [Metric("bdSeq", UINT64, self._bdseq_of(session))]
            self._send(session, self.topic("NDEATH"), encode(death, int(time.time() * 1000), None), 0)
            for _ in range(10):  # let the NDEATH out before the DISCONNECT
                self._loop(session, 0.005)

    def _loop(self, session: _Session, timeout_s: float) -> None:
        """One pass of the MQTT network loop: reads, writes, keepalive pings, callbacks."""
        if session.client.loop(timeout=timeout_s) != 0:
            session.lost.set()

    def _publish_pending(self, session: _Session) -> None:
        while len(session.unconfirmed) < 500:
            with self._lock:
                if not self._pending:
                    return
                message = self._pending[0]
            names = set(message.result.measurements.get(self._check_of(message.device), {}))
            if not names <= self._measurements.setdefault(message.device, set()):
                self._measurements[message.device] |= names
                self._birth(session)  # a metric no BIRTH declared yet: rebirth first
            payload = self._data(message, session)
            self._send(session, self.topic("DDATA", message.device), payload, self.data_qos, message)
            with self._lock:
                self._pending.popleft()

    def _check_of(self, device: str) -> str:
        return next((c for c, d in self._devices.items() if d == device), device)

    def _publish_state(self, session: _Session) -> None:
        while self._errors:  # every refusal reaches the host, however fast they came
            error = [Metric("Node Info/Last Command Error", STRING, self._errors.popleft())]
            self._send(
                session, self.topic("NDATA"), encode(error, int(time.time() * 1000), self._next_seq()), 0
            )
        key = self._state_key()
        due = time.monotonic() - self._status_at >= self.status_every_s
        if key == self._published_state and not due:
            return
        # The last command error goes in an NDATA of its own, once per refusal (above).
        metrics = [
            m
            for m in self._node_metrics()
            if (due or not m.name.startswith("Parts/")) and m.name != "Node Info/Last Command Error"
        ]
        self._send(
            session, self.topic("NDATA"), encode(metrics, int(time.time() * 1000), self._next_seq()), 0
        )
        self._published_state = key
        if due:
            self._status_at = time.monotonic()

    def _drain(self, session: _Session, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while session.unconfirmed and time.monotonic() < end and not session.lost.is_set():
            self._loop(session, 0.01)

    def _end(self, session: _Session) -> None:
        """Close the session; whatever the broker did not confirm goes back, in order, to the front."""
        client = session.client
        with contextlib.suppress(Exception):  # the connection may be gone already
            client.disconnect()
            client.loop(timeout=0.01)
        self._live_session = 0
        with self._lock:
            unconfirmed = [session.unconfirmed[m] for m in session.sent_order if m in session.unconfirmed]
            self._pending.extendleft(reversed(unconfirmed))

    def _lose(self, why: str) -> None:
        self._connected, self._live_session = False, 0
        if self._lost_since is not None:
            return
        self._lost_since = datetime.now().astimezone().isoformat()
        self.counters["link_lost"] += 1
        log.error("%s: %s", self.describe, why)
        if self._station is not None:
            self._station.store.add_event(
                self._station.name, "sparkplug_link_lost", f"{self.describe}: {why}"
            )

    def _restore(self) -> None:
        self._connected = True
        if self._lost_since is None:
            return
        since, self._lost_since = self._lost_since, None
        if self._station is not None:
            self._station.store.add_event(
                self._station.name, "sparkplug_link_restored", f"{self.describe}: back (lost since {since})"
            )

    # -- commands -------------------------------------------------------------------------

    def _run_commands(self) -> None:
        while True:
            topic, data = self._commands.get()
            if topic == "stop":
                return
            try:
                self._command(topic, data)
            except Exception as exc:  # never let one command end the command thread
                log.exception("%s: command on %s: %s", self.describe, topic, exc)

    def _command(self, topic: str, data: bytes) -> None:
        try:
            payload = decode(data)
        except ValueError as exc:
            return self._refuse(f"{topic}: {exc}")
        device = "/DCMD/" in topic
        for metric in payload.metrics:
            name, kind, value = metric.name, metric.datatype, _value(metric)
            self.counters["commands"] += 1
            if device:
                if name == "Device Control/Rebirth" and kind == BOOLEAN and value is True:
                    self._rebirth.set()
                else:
                    self._refuse(f"{topic}: {name!r} (type {kind}) is not a device command")
                continue
            if name == "Node Control/Rebirth" and kind == BOOLEAN:
                if value:
                    self._rebirth.set()
            elif name == "Node Control/Trigger" and kind == STRING:
                try:
                    self._station.trigger(value or None)
                except TriggerRefused as exc:
                    self._refuse(f"trigger refused: {exc}", event=False)  # the station recorded it
            elif name == "Node Control/Job" and kind in INTEGER_TYPES:
                try:
                    self._station.change_job(int(value), f"sparkplug:{self.describe}")
                except JobRefused as exc:
                    self._refuse(str(exc), event=False)
            elif name == "Node Control/Recipe" and kind == STRING:
                self._change_recipe(str(value))
            else:
                expected = {
                    "Node Control/Rebirth": "Boolean",
                    "Node Control/Trigger": "String",
                    "Node Control/Job": "an integer type",
                    "Node Control/Recipe": "String",
                }.get(name)
                why = (
                    f"wants {expected}, got datatype {kind}" if expected else "is not a command of this node"
                )
                self._refuse(f"{topic}: {name!r} {why}")

    def _change_recipe(self, name: str) -> None:
        station = self._station
        if name not in station.recipe_names:
            return self._refuse(f"no recipe {name!r}; recipes: {station.recipe_names}")
        before = station.recipe.name
        try:
            station.changeover(name)
        except Exception as exc:
            return self._refuse(f"changeover to {name!r} failed, {before!r} kept: {exc}")
        station.audit(
            f"sparkplug:{self.describe}", "changeover", f"recipe {name}", {"recipe": before}, {"recipe": name}
        )

    def _refuse(self, why: str, event: bool = True) -> None:
        self.counters["commands_refused"] += 1
        self._last_error = why[:200]
        self._errors.append(self._last_error)
        log.warning("%s: command refused: %s", self.describe, why)
        if event and self._station is not None:
            self._station.store.add_event(self._station.name, "sparkplug_command_refused", why)


def sparkplug_sink(config: Any, station_name: str) -> SparkplugSink:
    """The sink for a ``sinks.sparkplug`` section (SparkplugSinkConfig)."""
    password = None
    if config.password_env is not None:
        password = os.environ.get(config.password_env)
        if not password:
            raise ValueError(
                f"sinks.sparkplug.password_env: environment variable {config.password_env} is not set"
            )
    tls = None
    if config.tls is not None:
        tls = {k: (str(v) if v is not None else None) for k, v in config.tls.model_dump().items()}
    return SparkplugSink(
        config.host,
        config.port,
        config.group_id,
        config.edge_node_id or station_name,
        username=config.username,
        password=password,
        tls=tls,
        keepalive_s=config.keepalive_s,
        data_qos=config.data_qos,
        result_buffer=config.result_buffer,
        reconnect_s=config.reconnect_s,
        status_every_s=config.status_every_s,
    )
