"""BackendClient: the frontend's end of the ZeroMQ hop, a Lazy Pirate REQ pool.

A REQ socket is strict send/receive lockstep and not safe to share, so each
request in flight borrows its own socket from a pool; several requests can be
in flight at once.  A socket whose request did not end cleanly (timeout,
cancellation, any error) may still get a late reply, which would then be read
as the answer to the next request, so it is closed with linger 0 and never
reused: the Lazy Pirate pattern from the ZeroMQ guide.  Requests are never
resent, so a PUT cannot happen twice.

Sockets use ZMQ_IMMEDIATE: a message is only queued to a backend that is
actually connected, so while the backend is down nothing piles up to be run
later, and "not connected within connect_timeout" is a quick 503.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import zmq
import zmq.asyncio

from errors import UNKNOWN_OUTCOME, BackendTimeout, BackendUnavailable
from protocol import MISSING, Op, Request, decode_reply

log = logging.getLogger(__name__)


class BackendClient:
    """Sends protocol requests to the experiment process and returns reply bodies."""

    def __init__(self, endpoint: str, *, timeout: float = 5.0, connect_timeout: float = 1.0,
                 max_idle: int = 64, context: zmq.asyncio.Context | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._context = context or zmq.asyncio.Context.instance()
        self._idle: list[zmq.asyncio.Socket] = []

    async def request(self, op: Op, module: str | None = None, attribute: str | None = None,
                      value: Any = MISSING) -> bytes:
        """Send one request; return the JSON body of the reply or raise the reported error."""
        request = Request.new(op, module, attribute, value, timeout=self.timeout)
        sock = self._idle.pop() if self._idle else self._new_socket()
        clean = False
        try:
            connect_ms = int(1000 * min(self.connect_timeout, self._remaining(request)))
            if not await _ready(sock, connect_ms, zmq.POLLOUT):
                raise BackendUnavailable(f"the experiment process is not running (nothing answers at {self.endpoint})")
            await sock.send(request.encode())
            if not await _ready(sock, int(1000 * self._remaining(request)), zmq.POLLIN):
                raise BackendTimeout(
                    f"the experiment process did not answer {op} {module}.{attribute} within {self.timeout:g} s"
                    + (UNKNOWN_OUTCOME if op == "put" else "")
                )
            frames = await sock.recv_multipart()
            clean = True
            return decode_reply(frames, request.id)
        finally:
            # Only a socket that got its reply is back in lockstep and safe to reuse.
            if clean and len(self._idle) < self.max_idle:
                self._idle.append(sock)
            else:
                sock.close(linger=0)

    async def ping(self) -> float:
        """Round trip to the backend in seconds."""
        start = time.perf_counter()
        await self.request("ping")
        return time.perf_counter() - start

    def close(self) -> None:
        for sock in self._idle:
            sock.close(linger=0)
        self._idle.clear()

    def _new_socket(self) -> zmq.asyncio.Socket:
        sock = self._context.socket(zmq.REQ)
        sock.linger = 0
        sock.immediate = True
        sock.reconnect_ivl = 100  # ms; no backoff, so a restarted backend is found within ~0.1 s
        sock.reconnect_ivl_max = 0
        sock.connect(self.endpoint)
        return sock

    @staticmethod
    def _remaining(request: Request) -> float:
        return max(0.0, request.deadline - time.time())


async def _ready(sock: zmq.asyncio.Socket, timeout_ms: int, event: int) -> bool:
    """Wait up to timeout_ms for the socket to be ready to send (POLLOUT) or receive (POLLIN)."""
    return bool(await sock.poll(timeout_ms, event))  # type: ignore[call-arg]  # pyzmq's hints lack `flags`
