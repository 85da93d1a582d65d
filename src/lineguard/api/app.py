"""REST API for MES/ERP (FastAPI): health, status, counters, results, images, control charts, drift,
the review queue, recipes, Prometheus metrics.

Every endpoint but ``/health`` and ``/login`` needs ``Authorization: Bearer <token>`` (the
station's machine token or a user's) or a logged-in session cookie; the caller's role says what
they may do beyond reading. The OpenAPI schema is at ``/openapi.json``, interactive docs at
``/docs`` and ``/redoc``, all behind the same authentication and served without a CDN.
"""
# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at run time,
# and the auth dependency is a local of create_app.

import hmac
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from lineguard.api.charts import RejectChartOut, ValueChartOut, VariablesKind, reject_chart, value_chart
from lineguard.api.reviews import add_review_routes
from lineguard.api.sessions import COOKIE, CSRF_HEADER, LoginLimiter, Sessions, csrf_ok
from lineguard.errors import TriggerRefused
from lineguard.station.drift import CheckDrift
from lineguard.station.status import StationStatus
from lineguard.store import Grouping, NoData


class MeasurementOut(BaseModel):
    name: str
    value: float | None
    unit: str
    lo: float | None
    hi: float | None
    decision: str
    text: str | None
    detail: list[float]


class CheckOut(BaseModel):
    check: str
    decision: str
    score: float | None
    reason: str
    bundle_sha256: str
    model_version: str
    thresholds: dict[str, float]
    timings_ms: dict[str, float]
    image_sha256: str | None
    heatmap_sha256: str | None
    measurements: list[MeasurementOut] = []


class PartOut(BaseModel):
    station: str
    uid: str
    part_id: str
    verdict: Literal["OK", "REVIEW", "NG"]
    reason: str
    recipe: str
    decided_at: datetime
    checks: list[CheckOut]


class Counters(BaseModel):
    run: dict[str, int]
    all_time: dict[str, int]


class Recipes(BaseModel):
    active: str
    recipes: list[str]


class LoginIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    user: str
    role: str
    csrf_token: str  # send it as X-CSRF-Token on every state-changing request of this session


class Health(BaseModel):
    status: Literal["ok", "degraded", "error"]
    state: str
    problems: list[str] = []


def _part_out(record) -> PartOut:
    doc = record.to_dict()
    return PartOut(**doc)


def resolve_token(env_value: str | None, token_file: Path | None, default_file: Path) -> str:
    """The API token: from the environment, from a file, or made once and kept in ``default_file`` (0600)."""
    if env_value:
        return env_value.strip()
    path = token_file or default_file
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token
    if token_file is not None:
        raise ValueError(f"{token_file}: API token file is missing or empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")  # the rest change something: a session must show its CSRF token
Role = Literal["machine", "operator", "engineer", "admin"]
# What each role may do beyond reading. "machine": the station's own token (PLC, MES, scripts).
MAY: dict[str, frozenset[Role]] = {
    "control": frozenset({"machine", "engineer", "admin"}),  # changeover, software trigger
    "review": frozenset({"operator", "engineer", "admin"}),  # a person's verdict on a part
}


@dataclass(frozen=True)
class ApiUser:
    """Whoever presented a token: a configured person, or the station token ("station", machine)."""

    name: str
    role: Role
    token: str = field(repr=False)


def api_users(configured, environ: Mapping[str, str]) -> list[ApiUser]:
    """The configured users with their tokens from the environment; a missing, short or shared
    token is an error at start-up, naming the user and the variable."""
    users, seen = [], set()
    for user in configured:
        token = (environ.get(user.token_env) or "").strip()
        if len(token) < 16:
            raise ValueError(
                f"api.users.{user.name}: environment variable {user.token_env} must hold a token of at "
                f"least 16 characters"
            )
        if token in seen:
            raise ValueError(f"api.users.{user.name}: {user.token_env} holds another user's token")
        seen.add(token)
        users.append(ApiUser(user.name, user.role, token))
    return users


