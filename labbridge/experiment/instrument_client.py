"""InstrumentClient: the HTTP hop from a module to its instrument's own web API.

One keep-alive aiohttp session per module (never a client per call), with the
module's connect timeout and one deadline per request.  Every way the
instrument can fail becomes one of the bridge's errors naming the module:
nothing listening is InstrumentUnreachable, no answer in time is
InstrumentTimeout, an HTTP error status is InstrumentError with the
instrument's own message (taken from the reply's `error_key`: a string, or
FastAPI's list of errors).  A write whose answer never came says its outcome is
unknown.  What a successful reply must look like is the dialect's business
(drivers/http_dialect.py).

Two aiohttp behaviours are switched off, each guarded by
tests/test_instrument_http.py.  Its `sock_read` timer is not used: aiohttp 3.14
re-arms it on a pooled connection after a large body is drained (on uvloop
even in 3.14.5; aio-libs/aiohttp#12953), failing the next request at once; the
per-request deadline is an asyncio timeout instead.  And aiohttp resends a
request once when a kept-alive connection drops, PUT included: an instrument
may have applied that write already, so nothing is ever resent.  An answer's
body is read up to MAX_REPLY_BYTES and refused past it: a broken or hostile
instrument cannot fill the experiment process's memory.

aiohttp rather than httpx: bench/http_clients.py measured it about 3x faster
per small request (118 us against 366 us median, both on uvloop).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from labbridge.core.errors import UNKNOWN_OUTCOME, InstrumentError, InstrumentTimeout, InstrumentUnreachable


# An instrument's error message longer than this is cut: it goes into a reply to a client.
MAX_MESSAGE_CHARS = 500
# The largest answer taken from an instrument (a camera frame over HTTP is a few tens of MB).
MAX_REPLY_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class InstrumentReply:
    """What the instrument answered: the parsed JSON (None if the body is empty or not JSON) and its bytes."""

    data: Any
    content: bytes
    is_json: bool = True

    @property
    def is_npy(self) -> bool:
        """True when the instrument sent a NumPy .npy file (an array, in binary)."""
        return self.content[:6] == b"\x93NUMPY"

    def value_json(self) -> bytes | None:
        """The JSON text of `value` as sent, when the reply is exactly `{"value": ...}`.

        In such an object the first colon ends the key and the last brace closes
        it (a key that reads "value" cannot contain a literal colon), so the
        bytes between them are the value, ready to pass on without re-encoding.
        """
        if not isinstance(self.data, dict) or len(self.data) != 1 or "value" not in self.data:
            return None
        return self.content[self.content.index(b":") + 1:self.content.rindex(b"}")]


class InstrumentClient:
    """Talks JSON over HTTP to one instrument at `base_url`."""

    def __init__(self, module: str, base_url: str, *, timeout: float, connect_timeout: float,
                 error_key: str = "error", max_reply_bytes: int = MAX_REPLY_BYTES) -> None:
        self.module, self.base_url = module, base_url
        self.max_reply_bytes = max_reply_bytes
        self.error_key = error_key  # where an error reply holds the instrument's message
        self.timeout = timeout
        self._timeouts = aiohttp.ClientTimeout(total=None, connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        session = aiohttp.ClientSession(base_url=self.base_url, timeout=self._timeouts)
        # A private switch, the one aiohttp's own test utilities use; the test above fails if it stops working.
        session._retry_connection = False
        self._session = session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None, accept: str | None = None) -> InstrumentReply:
        if self._session is None:
            raise InstrumentError(f"module {self.module} is not started")
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if accept is not None:
            headers["Accept"] = accept
        where = f"instrument of {self.module}"
        unknown = UNKNOWN_OUTCOME if method != "GET" else ""
        try:
            async with asyncio.timeout(self.timeout):
                async with self._session.request(method, path, data=data, headers=headers) as response:
                    status, content = response.status, await self._body(response, f"{where}'s answer to {method} {path}")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise InstrumentUnreachable(f"{where} at {self.base_url} is unreachable ({_why_not_connected(exc)})") from None
        except TimeoutError:
            raise InstrumentTimeout(f"{where} did not answer {method} {path} within {self.timeout:g} s{unknown}") from None
        except aiohttp.ClientError as exc:
            raise InstrumentError(f"{where} failed on {method} {path}: {exc or type(exc).__name__}{unknown}") from None
        try:
            parsed, is_json = orjson.loads(content), True
        except orjson.JSONDecodeError:  # at its first byte, for a .npy file
            parsed, is_json = None, False
        if status >= 400:
            reason = _message(parsed.get(self.error_key)) if isinstance(parsed, dict) else None
            raise InstrumentError(f"{where} refused {method} {path} with HTTP {status}" + (f": {reason}" if reason else ""))
        return InstrumentReply(parsed, content, is_json)

    async def _body(self, response: aiohttp.ClientResponse, what: str) -> bytes:
        """The answer's body, refused as soon as it is over `max_reply_bytes` (an instrument is not trusted)."""
        limit = self.max_reply_bytes
        if response.content_length is not None and response.content_length > limit:
            raise InstrumentError(f"{what} is {response.content_length} bytes, over the limit of {limit} bytes")
        chunks, size = [], 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise InstrumentError(f"{what} is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _why_not_connected(exc: aiohttp.ClientError) -> str:
    """"Connection refused", "Name or service not known"...: without aiohttp's "ssl:default" (plain HTTP here)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        errno = exc.os_error.errno
        return os.strerror(errno) if isinstance(errno, int) and errno > 0 else str(exc.strerror or exc)
    return str(exc)


def _message(found: Any) -> str | None:
    """The instrument's error message: a string, or the `msg` of each error in FastAPI's list of them."""
    if isinstance(found, list):
        found = "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in found)
    if found is None or found == "":
        return None
    text = found if isinstance(found, str) else orjson.dumps(found).decode()
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."
