"""Live events on the wire, experiment process -> frontend: how they are framed, and the one way to read them.

Each ZeroMQ message of the events socket (experiment/events.py -> frontend/live.py) is one or more pairs of
frames (the publisher sends everything published in one turn of its event loop as one message: the polls of
modules due at the same time, for instance):

- the key: `module NUL names`, where `names` is the attribute (an action's name followed by `()`), or, for a
  poll, the attributes read in it, comma-separated.  A later message with the same key holds the newer value
  of everything an earlier one held, so whoever keeps only the latest values may keep only the latest message
  per key, undecoded (the frontend does so while nobody watches: live.py);
- the payload, JSON: one event (`{"module", "attribute", "value", "unit", "time"}`, a failed read's
  `{"module", "attribute", "error", "message", "time"}`, an invocation's or a run's change), or the values
  of one poll of a module, all read in one `read_many` and stamped with one time:
  `{"module", "time", "values": {attribute: {"value", "unit"} or {"error", "message"}}}`.

`decode` turns a message into the same events, one per value, so no reader needs to know about polls;
`keyed` splits it into its (key, payload) pairs for a reader that keeps them undecoded.
"""

from __future__ import annotations

from typing import Any

import orjson

Frames = list[bytes]
Readings = dict[str, dict[str, Any]]  # attribute -> {"value", "unit"} or {"error", "message"}


def event_key(event: dict[str, Any]) -> str:
    """The name an event is kept under (per module): its attribute, else its action's name and `()`."""
    return str(event.get("attribute") or f"{event.get('action')}()")


def encode_event(event: dict[str, Any]) -> Frames:
    """One event as a message."""
    return [f"{event['module']}\0{event_key(event)}".encode(), orjson.dumps(event)]


def encode_values(module: str, time: float, readings: Readings) -> Frames:
    """The readings of one poll of `module`, stamped `time`, as one message."""
    return [f"{module}\0{','.join(readings)}".encode(),
            orjson.dumps({"module": module, "time": time, "values": readings})]


def keyed(frames: Frames) -> list[tuple[bytes, bytes]]:
    """The (key, payload) pairs of a message, in order."""
    return list(zip(frames[::2], frames[1::2]))


def decode(frames: Frames) -> list[dict[str, Any]]:
    """The events a message holds, in order, one per value, each as it would have been sent alone."""
    events: list[dict[str, Any]] = []
    for payload in frames[1::2]:
        message = orjson.loads(payload)
        values = message.get("values")
        if not isinstance(values, dict) or "attribute" in message:
            events.append(message)
            continue
        module, time = message["module"], message["time"]
        events += [{"module": module, "attribute": name, **reading, "time": time} for name, reading in values.items()]
    return events
