"""The station's configuration (STATION.yaml): typed, validated, every error naming its key.

Relative paths are resolved against the folder of the YAML file, so a station
folder can be moved or copied to another line PC as a whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lineguard.errors import LineGuardError
from lineguard.spc import drift
from lineguard.tools.config import TOOL_KINDS, DefectRules, MeasureToolConfig, ToolConfig

# Defaults of list-valued settings (typed, so each default list has the field's element type).
CASCADE_WHEN: tuple[Literal["REVIEW", "NG"], ...] = ("REVIEW", "NG")
OPCUA_SECURITY: tuple[Literal["none", "sign_encrypt"], ...] = ("sign_encrypt",)


class ConfigError(LineGuardError, ValueError):
    """STATION.yaml cannot be used; the message names the file, the key and the problem."""


class _Strict(BaseModel):
    # No inf/NaN anywhere: `deadline_ms: .inf` made a station that could neither decide nor stop.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Trigger = Literal["free_run", "software", "external"]


class FolderSourceConfig(_Strict):
    """Images already in a folder, read once in name order; with ``watch``, new files as they appear."""

    kind: Literal["folder"]
    path: Path
    pattern: str = "*"
    watch: bool = False
    poll_s: float = Field(0.2, gt=0)
    settle_s: float = Field(
        0.2, ge=0, description="a new file is read once its size has not changed this long"
    )
    trigger: Trigger = "free_run"
    after: Literal["keep", "move", "delete"] = Field(
        "keep", description="what happens to a file once its part is recorded (move: into move_to)"
    )
    move_to: Path | None = None

    @model_validator(mode="after")
    def _after(self) -> FolderSourceConfig:
        if (self.after == "move") != (self.move_to is not None):
            raise ValueError("after: move needs move_to (a folder), and move_to is only for after: move")
        return self


class ReplaySourceConfig(_Strict):
    """A folder fed as a line: one image per part at ``ppm`` parts per minute (0 = as fast as taken)."""

    kind: Literal["replay"]
    path: Path
    pattern: str = "*"
    ppm: float = Field(600.0, ge=0)
    loop: bool = False
    limit: int | None = Field(None, gt=0, description="stop after this many parts")
    trigger: Trigger = "free_run"


class VideoSourceConfig(_Strict):
    """A video file, an RTSP/HTTP stream or a USB camera (its index) through OpenCV."""

    kind: Literal["video"]
    url: str
    every_n: int = Field(1, gt=0, description="free-run: take one frame in every n")
    limit: int | None = Field(None, gt=0)
    reconnect_s: float = Field(2.0, gt=0, description="streams: wait before reconnecting")
    trigger: Trigger = "free_run"


class LineScanConfig(_Strict):
    """Assemble a line-scan camera's strips into part images."""

    lines_per_frame: int = Field(gt=0)
    ticks_per_frame: int | None = Field(
        None, gt=0, description="encoder mode: ticks per part image (constant mm per line at any speed)"
    )


class GenICamSourceConfig(_Strict):
    """A GenICam camera through harvesters and a GenTL producer (.cti)."""

    kind: Literal["genicam"]
    cti: Path
    serial: str | None = None
    index: int = Field(0, ge=0, description="which camera, when no serial is given")
    timeout_s: float = Field(3.0, gt=0)
    limit: int | None = Field(None, gt=0)
    features: dict[str, Any] = Field(default_factory=dict, description="node values set before streaming")
    line_scan: LineScanConfig | None = None
    trigger: Trigger = "free_run"


SourceConfig = Annotated[
    FolderSourceConfig | ReplaySourceConfig | VideoSourceConfig | GenICamSourceConfig,
    Field(discriminator="kind"),
]


class FixtureConfig(_Strict):
    """A pattern other measurements follow: ``pattern`` (x, y, width, height) cut from the
    ``reference`` image is found in each frame (± ``angle_range`` degrees), and the frame is moved
    so the pattern lies where it lies on the reference before the ROI is cut; ROI and tool
    coordinates are then the reference's. Found with a score under ``min_score``: the check fails
    fail-safe."""

    reference: Path
    pattern: tuple[int, int, int, int]
    angle_range: float = Field(0.0, ge=0, le=180)
    min_score: float = Field(0.7, gt=0, lt=1)


