"""LiveFeed: the frontend's fan-out of live values to every connected browser.

The experiment process publishes each value it reads or writes (and each
failed poll), and each change of an invocation of an action, on its events
socket (experiment/events.py).  LiveFeed subscribes there, again after each
reconnection, keeps the latest event per attribute and per action, and hands
every event to every subscriber's queue; a browser that connects (or
reconnects) first gets the latest value of every attribute and the latest
invocation of every action, so it catches up at once.  A subscriber that
cannot keep up loses the oldest events, never blocks the others.  Browsers
that subscribed to the attributes they show are served by `hub` instead
(ws_fanout.py: conflated, paced, bounded).

Messages are read with core/live_events.py's `decode` (one message may hold
the values of a whole poll).  While nobody is subscribed, nothing needs each
event: a payload is kept undecoded, the latest per key (a later payload of
the same key holds newer values of all it held), and decoded only when the
latest values are asked for (`latest`: a browser subscribing, a /metrics
scrape), or when more than MAX_UNDECODED keys pile up.  So values nobody
watches cost the frontend little more than receiving them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from labbridge.core.live_events import Frames, decode, keyed
from labbridge.core.message_limits import limit_incoming
from labbridge.core.protocol import SUBSCRIBE
from labbridge.frontend.backend_client import REFUSED_KEY_RETRY, reconnect
from labbridge.frontend.ws_fanout import SubscriptionHub

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000
MAX_UNDECODED = 10_000  # keys of messages kept undecoded while nobody watches; past it they are decoded


class LiveFeed:
    """Subscribes to the backend's live values and fans them out."""

    def __init__(self, endpoint: str, curve: tuple[bytes, bytes, bytes] | None = None,
                 context: zmq.asyncio.Context | None = None, max_event_bytes: int = -1) -> None:
        self.endpoint = endpoint
        self.max_event_bytes = max_event_bytes  # larger messages drop the connection; -1: no limit
        self._curve = curve
        self._context = context or zmq.asyncio.Context.instance()
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}
        self._undecoded: dict[bytes, bytes] = {}  # while nobody watches: the latest payload per key, in order
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.hub = SubscriptionHub()  # the /ws clients that subscribed to some attributes (ws_session.py)
        self._reader: asyncio.Task[None] | None = None
        self._sources: list[tuple[str, tuple[bytes, bytes, bytes] | None, int]] = []  # other experiment processes
        self._other_readers: list[asyncio.Task[None]] = []

    def add_source(self, endpoint: str, curve: tuple[bytes, bytes, bytes] | None, max_event_bytes: int) -> None:
        """Also take the live values of another experiment process of the lab (before `start`)."""
        self._sources.append((endpoint, curve, max_event_bytes))

    @property
    def latest(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The latest event per attribute and per action."""
        self._decode_kept()
        return self._latest

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A queue that first holds the latest value of every attribute, then every new event."""
        self.start()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        for event in list(self.latest.values())[-QUEUE_SIZE:]:
            queue.put_nowait(event)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def leave(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop filling `queue` (its client subscribed to some attributes: `hub` serves it now)."""
        self._subscribers.discard(queue)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        for reader in self._other_readers:
            reader.cancel()
        self._other_readers = []

    def start(self) -> None:
        """Subscribe to the backend (idempotent; needs the running event loop)."""
        if self._reader is None:
            loop = asyncio.get_running_loop()
            self._reader = loop.create_task(self._read(self.endpoint, self._curve, self.max_event_bytes))
            self._other_readers = [loop.create_task(self._read(*source)) for source in self._sources]

    async def _read(self, endpoint: str, curve: tuple[bytes, bytes, bytes] | None, max_event_bytes: int) -> None:
        sock = self._context.socket(zmq.DEALER)
        sock.linger = 0
        limit_incoming(sock, max_event_bytes)
        if curve is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = curve
        # Watched from before connecting: the first handshake may come (or be refused) at once.
        events = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        watching = asyncio.create_task(self._subscribe_on_handshake(sock, sock.get_monitor_socket(events), endpoint))
        sock.connect(endpoint)
        try:
            while True:
                self._receive(await sock.recv_multipart())
        finally:
            watching.cancel()
            sock.close(linger=0)

    async def _subscribe_on_handshake(self, sock: zmq.asyncio.Socket, monitor: zmq.asyncio.Socket,
                                      endpoint: str) -> None:
        # The backend knows a subscriber by its connection: subscribe again on each one.
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())["event"]
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    try:
                        await sock.send(SUBSCRIBE, zmq.NOBLOCK)
                    except zmq.ZMQError as exc:  # not expected: a DEALER queues what it cannot send yet
                        log.warning("could not subscribe to live values: %s", exc)
                else:  # libzmq never retries a refused CurveZMQ key by itself; it may be authorized later
                    await asyncio.sleep(REFUSED_KEY_RETRY)
                    reconnect(sock, endpoint)
        finally:
            monitor.close(linger=0)

    def _receive(self, frames: Frames) -> None:
        if self._subscribers or len(self.hub):  # someone watches: every value, or the attributes on screen
            for event in decode(frames):
                self._deliver(event)
            return
        # Nobody watches: kept as it came, replacing the previous payload of its key, moved to the end.
        for key, payload in keyed(frames):
            self._undecoded.pop(key, None)
            self._undecoded[key] = payload
        if len(self._undecoded) > MAX_UNDECODED:
            self._decode_kept()

    def _decode_kept(self) -> None:
        """Decode the payloads kept while nobody watched into `latest`, in the order they came."""
        kept, self._undecoded = self._undecoded, {}
        for event in decode([frame for pair in kept.items() for frame in pair]):
            self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        # A value is kept per attribute; an invocation's change per action, so a new page sees the latest run.
        if "notice" not in event:  # a safety notice is news, not state: a new page is not shown old ones
            self._latest[(event["module"], event.get("attribute") or f"{event.get('action')}()")] = event
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # drop the oldest for this slow subscriber only
            queue.put_nowait(event)
        self.hub.deliver(event)
