"""config.yml: one pydantic model, validated once at start by both processes.

`load_config()` reads the file named by `--config`, else by the EXPERIMENT_CONFIG
environment variable, else `config.yml` in the working directory.  Every problem
becomes one `ConfigError` whose message names the file, the key path and what is
wrong; the entry points turn it into exit code 2 with no traceback.  Checks that
need the module classes (importable, a BaseModule, limits only narrowed) live in
experiment.py, which raises the same error.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labbridge.core.interlocks_config import InterlockSettings
from labbridge.core.safe_state_config import SafeStateSettings, SafeStateValues
from labbridge.core.safety_config import AlarmLimits, NotifySettings
from labbridge.core.unique_keys import load_unique

DEFAULT_PATH = "config.yml"
ENV_VAR = "EXPERIMENT_CONFIG"
DEFAULT_EXPERIMENT = "default"  # the name of experiment_socket's process, when `experiments:` is absent

Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
Seconds = Annotated[float, Field(gt=0, le=3600)]
# Paths the frontend serves itself; a module with one of these names would be unreachable.
RESERVED_MODULE_NAMES = frozenset(
    {"modules", "health", "docs", "redoc", "openapi.json", "static", "ws", "events", "favicon.ico", "metrics"}
    | {"invocations", "guide", "runs", "procedures", "interlocks", "alarms"}
)
_MODULE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Keys that moved: the old place gets a message naming the new one.
MOVED_KEYS = {
    "frontend.audit_log": "moved: write `audit_log:` at the top level of the file (both processes append to it now)",
}


class ConfigError(Exception):
    """config.yml is missing, unreadable or invalid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CurveSettings(_Strict):
    """CurveZMQ keys (files made by `python -m labbridge keys keys/`), for a ZeroMQ hop between machines.

    The backend needs `server_key` and `authorized_clients`; the frontend needs
    `server_public_key` and `client_key`.  Relative paths are from config.yml's folder.
    """

    server_key: str | None = None  # the backend's key pair (a .key_secret file)
    authorized_clients: str | None = None  # folder of the public keys (.key) of frontends allowed in
    server_public_key: str | None = None  # the backend's public key, for the frontend
    client_key: str | None = None  # the frontend's key pair (a .key_secret file)


class SocketSettings(_Strict):
    """Where the experiment process listens for the frontend (see transport.py).

    Without `host`, a private local socket (ipc://, this OS user only); with it, or
    on Windows, TCP on host:port (between machines, with `curve`).
    """

    host: str | None = None  # set only for TCP: another machine's frontend, or Windows
    port: Port = 5555
    events_port: Port | None = None  # live values (ZeroMQ PUB); default: port + 1
    socket_dir: str | None = None  # folder of the private local sockets (default: $TMPDIR/labbridge-<uid>)
    max_reply_bytes: Annotated[int, Field(ge=1024 * 1024, le=1024 ** 3)] = 64 * 1024 * 1024  # replies and live values
    curve: CurveSettings | None = None

    @property
    def uses_tcp(self) -> bool:
        return self.host is not None or sys.platform == "win32"

    @property
    def tcp_host(self) -> str:
        return self.host or "127.0.0.1"

    @property
    def bind_endpoint(self) -> str:
        return f"tcp://{self.tcp_host}:{self.port}"

    @property
    def connect_endpoint(self) -> str:
        return f"tcp://{self._reachable_host}:{self.port}"

    @property
    def live_port(self) -> int:
        return self.events_port or self.port + 1

    @property
    def events_bind_endpoint(self) -> str:
        return f"tcp://{self.tcp_host}:{self.live_port}"

    @property
    def events_connect_endpoint(self) -> str:
        return f"tcp://{self._reachable_host}:{self.live_port}"

    @property
    def _reachable_host(self) -> str:
        # A backend bound to every interface is still reached over loopback locally.
        return "127.0.0.1" if self.tcp_host in ("0.0.0.0", "*") else self.tcp_host


class LimitSettings(_Strict):
    """Narrower limits for one attribute than its class declares."""

    min: float | None = None
    max: float | None = None