class CheckConfig(_Strict):
    """One check of a part on (a region of) one source's image: a model bundle, or a tool
    (measure, blob, ocr, code, color, presence) configured here."""

    name: str = Field(min_length=1, max_length=128)
    bundle: Path | None = None
    tool: ToolConfig | None = None
    bundle_sha256: str | None = Field(
        None,
        pattern="^[0-9a-f]{64}$",
        description="pin: sha256 of the bundle's manifest.json (`lineguard export` prints it); "
        "a bundle that differs is refused at start-up and changeover",
    )
    source: str
    roi: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height in pixels")
    camera_calibration: Path | None = Field(
        None, description="undistort with this `lineguard calibrate` file"
    )
    align_to: Path | None = Field(None, description="reference image to align each part to first")
    align_motion: Literal["translation", "euclidean"] = "translation"
    fixture: FixtureConfig | None = Field(None, description="follow a taught pattern (instead of align_to)")
    defects: DefectRules | None = Field(
        None, description="a segmenter's defects: their unit, and the size rules that decide the part"
    )
    after: str | None = Field(
        None, description="cascade: run only when this pre-screen check decides one of `when`"
    )
    when: list[Literal["REVIEW", "NG"]] = Field(default_factory=lambda: list(CASCADE_WHEN))

    @model_validator(mode="after")
    def _bundle_or_tool(self) -> CheckConfig:
        if (self.bundle is None) == (self.tool is None):
            raise ValueError(
                f"check {self.name!r}: give either bundle (a model) or tool ({', '.join(TOOL_KINDS)})"
            )
        if self.fixture is not None and self.align_to is not None:
            raise ValueError(f"check {self.name!r}: give align_to or fixture, not both")
        if self.tool is not None and self.defects is not None:
            raise ValueError(
                f"check {self.name!r}: defects size a segmenter bundle's defects; this check is a tool"
            )
        if self.tool is not None and self.bundle_sha256 is not None:
            raise ValueError(f"check {self.name!r}: bundle_sha256 pins a bundle; this check is a tool")
        if self.tool is not None and self.roi is not None and isinstance(self.tool, MeasureToolConfig):
            x0, y0, x1, y1 = self.tool.extent
            if x0 < 0 or y0 < 0 or x1 > self.roi[2] - 1 or y1 > self.roi[3] - 1:
                raise ValueError(
                    f"check {self.name!r}: tool calipers reach ({x0:g}, {y0:g})..({x1:g}, {y1:g}), "
                    f"outside its {self.roi[2]}x{self.roi[3]} ROI (tool coordinates are in the ROI)"
                )
        return self

    @field_validator("roi")
    @classmethod
    def _positive_roi(cls, roi: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if roi is not None and (roi[0] < 0 or roi[1] < 0 or roi[2] <= 0 or roi[3] <= 0):
            raise ValueError("x and y must be >= 0, width and height > 0")
        return roi


class RecipeConfig(_Strict):
    checks: list[CheckConfig] = Field(min_length=1)
    job: int | None = Field(
        None, ge=1, le=32767, description="the number a PLC selects this recipe by (job change)"
    )
    on_missing: Literal["REVIEW", "NG"] = Field("NG", description="a check with no result by the deadline")
    on_failed: Literal["REVIEW", "NG"] = Field(
        "NG", description="a check that failed: decode, model, overload"
    )

    @model_validator(mode="after")
    def _unique_checks(self) -> RecipeConfig:
        names = [c.name for c in self.checks]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"check names must be unique, repeated: {duplicated}")
        by_name = {c.name: c for c in self.checks}
        for check in self.checks:
            if check.after is None:
                continue
            screen = by_name.get(check.after)
            if screen is None or screen is check:
                raise ValueError(
                    f"check {check.name!r}: after {check.after!r} must name another check of the recipe"
                )
            if screen.after is not None:
                raise ValueError(
                    f"check {check.name!r}: its pre-screen {screen.name!r} is itself cascaded (one level)"
                )
        if all(c.after is not None for c in self.checks):
            raise ValueError("a recipe needs at least one check that always runs")
        return self


