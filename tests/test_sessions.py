"""Logging in with a password: a session cookie, CSRF on every change, five wrong passwords and the
name is refused for a while; each login, refused or not, in the audit trail."""

from __future__ import annotations

import httpx
import pytest
from helpers import write_line
from postgres_server import free_port
from station_helpers import station_config, wait_for

from lineguard.api import ApiServer, create_app
from lineguard.api.sessions import COOKIE, LoginLimiter, Sessions
from lineguard.station import Station, build_sinks

PASSWORD = "correct horse battery staple"


@pytest.fixture
def served(station_bundle, tmp_path):
    write_line(tmp_path / "line", 6, defect_every=3)
    config = station_config(
        tmp_path, station_bundle, tmp_path / "line", review={"ok_every": 1, "ng_every": 1}
    )
    station = Station(config, build_sinks(config))
    station.store.add_user("olga", "operator", PASSWORD)
    station.start()
    port = free_port()
    server = ApiServer(create_app(station, "machine-token-0123456789"), "127.0.0.1", port)
    server.start()
    wait_for(lambda: station.counters["parts"] == 6, what="parts decided")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    yield client, station
    client.close()
    server.stop()
    station.stop()


def test_a_session_reads_and_changes_only_with_its_csrf_token(served) -> None:
    client, station = served
    logged = client.post("/login", json={"name": "olga", "password": PASSWORD})
    assert logged.status_code == 200, logged.text
    cookie = logged.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and COOKIE in cookie
    csrf = logged.json()["csrf_token"]
    assert client.get("/status").status_code == 200  # the cookie alone reads
    refused = client.post("/review/claim")
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    assert client.post("/review/claim", headers={"X-CSRF-Token": "x" * 43}).status_code == 403
    claimed = client.post("/review/claim", headers={"X-CSRF-Token": csrf})
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "olga"
    # An operator's session may review, not change over.
    assert client.post("/recipes/parts/activate", headers={"X-CSRF-Token": csrf}).status_code == 403
    assert client.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.clear()
    assert client.get("/status").status_code == 401
    client.cookies.set(COOKIE, cookie.split(";")[0].split("=", 1)[1])  # the old cookie, replayed
    assert client.get("/status").status_code == 401
    actions = [(e.actor, e.action) for e in station.store.audit_entries()]
    assert ("olga", "login") in actions


def test_five_wrong_passwords_and_the_name_waits(served) -> None:
    client, station = served
    for _ in range(5):
        assert client.post("/login", json={"name": "olga", "password": "wrong password!"}).status_code == 401
    limited = client.post("/login", json={"name": "olga", "password": PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert client.post("/login", json={"name": "x" * 65, "password": PASSWORD}).status_code == 422
    refusals = [e for e in station.store.audit_entries() if e.action == "login refused"]
    assert len(refusals) == 5 and all(e.actor == "olga" for e in refusals)


def test_the_limiter_counts_names_and_addresses_and_sessions_expire() -> None:
    limiter = LoginLimiter(failures=2, window_s=60)
    limiter.failed("name:a", "addr:1")
    assert limiter.retry_after("name:a", "addr:1") == 0
    limiter.failed("name:b", "addr:1")
    assert limiter.retry_after("name:c", "addr:1") > 0  # the address tried two names
    limiter.succeeded("name:a")  # a right password forgives the name, not the address
    assert limiter.retry_after("name:a", "addr:2") == 0 and limiter.retry_after("addr:1") > 0
    sessions = Sessions(hours=0.0)
    sid, _ = sessions.open("olga", "operator")
    assert sessions.get(sid) is None  # expired at once
    kept = Sessions(limit=2)
    first, _ = kept.open("a", "operator")
    kept.open("b", "operator")
    kept.open("c", "operator")
    assert kept.get(first) is None  # the oldest went first
