"""The subscription message a `/ws` client may send: which attributes it shows, and how often it wants them.

A client that sends nothing gets every event, one message per value (the
Python client's `watch()`).  A client that sends

    {"subscribe": ["module_a.position", "setpoint"], "max_rate": 10}

gets from then on the values of those attributes only (a bare module name
means all of its attributes), at most `max_rate` messages per second of each,
always the latest one (ws_fanout.py), plus every event that is not a value
(invocations of actions, runs, failed reads of its attributes, and any other
notice).  It may send another subscription at any time; it replaces the
previous one.  `max_rate` is optional: MAX_RATE by default, and a larger one is
lowered to it (the acknowledgement says which rate applies).

The message is bounded (MAX_NAMES names of at most MAX_NAME_CHARS each, on top
of the frontend's cap on any WebSocket message); a bad one is answered on the
socket with `{"error": "malformed_request", "message": ...}` naming what is
wrong, and the socket carries on as before.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from labbridge.core.errors import MalformedRequest

MAX_RATE = 10.0  # messages per second of one attribute, at most; a person reads no faster
MIN_RATE = 0.1  # messages per second of one attribute, at the least
MAX_NAMES = 2000  # names in one subscription: more attributes than any screen shows
MAX_NAME_CHARS = 200
KEYS = ("subscribe", "max_rate")
# module (as config.yml allows it) or module.attribute (a Python identifier)
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class Subscription:
    """The attributes a client shows (`module.attribute`, or a whole `module`) and its rate per attribute."""

    attributes: frozenset[tuple[str, str]]
    modules: frozenset[str]
    max_rate: float = MAX_RATE

    def covers(self, module: str, attribute: str) -> bool:
        return module in self.modules or (module, attribute) in self.attributes

    def acknowledgement(self) -> dict[str, Any]:
        """What the client is told once its subscription applies."""
        names = sorted(self.modules) + sorted(f"{m}.{a}" for m, a in self.attributes)
        return {"subscribed": names, "max_rate": self.max_rate}


def parse_subscription(message: str | bytes) -> Subscription:
    """The Subscription a message asks for; MalformedRequest naming what is wrong with it otherwise."""
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        raise MalformedRequest('a /ws message must be JSON: {"subscribe": ["module.attribute", ...], '
                               '"max_rate": 10}') from None
    if not isinstance(data, dict) or "subscribe" not in data:
        raise MalformedRequest('a /ws message must be an object with "subscribe": a list of names '
                               '("module.attribute" or "module")')
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise MalformedRequest(f"unknown key {unknown[0]!r} in a subscription; it takes {', '.join(KEYS)}")
    return Subscription(*_names(data["subscribe"]), max_rate=_rate(data.get("max_rate", MAX_RATE)))


def _names(names: Any) -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
    if not isinstance(names, list):
        raise MalformedRequest(f'"subscribe" must be a list of names; got {type(names).__name__}')
    if len(names) > MAX_NAMES:
        raise MalformedRequest(f'"subscribe" names at most {MAX_NAMES} attributes; got {len(names)}')
    attributes: set[tuple[str, str]] = set()
    modules: set[str] = set()
    for name in names:
        if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not _NAME.match(name):
            shown = repr(name)[:MAX_NAME_CHARS]
            raise MalformedRequest(f'"subscribe" takes names "module.attribute" or "module"; got {shown}')
        module, _, attribute = name.partition(".")
        if attribute:
            attributes.add((module, attribute))
        else:
            modules.add(module)
    return frozenset(attributes), frozenset(modules)


def _rate(rate: Any) -> float:
    # At least MIN_RATE: a value held back longer than 1 / MIN_RATE s is no live value (and a pause of ages would
    # keep each of its entries waiting in the client's schedule).
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate < MIN_RATE:
        raise MalformedRequest(f'"max_rate" must be a number of messages per second from {MIN_RATE:g} to '
                               f'{MAX_RATE:g}; got {rate!r}')
    return min(float(rate), MAX_RATE)