class StoreConfig(_Strict):
    url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in the state folder")
    journal: Path | None = None
    archive: Path | None = None
    keep_ok_every: int = Field(100, ge=0, description="archive 1 OK image in N (NG/REVIEW always); 0 = none")
    keep_heatmaps: bool = True
    require_database_at_start: bool = Field(
        True,
        description="refuse to start while the database is unreachable (a wrong URL would otherwise "
        "put every part in the journal); false: start on the journal and replay later",
    )


class JsonlSinkConfig(_Strict):
    path: Path


class WebhookSinkConfig(_Strict):
    url: str
    timeout_s: float = Field(2.0, gt=0)
    queue: int = Field(1000, gt=0, description="results waiting to be posted; more are counted as dropped")
    token_env: str | None = Field(None, description="environment variable holding a bearer token")


class OpcUaUserConfig(_Strict):
    name: str = Field(min_length=1)
    password_env: str = Field(min_length=1, description="environment variable holding the password")
    role: Literal["read", "operate", "engineer"] = Field(
        "operate", description="read: nothing written; operate: trigger, acks, resets; engineer: + job change"
    )


class OpcUaSinkConfig(_Strict):
    endpoint: str = "opc.tcp://127.0.0.1:4840/lineguard/"
    namespace: str = "urn:lineguard:station"
    security: list[Literal["none", "sign_encrypt"]] = Field(default_factory=lambda: list(OPCUA_SECURITY))
    certificate: Path | None = Field(None, description="DER/PEM; default: self-signed, made in STATE/opcua/")
    private_key: Path | None = None
    users: list[OpcUaUserConfig] = Field(default_factory=list)
    allow_anonymous_writes: bool = False
    result_buffer: int = Field(16, gt=0)
    trust_all_clients: bool = Field(
        False,
        description="accept any client certificate (test benches only); else only those in "
        "STATE/opcua/trusted/ (`lineguard opcua trust`)",
    )
    plc_heartbeat_s: float | None = Field(
        None, gt=0, le=600, description="PlcHeartbeat must change this often, else the link is lost"
    )
    on_plc_lost: Literal["continue", "hold"] = "continue"

    @model_validator(mode="after")
    def _secure(self) -> OpcUaSinkConfig:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("give both certificate and private_key, or neither (a self-signed pair is made)")
        if not self.users and not self.allow_anonymous_writes:
            raise ValueError(
                "the PLC must write Trigger/ResultAck: add users (name + password_env), "
                "or set allow_anonymous_writes: true on a closed test network"
            )
        return self


class ModbusSinkConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(502, gt=0, lt=65536)
    device_id: int = Field(1, ge=0, le=247)
    result_buffer: int = Field(16, gt=0)
    plc_heartbeat_s: float | None = Field(
        None, gt=0, le=600, description="holding register 17 must change this often, else the link is lost"
    )
    on_plc_lost: Literal["continue", "hold"] = "continue"


class PlcLinkConfig(_Strict):
    """What every PLC the station polls as a client shares: timing, the watchdog, the buffer."""

    poll_ms: float = Field(
        10.0, ge=1, le=1000, description="one read of the command area and one write of the result each"
    )
    timeout_s: float = Field(1.0, gt=0, le=60, description="a read or write not answered by then: link lost")
    reconnect_s: float = Field(0.5, gt=0, le=60, description="wait between attempts to reconnect")
    plc_heartbeat_s: float | None = Field(
        None,
        gt=0,
        le=600,
        description="the PLC's heartbeat must change this often, else the link counts as lost "
        "(null: not watched)",
    )
    on_plc_lost: Literal["continue", "hold"] = Field(
        "continue",
        description="continue: keep inspecting, deliver the results in order on reconnect; "
        "hold: refuse new parts until the link is back (a station event either way)",
    )
    result_buffer: int = Field(
        1024, gt=0, le=100_000, description="results kept for the PLC while it is unreachable or busy"
    )