class ModuleSettings(_Strict):
    """One module: its class, the instrument's address and how long to wait for it."""

    class_path: str = Field(alias="class", pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    ip: str = "127.0.0.1"
    port: Port | None = None  # required for modules that talk HTTP to an instrument
    simulate: bool = False
    timeout: Seconds = 2.0
    connect_timeout: Seconds = 1.0
    queue_limit: Annotated[int, Field(ge=1, le=10000)] = 100
    limits: dict[str, LimitSettings] = {}
    poll: dict[str, Seconds] = {}  # attribute -> seconds between reads published as live values
    simulator: dict[str, Any] = {}
    # An HTTP instrument: the path of one attribute, when it differs from what the class declares.
    path: Annotated[str, Field(pattern=r"^/[^?#]*\{name\}", max_length=200)] | None = None
    # A VISA instrument (ScpiModule): its resource name, else TCPIP::ip::port::SOCKET; line endings; serial speed.
    resource: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    read_termination: Annotated[str, Field(max_length=4)] | None = None
    write_termination: Annotated[str, Field(max_length=4)] | None = None
    baud_rate: Annotated[int, Field(ge=50, le=10_000_000)] | None = None
    safe_state: SafeStateValues | None = None  # attribute -> value, written in this order (core/safe_state_config.py)


class FrontendSettings(_Strict):
    """The web frontend: where `python main.py` listens, timeouts, limits, tokens, audit log."""

    host: str = "127.0.0.1"
    port: Port = 8000
    # Host names (besides loopback and `host`) browsers may use to reach the frontend;
    # ".example.org" allows its subdomains, "*" any host (see labbridge/core/hosts.py).
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = []
    request_timeout: Seconds = 5.0
    connect_timeout: Seconds = 1.0
    max_body_bytes: Annotated[int, Field(ge=64, le=64 * 1024 * 1024)] = 1024 * 1024
    token_file: str | None = None  # YAML mapping identity -> token (also: $BRIDGE_TOKEN)
    auth_reads: bool = False  # GETs need a token too
    allow_open_network: bool = False  # listen beyond loopback without any token
    trusted_proxies: list[str] = []  # addresses/networks whose X-Forwarded-For names the client (frontend/proxies.py)
    # Connection limits (frontend/server_limits.py):
    client_timeout: Seconds = 10.0  # to send a whole request, or take an answer; idle connections close after it
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 1000  # open at once; past it 503 (see server_limits.py)
    # Of those, how many dashboards' WebSockets and long polls may hold at once (None: a quarter each), so that
    # plain requests always keep room (frontend/stream_caps.py).
    max_websockets: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_long_polls: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    # Bytes of large answers (64 KiB and over: arrays, camera frames) held for clients that have not taken them
    # yet, in all and per client; past either, a large read waits up to a second, then 503 (frontend/large_answers.py).
    max_answer_bytes: Annotated[int, Field(ge=1024 * 1024, le=1024 ** 4)] = 64 * 1024 * 1024
    max_answer_bytes_per_client: Annotated[int, Field(ge=1024 * 1024, le=1024 ** 4)] = 16 * 1024 * 1024

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_only(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy)
            except ValueError:
                raise ValueError(f"frontend.trusted_proxies: {proxy!r} is not an IP address or network") from None
        return proxies

    @model_validator(mode="after")
    def _room_for_plain_requests(self) -> FrontendSettings:
        held = (self.max_websockets or 0) + (self.max_long_polls or 0)
        if held >= self.max_connections:
            raise ValueError(f"frontend.max_websockets and max_long_polls ({held} together) must leave room for "
                             f"plain requests below max_connections ({self.max_connections})")
        if self.max_answer_bytes_per_client > self.max_answer_bytes:
            raise ValueError(f"frontend.max_answer_bytes_per_client ({self.max_answer_bytes_per_client}) must be at "
                             f"most max_answer_bytes ({self.max_answer_bytes})")
        return self


class ArchiveRule(_Strict):
    """An attribute's archive policy, as HDB++ has (experiment/archive_policy.py): a value is recorded when it moved
    more than `deadband` (absolute, in its unit) from the last one recorded, or `every` seconds after it."""

    deadband: Annotated[float, Field(ge=0)] = 0.0
    every: Annotated[float | None, Field(gt=0, le=86400 * 365)] = None


class HistorySettings(_Strict):
    """Recording of every polled and written value into SQLite, or PostgreSQL with `url`
    (labbridge/experiment/history.py; the stores: history_sqlite.py, history_postgres.py)."""

    path: str = "data/history.sqlite3"  # relative to config.yml's folder (SQLite only)
    # postgresql://user@host:port/db?sslmode=require: records there instead of `path`; never with a password
    url: str | None = None
    source: str | None = None  # this experiment process's name in a shared database; default: the host name
    passfile: str | None = None  # a libpq password file (default ~/.pgpass); refused if others may read it
    retention: bool | None = None  # this process deletes old values; default: true for SQLite, false for PostgreSQL
    buffer_mb: Annotated[float, Field(gt=0, le=4096)] = 8.0  # values kept in memory while the database is away
    archive: dict[str, ArchiveRule] = {}  # module.attribute -> its policy; absent: every value is recorded
    interval: Annotated[float, Field(gt=0, le=60)] = 1.0  # seconds between batches written; a crash loses at most this
    max_age_days: Annotated[float, Field(gt=0, le=36500)] = 30.0  # older values are deleted
    max_size_mb: Annotated[float, Field(gt=0)] = 1000.0  # beyond this the oldest values are deleted (SQLite only)
    # The most rows one history query may read (about 0.6 s of work): past it, 422 history_too_large.
    max_query_rows: Annotated[int, Field(ge=10_000, le=1_000_000_000)] = 1_000_000

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        from labbridge.core.database_url import check_database_url  # the password rule lives beside the URL parsing

        return None if url is None else check_database_url(url)

    @field_validator("archive")
    @classmethod
    def _check_archive(cls, archive: dict[str, ArchiveRule]) -> dict[str, ArchiveRule]:
        for key in archive:
            if key.count(".") != 1 or not all(key.split(".")):
                raise ValueError(f"history.archive.{key}: must be module.attribute")
        return archive

    @property
    def uses_postgres(self) -> bool:
        return self.url is not None

    @property
    def does_retention(self) -> bool:
        return self.retention if self.retention is not None else not self.uses_postgres


class ActionSettings(_Strict):
    """Invocations of actions: how many finished ones each module keeps for `GET /invocations`, and how many
    may be pending or running at once (experiment/action_quota.py; past either bound, 429 too_many_actions)."""

    history: Annotated[int, Field(ge=1, le=10000)] = 100
    max_per_module: Annotated[int, Field(ge=1, le=10000)] = 10  # of one module
    max_per_client: Annotated[int, Field(ge=1, le=10000)] = 5  # of one client: token identity, else connection


class ProcedureSettings(_Strict):
    """One procedure (experiment/procedure.py): an `async def` decorated with `@procedure`, by import path."""

    function: str  # module.function, the module found beside config.yml as modules' classes are


class RunSettings(_Strict):
    """The queue of runs of procedures and their store (experiment/run_queue.py, run_store.py)."""

    interval: Annotated[float, Field(gt=0, le=60)] = 1.0  # seconds between batches of points written; a crash loses at most this
    continue_after_failure: bool = False  # a failed run stops the queue unless this is true
    # Retention (experiment/run_retention.py): finished runs older than this, or the oldest ones while the
    # store and the runs' files are over this size, are deleted with their files; absent, runs are kept.
    max_age_days: Annotated[float | None, Field(gt=0, le=36500)] = None
    max_size_mb: Annotated[float | None, Field(gt=0)] = None


class Config(_Strict):
    """The whole of config.yml."""

    experiment_socket: SocketSettings = SocketSettings()
    # A lab of several PCs: the frontend serves the modules of each of these experiment processes (name -> where
    # it listens, as experiment_socket); absent, the frontend serves the one at experiment_socket.
    experiments: dict[str, SocketSettings] = {}
    frontend: FrontendSettings = FrontendSettings()
    modules: dict[str, ModuleSettings] = {}  # a frontend of a lab (`experiments:`) needs none
    history: HistorySettings | None = None  # absent: nothing is recorded
    audit_log: str | None = None  # JSON Lines file both processes append every write to (core/audit.py)
    actions: ActionSettings = ActionSettings()
    procedures: dict[str, ProcedureSettings] = {}  # experiments the queue runs (GET /procedures)
    runs: RunSettings = RunSettings()
    interlocks: dict[str, InterlockSettings] = {}  # rules across instruments (core/interlocks_config.py)
    data_dir: str = "data"  # the experiment process's state (invocations.jsonl), relative to config.yml's folder
    safe_state: SafeStateSettings = SafeStateSettings()  # when modules' safe states are applied (after a crash)
    alarms: dict[str, AlarmLimits] = {}  # "module.attribute" -> limits (core/safety_config.py)
    notify: NotifySettings = NotifySettings()  # where safety notices go (webhooks)

    @model_validator(mode="after")
    def _check_names_and_ports(self) -> Config:
        socket = self.experiment_socket
        taken: dict[tuple[str, int], str] = {}
        if socket.uses_tcp:
            if socket.live_port == socket.port or socket.live_port > 65535:
                raise ValueError(f"experiment_socket.events_port: {socket.live_port} is not a free port beside port {socket.port}")
            taken[(socket.tcp_host, socket.port)] = "experiment_socket"
            taken[(socket.tcp_host, socket.live_port)] = "experiment_socket (events)"
        for key in self.history.archive if self.history else ():
            if key.split(".")[0] not in self.modules:
                raise ValueError(f"history.archive.{key}: no module named '{key.split('.')[0]}' in modules")
        for name, module in self.modules.items():
            if not _MODULE_NAME.match(name):
                raise ValueError(f"modules.{name}: a module name must be lower_snake_case (letters, digits, _)")
            if name in RESERVED_MODULE_NAMES:
                raise ValueError(f"modules.{name}: '{name}' is a path the frontend serves itself; choose another name")
            if module.port is None or not module.simulate:
                continue  # an instrument's address, not a port the bridge binds: instruments may share one
            for other_key, other_name in taken.items():
                if other_key[1] == module.port and _same_host(other_key[0], module.ip):
                    raise ValueError(f"modules.{name}.port: port {module.port} is already used by {other_name}")
            taken[(module.ip, module.port)] = f"modules.{name}"
        for name in self.procedures:
            if not _MODULE_NAME.match(name):
                raise ValueError(f"procedures.{name}: a procedure name must be lower_snake_case (letters, digits, _)")
        for name in self.experiments:
            if not _MODULE_NAME.match(name):
                raise ValueError(f"experiments.{name}: an experiment process's name must be lower_snake_case "
                                 "(letters, digits, _)")
        return self

    @property
    def experiment_sockets(self) -> dict[str, SocketSettings]:
        """The experiment processes the frontend serves, by name: `experiments`, else experiment_socket as
        "default"."""
        return dict(self.experiments) or {DEFAULT_EXPERIMENT: self.experiment_socket}

    @property
    def is_lab(self) -> bool:
        """config.yml lists its experiment processes (`experiments:`), even if only one."""
        return bool(self.experiments)


def _same_host(a: str, b: str) -> bool:
    wildcard = {"0.0.0.0", "*"}
    loopback = {"127.0.0.1", "localhost"}
    return a == b or a in wildcard or b in wildcard or (a in loopback and b in loopback)


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: explicit path, else $EXPERIMENT_CONFIG, else ./config.yml."""
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_PATH)


def resolve(config_file: Path, path: str) -> Path:
    """A path from config.yml, relative to the folder config.yml is in."""
    return (config_file.parent / path).resolve()


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate config.yml; raise ConfigError naming file, key path and problem."""
    file = config_path(path)
    try:
        raw = load_unique(file.read_text(encoding="utf-8"))  # a key given twice is refused, not overwritten
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found{_where_config_comes_from(path)}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping with 'experiment_socket' and 'modules' at the top")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{file}: " + "; ".join(_describe(err) for err in exc.errors())) from None


def _where_config_comes_from(explicit: str | os.PathLike[str] | None) -> str:
    """How the missing file was chosen, and how to choose another: true for every entry point."""
    if explicit:
        return ""
    if os.environ.get(ENV_VAR):
        return f" (named by ${ENV_VAR})"
    return f" in {Path.cwd()} (run from the folder that holds it, or set {ENV_VAR} to its path)"


def _describe(err: Any) -> str:
    where = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{where}: " + MOVED_KEYS.get(where, "unknown key")
    if err["type"] == "missing":
        return f"{where}: required key is missing"
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])
    got = err.get("input")
    suffix = f" (got {got!r})" if got is not None and not isinstance(got, (dict, list)) else ""
    return f"{where}: {err['msg']}{suffix}" if where else f"{err['msg']}{suffix}"
