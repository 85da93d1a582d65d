"""Users, roles and their API tokens in the record; the chained audit trail, which detects an entry
edited, deleted or cut off the end; both through the CLI and the REST API."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import write_line
from postgres_server import free_port
from sqlalchemy import text
from station_helpers import wait_for
from typer.testing import CliRunner

from lineguard.api import ApiServer, create_app
from lineguard.cli import app
from lineguard.station import Station, build_sinks, load_config
from lineguard.store import RecordStore, sqlite_url
from lineguard.store.audit import HEAD_FILE, check_head, record_change
from lineguard.store.users import UserError

STRONG = "correct horse battery staple"


def check_users(store: RecordStore) -> None:
    olga = store.add_user("olga", "operator", STRONG)
    assert olga.role == "operator" and not olga.disabled
    with pytest.raises(UserError, match="exists already"):
        store.add_user("olga", "admin", STRONG)
    with pytest.raises(UserError, match="12 to 1024 characters"):
        store.add_user("omar", "operator", "short")
    with pytest.raises(UserError, match="role 'root'"):
        store.add_user("omar", "root", STRONG)
    with pytest.raises(UserError, match="user name"):
        store.add_user("../x", "operator", STRONG)
    with pytest.raises(UserError, match="the station's own"):
        store.add_user("station", "admin", STRONG)
    assert store.check_password("olga", STRONG) == olga
    assert store.check_password("olga", STRONG + "!") is None
    assert store.check_password("nobody", STRONG) is None
    token = store.issue_token("olga", "tablet")
    assert token.startswith("lgu_") and store.token_user(token) == olga
    assert store.token_user(token + "x") is None and store.token_user("lgu_") is None
    store.set_user("olga", disabled=True)
    assert store.check_password("olga", STRONG) is None and store.token_user(token) is None
    store.set_user("olga", disabled=False, role="engineer")
    assert store.token_user(token).role == "engineer"
    assert store.revoke_tokens("olga") == 1 and store.token_user(token) is None
    with pytest.raises(UserError, match="no user 'nobody'"):
        store.issue_token("nobody")
    # The database never sees a token or a password.
    with store.engine.connect() as connection:
        rows = " ".join(str(r) for r in connection.execute(text("SELECT * FROM users, api_tokens")))
    assert token not in rows and STRONG not in rows and "$argon2id$" in rows


def check_audit(store: RecordStore, state: Path) -> None:
    for i in range(5):
        record_change(store, state, "st", "olga", "threshold", f"check c{i}", {"ng": 1.0}, {"ng": 1.0 + i})
    found = store.verify_audit()
    assert found.intact and found.entries == 5
    assert check_head(found, lambda seq: store.audit_entries(seq - 1, 1)[0], state / HEAD_FILE) == ""
    with store.engine.begin() as connection:  # someone edits an entry's after-value by hand
        connection.execute(text("UPDATE audit_log SET after = '{\"ng\": 9.0}' WHERE seq = 3"))
    found = store.verify_audit()
    assert found.broken_at == 3 and "changed after it was written" in found.why


def test_users_and_the_audit_chain_in_sqlite(tmp_path: Path) -> None:
    store = RecordStore(sqlite_url(tmp_path / "r.db"), tmp_path / "j.jsonl")
    check_users(store)
    check_audit(store, tmp_path)


def test_users_and_the_audit_chain_in_postgres(postgres, tmp_path: Path) -> None:
    store = RecordStore(postgres.url, tmp_path / "j.jsonl")
    check_users(store)
    check_audit(store, tmp_path)
    store.close()


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    store = RecordStore(sqlite_url(tmp_path / "r.db"), tmp_path / "j.jsonl")

    def write(who: str) -> None:
        for i in range(25):
            store.audit("st", who, "review", f"part {who}-{i}")

    threads = [threading.Thread(target=write, args=(f"r{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = store.verify_audit()
    assert found.intact and found.entries == 100


@pytest.fixture
def station_file(tmp_path: Path, station_bundle: Path) -> Path:
    write_line(tmp_path / "line", 4, defect_every=0)
    doc = {
        "station": "line1",
        "state_dir": str(tmp_path / "state"),
        "sources": {"cam": {"kind": "replay", "path": str(tmp_path / "line"), "ppm": 0}},
        "recipes": {
            name: {"checks": [{"name": "surface", "bundle": str(station_bundle), "source": "cam"}]}
            for name in ("A", "B")
        },
        "recipe": "A",
    }
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def cli(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, list(args), input=stdin)


def test_the_cli_manages_users_and_audit_verify_catches_edits_deletions_and_cuts(station_file: Path) -> None:
    assert (
        cli(
            "users",
            "add",
            str(station_file),
            "eve",
            "--role",
            "engineer",
            "--password-stdin",
            stdin=STRONG + "\n",
        ).exit_code
        == 0
    )
    weak = cli("users", "add", str(station_file), "bob", "--password-stdin", stdin="1234\n")
    assert weak.exit_code != 0 and "12 to 1024 characters" in weak.output
    token = cli("users", "token", str(station_file), "eve", "--label", "mes").output.strip()
    assert token.startswith("lgu_")
    listed = cli("users", "list", str(station_file)).output
    assert "eve\tengineer\tenabled" in listed
    changed = cli("users", "set", str(station_file), "eve", "--disable")
    assert changed.exit_code == 0 and "1 tokens revoked" in changed.output
    cli("users", "set", str(station_file), "eve", "--enable")
    verified = cli("audit", "verify", str(station_file))
    assert verified.exit_code == 0 and "intact: 4 entries" in verified.output, verified.output
    config = load_config(station_file)
    store = RecordStore(sqlite_url(Path(config.state_dir) / "record.db"), Path(config.state_dir) / "j.jsonl")
    actions = [(e.actor.split(":")[0], e.action, e.target) for e in store.audit_entries()]
    assert actions[:2] == [("cli", "user added", "user eve"), ("cli", "token issued", "user eve")]
    exported = cli("audit", "export", str(station_file), "--out", str(station_file.parent / "audit.csv"))
    assert exported.exit_code == 0 and (station_file.parent / "audit.csv").read_text().count("\n") == 5
    # Cut off the newest entry: the chain left is intact, but short of the head the station kept.
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 4"))
    cut = cli("audit", "verify", str(station_file))
    assert cut.exit_code == 1 and "entries were deleted" in cut.output
    # Delete one from the middle: a gap.
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    gap = cli("audit", "verify", str(station_file))
    assert gap.exit_code == 1 and "entry 2 is missing" in gap.output


def test_a_users_token_works_over_rest_with_its_role_and_changes_are_audited(station_file: Path) -> None:
    for name, role in (("olga", "operator"), ("eve", "engineer")):
        assert (
            cli(
                "users",
                "add",
                str(station_file),
                name,
                "--role",
                role,
                "--password-stdin",
                stdin=STRONG + "\n",
            ).exit_code
            == 0
        )
    tokens = {name: cli("users", "token", str(station_file), name).output.strip() for name in ("olga", "eve")}
    config = load_config(station_file)
    station = Station(config, build_sinks(config))
    station.start()
    port = free_port()
    server = ApiServer(create_app(station, "machine-token-0123456789"), "127.0.0.1", port)
    server.start()
    try:
        wait_for(lambda: station.counters["parts"] == 4, what="parts decided")
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        as_ = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
        assert client.get("/status", headers=as_["olga"]).status_code == 200
        refused = client.post("/recipes/B/activate", headers=as_["olga"])
        assert refused.status_code == 403 and "olga (operator) may not control" in refused.json()["detail"]
        assert client.post("/recipes/B/activate", headers=as_["eve"]).status_code == 200
        assert client.get("/status", headers={"Authorization": "Bearer lgu_forged"}).status_code == 401
        last = station.store.audit_entries()[-1]
        assert (last.actor, last.action, last.target) == ("eve", "changeover", "recipe B")
        assert '"recipe": "A"' in last.before and '"recipe": "B"' in last.after
        client.close()
    finally:
        server.stop()
        station.stop()
    assert cli("audit", "verify", str(station_file)).exit_code == 0


def test_the_cli_trusts_an_opcua_client_certificate_and_audits_it(station_file: Path, tmp_path: Path) -> None:
    from mqtt_broker import make_certificates

    pem = make_certificates(tmp_path)["cert"]
    result = cli("opcua", "trust", str(station_file), str(pem))
    assert result.exit_code == 0, result.output
    assert "trusted CN=localhost" in result.output
    listed = cli("opcua", "list", str(station_file))
    assert listed.exit_code == 0 and listed.output.startswith("trusted\tCN=localhost")
    (tmp_path / "junk.der").write_bytes(b"not a certificate")
    refused = cli("opcua", "trust", str(station_file), str(tmp_path / "junk.der"))
    assert refused.exit_code != 0 and "junk.der: not an X.509 certificate" in refused.output
    assert "Traceback" not in refused.output
    assert cli("audit", "export", str(station_file), "--out", str(tmp_path / "audit.csv")).exit_code == 0
    assert "opcua client trusted" in (tmp_path / "audit.csv").read_text()