class S7SinkConfig(PlcLinkConfig):
    """A Siemens S7-300/400/1200/1500 read and written over S7 communication (PUT/GET enabled):
    the station reads the PLC's command data block and writes its result data block."""

    host: str
    port: int = Field(102, gt=0, lt=65536)
    rack: int = Field(0, ge=0, le=7)
    slot: int = Field(1, ge=0, le=31, description="S7-1200/1500: 1 (S7-300: 2)")
    command_db: int = Field(ge=1, le=65535, description="DB the PLC writes (trigger, acks, job, part ID)")
    command_start: int = Field(0, ge=0, le=65535, description="byte where the command layout starts in it")
    result_db: int = Field(ge=1, le=65535, description="DB the station writes (status, verdict, sequence)")
    result_start: int = Field(0, ge=0, le=65535)
    part_id_chars: int = Field(32, ge=1, le=254, description="STRING[n] length of both part ID fields")


class LogixSinkConfig(PlcLinkConfig):
    """A Rockwell ControlLogix / CompactLogix read and written by tag over EtherNet/IP."""

    host: str
    port: int = Field(44818, gt=0, lt=65536)
    slot: int | None = Field(0, ge=0, le=16, description="the controller's backplane slot (null: no route)")
    tag_prefix: str = Field("LineGuard_", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,30}$")
    part_id_chars: int = Field(
        32, ge=1, le=82, description="SINT[n] of both part ID tags (a STRING holds 82)"
    )


class MqttTlsConfig(_Strict):
    ca_file: Path | None = Field(
        None, description="CA that signed the broker's certificate (default: the system's)"
    )
    cert_file: Path | None = Field(None, description="this node's client certificate, if the broker asks")
    key_file: Path | None = None


class SparkplugSinkConfig(_Strict):
    """The station as an MQTT Sparkplug B edge node (docs/station.md has every topic and metric)."""

    host: str
    port: int = Field(8883, gt=0, lt=65536)
    group_id: str = Field(min_length=1, max_length=64, pattern=r"^[^+#/\s]+$")
    edge_node_id: str | None = Field(
        None, max_length=64, pattern=r"^[^+#/\s]+$", description="default: the station's name"
    )
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password")
    tls: MqttTlsConfig | None = Field(
        default_factory=MqttTlsConfig, description="null: plain TCP (only with allow_plaintext)"
    )
    allow_plaintext: bool = Field(False, description="permit tls: null, on an isolated network only")
    keepalive_s: int = Field(10, ge=2, le=3600)
    data_qos: Literal[0, 1] = Field(
        0,
        description="0: as Sparkplug asks; 1: at-least-once across link cuts (hosts dedup by Part/Seq)",
    )
    result_buffer: int = Field(
        10_000, gt=0, le=1_000_000, description="check results kept while the broker is down"
    )
    reconnect_s: float = Field(1.0, gt=0, le=300)
    status_every_s: float = Field(10.0, gt=0, le=3600, description="NDATA with the counters this often")

    @model_validator(mode="after")
    def _secure(self) -> SparkplugSinkConfig:
        if self.tls is None and not self.allow_plaintext:
            raise ValueError(
                "tls: null sends commands and results in clear text: set allow_plaintext: true to mean it"
            )
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give both username and password_env, or neither")
        return self


class SinksConfig(_Strict):
    jsonl: JsonlSinkConfig | None = None
    webhook: WebhookSinkConfig | None = None
    opcua: OpcUaSinkConfig | None = None
    modbus: ModbusSinkConfig | None = None
    s7: S7SinkConfig | None = None
    sparkplug: SparkplugSinkConfig | None = None
    logix: LogixSinkConfig | None = None


