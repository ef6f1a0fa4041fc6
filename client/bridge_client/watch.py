"""Live values: the frontend's WebSocket (`/ws`) as an endless async stream of Events.

The frontend sends the latest value of every attribute first, then each value
as it is read, written or polled.  `watch_events` keeps only the names asked
for and reconnects by itself when the connection drops (a frontend restart, a
network hiccup), backing off up to `MAX_BACKOFF`; after a reconnect the latest
values come first again, so a consumer always catches up.  A refused handshake
(no or a wrong token) is raised at once instead of retried.

This needs the `websockets` package (`pip install "bridge-client[watch]"`):
httpx, the client's only required dependency, does not speak WebSocket.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from bridge_client.errors import BridgeUnreachable, Forbidden, NotAuthenticated, unknown_attribute, unknown_module

log = logging.getLogger("bridge_client")

MAX_BACKOFF = 2.0  # seconds between reconnection attempts, at most
MAX_MESSAGE = 1 << 20  # live events are small; refuse anything larger


@dataclass(frozen=True)
class Event:
    """One live value (or, with `error` set, a failed poll) of one attribute."""

    module: str
    attribute: str
    value: Any = None
    unit: str | None = None
    error: str | None = None
    message: str | None = None

    @property
    def name(self) -> str:
        return f"{self.module}.{self.attribute}"

    def __str__(self) -> str:
        if self.error is not None:
            return f"{self.name}: {self.error} ({self.message})"
        return f"{self.name} = {self.value!r}{f' {self.unit}' if self.unit else ''}"


def websocket_handshake(http_url: str, token: str | None) -> tuple[str, dict[str, Any]]:
    """The WebSocket URL and the options of its handshake, with the token if there is one.

    The token goes in the Authorization header, never in the URL (URLs end up in logs).
    This is the one place to change if the frontend takes it another way.
    """
    url = "ws" + http_url.removeprefix("http") + "/ws"  # http:// -> ws://, https:// -> wss://
    return url, {"additional_headers": {"Authorization": f"Bearer {token}"}} if token else {}


def require_websockets() -> Any:
    """The websockets client module, or a clear error naming the extra to install."""
    try:
        return importlib.import_module("websockets.asyncio.client")
    except ImportError:
        raise ModuleNotFoundError('watch() needs the websockets package: pip install "bridge-client[watch]"') from None


async def watch_events(http_url: str, token: str | None, wanted: set[str], *,
                       reconnect: bool = True) -> AsyncGenerator[Event, None]:
    """Events whose `module.attribute` or `module` is in `wanted` (everything when it is empty)."""
    client = require_websockets()
    exceptions = importlib.import_module("websockets.exceptions")
    url, options = websocket_handshake(http_url, token)
    backoff = 0.1
    while True:
        try:
            async with client.connect(url, max_size=MAX_MESSAGE, **options) as websocket:
                backoff = 0.1
                async for message in websocket:
                    event = _event(message)
                    if event is not None and (not wanted or event.name in wanted or event.module in wanted):
                        yield event
            problem = "the frontend closed the connection"
        except exceptions.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                error = NotAuthenticated if status == 401 else Forbidden
                raise error(f"the frontend refused the live-value connection (HTTP {status})", status=status) from None
            problem = f"the frontend answered HTTP {status}"
        except (OSError, TimeoutError, exceptions.WebSocketException) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if not reconnect:
            raise BridgeUnreachable(f"live values from {url} stopped: {problem}")
        log.info("live values from %s stopped (%s); reconnecting in %.1f s", url, problem, backoff)
        await asyncio.sleep(backoff)
        backoff = min(2 * backoff, MAX_BACKOFF)


def _event(message: str | bytes) -> Event | None:
    """An Event from one message; None for messages that are not about an attribute's value."""
    try:
        data = json.loads(message)
        if "alarm" in data:  # an alarm's severity (its channel "<attribute>.alarm"), not a value: see Bridge.alarms()
            return None
        return Event(module=data["module"], attribute=data["attribute"], value=data.get("value"),
                     unit=data.get("unit"), error=data.get("error"), message=data.get("message"))
    except (ValueError, KeyError, TypeError):
        log.debug("ignored a live message that is not an attribute's value: %.200r", message)
        return None


def check_names(names: tuple[str, ...], modules: dict[str, set[str]]) -> set[str]:
    """The names to watch, each `module` or `module.attribute`, checked against the description."""
    for name in names:
        module, _, attribute = name.partition(".")
        if module not in modules:
            raise unknown_module(module, modules)
        if attribute and attribute not in modules[module]:
            raise unknown_attribute(module, attribute, modules[module])
    return set(names)
