"""BackendClient: the frontend's end of the ZeroMQ hop, one DEALER socket for every request.

Requests are multiplexed over a single DEALER socket and matched to their
replies by request id: many requests are in flight at once, and every reply
that has arrived is taken in one go when the socket becomes readable
(core/loop_socket.py: no Future or task per message).  A request that times out or is cancelled simply
leaves the table of pending requests; its late reply, if any, finds no one
waiting and is dropped, so it can never be taken for another request's answer.
(A pool of REQ sockets had to close and replace a socket for that, the Lazy
Pirate pattern; bench/zmq_clients.py measured the DEALER at 1.8x its
requests/s at concurrency 32, and 1.2x at concurrency 1.)
Requests are never resent, so a PUT cannot happen twice.

Replies over `max_reply_bytes` drop the connection (message_limits.py), and a
request too large for the backend to accept is refused here with a 413.

The socket uses ZMQ_IMMEDIATE: a message is only queued to a backend that is
actually connected, so while the backend is down nothing piles up to be run
later, and "not connected within connect_timeout" is a quick 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from labbridge.core.config import Config
from labbridge.core.curve import client_keys
from labbridge.core.loop_socket import LoopSocket
from labbridge.core.errors import (
    UNKNOWN_OUTCOME,
    BackendNotReached,
    BackendTimeout,
    BackendUnavailable,
    BackendWentAway,
    BridgeError,
    PayloadTooLarge,
)
from labbridge.core.message_limits import limit_incoming, max_reply_bytes, max_request_bytes
from labbridge.core.protocol import JSON_ONLY, MISSING, Chunk, Format, Op, Reply, Request
from labbridge.core.transport import connect_endpoints

log = logging.getLogger(__name__)
REFUSED_KEY_RETRY = 1.0  # seconds before a frontend whose CurveZMQ key was refused tries again


@dataclass(frozen=True)
class Outgoing:
    """A request built and encoded, not sent yet (so a caller can tell "refused here" from "sent")."""

    request: Request
    frame: bytes
    timeout: float  # seconds the caller waits for the reply


class BackendClient:
    """Sends protocol requests to the experiment process and returns reply bodies."""

    def __init__(self, endpoint: str, *, timeout: float = 5.0, connect_timeout: float = 1.0,
                 curve: tuple[bytes, bytes, bytes] | None = None, context: zmq.asyncio.Context | None = None,
                 max_request_bytes: int = -1, max_reply_bytes: int = -1) -> None:
        self.endpoint = endpoint
        self.max_request_bytes, self.max_reply_bytes = max_request_bytes, max_reply_bytes  # -1: no limit
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._context = context or zmq.asyncio.Context.instance()
        self._socket: LoopSocket | None = None
        self._watcher: asyncio.Task[None] | None = None  # tells when the experiment process is gone
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._ids = itertools.count()
        self._prefix = os.urandom(4).hex()
        self._curve = curve  # (server public, client public, client secret), or None
        self._connected = asyncio.Event()

    @classmethod
    def from_config(cls, config: Config, config_file: Path) -> BackendClient:
        """A client for the backend in config.yml, with CurveZMQ keys when configured."""
        settings = config.frontend
        return cls(connect_endpoints(config.experiment_socket, config_file).requests, timeout=settings.request_timeout,
                   connect_timeout=settings.connect_timeout,
                   curve=client_keys(config.experiment_socket.curve, config_file),
                   max_request_bytes=max_request_bytes(config), max_reply_bytes=max_reply_bytes(config))

    @property
    def curve(self) -> tuple[bytes, bytes, bytes] | None:
        """(server public, client public, client secret) when the hop uses CurveZMQ."""
        return self._curve

    async def request(self, op: Op, module: str | None = None, attribute: str | None = None,
                      value: Any = MISSING, *, timeout: float | None = None) -> Chunk:
        """Send one request; return the JSON body of the reply or raise the reported error.

        `timeout` replaces the configured request timeout (a long poll waits longer)."""
        return await self.send(self.prepare(op, module, attribute, value, timeout=timeout))

    async def read(self, module: str, attribute: str, accept: tuple[Format, ...]) -> Reply:
        """A `get` whose answer may come in another format than JSON (an array as .npy): the whole reply,
        whose `result()` raises the error it reports."""
        return await self.exchange(self.prepare("get", module, attribute, accept=accept))

    def prepare(self, op: Op, module: str | None = None, attribute: str | None = None, value: Any = MISSING, *,
                client: str | None = None, identity: str | None = None, role: str | None = None,
                timeout: float | None = None, accept: tuple[Format, ...] = JSON_ONLY,
                connection: str | None = None) -> Outgoing:
        """Build and encode a request without sending it: MalformedRequest if it cannot be encoded,
        PayloadTooLarge if it is over what the experiment process takes."""
        timeout = self.timeout if timeout is None else timeout
        request = Request(op, module, attribute, value, time.time() + timeout, f"{self._prefix}{next(self._ids)}",
                          client, identity, accept, role, connection)
        frame = request.encode()
        if 0 <= self.max_request_bytes < len(frame):
            raise PayloadTooLarge(f"the value is {len(frame)} bytes once encoded for the experiment process, "
                                  f"over its limit of {self.max_request_bytes}")
        return Outgoing(request, frame, timeout)

    async def send(self, outgoing: Outgoing) -> Chunk:
        """Send a prepared request; return the JSON body of the reply or raise the reported error."""
        return (await self.exchange(outgoing)).result()

    async def exchange(self, outgoing: Outgoing) -> Reply:
        """Send a prepared request; return its reply (BackendTimeout, BackendUnavailable if none comes)."""
        request = outgoing.request
        sock = self._connected_socket()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Reply] = loop.create_future()
        timer: asyncio.TimerHandle | None = None
        try:
            await self._send(sock, outgoing)
            # Waiting for the reply from here: sent, with no await since, so no reply can have come yet.
            self._pending[request.id] = waiter
            timer = loop.call_at(_loop_time(request.deadline), _give_up, waiter, outgoing)
            return await waiter  # matched to this request by its id in _deliver
        finally:
            self._pending.pop(request.id, None)
            if timer is not None:
                timer.cancel()

    async def ping_modules(self) -> dict[str, Any]:
        """Round trip to the backend, each module's last instrument contact, and whether history is recorded."""
        start = time.perf_counter()
        reply = orjson.loads(await self.request("ping"))
        return {"rtt_ms": round(1000 * (time.perf_counter() - start), 3), "pid": reply.get("pid"),
                "modules": reply["modules"], "history": reply.get("history")}

    def abandon(self, error: BridgeError) -> None:
        """Fail every request waiting for its reply with `error` (the heartbeat found the process gone)."""
        for waiter in list(self._pending.values()):
            if not waiter.done():
                waiter.set_exception(error)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def _send(self, sock: LoopSocket, outgoing: Outgoing) -> None:
        frame, request = outgoing.frame, outgoing.request
        give_up = min(time.time() + self.connect_timeout, request.deadline)
        while True:
            try:
                sock.send((frame,))  # sent at once, or zmq.Again
                return
            except zmq.Again:
                self._connected.clear()  # not connected (yet): wait for the monitor to see a handshake
            remaining = give_up - time.time()
            if remaining <= 0:
                raise BackendNotReached(f"the experiment process is not running (nothing answers at {self.endpoint})"
                                         + ("; or it refused this frontend's CurveZMQ key" if self._curve else ""))
            try:
                async with asyncio.timeout(remaining):
                    await self._connected.wait()
            except TimeoutError:
                pass

    def _connected_socket(self) -> LoopSocket:
        # Made on first use, inside the running event loop that will read it.
        if self._socket is None:
            sock: zmq.Socket[Any] = zmq.Socket(self._context, zmq.DEALER)  # a plain socket: LoopSocket reads it
            sock.linger = 0
            sock.immediate = True
            sock.sndhwm = 100_000  # with IMMEDIATE, a refused send then means "no backend", not "queue full"
            sock.reconnect_ivl = 100  # ms; no backoff, so a restarted backend is found within ~0.1 s
            sock.reconnect_ivl_max = 0
            limit_incoming(sock, self.max_reply_bytes)
            if self._curve is not None:
                sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self._curve
            # Watched from before connecting: the first handshake may come (or be refused) at once.
            events = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            monitor = cast(zmq.asyncio.Socket, sock.get_monitor_socket(events))  # asyncio, as its context is
            sock.connect(self.endpoint)
            # Frames are received without copying: a large body (an array) goes on
            # to the HTTP response as a view of the ZeroMQ message.
            self._socket = LoopSocket(sock, self._deliver, copy=False)
            self._socket.start()
            self._watcher = asyncio.get_running_loop().create_task(self._watch_connection(monitor))
        return self._socket

    async def _watch_connection(self, monitor: zmq.asyncio.Socket) -> None:
        # Senders wait on `_connected` rather than polling the socket themselves.  A
        # backend that dies takes every request it was holding with it: tell their
        # clients now (503) instead of letting each wait for its timeout.
        refused_before = False
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())["event"]
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self._connected.set()
                    refused_before = False
                    continue
                if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    # libzmq never retries a refused key by itself; the key may be authorized later.
                    if not refused_before:  # said once until it is let in, not every second
                        log.warning("the experiment process refused this frontend's CurveZMQ key; trying again "
                                    "every %g s", REFUSED_KEY_RETRY)
                    refused_before = True
                    asyncio.get_running_loop().call_later(REFUSED_KEY_RETRY, self._reconnect)
                    continue
                self._connected.clear()
                lost = [waiter for waiter in self._pending.values() if not waiter.done()]
                for waiter in lost:
                    waiter.set_exception(BackendWentAway(
                        "the experiment process went away before answering; if this was a write, "
                        "its outcome is unknown: read the value back"))
                if lost:
                    log.warning("backend disconnected with %d request(s) in flight", len(lost))
        finally:
            monitor.close(linger=0)

    def _reconnect(self) -> None:
        if self._socket is not None:
            reconnect(self._socket.sock, self.endpoint)

    def _deliver(self, frames: list[zmq.Frame]) -> None:
        try:
            reply = Reply.parse([frame.buffer for frame in frames])
        except BridgeError as exc:
            log.warning("dropped a reply from the backend: %s", exc)
            return
        waiter = self._pending.get(reply.id)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)
        # else: the request already timed out or was cancelled; its late reply is dropped


def reconnect(sock: zmq.Socket[Any], endpoint: str) -> None:
    """Connect `sock` to `endpoint` afresh (after libzmq gave up on it: a refused CurveZMQ key)."""
    with contextlib.suppress(zmq.ZMQError):  # the refused connection may already be gone
        sock.disconnect(endpoint)
    sock.connect(endpoint)


def _give_up(waiter: asyncio.Future[Reply], outgoing: Outgoing) -> None:
    """The request's deadline passed with no reply: its caller gets BackendTimeout."""
    if not waiter.done():
        request = outgoing.request
        waiter.set_exception(BackendTimeout(
            f"the experiment process did not answer {request.op} {request.module}.{request.attribute} "
            f"within {outgoing.timeout:g} s" + (UNKNOWN_OUTCOME if request.op == "put" else "")))


def _loop_time(deadline: float) -> float:
    """A Unix-time deadline on the event loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.time())