def create_app(station: Any, token: str, users: Sequence[ApiUser] = ()) -> FastAPI:
    """The API of a running :class:`lineguard.station.Station` (its store, archive and controls).
    ``token``: the station's own (machine) token; ``users``: people's, each with a role."""
    if len(token) < 16:
        raise ValueError("the API token must be at least 16 characters")
    everyone = [ApiUser("station", "machine", token), *users]
    if len({u.token for u in everyone}) < len(everyone):
        raise ValueError("every API user needs a token of their own (one equals another's)")
    app = FastAPI(
        title="LineGuard station API",
        version="1",
        description="Results, images, counters and recipe changeover of one inspection station.",
        # The schema and the docs are served below, behind the same authentication as the rest.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    bearer = HTTPBearer(auto_error=False)

    sessions, limiter = Sessions(), LoginLimiter()

    def authorised(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> ApiUser:
        if credentials is None and COOKIE in request.cookies:
            return _session_user(request)
        text = credentials.credentials if credentials else ""
        given = text.encode()
        # Every token compared, always: the time taken says nothing about which one matched.
        matches = [u for u in everyone if hmac.compare_digest(given, u.token.encode())]
        if matches:
            return matches[0]
        try:
            person = station.store.token_user(text) if text else None  # a token issued to a user
        except Exception as exc:  # the record is where user tokens live: without it, say so
            raise HTTPException(
                503, f"cannot check the token: record unavailable ({type(exc).__name__})"
            ) from None
        if person is None:
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
        return ApiUser(person.name, person.role, "")

    def _session_user(request: Request) -> ApiUser:
        """A logged-in person: a live session, and on a state-changing request its CSRF token."""
        session = sessions.get(request.cookies[COOKIE])
        if session is None:
            raise HTTPException(401, "session expired or unknown: log in again")
        if request.method not in SAFE_METHODS and not csrf_ok(session, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header for this session")
        return ApiUser(session.user, session.role, "")  # type: ignore[arg-type]

    def allowed(action: str):
        def check(user: Annotated[ApiUser, Depends(authorised)]) -> ApiUser:
            if user.role not in MAY[action]:
                roles = ", ".join(sorted(MAY[action]))
                raise HTTPException(
                    403, f"{user.name} ({user.role}) may not {action}; roles that may: {roles}"
                )
            return user

        return check

    auth = [Depends(authorised)]
    control = [Depends(allowed("control"))]

    @app.post("/login", response_model=LoginOut)
    def login(body: LoginIn, request: Request, response: Response) -> LoginOut:
        """A person's name and password: a session cookie (HttpOnly, SameSite=Strict; Secure over
        HTTPS) and the CSRF token to send as X-CSRF-Token on every change. After 5 wrong passwords
        within 5 minutes for a name or from an address: 429 until the window passes."""
        keys = (f"name:{body.name}", f"addr:{request.client.host if request.client else '?'}")
        wait = limiter.retry_after(*keys)
        if wait > 0:
            raise HTTPException(
                429, "too many wrong passwords: try later", headers={"Retry-After": str(int(wait) + 1)}
            )
        user = station.store.check_password(body.name, body.password)
        if user is None:
            limiter.failed(*keys)
            station.audit(body.name, "login refused", f"user {body.name}", None, {"from": keys[1]})
            raise HTTPException(401, "wrong name or password")
        limiter.succeeded(keys[0])
        sid, session = sessions.open(user.name, user.role)
        response.set_cookie(
            COOKIE, sid, max_age=int(sessions.seconds), httponly=True, samesite="strict",
            secure=request.url.scheme == "https", path="/",
        )  # fmt: skip
        station.audit(user.name, "login", f"user {user.name}", None, {"from": keys[1]})
        return LoginOut(user=user.name, role=user.role, csrf_token=session.csrf)

    @app.post("/logout", status_code=204, response_class=Response)
    def logout(request: Request, user: Annotated[ApiUser, Depends(authorised)]) -> Response:
        sessions.close(request.cookies.get(COOKIE, ""))
        done = Response(status_code=204)
        done.delete_cookie(COOKIE, path="/")
        return done

    @app.get("/health", response_model=Health)
    def health() -> Health:
        status, problems = station.health()
        return Health(status=status, state=station.state, problems=problems)

    @app.get("/status", response_model=StationStatus, dependencies=auth)
    def status() -> StationStatus:
        return station.status()

    @app.get("/counters", response_model=Counters, dependencies=auth)
    def counters() -> Counters:
        return Counters(run=dict(station.counters), all_time=station.store.counts(station.name))

    @app.get("/results", response_model=list[PartOut], dependencies=auth)
    def results(
        since: datetime | None = None,
        until: datetime | None = None,
        part_id: str | None = None,
        verdict: Literal["OK", "REVIEW", "NG"] | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[PartOut]:
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise HTTPException(422, f"{name} needs a time zone (e.g. 2026-11-28T08:00:00Z)")
        parts = station.store.parts(station.name, verdict, part_id, since, until, limit, offset)
        return [_part_out(p) for p in parts]

    def _record(uid: str):
        record = station.store.part(station.name, uid)
        if record is None:
            raise HTTPException(404, f"no part {uid!r} recorded at station {station.name!r}")
        return record

    @app.get("/results/{uid}", response_model=PartOut, dependencies=auth)
    def result(uid: str) -> PartOut:
        return _part_out(_record(uid))

    def _png(uid: str, check: str | None, field: str) -> Response:
        record = _record(uid)
        checks = [c for c in record.checks if check is None or c.check == check]
        if not checks:
            raise HTTPException(404, f"part {uid!r} has no check {check!r}")
        sha = getattr(checks[0], field)
        if sha is None:
            raise HTTPException(
                404, f"part {uid!r}, check {checks[0].check!r}: not archived (retention policy)"
            )
        try:
            data = station.archive.get_png(sha)
        except FileNotFoundError:
            raise HTTPException(410, f"image {sha} is no longer in the archive") from None
        return Response(data, media_type="image/png")

    @app.get("/results/{uid}/image", dependencies=auth, response_class=Response)
    def image(uid: str, check: str | None = None) -> Response:
        return _png(uid, check, "image_sha256")

    @app.get("/results/{uid}/heatmap", dependencies=auth, response_class=Response)
    def heatmap(uid: str, check: str | None = None) -> Response:
        return _png(uid, check, "heatmap_sha256")

    def _grouping(check: str, size, seconds, since, until, what: str = "") -> Grouping | None:
        if what and since is None and until is None:
            return None  # no baseline period: phase I, limits from the charted parts themselves
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise HTTPException(422, f"{what}{name} needs a time zone (e.g. 2026-11-28T08:00:00Z)")
        try:
            return Grouping(station.name, check, size=size, seconds=seconds, since=since, until=until)
        except ValueError as exc:
            raise HTTPException(422, f"{what}{exc}") from None

    def _charted(draw):
        try:
            return draw()
        except NoData as exc:
            raise HTTPException(404, str(exc)) from None
        except ImportError as exc:
            raise HTTPException(501, f"charts need scipy (pip install 'lineguard[eval]'): {exc}") from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    Size = Annotated[int | None, Query(ge=1, le=10_000, description="subgroups of this many parts")]
    Seconds = Annotated[int | None, Query(ge=1, description="or subgroups of this many seconds")]

    def chart_period(
        check: str,
        size: Size = None,
        seconds: Seconds = None,
        since: datetime | None = None,
        until: datetime | None = None,
        baseline_since: datetime | None = None,
        baseline_until: datetime | None = None,
    ) -> tuple[Grouping, Grouping | None]:
        """Which parts are charted, how grouped, and the baseline period the limits come from."""
        grouping = _grouping(check, size, seconds, since, until)
        assert grouping is not None
        return grouping, _grouping(check, size, seconds, baseline_since, baseline_until, "baseline_")

    Period = Annotated[tuple[Grouping, Grouping | None], Depends(chart_period)]

    @app.get("/charts/{check}/values", response_model=ValueChartOut, dependencies=auth)
    def values_chart(
        period: Period,
        value: Annotated[str, Query(max_length=128, description="score, or a measurement's name")] = "score",
        kind: VariablesKind = "xbar_s",
    ) -> ValueChartOut:
        """X̄-S, X̄-R or I-MR chart of a check's score or measurement, with the Nelson rules that
        fired; with a baseline period, its limits (phase II)."""
        grouping, baseline = period
        return _charted(lambda: value_chart(station.store, grouping, value, kind, baseline))

    @app.get("/charts/{check}/rejects", response_model=RejectChartOut, dependencies=auth)
    def rejects_chart(
        period: Period,
        rejected: Annotated[list[Literal["REVIEW", "NG"]], Query()] = ["NG"],  # noqa: B006 (FastAPI copies it)
    ) -> RejectChartOut:
        """p chart of the share of parts the check rejected (NG, or REVIEW and NG)."""
        grouping, baseline = period
        return _charted(lambda: reject_chart(station.store, grouping, tuple(rejected), baseline))

    @app.get("/drift", response_model=list[CheckDrift], dependencies=auth)
    def drift() -> list[CheckDrift]:
        """Drift of the active recipe's checks against their bundles' calibration images: for
        each statistic (brightness, contrast, focus, saturated, score) the last window's PSI, KS
        p-value and medians, and the standing alarms with when they began; checks not watched
        say why."""
        return station.status().drift

    @app.get("/recipes", response_model=Recipes, dependencies=auth)
    def recipes() -> Recipes:
        return Recipes(active=station.recipe.name, recipes=station.recipe_names)

    @app.post("/recipes/{name}/activate", response_model=Recipes)
    def activate(name: str, user: Annotated[ApiUser, Depends(allowed("control"))]) -> Recipes:
        if name not in station.recipe_names:
            raise HTTPException(404, f"no recipe {name!r}; recipes: {station.recipe_names}")
        before = station.recipe.name
        try:
            station.changeover(name)
        except Exception as exc:
            raise HTTPException(409, f"changeover to {name!r} failed, {before!r} kept: {exc}") from None
        station.audit(user.name, "changeover", f"recipe {name}", {"recipe": before}, {"recipe": name})
        return Recipes(active=station.recipe.name, recipes=station.recipe_names)

    @app.post("/trigger", dependencies=control)
    def trigger(part_id: str | None = None, source: str | None = None) -> dict[str, int]:
        try:
            fired = station.trigger(part_id, source)
        except TriggerRefused as exc:
            raise HTTPException(422 if exc.kind == "part_id" else 409, str(exc)) from None
        return {"triggered_sources": fired}

    add_review_routes(app, station, authorised, allowed("review"))

    add_docs_routes(app, auth)

    @app.get("/metrics", dependencies=auth, response_class=Response)
    def metrics() -> Response:
        return Response(prometheus_text(station), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


DOCS_ASSETS = {  # the files of fastapi-offline's static folder /docs and /redoc load, and their types
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def add_docs_routes(app: FastAPI, auth: list) -> None:
    """The OpenAPI schema, Swagger UI and ReDoc, every asset served from the installed package
    (nothing from a CDN) and behind authentication: a logged-in browser sends its session cookie
    with each load, a script its bearer token."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    @app.get("/openapi.json", dependencies=auth, include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", dependencies=auth, include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", dependencies=auth, include_in_schema=False)
    def redoc() -> Response:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )

    @app.get("/docs-assets/{name}", dependencies=auth, include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in DOCS_ASSETS:
            raise HTTPException(404, f"no docs asset {name!r}")
        import fastapi_offline

        data = (Path(fastapi_offline.__file__).parent / "static" / name).read_bytes()
        return Response(
            data, media_type=DOCS_ASSETS[name], headers={"Cache-Control": "private, max-age=86400"}
        )


def prometheus_text(station: Any) -> str:
    """The station's metrics in the Prometheus exposition format."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    status: StationStatus = station.status()

    class Collector:
        def collect(self):
            parts = CounterMetricFamily(
                "lineguard_parts", "Parts decided this run", labels=["station", "verdict"]
            )
            for verdict in ("OK", "REVIEW", "NG"):
                parts.add_metric([station.name, verdict], status.counters[verdict])
            yield parts
            for key, help_text in (
                ("overload", "Checks failed because the inspection queue was full"),
                ("journalled", "Parts recorded in the journal while the database was down"),
                ("late_frames", "Images that arrived after their part was decided"),
                ("triggers_refused", "Triggers refused: no part could be made of them"),
                ("refused_backlog", "Parts refused at the source while the record backlog was full"),
                ("quarantined", "Parts the database refused for their content, kept in the quarantine file"),
            ):
                metric = CounterMetricFamily(f"lineguard_{key}", help_text, labels=["station"])
                metric.add_metric([station.name], status.counters[key])
                yield metric
            for key, help_text in (
                ("queue_depth", "Images waiting for inspection"),
                ("parts_in_flight", "Parts waiting for their checks"),
                ("journal_pending", "Parts waiting in the journal for the database"),
                ("record_backlog", "Decided parts waiting to be recorded"),
                ("record_backlog_age_s", "How long the oldest of them has waited (s)"),
                ("parts_per_min_last_60s", "Parts decided in the last minute"),
                ("latency_ms_p50", "Median image-to-decision latency (ms)"),
                ("latency_ms_p99", "99th percentile image-to-decision latency (ms)"),
            ):
                metric = GaugeMetricFamily(f"lineguard_{key}", help_text, labels=["station"])
                metric.add_metric([station.name], float(getattr(status, key) or 0.0))
                yield metric
            sinks = CounterMetricFamily(
                "lineguard_sink_events",
                "What each sink did (sent, failed, dropped...)",
                labels=["station", "sink", "event"],
            )
            for sink, stats in status.sinks.items():
                for event, value in stats.items():
                    sinks.add_metric([station.name, sink, event], float(value))
            yield sinks
            psi = GaugeMetricFamily(
                "lineguard_drift_psi",
                "PSI of the last drift window against the bundle's reference",
                labels=["station", "check", "statistic"],
            )
            alarm = GaugeMetricFamily(
                "lineguard_drift_alarm",
                "1 while a drift alarm stands",
                labels=["station", "check", "statistic"],
            )
            for check in status.drift:
                for reading in check.statistics:
                    labels = [station.name, check.check, reading.statistic]
                    psi.add_metric(labels, reading.psi)
                    alarm.add_metric(labels, 1.0 if reading.alarm else 0.0)
            yield psi
            yield alarm
            up = GaugeMetricFamily("lineguard_running", "1 while the station is running", labels=["station"])
            up.add_metric([station.name], 1.0 if status.state == "running" else 0.0)
            yield up

    registry = CollectorRegistry()
    registry.register(Collector())
    return generate_latest(registry).decode()


class ApiServer:
    """uvicorn in a background thread, stopped with the station."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        import time

        from lineguard.sinks.basic import claim_port

        claim_port(self.server.config.host, self.server.config.port, "REST API")
        self.thread.start()
        end = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > end:
                raise OSError(
                    f"REST API did not start on {self.server.config.host}:{self.server.config.port}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
