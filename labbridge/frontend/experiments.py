"""ExperimentLink: the frontend's link to one experiment process of a lab, with its heartbeat.

Each experiment process (config `experiments:`, one per lab PC) has its own
DEALER socket for requests and another for its heartbeat, so nothing is shared
between processes: a slow or hung one does not slow the others.  The heartbeat
pings every HEARTBEAT_INTERVAL with a short timeout; a process that has not
answered for DOWN_AFTER seconds (stopped, crashed, hung with its TCP connection
still open, or its network gone) is marked down, and its modules then answer
503 `experiment_unavailable` naming it at once.  Requests it was holding are
failed as "went away" (a write's outcome unknown, never resent).  When it
answers again it is described afresh and serves again, by itself.

The ping says the process's protocol version; another version is refused with
a message naming both (its modules answer 503 with it), never served.

The last description of each process (its modules and procedures) is kept on
disk in the frontend's data folder (a private file, replaced atomically), so a
frontend that starts while a PC is down still knows its modules: 503, not 404.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import orjson

from labbridge.core.config import Config, SocketSettings
from labbridge.core.curve import client_keys
from labbridge.core.errors import BackendTimeout, BackendWentAway, BridgeError, ExperimentUnavailable
from labbridge.core.message_limits import max_request_bytes
from labbridge.core.protocol import VERSION, version_mismatch
from labbridge.core.store_version import replace_file
from labbridge.core.transport import connect_endpoints
from labbridge.frontend.backend_client import BackendClient

log = logging.getLogger(__name__)
HEARTBEAT_INTERVAL = 0.25  # seconds between pings
PING_TIMEOUT = 0.5  # a ping not answered by then has failed
DOWN_AFTER = 1.0  # seconds without an answered ping before the process is marked down (detected within ~1.3 s)


class ExperimentLink:
    """One experiment process of the lab: its request client, heartbeat, state and last description."""

    def __init__(self, name: str, socket: SocketSettings, config: Config, config_file: Path,
                 cache_dir: Path | None) -> None:
        self.name = name
        endpoints = connect_endpoints(socket, config_file, f"experiments.{name}" if config.is_lab else "experiment_socket")
        self.curve = client_keys(socket.curve, config_file)
        self.events_endpoint = endpoints.events
        self.max_reply_bytes = socket.max_reply_bytes
        settings = config.frontend
        self.client = BackendClient(endpoints.requests, timeout=settings.request_timeout,
                                    connect_timeout=settings.connect_timeout, curve=self.curve,
                                    max_request_bytes=max_request_bytes(config), max_reply_bytes=socket.max_reply_bytes)
        # Its own socket: a ping never waits behind this process's requests, nor a request behind a ping.
        self._heart = BackendClient(endpoints.requests, timeout=PING_TIMEOUT, connect_timeout=PING_TIMEOUT,
                                    curve=self.curve, max_reply_bytes=socket.max_reply_bytes)
        self.up = False
        self.since = time.time()
        self.reason = f"the experiment process {name!r} has not answered yet"
        self.refused: str | None = None  # why it is not served although it answers (protocol version, a clash)
        self.last_ping: dict[str, Any] | None = None
        self.modules: dict[str, Any] = {}  # its last description, kept while it is down
        self.procedures: dict[str, Any] = {}
        self.described = False
        self._cache = None if cache_dir is None else cache_dir / f"{name}.json"
        self._last_ok = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._load_cache()

    @property
    def serving(self) -> bool:
        return self.up and self.refused is None

    def unavailable(self) -> ExperimentUnavailable:
        """The error its modules answer while it is not served."""
        if self.refused is not None:
            return ExperimentUnavailable(self.refused)
        return ExperimentUnavailable(f"{self.reason} (since {time.strftime('%H:%M:%S', time.localtime(self.since))})")

    def status(self) -> dict[str, Any]:
        """For /health: up or down, since when, why, and its modules."""
        state: dict[str, Any] = {"up": self.serving, "since": self.since, "modules": sorted(self.modules)}
        if not self.serving:
            state["message"] = self.unavailable().detail
        elif self.last_ping is not None:
            state["rtt_ms"] = self.last_ping["rtt_ms"]
        return state

    def start(self, on_described: Any) -> None:
        """Start the heartbeat (needs the running event loop); `on_described(link)` is called on each (re)connection."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._beat(on_described))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._heart.close()
        self.client.close()

    async def _beat(self, on_described: Any) -> None:
        self._last_ok = time.monotonic()
        while True:
            started = time.monotonic()
            try:
                ping = await self._ping()
                raw_version = ping.pop("protocol", 1)  # releases before this one said nothing and spoke version 1
            except (BridgeError, orjson.JSONDecodeError, AttributeError, TypeError) as exc:  # no answer, or a bad one
                if not isinstance(exc, BridgeError):
                    log.warning("experiment process %r: its heartbeat's answer is malformed: %s", self.name, exc)
                    exc = BackendTimeout(f"its heartbeat's answer is malformed ({type(exc).__name__})")
                silent = time.monotonic() - self._last_ok
                if silent > DOWN_AFTER:
                    why = (f"the experiment process {self.name!r} has not answered its heartbeat for {silent:.1f} s"
                           if isinstance(exc, BackendTimeout) else f"the experiment process {self.name!r}: {exc.detail}")
                    if self.up:
                        self.mark_down(why)
                    elif not self.described:
                        self.reason = why
            else:
                self._last_ok = time.monotonic()
                restarted = self.last_ping is not None and ping["pid"] != self.last_ping["pid"]
                self.last_ping = ping
                if raw_version != VERSION:
                    self._refuse(version_mismatch(raw_version, f"the experiment process {self.name!r}", VERSION,
                                                  "this frontend"))
                elif not self.up or restarted:  # restarted between two pings: its modules may have changed
                    await self._come_up(on_described)
            await asyncio.sleep(max(0.0, HEARTBEAT_INTERVAL - (time.monotonic() - started)))

    async def _ping(self) -> dict[str, Any]:
        start = time.perf_counter()
        reply = orjson.loads(await self._heart.request("ping"))
        return {"rtt_ms": round(1000 * (time.perf_counter() - start), 3), "pid": reply.get("pid"),
                "modules": reply.get("modules", {}), "history": reply.get("history"),
                "protocol": reply.get("protocol", 1)}

    async def _come_up(self, on_described: Any) -> None:
        try:
            modules = orjson.loads(await self.client.request("describe"))["modules"]
            try:
                procedures = orjson.loads(await self.client.request("procedures", value={}))["procedures"]
            except BridgeError:  # a process that runs no procedures
                procedures = {}
            if not (isinstance(modules, dict) and all(isinstance(m, dict) for m in modules.values())
                    and isinstance(procedures, dict)):
                raise TypeError("modules and procedures must be objects")
        except BridgeError as exc:
            log.warning("experiment process %r answers but could not be described: %s", self.name, exc.detail)
            return
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:  # a broken or foreign process: not served
            log.warning("experiment process %r answers but its description is malformed: %s", self.name, exc)
            return
        self.modules, self.procedures, self.described = modules, procedures, True
        self.refused = None
        self._save_cache()
        on_described(self)  # may refuse it (a module name another process serves)
        self.up, self.since = True, time.time()
        if self.refused is None:
            log.info("experiment process %r is up: modules %s", self.name, ", ".join(sorted(modules)) or "none")

    def mark_down(self, reason: str) -> None:
        """Its modules answer 503 from now on, until its heartbeat is answered again."""
        self.up, self.since, self.reason, self.refused = False, time.time(), reason, None
        log.warning("%s: its modules answer 503 until it is back", reason)
        # What it was holding will not be answered: said now, not at each request's timeout; never resent.
        self.client.abandon(BackendWentAway(f"{reason}; it held this request, so if this was a write, its outcome "
                                            "is unknown: read the value back"))

    def _refuse(self, why: str) -> None:
        if self.refused != why:
            log.error("refused %s", why)
        self.refused = why  # answered, so not down; served again once it speaks this version (_come_up)

    def _load_cache(self) -> None:
        if self._cache is None or not self._cache.exists():
            return
        try:
            saved = orjson.loads(self._cache.read_bytes())
            self.modules, self.procedures = dict(saved["modules"]), dict(saved.get("procedures", {}))
            self.described = True
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("ignored the saved description of experiment process %r (%s): %s", self.name, self._cache, exc)

    def _save_cache(self) -> None:
        if self._cache is None:
            return
        try:
            self._cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            replace_file(self._cache, orjson.dumps({"modules": self.modules, "procedures": self.procedures,
                                                    "saved": time.time()}))
        except OSError as exc:  # the lab is still served; only a restart while it is down would not know its modules
            log.warning("could not keep the description of experiment process %r in %s: %s", self.name, self._cache, exc)
