"""HttpDialect: how an instrument's own HTTP API differs from the bridge's; HttpDriver speaks it.

The bridge's home dialect is one instance of the declaration (`HOME`):

    GET  /<name>        -> {"value": ...}
    PUT  /<name>        {"value": ...} -> {"value": <value after the write>}
    GET  /attributes    -> {"<name>": ..., ...}
    errors              -> {"error": "<message>"}

An array attribute is asked for with `Accept: application/x-npy, application/json;q=0.5`:
an instrument that answers with a NumPy .npy file (in any dialect) has it passed on
as it came, checked but neither parsed nor copied (core/arrays.py); JSON works as ever.

A module whose instrument speaks otherwise declares the differences on its
class, for example a LabThings-FastAPI Thing:

    http = HttpDialect(path="/stage/{name}", body="bare", reply="bare",
                       put_reply="read_back", error_key="detail", summary=None)

and keeps everything else: one keep-alive client per module, its timeouts, and
the mapping of failures to the bridge's errors (instrument_client.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from labbridge.core.arrays import ArrayMismatch, read_npy
from labbridge.core.errors import BridgeError, InstrumentError
from labbridge.experiment.instrument_client import InstrumentClient, InstrumentReply

# What an array read asks for: its .npy file, else JSON.
ACCEPT_ARRAY = "application/x-npy, application/json;q=0.5"

Shape = Literal["wrapped", "bare"]
PutReply = Literal["value", "nothing", "read_back"]


@dataclass(frozen=True)
class HttpDialect:
    """How an instrument's HTTP API spells reads, writes, summaries and errors.

    path       URL path of one attribute; `{name}` is the attribute's name
    body       what a PUT sends: "wrapped" `{"value": v}`, or "bare" `v`
    reply      what a GET answers: "wrapped" `{"value": v}`, or "bare" `v`
    put_reply  what a PUT answers: "value" (the value now set, shaped like `reply`),
               "nothing" (the bridge reports the value it sent), or "read_back"
               (the bridge reads the attribute again and reports that)
    error_key  the key of an error reply's message: "error", "message", "detail"
               (a string, or FastAPI's list of errors)
    summary    path answering every value as one JSON object, or None: then
               `read_many` reads one attribute at a time
    """

    path: str = "/{name}"
    body: Shape = "wrapped"
    reply: Shape = "wrapped"
    put_reply: PutReply = "value"
    error_key: str = "error"
    summary: str | None = "/attributes"

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or "{name}" not in self.path:
            raise ValueError(f"HttpDialect path must start with / and contain {{name}}, got {self.path!r}")
        for field, allowed in (("body", Shape), ("reply", Shape), ("put_reply", PutReply)):
            if getattr(self, field) not in get_args(allowed):
                raise ValueError(f"HttpDialect {field} must be one of {get_args(allowed)}, got {getattr(self, field)!r}")

    def url(self, name: str) -> str:
        return self.path.replace("{name}", name)


HOME = HttpDialect()


class HttpDriver:
    """Reads and writes one module's attributes over its instrument's HTTP API, in its dialect."""

    def __init__(self, module: str, dialect: HttpDialect, client: InstrumentClient) -> None:
        self.module, self.dialect, self.client = module, dialect, client

    async def read(self, name: str, binary: bool = False) -> tuple[Any, bytes | None]:
        """The value of `name` and, when the reply allows it, its JSON text as sent; `binary`: an array, which the
        instrument may send as a .npy file (then the value is an array viewing the bytes that came)."""
        url = self.dialect.url(name)
        reply = await self.client.request("GET", url, accept=ACCEPT_ARRAY if binary else None)
        if binary and reply.is_npy:
            try:
                return read_npy(reply.content), None
            except ArrayMismatch as exc:
                raise InstrumentError(f"instrument of {self.module} answered GET {url} with {exc}") from None
        return self._value(reply, self.dialect.reply, f"GET {url}")

    async def write(self, name: str, value: Any) -> Any:
        """Write `value`; return the value the instrument reports (or was sent, for put_reply "nothing")."""
        url = self.dialect.url(name)
        reply = await self.client.request("PUT", url, {"value": value} if self.dialect.body == "wrapped" else value)
        if self.dialect.put_reply == "value":
            return self._value(reply, self.dialect.reply, f"PUT {url}")[0]
        if self.dialect.put_reply == "nothing":
            return value
        try:
            return (await self.read(name))[0]
        except BridgeError as exc:  # same status, but say that the write itself was accepted
            raise type(exc)(f"the instrument of {self.module} accepted PUT {url}, but reading it back failed: "
                            f"{exc.detail}") from None

    async def command(self, name: str, arguments: dict[str, Any]) -> Any:
        """POST `arguments` to `name`'s path; the instrument's JSON answer (None when it sends none)."""
        reply = await self.client.request("POST", self.dialect.url(name), arguments)
        return reply.data if reply.is_json else None

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        if self.dialect.summary is None:
            return {name: (await self.read(name))[0] for name in names}
        reply = await self.client.request("GET", self.dialect.summary)
        if not isinstance(reply.data, dict):
            raise InstrumentError(f"instrument of {self.module} answered GET {self.dialect.summary} "
                                  "with something that is not a JSON object")
        return reply.data

    def _value(self, reply: InstrumentReply, shape: Shape, what: str) -> tuple[Any, bytes | None]:
        if not reply.is_json:
            raise InstrumentError(f"instrument of {self.module} answered {what} with something that is not JSON")
        if shape == "bare":
            return reply.data, reply.content.strip()
        if not isinstance(reply.data, dict) or "value" not in reply.data:
            raise InstrumentError(f"instrument of {self.module} answered {what} without a \"value\"")
        return reply.data["value"], reply.value_json()
