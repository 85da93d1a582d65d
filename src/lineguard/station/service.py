"""Running a station as a service: the sinks its configuration names, the REST API beside it, and
the run loop of `lineguard run` (signals, limits, a tick for the live line)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lineguard.sinks.basic import Sink
from lineguard.station.config import StationConfig
from lineguard.station.station import Station


def build_sinks(config: StationConfig) -> list[Sink]:
    """The sinks the configuration names (imports only what is used)."""
    from lineguard.sinks import JsonlSink, WebhookSink

    sinks: list[Sink] = []
    wanted = config.sinks
    if wanted.jsonl is not None:
        sinks.append(JsonlSink(wanted.jsonl.path))
    if wanted.webhook is not None:
        w = wanted.webhook
        sinks.append(WebhookSink(w.url, w.timeout_s, w.queue, w.token_env))
    if wanted.modbus is not None:
        from lineguard.sinks.modbus import ModbusSink

        m = wanted.modbus
        sinks.append(
            ModbusSink(m.host, m.port, m.device_id, m.result_buffer, m.plc_heartbeat_s, m.on_plc_lost)
        )
    if wanted.opcua is not None:
        from lineguard.sinks.opcua import OpcUaSink

        sinks.append(OpcUaSink.from_config(wanted.opcua, Path(config.state_dir)))
    if wanted.s7 is not None:
        from lineguard.sinks.s7 import s7_sink

        sinks.append(s7_sink(wanted.s7))
    if wanted.logix is not None:
        from lineguard.sinks.logix import logix_sink

        sinks.append(logix_sink(wanted.logix))
    if wanted.sparkplug is not None:
        from lineguard.sinks.sparkplug import sparkplug_sink

        sinks.append(sparkplug_sink(wanted.sparkplug, config.station))
    return sinks


def run_station(
    config: StationConfig,
    max_parts: int | None = None,
    duration_s: float | None = None,
    on_tick: Callable[[Station], None] | None = None,
    tick_s: float = 1.0,
    api: bool = True,
) -> Station:
    """Start a station and run it until its finite sources are done, ``max_parts`` are decided,
    ``duration_s`` has passed, or SIGINT/SIGTERM arrives; then drain and stop it."""
    users = []
    if api and config.api is not None:  # a user's missing token stops the start, not the first login
        from lineguard.api import api_users

        users = api_users(config.api.users, os.environ)
    station = Station(config, build_sinks(config))
    api_server = None
    stop_requested = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop_requested.set())
    try:
        station.start()
        if api and config.api is not None:
            from lineguard.api import ApiServer, create_app, resolve_token

            token = resolve_token(
                os.environ.get(config.api.token_env),
                config.api.token_file,
                Path(config.state_dir) / "api-token",
            )
            api_server = ApiServer(create_app(station, token, users), config.api.host, config.api.port)
            api_server.start()
        start = time.monotonic()
        next_tick = start + tick_s
        while not stop_requested.is_set() and station.state in ("running", "held"):
            if station.finished:
                break
            if max_parts is not None and station.counters["parts"] >= max_parts:
                break
            if duration_s is not None and time.monotonic() - start >= duration_s:
                break
            if on_tick is not None and time.monotonic() >= next_tick:
                on_tick(station)
                next_tick += tick_s
            time.sleep(0.02)
    finally:
        if api_server is not None:
            api_server.stop()
        station.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return station
