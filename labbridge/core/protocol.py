"""The ZeroMQ wire protocol shared by the frontend and the experiment process.

A request is one JSON frame::

    {"v": 1, "id": "9f1c...", "op": "get" | "put" | "describe" | "ping" | "history",
     "module": "module_a", "attribute": "position", "value": 12.5,
     "deadline": 1764147600.25, "client": "127.0.0.1", "identity": "alice", "role": "operate"}

`deadline` is a Unix time: past it the client has given up, so the backend drops
the request instead of running it (clocks must agree when the two processes run
on different machines).  `client`, `identity` and `role` (optional) say who
asked for a write, for the experiment process's audit log; `connection`
("address:port" of the client's TCP connection) is whom an invocation counts
against without tokens (experiment/action_quota.py).  A `history` request carries a
HistoryQuery (history_query.py) as its value.  A reply is two frames, a
small JSON header and the JSON body, so the frontend can hand the body to the
browser without re-encoding it::

    {"id": "9f1c...", "ok": true}                                   + body
    {"id": "9f1c...", "ok": false, "error": "UnknownModule", "detail": "..."}  + b""

A `get` may carry `"accept": ["npy", "json"]`, the formats its client takes,
preferred first (JSON when absent).  An array then comes as a NumPy .npy file,
`{"id": ..., "ok": true, "format": "npy"}` followed by the file in as many
frames as it was made of (its header, then the array's memory as it lies, so
that an array crosses without being copied into one buffer first).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from labbridge.core.errors import BridgeError, MalformedRequest, error_from_name

VERSION = 1  # said in every request ("v") and in every `ping` answer ("protocol"); a mismatch is refused
# A received frame: bytes, or a zero-copy view of a large ZeroMQ message.
Chunk = bytes | memoryview
Op = Literal["get", "put", "describe", "ping", "history", "invoke", "cancel", "invocation", "invocations",
             "procedures", "submit_run", "runs", "run", "run_control", "run_data", "run_queue", "run_file",
             "interlocks", "interlock_ack", "alarms"]
# What a `get` answer may be sent as: JSON, or (arrays) a NumPy .npy file.
Format = Literal["json", "npy"]
FORMATS: frozenset[str] = frozenset({"json", "npy"})
JSON_ONLY: tuple[Format, ...] = ("json",)
# Actions (see core/action.py): `value` carries each op's payload, an object:
#   invoke       module, attribute = the action; {"arguments": {...}}
#   cancel       {"id": invocation id}
#   invocation   {"id": invocation id, "wait": seconds to wait for its status to change (0: answer at once)}
#   invocations  {"module": str|null, "status": str|null}: newest first
# (who asks travels in the request's own `client` and `identity`, as for a put).
INVOCATION_OPS: frozenset[str] = frozenset({"invoke", "cancel", "invocation", "invocations"})
# Runs of procedures (experiment/runs.py describes each op's payload).
RUN_OPS: frozenset[str] = frozenset({"procedures", "submit_run", "runs", "run", "run_control", "run_data", "run_queue",
                                     "run_file"})
# Interlocks (experiment/safety/interlocks.py): `interlocks` {} lists them; `interlock_ack` (attribute = the rule)
# acknowledges a latched trip.
INTERLOCK_OPS: frozenset[str] = frozenset({"interlocks", "interlock_ack"})
# Safety: `alarms` ({}): every attribute with alarm limits and its severity (experiment/safety/alarms.py).
OPS: frozenset[str] = (frozenset({"get", "put", "describe", "ping", "history", "alarms"}) | INVOCATION_OPS | RUN_OPS
                       | INTERLOCK_OPS)
MISSING: Any = object()  # marks "no value given" (None is a valid value)
# Live values: on the events socket a frontend sends this after each handshake, then
# receives [module, event JSON] frames (experiment/events.py, frontend/live.py).
SUBSCRIBE = b"subscribe"


@dataclass(frozen=True)
class Request:
    """One request from the frontend to the experiment process."""

    op: Op
    module: str | None = None
    attribute: str | None = None
    value: Any = MISSING
    deadline: float = 0.0
    id: str = ""
    client: str | None = None  # who asked for a write (address, token identity): for the audit log
    identity: str | None = None
    accept: tuple[Format, ...] = JSON_ONLY  # the formats the client takes, preferred first
    role: str | None = None  # the identity's role (frontend/auth.py), for the audit log
    connection: str | None = None  # the client's TCP connection ("address:port"): whom an invocation counts against

    @classmethod
    def new(cls, op: Op, module: str | None = None, attribute: str | None = None,
            value: Any = MISSING, *, timeout: float) -> Request:
        return cls(op, module, attribute, value, time.time() + timeout, uuid.uuid4().hex)

    @property
    def has_value(self) -> bool:
        return self.value is not MISSING

    def encode(self) -> bytes:
        msg: dict[str, Any] = {"v": VERSION, "id": self.id, "op": self.op, "deadline": self.deadline}
        if self.module is not None:
            msg["module"] = self.module
        if self.attribute is not None:
            msg["attribute"] = self.attribute
        if self.has_value:
            msg["value"] = self.value
        if self.client is not None:
            msg["client"] = self.client
        if self.identity is not None:
            msg["identity"] = self.identity
        if self.role is not None:
            msg["role"] = self.role
        if self.accept != JSON_ONLY:
            msg["accept"] = self.accept
        if self.connection is not None:
            msg["connection"] = self.connection
        try:
            return orjson.dumps(msg)
        except orjson.JSONEncodeError as exc:  # e.g. a value nested deeper than orjson's 254 levels
            raise MalformedRequest(f"the value cannot be forwarded: {exc}") from None

    @classmethod
    def decode(cls, frame: bytes) -> Request:
        """Parse a request frame; raise MalformedRequest if it is not one."""
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            raise MalformedRequest("request is not valid JSON") from None
        if not isinstance(msg, dict) or "v" not in msg:
            raise MalformedRequest(f"request is not a version {VERSION} envelope")
        if msg["v"] != VERSION:  # a frontend of another release: said plainly, never served wrongly
            raise MalformedRequest(version_mismatch(msg["v"], "the frontend", VERSION, "this experiment process"))
        op, ident, deadline = msg.get("op"), msg.get("id"), msg.get("deadline")
        module, attribute = msg.get("module"), msg.get("attribute")
        if op not in OPS or not isinstance(ident, str) or not isinstance(deadline, (int, float)):
            raise MalformedRequest("request needs 'op', 'id' and 'deadline'")
        client, identity, role = msg.get("client"), msg.get("identity"), msg.get("role")
        connection = msg.get("connection")
        if not all(x is None or isinstance(x, str) for x in (module, attribute, client, identity, role, connection)):
            raise MalformedRequest("'module', 'attribute', 'client', 'identity', 'role' and 'connection' must be strings")
        accept = msg.get("accept", JSON_ONLY)
        if not (isinstance(accept, (list, tuple)) and accept and all(f in FORMATS for f in accept)):
            raise MalformedRequest(f"'accept' must list formats among {sorted(FORMATS)}")
        return cls(op, module, attribute, msg.get("value", MISSING), float(deadline), ident, client, identity,
                   tuple(accept), role, connection)


def version_mismatch(theirs: Any, who: str, ours: int, we: str) -> str:
    """The one message for two processes that speak different protocol versions, naming both versions."""
    return (f"{who} speaks protocol version {theirs!r} and {we} version {ours}: run the same labbridge release "
            "on both (upgrade the older one)")


def request_id_of(frame: bytes) -> str:
    """Best-effort id of a frame that failed to decode, so its error reply can still be matched."""
    try:
        ident = orjson.loads(frame).get("id", "")
        return ident if isinstance(ident, str) else ""
    except (orjson.JSONDecodeError, AttributeError):
        return ""


def encode_reply(request_id: str, body: Any) -> list[bytes]:
    # NumPy arrays in a body (array attributes) are written as nested lists, by orjson itself.
    return [orjson.dumps({"id": request_id, "ok": True}), orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)]


def encode_npy_reply(request_id: str, parts: tuple[Any, ...]) -> list[Any]:
    """A reply holding a .npy file, in `parts` (bytes-like: its header, the array's memory)."""
    return [orjson.dumps({"id": request_id, "ok": True, "format": "npy"}), *parts]


def encode_error(request_id: str, error: BridgeError) -> list[bytes]:
    header = {"id": request_id, "ok": False, "error": type(error).__name__, "detail": error.detail}
    return [orjson.dumps(header), b""]


@dataclass(frozen=True)
class Reply:
    """A reply from the backend: its header, parsed once, and its body as received (a .npy file: in parts)."""

    header: dict[str, Any]
    body: Chunk
    more: tuple[Chunk, ...] = ()  # the rest of a body sent in several frames

    @classmethod
    def parse(cls, frames: list[Chunk]) -> Reply:
        if len(frames) < 2:
            raise BridgeError(f"backend sent {len(frames)} frames, expected at least 2")
        try:
            header = orjson.loads(frames[0])
        except orjson.JSONDecodeError:
            raise BridgeError("backend sent a reply header that is not JSON") from None
        if not isinstance(header, dict):
            raise BridgeError("backend sent a reply header that is not a JSON object")
        if len(frames) > 2 and header.get("format") != "npy":
            raise BridgeError(f"backend sent {len(frames)} frames for a JSON reply, expected 2")
        return cls(header, frames[1], tuple(frames[2:]))

    @property
    def format(self) -> Format:
        return "npy" if self.header.get("format") == "npy" else "json"

    @property
    def parts(self) -> tuple[Chunk, ...]:
        """The body, frame by frame."""
        return (self.body, *self.more)

    @property
    def id(self) -> str:
        return str(self.header.get("id", ""))

    def result(self) -> Chunk:
        """The body, or the error the backend reported, raised."""
        if not self.header.get("ok"):
            raise error_from_name(str(self.header.get("error")), str(self.header.get("detail")))
        return self.body


def decode_reply(frames: list[Chunk], request_id: str) -> Chunk:
    """Return the reply body, or raise the error the backend reported."""
    reply = Reply.parse(frames)
    if reply.id != request_id:
        raise BridgeError(f"backend answered request {reply.id!r}, expected {request_id!r}")
    return reply.result()