class ApiUserConfig(_Strict):
    """A person (or an MES client) with a bearer token of their own: what they may do is their
    role's — operator: read and review; engineer: + changeover and trigger; admin: all."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@\-]+$")
    role: Literal["operator", "engineer", "admin"]
    token_env: str = Field(min_length=1, description="environment variable holding their token")


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, gt=0, lt=65536)
    token_env: str = Field("LINEGUARD_API_TOKEN", description="variable holding the bearer token")
    token_file: Path | None = Field(None, description="or a file holding it; default: STATE/api-token")
    users: list[ApiUserConfig] = Field(
        default_factory=list, description="people's own tokens (the station token stays the machine's)"
    )

    @field_validator("users")
    @classmethod
    def _unique_names(cls, users: list[ApiUserConfig]) -> list[ApiUserConfig]:
        names = [u.name for u in users]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"user names must be unique: {twice} given twice")
        return users


class ReviewConfig(_Strict):
    """The review queue: every REVIEW part, and a random sample of OK and NG parts so the reviews
    measure the escape and false-reject rates."""

    ok_every: int = Field(50, ge=0, description="1 OK part in this many enters the queue; 0: none")
    ng_every: int = Field(10, ge=0, description="1 NG part in this many enters the queue; 0: none")
    claim_minutes: float = Field(10.0, gt=0, le=1440, description="a claimed part is held this long")


class DriftConfig(_Strict):
    """Drift alarms: every bundle check's image statistics and score, in rolling windows, against
    the reference its bundle carries (the calibration's good images)."""

    enabled: bool = True
    window: int = Field(drift.WINDOW, ge=20, le=100_000, description="parts a window")
    every: int = Field(drift.EVERY, ge=1, description="parts between comparisons")
    raise_psi: float = Field(drift.RAISE_PSI, gt=0, description="an alarm rises at this PSI...")
    raise_p: float = Field(drift.RAISE_P, gt=0, lt=1, description="...with the KS test's p below this")
    clear_psi: float = Field(drift.CLEAR_PSI, gt=0, description="and clears below this PSI")

    @model_validator(mode="after")
    def _hysteresis(self) -> DriftConfig:
        if self.clear_psi >= self.raise_psi:
            raise ValueError(f"clear_psi {self.clear_psi} must be below raise_psi {self.raise_psi}")
        return self


class StationConfig(_Strict):
    station: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    state_dir: Path = Path("station-state")
    sources: dict[str, SourceConfig] = Field(min_length=1)
    recipes: dict[str, RecipeConfig] = Field(min_length=1)
    recipe: str = Field(description="the recipe active at start")
    deadline_ms: float = Field(
        2000.0, gt=0, le=600_000, description="a part's verdict is due this long after its image (<= 10 min)"
    )
    queue_size: int = Field(8, gt=0, description="images waiting for inspection; more are overload")
    record_backlog: int = Field(
        256,
        gt=0,
        le=100_000,
        description="decided parts waiting to be recorded; beyond, sources that can wait wait and "
        "others' parts are refused at the source (counted, and an event)",
    )
    workers: int = Field(1, gt=0, le=64)
    threads_per_worker: int = Field(1, gt=0, le=64)
    providers: list[str] | Literal["auto"] | None = None
    store: StoreConfig = StoreConfig()
    sinks: SinksConfig = SinksConfig()
    api: ApiConfig | None = None
    drift: DriftConfig = DriftConfig()
    review: ReviewConfig = ReviewConfig()

    @model_validator(mode="after")
    def _references(self) -> StationConfig:
        if self.recipe not in self.recipes:
            raise ValueError(f"recipe {self.recipe!r} is not in recipes {sorted(self.recipes)}")
        jobs: dict[int, str] = {}
        for rname, recipe in self.recipes.items():
            if recipe.job is not None and jobs.setdefault(recipe.job, rname) != rname:
                taken = jobs[recipe.job]
                raise ValueError(f"recipes.{rname}: job {recipe.job} is already recipe {taken!r}'s")
            for check in recipe.checks:
                if check.source not in self.sources:
                    raise ValueError(
                        f"recipes.{rname}: check {check.name!r} reads source {check.source!r}, "
                        f"which is not in sources {sorted(self.sources)}"
                    )
        return self


def _resolve(value: Any, base: Path) -> Any:
    """Paths relative to the YAML file's folder."""
    if isinstance(value, Path):
        return value if value.is_absolute() else (base / value).resolve()
    if isinstance(value, VideoSourceConfig) and "://" not in value.url and not value.url.isdigit():
        return value.model_copy(update={"url": str(_resolve(Path(value.url), base))})  # a video file
    if isinstance(value, BaseModel):
        return value.model_copy(
            update={name: _resolve(getattr(value, name), base) for name in type(value).model_fields}
        )
    if isinstance(value, dict):
        return {k: _resolve(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    return value


def _describe(error: Any, doc: Any = None) -> str:  # a pydantic ErrorDetails
    """``recipes.main.checks.1[gap].tool...: problem``: a check is named as well as numbered."""
    parts: list[str] = []
    node = doc
    for part in error["loc"]:
        name = None
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            if (
                parts
                and parts[-1] == "checks"
                and isinstance(node, dict)
                and isinstance(node.get("name"), str)
            ):
                name = node["name"]
        else:
            node = None
        parts.append(f"{part}[{name}]" if name else str(part))
    key = ".".join(parts) or "(top level)"
    return f"{key}: {error['msg']}"


def parse_config(doc: Any, source: str | Path = "<config>", base: Path | None = None) -> StationConfig:
    """Validate a loaded YAML document; errors name ``source`` and each failing key."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping of keys (station, sources, recipes...)")
    try:
        config = StationConfig.model_validate(doc)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e, doc) for e in exc.errors(include_url=False))
        raise ConfigError(f"{source}: invalid station configuration\n  {problems}") from None
    return _resolve(config, base) if base is not None else config


MAX_CONFIG_BYTES = 1_000_000
# Values a document may expand to once its aliases are followed: a real station has a few hundred;
# a 684-byte "billion laughs" document expands to millions (it cost 40 s and 1.4 GB).
MAX_CONFIG_NODES = 100_000


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden on purpose
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} given twice (lines {first[key]} and {line})",
                        key_node.start_mark,
                    )
                first[key] = line
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it below
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], depth: int = 0) -> int:
    """How many values ``node`` stands for once aliases are expanded (shared nodes counted per use)."""
    if id(node) in sizes:
        if sizes[id(node)] < 0:
            raise ConfigError("an alias refers to a value that contains it (recursive YAML)")
        return sizes[id(node)]
    if depth > 64:
        raise ConfigError("nested more than 64 levels deep")
    sizes[id(node)] = -1
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, sizes, depth + 1) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, sizes, depth + 1) + _expanded_size(value, sizes, depth + 1)
    sizes[id(node)] = min(total, 10 * MAX_CONFIG_NODES)  # saturate: only "too many" matters
    return sizes[id(node)]


def load_yaml(text: str, source: str | Path) -> Any:
    """Parse YAML safely and boundedly: no duplicate keys, no alias expansion past MAX_CONFIG_NODES."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node, {})
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if size > MAX_CONFIG_NODES:
            raise ConfigError(
                f"{source}: expands to over {MAX_CONFIG_NODES} values once its aliases (*name) are "
                f"followed; a station configuration is far smaller (an alias bomb?)"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc})") from None
    finally:
        loader.dispose()


def _read_text(path: Path, what: str) -> str:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: over {MAX_CONFIG_BYTES} bytes, not {what}")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_config(path: str | Path) -> StationConfig:
    path = Path(path)
    text = _read_text(path, "a station configuration")
    return parse_config(load_yaml(text, path), path, base=path.resolve().parent)


def load_tool_check(path: str | Path, **check: Any) -> CheckConfig:
    """A tool file (the mapping a check's ``tool:`` key holds) as a check of its own, so a tool can
    be tried on images before it goes into a recipe (`lineguard measure`). ``check``: the check's
    other keys (roi, camera_calibration, align_to, align_motion, fixture); errors in them are
    named as ``--roi`` etc., errors in the file by its key."""
    path = Path(path)
    doc = load_yaml(_read_text(path, "a tool configuration"), path)
    if not isinstance(doc, dict):
        kinds = " | ".join(TOOL_KINDS)
        raise ConfigError(f"{path}: expected a mapping of keys (kind: {kinds}, ...)")
    given = {k: v for k, v in check.items() if v is not None}
    try:
        config = CheckConfig.model_validate({"name": path.stem, "source": "-", "tool": doc, **given})
        # the file's paths (a template) are relative to it; the options' to the working directory
        return config.model_copy(update={"tool": _resolve(config.tool, path.resolve().parent)})
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = [str(p) for p in error["loc"]]
            if loc[:1] == ["tool"]:
                inner = loc[2:] if loc[1:2] == [doc.get("kind")] else loc[1:]  # less the union's tag
                where = ": ".join([str(path), *([".".join(inner)] if inner else [])])
            elif loc:
                where = "--" + loc[0].replace("_", "-")
            else:
                where = str(path)
            problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigError("; ".join(problems)) from None
