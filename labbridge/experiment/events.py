"""EventPublisher: the experiment process's live values, sent to each frontend that asks for them.

ZeroMQ's PUB and XPUB sockets store every topic a peer subscribes to, in a tree
that grows with each character and does not shrink: 20,000 subscriptions of
1 KiB grew the process by 950 MiB, and ZMQ_XPUB_MANUAL stores them all the
same (to unsubscribe them when the peer leaves).  The only subscriber we have,
a frontend, wants everything anyway.  So live values go out on a ROUTER
socket: a frontend (live.py, a DEALER) says SUBSCRIBE after each handshake, and
from then on gets every event, after the latest event of each attribute and
each action published before it came (a frontend restarted, or slower to
subscribe than the first write, would otherwise show nothing until the next
change; kept per name, so bounded by the modules' declarations).  What a peer sends costs no memory (anything but
SUBSCRIBE is dropped, and a message over SUBSCRIBE_BYTES drops its connection);
what a subscriber does not read is bounded by QUEUE messages (ZMQ_SNDHWM; past
it, that subscriber misses values, the others do not) and by MAX_SUBSCRIBERS.
A subscriber whose connection is gone is forgotten at the next event.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any

import zmq

from labbridge.core.live_events import Frames, Readings, encode_event, encode_values
from labbridge.core.loop_socket import LoopSocket
from labbridge.core.message_limits import SUBSCRIPTION_BYTES, limit_incoming
from labbridge.core.protocol import SUBSCRIBE

log = logging.getLogger(__name__)

QUEUE = 200  # messages waiting for one subscriber (several of each attribute); more are dropped for it
MAX_SUBSCRIBERS = 100  # frontends at once; one is usual


class EventPublisher:
    """Publishes live values to every frontend that subscribed."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        # A plain socket that the event loop watches (core/loop_socket.py): pyzmq's asyncio sockets cost a Future
        # and a check of the socket's state per send, more than the rest of a poll of ten values.
        self.socket: zmq.Socket[Any] = zmq.Socket(context, zmq.ROUTER)
        self.socket.linger = 0
        self.socket.sndhwm = QUEUE
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a gone subscriber is an error, so it can be forgotten
        limit_incoming(self.socket, SUBSCRIPTION_BYTES)
        self._subscribers: dict[bytes, None] = {}  # routing ids, in the order they subscribed
        # The latest message per key, in the order they came, for a frontend that subscribes later (one restarted).
        self._latest: dict[bytes, Frames] = {}
        self._reader: LoopSocket | None = None
        self._full = False
        self._outbox: Frames = []  # what was published in this turn of the event loop, sent at its end

    def bind(self, endpoint: str) -> None:
        self.socket.bind(endpoint)

    def start(self) -> None:
        """Start taking subscriptions (needs the running event loop)."""
        if self._reader is None:
            self._reader = LoopSocket(self.socket, self._take_subscription)
            self._reader.start()

    def publish(self, event: dict[str, Any]) -> None:
        """Send `event` to every subscriber, never waiting: one that cannot keep up misses it."""
        # A safety notice is news, not state: a new subscriber is not sent old ones.
        self._publish(encode_event(event), keep="notice" not in event)

    def publish_values(self, module: str, time: float, readings: Readings) -> None:
        """Send the readings of one poll of `module` to every subscriber, never waiting."""
        self._publish(encode_values(module, time, readings))

    def _publish(self, frames: Frames, keep: bool = True) -> None:
        if keep:
            self._latest.pop(frames[0], None)  # to the end: a catch-up sends them in the order they were last sent
            self._latest[frames[0]] = frames
        if not self._subscribers:
            return
        self._outbox += frames
        if len(self._outbox) == len(frames):  # the first of this turn of the loop: sent at its end, with the others
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        frames, self._outbox = self._outbox, []
        for subscriber in list(self._subscribers):
            self._send(subscriber, frames)

    def _send(self, subscriber: bytes, frames: Frames) -> None:
        if self._reader is None:  # closed
            return
        try:
            self._reader.send([subscriber, *frames])
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                self._subscribers.pop(subscriber, None)  # its connection is gone
            else:  # zmq.Again: its queue is full, it misses this one
                log.debug("live value not sent to a subscriber: %s", exc)

    def _take_subscription(self, frames: list[Any]) -> None:
        if len(frames) != 2 or frames[1] != SUBSCRIBE or frames[0] in self._subscribers:
            return
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            if not self._full:  # said once, not once per refusal: a flood must not fill the log
                log.warning("refusing live-value subscribers: %d already subscribed", MAX_SUBSCRIBERS)
            self._full = True
            return
        self._full = False
        self._subscribers[frames[0]] = None
        if self._latest:  # it catches up with what was published before it came, in one message
            self._send(frames[0], [frame for latest in self._latest.values() for frame in latest])

    def close(self) -> None:
        self._subscribers.clear()  # a flush still scheduled sends nothing on the closed socket
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        else:
            self.socket.close(linger=0)
