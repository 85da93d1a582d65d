"""The REST API over a real uvicorn server on loopback: token auth, results, images, metrics, changeover."""

from __future__ import annotations

import re

import cv2
import httpx
import numpy as np
import pytest
from helpers import write_line
from postgres_server import free_port
from station_helpers import station_config, wait_for

from lineguard.api import ApiServer, create_app, resolve_token
from lineguard.station import Station, build_sinks

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def served(station_bundle, tmp_path):
    truth = write_line(tmp_path / "line", 10, defect_every=5)
    check = {"bundle": str(station_bundle), "source": "cam1"}
    config = station_config(
        tmp_path,
        station_bundle,
        tmp_path / "line",
        recipes={"A": {"checks": [{"name": "surface", **check}]}, "B": {"checks": [{"name": "b", **check}]}},
        recipe="A",
        store={"keep_ok_every": 0},
        review={"ok_every": 0},  # no OK part drawn for review either: none keeps its image
    )
    station = Station(config, build_sinks(config))
    station.start()
    port = free_port()
    server = ApiServer(create_app(station, TOKEN), "127.0.0.1", port)
    server.start()
    wait_for(lambda: station.counters["parts"] == 10, what="parts decided")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    yield client, station, truth
    client.close()
    server.stop()
    station.stop()


def test_token_is_required_everywhere_but_health(served):
    """Every route but /health and /login refuses a caller without credentials — the schema and
    the docs included — and the docs load nothing from outside the station."""
    client, station, _ = served
    assert client.get("/health").json() == {"status": "ok", "state": "running", "problems": []}
    schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert {"/results", "/results/{uid}", "/results/{uid}/image", "/metrics"} <= set(schema["paths"])
    open_paths = {"/health", "/login"}
    app = create_app(station, TOKEN)
    routes = [r for r in app.routes if hasattr(r, "methods")]
    assert {r.path for r in routes} >= {"/openapi.json", "/docs", "/redoc", "/docs-assets/{name}"}
    for route in routes:
        if route.path in open_paths:
            continue
        path = route.path.replace("{uid}", "u1").replace("{name}", "swagger-ui.css").replace("{check}", "c")
        for method in route.methods - {"HEAD"}:
            for headers in ({}, {"Authorization": "Bearer wrong-token-xxxxxxxx"}):
                answer = client.request(method, path, headers=headers)
                assert answer.status_code == 401, (method, path, answer.status_code)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for page in ("/docs", "/redoc"):
        html = client.get(page, headers=auth).text
        assert "/docs-assets/" in html and not re.search(r"""(src|href)=["']https?://""", html), page
    script = client.get("/docs-assets/swagger-ui-bundle.js", headers=auth)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert client.get("/docs-assets/../pyproject.toml", headers=auth).status_code == 404


