"""LoopSocket: a ZeroMQ socket served by the asyncio event loop through one reader callback.

The request/reply hop between the processes is on the path of every request,
and pyzmq's asyncio sockets cost more than the hop itself: a Future per send
and receive, and a check of the socket's state (`ZMQ_EVENTS`, a `poll()` system
call inside libzmq) after each.  At one request at a time that was eleven
`poll()`s per request in each process; read this way, a frontend's request
costs half the CPU and half the time (bench/zmq_clients.py measures both).

So the request sockets of both processes are plain sockets that the loop
watches: when libzmq's notification descriptor becomes readable, every message
already there is taken in one go and handed to `on_message`, synchronously;
sends are immediate (`NOBLOCK`).  libzmq's descriptor is edge-triggered, and a
send may take in the very notification a waiting message would have given, so
after sends the socket's state is checked once per loop iteration, not once
per message.  On Windows' Proactor loop, which cannot watch a descriptor, the
selector thread that pyzmq itself uses there does it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import zmq

log = logging.getLogger(__name__)
# Flags as plain ints: pyzmq's enum arithmetic on every frame costs more than the send.
_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)


class LoopSocket:
    """Reads every message of `sock` into `on_message` from the event loop; sends without waiting."""

    def __init__(self, sock: zmq.Socket[Any], on_message: Callable[[list[Any]], None], *, copy: bool = True) -> None:
        self.sock = sock
        self.on_message = on_message
        self._copy = copy  # False: frames come as zmq.Frame (zero-copy for large ones; they tell their sender's key)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._selector: Any = None
        self._check_pending = False

    def start(self) -> None:
        """Begin reading (in the running loop); messages that came before are read at once."""
        self._loop = asyncio.get_running_loop()
        self._selector = _selector_of(self._loop)
        self._selector.add_reader(self.sock.FD, self.read_all)
        self._loop.call_soon(self.read_all)

    def stop(self) -> None:
        """Stop reading; the socket stays open (close it, or start again)."""
        if self._selector is not None:
            self._selector.remove_reader(self.sock.FD)
            self._selector = None

    def close(self) -> None:
        self.stop()
        self.sock.close(linger=0)

    def send(self, frames: Sequence[Any], *, copy: bool = True) -> None:
        """Send one message now; zmq.Again if it cannot be queued (no peer connected, a full queue)."""
        last = len(frames) - 1
        for index, frame in enumerate(frames):  # a multipart message is queued whole or not at all
            self.sock.send(frame, _MORE if index < last else _LAST, copy=copy)
        if not self._check_pending and self._loop is not None:
            self._check_pending = True
            self._loop.call_soon(self._check_after_send)

    def read_all(self) -> None:
        """Hand every message waiting on the socket to `on_message`."""
        while self._selector is not None:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=self._copy)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:  # closed under us: nothing more to read
                log.debug("stopped reading: %s", exc)
                return
            try:
                self.on_message(frames)
            except Exception:  # one bad message must not stop the reading of the others
                log.exception("failed to handle a message")
            del frames  # hold no message while reading the next: it may be megabytes

    def _check_after_send(self) -> None:
        self._check_pending = False
        if self._selector is not None and int(self.sock.get(zmq.EVENTS)) & zmq.POLLIN:
            self.read_all()


def _selector_of(loop: asyncio.AbstractEventLoop) -> Any:
    """What watches descriptors for `loop`: the loop itself, or on Windows' Proactor loop pyzmq's selector thread."""
    if sys.platform == "win32":  # pragma: no cover - tests run on Linux; tests/test_loop_socket.py guards the name
        from zmq.asyncio import _get_selector_windows

        return _get_selector_windows(loop)
    return loop
