"""Connections that never finish: a cap, deadlines and a header limit for `python main.py`.

uvicorn alone keeps a connection that sends nothing, or half a request, for as
long as the client likes, and accepts connections until the process runs out of
file descriptors; then every request fails.  `GuardedHttp`, the HTTP protocol
that serve.py runs uvicorn with, adds what nginx and Apache have:

- a deadline, `frontend.client_timeout`, to send a whole request (headers and
  body), counted from the connection's start or its previous answer; an idle or
  half-sent connection is closed when it passes, and so is one whose client
  stops reading its answer for that long;
- a cap on open connections, `frontend.max_connections` but never more than half
  the descriptors the process may open (the other half is for the files,
  sockets and logs the connections use).  At the cap, the connection that has
  waited longest for its request is closed to make room, as nginx reuses idle
  keep-alive connections; only when every connection is busy (a request being
  answered, a dashboard's WebSocket) does the new one get a 503
  `too_many_connections`, and is closed;
- at most MAX_HEAD_BYTES of request line and headers (431 past it): uvicorn's
  parser would otherwise keep collecting a header that never ends;
- an answer is written only as fast as the kernel takes it: the transport's
  buffer pauses the app at its first byte left over and resumes it once empty,
  so a large answer (large_answers.py) is counted until all of it has left, and
  none of it waits in the buffer uncounted;
- WebSocket messages of at most WS_MAX_MESSAGE_BYTES, uncompressed (the
  dashboard sends nothing; uvicorn's default of 16 MiB, inflated from a small
  compressed message and held unread, pinned 32 MiB per connection).

`python main.py` passes them to uvicorn.run; under `uvicorn main:app`, main.py
sets them on the uvicorn that imports it (serve.py, configure_importing_uvicorn).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from http import HTTPStatus
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from labbridge.core.config import FrontendSettings
from labbridge.core.errors import BridgeError, HeadersTooLarge, TooManyConnections
from labbridge.frontend.stream_caps import connection_cap

log = logging.getLogger("uvicorn.error")

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; nginx allows 32 KiB, Node.js 16 KiB
WS_MAX_MESSAGE_BYTES = 64 * 1024
LINGER = 1.0  # seconds a refused connection is kept open so its client reads the answer, not a reset


class ConnectionGuard:
    """The limits, and the connections waiting for a request, oldest first."""

    def __init__(self, max_connections: int, client_timeout: float) -> None:
        self.max_connections = max_connections
        self.client_timeout = client_timeout
        self.waiting: dict[GuardedHttp, None] = {}  # insertion order: the one waiting longest first

    @classmethod
    def from_settings(cls, settings: FrontendSettings, open_files: int) -> ConnectionGuard:
        cap = connection_cap(settings, open_files)
        if cap < settings.max_connections:
            log.warning("serving at most %d connections at once (half of the %d files this process may open; "
                        "raise LimitNOFILE or `ulimit -n` for more)", cap, open_files)
        return cls(cap, settings.client_timeout)

    def make_room(self, open_connections: int) -> bool:
        """True if a new connection may stay; at the cap, the one waiting longest is closed for it."""
        if open_connections <= self.max_connections:
            return True
        if not self.waiting:
            return False
        next(iter(self.waiting)).give_up()
        return True


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's HTTP protocol with the deadlines, the cap and the header limit of ConnectionGuard."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, guard: ConnectionGuard) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = guard
        self._deadline: asyncio.TimerHandle | None = None  # to send the whole request
        self._stalled: asyncio.TimerHandle | None = None  # to take the answer once writing is paused
        self._head_bytes: int | None = 0  # bytes of an unfinished request head; None once it is complete
        self._head_tail = b""  # its last 3 bytes: the blank line that ends it may come split in two
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=0)  # paused while anything is left over, resumed once empty
        if not self.guard.make_room(len(self.connections)):
            log.warning("refused a connection: all %d connections are busy", self.guard.max_connections)
            self._refuse(TooManyConnections(f"the frontend is serving its maximum of {self.guard.max_connections} "
                                            "connections; try again shortly"))
            return
        self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        if self._stalled is not None:
            self._stalled.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the answer is out; what the client still sends is read and dropped
        if self._head_bytes is not None:  # the head is unfinished: count it before the parser takes it all in
            window = self._head_tail + data
            end = window.find(b"\r\n\r\n")  # where the head ends; a body may follow in the same bytes
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._head_tail))
            self._head_tail = window[-3:]
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(HeadersTooLarge(f"the request line and headers are over {MAX_HEAD_BYTES} bytes"))
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_clock()  # a whole request: its answer may take as long as the backend needs
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_request()

    def handle_websocket_upgrade(self) -> None:
        self._stop_clock()  # a WebSocket is busy for as long as it is open; its pings find dead peers
        super().handle_websocket_upgrade()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.guard.client_timeout, self.give_up)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def give_up(self) -> None:
        """Close the connection: its client took too long, or its place is needed."""
        self._stop_clock()
        if self.transport.get_write_buffer_size():  # a close would wait for a client that does not read: for ever
            self.transport.abort()
        elif not self.transport.is_closing():
            self.transport.close()

    def _await_request(self) -> None:
        self._stop_clock()
        self._head_bytes, self._head_tail = 0, b""
        self.guard.waiting[self] = None
        self._deadline = self.loop.call_later(self.guard.client_timeout, self.give_up)

    def _stop_clock(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, error: BridgeError) -> None:
        """Answer with `error` and close, after letting the client read the answer."""
        self._stop_clock()
        self._refused = True
        self.transport.write(error_bytes(error))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)


def uvicorn_options(guard: ConnectionGuard) -> dict[str, Any]:
    """The uvicorn.run options that put these limits in place."""
    return {"http": functools.partial(GuardedHttp, guard=guard), "ws_max_size": WS_MAX_MESSAGE_BYTES,
            "ws_per_message_deflate": False}


def error_bytes(error: BridgeError) -> bytes:
    """A whole HTTP/1.1 error response, written before (or without) any request reached the app."""
    body = orjson.dumps({"error": error.code, "message": error.detail})
    headers = {"content-type": "application/json", "content-length": str(len(body)), "connection": "close",
               **error.headers()}
    head = f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
    return (head + "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n").encode() + body