def test_results_counters_images_metrics_and_changeover(served):
    client, station, truth = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    counters = client.get("/counters", headers=auth).json()
    assert counters["run"]["parts"] == 10 and counters["all_time"]["NG"] == 2
    ng = client.get("/results", params={"verdict": "NG"}, headers=auth).json()
    assert sorted(p["part_id"] for p in ng) == sorted(k for k, bad in truth.items() if bad)
    page1 = client.get("/results", params={"limit": 4}, headers=auth).json()
    page2 = client.get("/results", params={"limit": 4, "offset": 4}, headers=auth).json()
    assert len(page1) == len(page2) == 4 and not {p["uid"] for p in page1} & {p["uid"] for p in page2}
    assert client.get("/results", params={"limit": 5000}, headers=auth).status_code == 422
    assert client.get("/results", params={"since": "2026-01-01T00:00:00"}, headers=auth).status_code == 422
    one = client.get("/results", params={"part_id": "p004"}, headers=auth).json()
    assert len(one) == 1 and one[0]["verdict"] == "NG"
    uid = one[0]["uid"]
    detail = client.get(f"/results/{uid}", headers=auth).json()
    assert detail["checks"][0]["check"] == "surface" and detail["checks"][0]["score"] > 0
    image = client.get(f"/results/{uid}/image", headers=auth)
    heat = client.get(f"/results/{uid}/heatmap", params={"check": "surface"}, headers=auth)
    assert image.headers["content-type"] == heat.headers["content-type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(image.content, np.uint8), 0).shape == (128, 128)
    ok_uid = client.get("/results", params={"verdict": "OK", "limit": 1}, headers=auth).json()[0]["uid"]
    assert client.get(f"/results/{ok_uid}/image", headers=auth).status_code == 404  # keep_ok_every: 0
    assert client.get("/results/no-such-part", headers=auth).status_code == 404
    metrics = client.get("/metrics", headers=auth).text
    assert 'lineguard_parts_total{station="test-line",verdict="NG"} 2.0' in metrics
    assert "lineguard_latency_ms_p99" in metrics
    assert client.get("/recipes", headers=auth).json() == {"active": "A", "recipes": ["A", "B"]}
    assert client.post("/recipes/B/activate", headers=auth).json()["active"] == "B"
    assert client.post("/recipes/C/activate", headers=auth).status_code == 404
    assert station.recipe.name == "B"
    assert client.post("/trigger", headers=auth).status_code == 409  # a free-running source


def test_token_resolution(tmp_path):
    assert resolve_token("from-env", None, tmp_path / "t") == "from-env"
    made = resolve_token(None, None, tmp_path / "t")
    assert len(made) >= 32 and (tmp_path / "t").stat().st_mode & 0o777 == 0o600
    assert resolve_token(None, None, tmp_path / "t") == made  # kept across restarts
    with pytest.raises(ValueError, match="missing or empty"):
        resolve_token(None, tmp_path / "absent", tmp_path / "t")
    with pytest.raises(ValueError, match="at least 16"):
        create_app(object(), "short")


def test_a_trigger_that_cannot_give_a_part_is_refused_with_the_reason(served):
    client, station, _ = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    refused = client.post("/trigger", params={"part_id": "PN-1"}, headers=auth)
    assert refused.status_code == 409 and "reads no source that takes triggers" in refused.json()["detail"]
    too_long = client.post("/trigger", params={"part_id": "x" * 129}, headers=auth)
    assert too_long.status_code == 422 and "over the limit of 128" in too_long.json()["detail"]
    assert station.counters["triggers_refused"] == 2


def test_control_chart_data_from_the_record(served):
    client, station, truth = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/charts/surface/values", params={"size": 2}).status_code == 401
    chart = client.get("/charts/surface/values", params={"size": 2}, headers=auth)
    assert chart.status_code == 200, chart.text
    doc = chart.json()
    assert doc["kind"] == "xbar_s" and len(doc["location"]["points"]) == 5
    assert all(p["lcl"] < p["center"] < p["ucl"] and p["n"] == 2 for p in doc["location"]["points"])
    scores = [c.score for p in station.store.parts(station.name, limit=100)[::-1] for c in p.checks]
    assert doc["location"]["points"][0]["value"] == pytest.approx((scores[0] + scores[1]) / 2)
    single = client.get("/charts/surface/values", params={"size": 1, "kind": "i_mr"}, headers=auth).json()
    assert [p["value"] for p in single["location"]["points"]] == pytest.approx(scores)
    rejects = client.get("/charts/surface/rejects", params={"size": 5}, headers=auth).json()
    assert rejects["p"] == pytest.approx(sum(truth.values()) / len(truth))
    assert [p["n"] for p in rejects["chart"]["points"]] == [5, 5]
    # phase II: the limits of a baseline period (here: every part so far) carried to the same parts
    frozen = client.get(
        "/charts/surface/values",
        params={"size": 2, "baseline_since": "2000-01-01T00:00:00Z"},
        headers=auth,
    ).json()
    assert frozen["location"]["points"][0]["ucl"] == pytest.approx(doc["location"]["points"][0]["ucl"])
    missing = client.get("/charts/gauge/values", params={"size": 2}, headers=auth)
    assert missing.status_code == 404 and "no recorded score" in missing.json()["detail"]
    unsized = client.get("/charts/surface/values", headers=auth)
    assert unsized.status_code == 422 and "one of them" in unsized.json()["detail"]
    naive = client.get(
        "/charts/surface/values", params={"size": 2, "since": "2026-01-01T00:00:00"}, headers=auth
    )
    assert naive.status_code == 422 and "time zone" in naive.json()["detail"]
    import lineguard.api.charts as charts

    charts.MAX_POINTS, limit = 3, charts.MAX_POINTS  # a response is bounded: 5 points over a limit of 3
    try:
        bounded = client.get("/charts/surface/values", params={"size": 2}, headers=auth)
    finally:
        charts.MAX_POINTS = limit
    assert bounded.status_code == 422 and "over 3 points" in bounded.json()["detail"]
    wrong = client.get("/charts/surface/values", params={"size": 2, "kind": "i_mr"}, headers=auth)
    assert wrong.status_code == 422 and "size=1" in wrong.json()["detail"]
