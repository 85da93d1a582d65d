"""The review queue: which parts enter it, claims, reviews kept beside the station's verdict, the
escape and false-reject rates they measure — in the record (SQLite and a real PostgreSQL) and over
the REST API with per-user tokens and roles."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from helpers import write_line
from postgres_server import free_port
from station_helpers import station_config, wait_for
from test_store import part

from lineguard.api import ApiServer, ApiUser, api_users, create_app
from lineguard.spc.review import proportion, review_rates
from lineguard.station import Station, build_sinks
from lineguard.store import RecordStore, sqlite_url
from lineguard.store.reviews import ReviewError, ReviewSampling

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)

# -- the rates ------------------------------------------------------------------------------


def test_exact_intervals_match_their_closed_forms() -> None:
    """Clopper-Pearson with no successes in n: the upper limit is 1 - (α/2)^(1/n) (e.g. Brown, Cai
    & DasGupta 2001, Statistical Science 16(2), eq. for x = 0): 0.30850 for n = 10."""
    zero = proportion(0, 10)
    assert zero.estimate == 0 and zero.low == 0
    assert zero.high == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-9)
    assert proportion(10, 10).low == pytest.approx(0.025 ** (1 / 10), abs=1e-9)
    assert proportion(0, 0).estimate is None


def test_stratified_rates_by_hand() -> None:
    """9000 OK (2 defective in 180 sampled), 500 REVIEW (100 of 500), 500 NG (45 of 50)."""
    decided = {"OK": 9000, "REVIEW": 500, "NG": 500}
    reviewed = {"OK": (178, 2), "REVIEW": (400, 100), "NG": (5, 45)}
    rates = review_rates(decided, reviewed)
    defective = 9000 * 2 / 180 + 500 * 100 / 500 + 500 * 45 / 50  # 100 + 100 + 450
    good = 9000 * 178 / 180 + 500 * 400 / 500 + 500 * 5 / 50  # 8900 + 400 + 50
    assert rates.escape_rate.estimate == pytest.approx(100 / defective)
    assert rates.false_reject_rate.estimate == pytest.approx(50 / good)
    assert rates.good_sent_to_review.estimate == pytest.approx(400 / good)
    for rate in (rates.escape_rate, rates.false_reject_rate, rates.good_sent_to_review):
        assert rate.low < rate.estimate < rate.high and not rate.why_not
    # Ten times the reviews, the same shares: a narrower interval around the same estimate.
    more = review_rates(decided | {"OK": 90_000}, {"OK": (1780, 20), "REVIEW": (400, 100), "NG": (5, 45)})
    assert more.escape_rate.high - more.escape_rate.low < rates.escape_rate.high - rates.escape_rate.low
    assert [s.defect_share.k for s in rates.strata] == [2, 100, 45]


def test_rates_say_why_they_cannot_be_given() -> None:
    none = review_rates({"OK": 100, "NG": 5}, {"OK": (10, 0)})
    assert none.escape_rate.estimate is None and "NG parts reviewed" in none.escape_rate.why_not
    nothing = review_rates({}, {})
    assert "no parts decided" in nothing.false_reject_rate.why_not
    clean = review_rates({"OK": 100, "NG": 5}, {"OK": (10, 0), "NG": (5, 0)})
    assert clean.escape_rate.estimate is None and clean.escape_rate.high > 0  # no defect seen at all
    with pytest.raises(ValueError, match="unknown verdict 'MAYBE'"):
        review_rates({"MAYBE": 3}, {})
    with pytest.raises(ValueError, match="but 2 parts decided"):
        review_rates({"NG": 2}, {"NG": (2, 1)})


# -- the record ------------------------------------------------------------------------------


def verdict_of(i: int) -> str:
    return "REVIEW" if i % 10 == 0 else "NG" if i % 4 == 0 else "OK"


def recorded(store: RecordStore, n: int = 40) -> None:
    """Parts 0..n-1 (record rows 1..n): every 10th REVIEW, every 4th NG, the rest OK."""
    store.record_many([part(i, verdict_of(i)) for i in range(n)])


SAMPLING = ReviewSampling(ok_every=5, ng_every=1)


def test_the_sample_is_drawn_from_the_uid_at_the_stated_rate() -> None:
    uids = [f"20261204T080000-abc123-{i:07d}" for i in range(20_000)]
    sampling = ReviewSampling(ok_every=50, ng_every=10)
    ok = sum(sampling.drawn("OK", u) for u in uids)
    ng = sum(sampling.drawn("NG", u) for u in uids)
    assert 400 - 3 * 20 < ok < 400 + 3 * 20  # binomial(20 000, 1/50): sd 19.8
    assert 2000 - 3 * 43 < ng < 2000 + 3 * 43
    assert all(sampling.drawn("REVIEW", u) for u in uids[:100])
    assert [sampling.drawn("OK", u) for u in uids[:500]] == [sampling.drawn("OK", u) for u in uids[:500]]
    never = ReviewSampling(ok_every=0, ng_every=0)
    assert not any(never.drawn(v, u) for v in ("OK", "NG") for u in uids[:1000])
    with pytest.raises(ValueError, match="ok_every must be 0"):
        ReviewSampling(ok_every=-1)


def check_queue_claims_and_reviews(store: RecordStore) -> None:
    recorded(store)
    queue = store.review_queue("st1", limit=1000)
    drawn = [i for i in range(40) if SAMPLING.drawn(verdict_of(i), f"P{i:04d}")]
    assert {verdict_of(i) for i in drawn} == {"OK", "REVIEW", "NG"}
    assert [q.uid for q in queue] == [f"P{i:04d}" for i in drawn]
    assert store.review_queue_length("st1") == len(drawn)
    first = store.claim_review("st1", "olga", minutes=10)
    second = store.claim_review("st1", "omar", minutes=10)
    assert first is not None and second is not None and first.uid != second.uid
    again = store.claim_review("st1", "olga", minutes=10)
    assert again is not None and again.uid == first.uid  # she holds it still
    with pytest.raises(ReviewError, match="being reviewed by olga"):
        store.add_review("st1", first.uid, "omar", "good")
    review = store.add_review("st1", first.uid, "olga", "defect", "scratch", "near the bore")
    assert review.basis == "sample" and review.reviewer == "olga"
    recorded_part = store.part("st1", first.uid)
    assert recorded_part is not None and recorded_part.verdict == first.verdict  # the station's stands
    assert first.uid not in [q.uid for q in store.review_queue("st1", limit=1000)]
    chosen = next(i for i in range(40) if i not in drawn)
    assert store.add_review("st1", f"P{chosen:04d}", "olga", "defect").basis == "chosen"
    with pytest.raises(ReviewError, match="no part 'nope'"):
        store.add_review("st1", "nope", "olga", "good")
    with pytest.raises(ValueError, match="no defect class"):
        store.add_review("st1", second.uid, "omar", "good", "scratch")
    # Review the rest of the queue: NG parts defective, the others good; then a second opinion
    # on the first part, which is the latest word on it.
    for q in store.review_queue("st1", limit=1000):
        store.add_review("st1", q.uid, "omar", "defect" if q.verdict == "NG" else "good")
    store.add_review("st1", first.uid, "eve", "good")
    assert [r.reviewer for r in store.reviews_of("st1", first.uid)] == ["olga", "eve"]
    decided, reviewed = store.review_counts("st1")
    assert decided == {"OK": 28, "NG": 8, "REVIEW": 4}
    n_ok = sum(verdict_of(i) == "OK" for i in drawn)
    # The chosen (unsampled) OK part's "defect" is not in the sample: no escapes measured.
    assert reviewed == {"REVIEW": (4, 0), "NG": (0, 8), "OK": (n_ok, 0)}
    window = store.review_counts("st1", since=T0 + timedelta(seconds=20), until=T0 + timedelta(seconds=30))
    assert sum(window[0].values()) == 10 and sum(map(sum, window[1].values())) < len(drawn)


def test_the_queue_claims_and_reviews_in_sqlite(tmp_path) -> None:
    store = RecordStore(sqlite_url(tmp_path / "r.db"), tmp_path / "j.jsonl", review_sampling=SAMPLING)
    check_queue_claims_and_reviews(store)
    store.close()


def test_the_queue_claims_and_reviews_in_postgres(postgres, tmp_path) -> None:
    store = RecordStore(postgres.url, tmp_path / "j.jsonl", review_sampling=SAMPLING)
    check_queue_claims_and_reviews(store)
    store.close()


def test_parts_journalled_while_the_database_was_away_are_queued_when_replayed(tmp_path) -> None:
    import shutil

    db = tmp_path / "db" / "line.db"
    db.parent.mkdir()
    every = ReviewSampling(ok_every=1, ng_every=1)
    store = RecordStore(sqlite_url(db), tmp_path / "j.jsonl", retry_after_s=0.0, review_sampling=every)
    assert store.record(part(0, "REVIEW")) == "database"
    shutil.move(db.parent, tmp_path / "db-away")
    (tmp_path / "db").mkdir()
    db.mkdir()  # a folder where the database file was: sqlite cannot open it
    assert store.record(part(1, "NG")) == "journal"
    shutil.rmtree(tmp_path / "db")
    shutil.move(tmp_path / "db-away", tmp_path / "db")
    assert store.record(part(2)) == "database"
    assert [q.uid for q in store.review_queue("st1")] == ["P0000", "P0001", "P0002"]
    store.close()


def test_concurrent_claims_never_hand_one_part_to_two_reviewers(tmp_path) -> None:
    sampling = ReviewSampling(ok_every=1, ng_every=1)
    store = RecordStore(sqlite_url(tmp_path / "r.db"), tmp_path / "j.jsonl", review_sampling=sampling)
    recorded(store, 12)
    got: dict[str, str | None] = {}

    def take(name: str) -> None:
        claimed = store.claim_review("st1", name, minutes=5)
        got[name] = None if claimed is None else claimed.uid

    threads = [threading.Thread(target=take, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    uids = [u for u in got.values() if u is not None]
    assert len(uids) == len(set(uids)) >= 1
    store.close()


# -- REST, with users and roles -------------------------------------------------------------

MACHINE = "machine-token-0123456789"
PEOPLE = {"olga": ("operator", "olga-token-0123456789"), "eve": ("engineer", "eve-token-0123456789ab")}


@pytest.fixture
def served(station_bundle, tmp_path):
    write_line(tmp_path / "line", 12, defect_every=4)
    config = station_config(
        # Every part drawn: with 1 OK in 3 drawn by the (random) run's uids, no OK part at all was
        # drawn 2.6 % of the time, and the rates below are then rightly unknown.
        tmp_path,
        station_bundle,
        tmp_path / "line",
        review={"ok_every": 1, "ng_every": 1},
    )
    station = Station(config, build_sinks(config))
    station.start()
    port = free_port()
    users = [ApiUser(name, role, token) for name, (role, token) in PEOPLE.items()]
    server = ApiServer(create_app(station, MACHINE, users), "127.0.0.1", port)
    server.start()
    wait_for(lambda: station.counters["parts"] == 12, what="parts decided")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    yield client, station
    client.close()
    server.stop()
    station.stop()


def bearer(who: str) -> dict[str, str]:
    token = MACHINE if who == "machine" else PEOPLE[who][1]
    return {"Authorization": f"Bearer {token}"}


def test_people_review_the_queue_over_rest_and_roles_hold(served) -> None:
    client, station = served
    for path in ("/review/queue", "/review/statistics"):
        assert client.get(path).status_code == 401
    assert client.post("/review/claim").status_code == 401
    refused = client.post("/review/claim", headers=bearer("machine"))
    assert refused.status_code == 403 and "may not review" in refused.json()["detail"]
    queue = client.get("/review/queue", headers=bearer("machine")).json()
    verdicts = {q["verdict"] for q in queue["parts"]}
    assert queue["waiting"] == len(queue["parts"]) > 0 and "NG" in verdicts  # every NG sampled
    claimed = client.post("/review/claim", headers=bearer("olga")).json()
    assert claimed["uid"] == queue["parts"][0]["uid"] and claimed["claimed_by"] == "olga"
    busy = client.post(f"/review/parts/{claimed['uid']}", json={"result": "good"}, headers=bearer("eve"))
    assert busy.status_code == 409
    bad = client.post(f"/review/parts/{claimed['uid']}", json={"result": "maybe"}, headers=bearer("olga"))
    assert bad.status_code == 422
    long_note = {"result": "good", "note": "x" * 2001}
    uid = claimed["uid"]
    assert client.post(f"/review/parts/{uid}", json=long_note, headers=bearer("olga")).status_code == 422
    unknown = client.post("/review/parts/nope", json={"result": "good"}, headers=bearer("olga"))
    assert unknown.status_code == 404
    # Review everything: NG parts defective, the others good.
    while True:
        response = client.post("/review/claim", headers=bearer("olga"))
        if response.status_code == 204:
            break
        item = response.json()
        ng = item["verdict"] == "NG"
        body = {"result": "defect", "defect_class": "scratch"} if ng else {"result": "good"}
        done = client.post(f"/review/parts/{item['uid']}", json=body, headers=bearer("olga"))
        assert done.status_code == 200 and done.json()["reviewer"] == "olga", done.text
    assert client.get("/review/queue", headers=bearer("olga")).json()["waiting"] == 0
    history = client.get(f"/review/parts/{uid}", headers=bearer("eve")).json()
    assert [h["reviewer"] for h in history] == ["olga"]
    part = client.get(f"/results/{uid}", headers=bearer("eve")).json()
    assert part["verdict"] == claimed["verdict"]  # the station's verdict is untouched
    stats = client.get("/review/statistics", headers=bearer("olga")).json()
    ng = next(s for s in stats["strata"] if s["verdict"] == "NG")
    assert ng["decided"] == ng["reviewed"] == ng["defect"] == station.counters["NG"]
    assert stats["false_reject_rate"]["estimate"] == 0 and stats["false_reject_rate"]["high"] > 0
    empty = client.get(
        "/review/statistics",
        params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        headers=bearer("olga"),
    )
    assert empty.status_code == 422 and "empty time range" in empty.json()["detail"]
    # Changeover and trigger: the machine and engineers, not operators.
    assert client.post("/recipes/parts/activate", headers=bearer("olga")).status_code == 403
    assert client.post("/recipes/parts/activate", headers=bearer("eve")).status_code == 200


def test_users_tokens_are_checked_at_start() -> None:
    from lineguard.station.config import ApiUserConfig

    user = ApiUserConfig(name="olga", role="operator", token_env="OLGA_TOKEN")
    with pytest.raises(ValueError, match=r"api\.users\.olga: environment variable OLGA_TOKEN"):
        api_users([user], {})
    twin = ApiUserConfig(name="omar", role="operator", token_env="OMAR_TOKEN")
    with pytest.raises(ValueError, match=r"api\.users\.omar: OMAR_TOKEN holds another user's token"):
        api_users([user, twin], {"OLGA_TOKEN": "a" * 20, "OMAR_TOKEN": "a" * 20})
    with pytest.raises(ValueError, match="token of their own"):
        create_app(object(), "a" * 20, [ApiUser("olga", "operator", "a" * 20)])
