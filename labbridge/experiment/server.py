"""ExperimentServer: the experiment process's end of the ZeroMQ hop.

One ROUTER socket, bound to the configured endpoint, receives requests from any
number of frontends (each a DEALER, see backend_client.py); every request that
has arrived is taken in one go when the socket becomes readable
(core/loop_socket.py).  Each request is answered in its own task, so a slow
module never holds up the socket;
Experiment decides what may run in parallel.  A second socket beside it
(events.py) carries live values (written and polled, each stamped with its
Unix time; the values of one poll of a module together, core/live_events.py)
to the frontends' dashboards, and each goes to the history recorder too.  Both sockets refuse messages over their size limits (message_limits.py),
and a reply over `max_reply_bytes` becomes an error rather than a message the
frontend would refuse.  Every request
gets exactly one reply whatever happens inside, and on shutdown the requests
still running get a short grace period, then a clear BackendUnavailable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from labbridge.core.config import ConfigError, CurveSettings
from labbridge.core.curve import AuthorizedKeys, secure_server
from labbridge.core.errors import UNKNOWN_OUTCOME, BackendUnavailable, BridgeError, Forbidden, InstrumentError
from labbridge.core.loop_socket import LoopSocket
from labbridge.core.message_limits import limit_incoming
from labbridge.experiment.events import EventPublisher
from labbridge.experiment.experiment import Experiment
from labbridge.core.arrays import NpyAnswer
from labbridge.core.protocol import Request, encode_error, encode_npy_reply, encode_reply, request_id_of

log = logging.getLogger(__name__)


class ExperimentServer:
    """Serves an Experiment on a ZeroMQ ROUTER socket."""

    def __init__(self, experiment: Experiment, endpoint: str, context: zmq.asyncio.Context | None = None,
                 curve: CurveSettings | None = None, config_file: Path = Path("config.yml"),
                 events_endpoint: str | None = None, max_request_bytes: int = -1, max_reply_bytes: int = -1) -> None:
        self.experiment = experiment
        self.endpoint = endpoint
        self.events_endpoint = events_endpoint
        self._events: EventPublisher | None = None
        self._max_request_bytes, self._max_reply_bytes = max_request_bytes, max_reply_bytes  # -1: no limit
        self._context = context or zmq.asyncio.Context.instance()
        self._socket: zmq.Socket[Any] | None = None
        self._reader: LoopSocket | None = None  # reads and answers on `_socket` while serving
        self._tasks: set[asyncio.Task[None]] = set()
        self._curve, self._config_file = curve, config_file
        self._authenticator: AsyncioAuthenticator | None = None
        self._keys: AuthorizedKeys | None = None  # with CurveZMQ: whose requests may run

    def bind(self) -> None:
        """Bind now, so a port in use is reported before anything else starts."""
        sock: zmq.Socket[Any] = zmq.Socket(self._context, zmq.ROUTER)  # a plain socket: LoopSocket reads it
        limit_incoming(sock, self._max_request_bytes)
        # Live values go out on their own socket, with the same CurveZMQ keys as the requests.
        events = EventPublisher(self._context) if self.events_endpoint is not None else None
        sockets: list[zmq.Socket[Any]] = [sock] if events is None else [sock, events.socket]
        try:
            for s in sockets:
                s.linger = 0
            secured = secure_server(sockets, self._curve, self._config_file, self._context)
            if secured is not None:
                self._authenticator, self._keys = secured
            sock.bind(self.endpoint)
            if events is not None:
                events.bind(self.events_endpoint or "")
        except (zmq.ZMQError, ConfigError):
            for s in sockets:
                s.close()
            raise
        self._socket, self._events = sock, events
        if events is not None:
            self.experiment.publish = self._publish
            self.experiment.publish_values = self._publish_values

    def _publish(self, event: dict[str, object]) -> None:
        # Every event leaves through here: stamp it once, so live plots and the history share one clock.
        event.setdefault("time", time.time())
        if self.experiment.history is not None:
            self.experiment.history.record(event)
        if self._events is not None:
            self._events.publish(event)

    def _publish_values(self, module: str, readings: dict[str, dict[str, Any]]) -> None:
        # A poll's values were read together: one time, one message, one call to the history.
        now = time.time()
        if self.experiment.history is not None:
            self.experiment.history.record_values(module, now, readings)
        if self._events is not None:
            self._events.publish_values(module, now, readings)

    async def serve(self) -> None:
        """Answer requests until cancelled; from then on, every request that arrives gets a 503 at once."""
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        if self._events is not None:
            self._events.start()
        # With CurveZMQ, frames come as zmq.Frame, which tell their sender's key.
        reader = self._reader = LoopSocket(self._socket, self._start_answer, copy=self._keys is None)
        reader.start()
        try:
            await asyncio.get_running_loop().create_future()  # answers are started by the reader
        finally:
            reader.on_message = self._refuse  # (close() may have closed it already)

    def _start_answer(self, frames: list[Any]) -> None:
        admitted = self._admitted(frames)
        if admitted is not None:
            task = asyncio.create_task(self._answer(admitted))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _admitted(self, frames: list[Any]) -> list[bytes] | None:
        """The frames as bytes, or None for a request refused here: its sender's key is no longer authorized."""
        if self._keys is None:
            return frames
        sender = frames[-1].get("User-Id")
        as_bytes = [frame.bytes for frame in frames]
        if self._keys.admits(sender):
            return as_bytes
        self._send(as_bytes[:-1], encode_error(request_id_of(as_bytes[-1]), Forbidden(
            "this frontend's CurveZMQ key is no longer in the experiment's authorized_clients")))
        return None

    async def close(self, grace: float = 0.5) -> None:
        """Let running requests finish for `grace` seconds, cancel the rest, close the socket.

        Call after cancelling `serve`: requests arriving meanwhile get a 503 at once.
        """
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=grace)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        elif self._socket is not None:
            self._socket.close(linger=0)
        self._socket = None
        if self._events is not None:
            self._events.close()
            self._events = None
            self.experiment.publish = lambda event: None
            self.experiment.publish_values = lambda module, readings: None
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None

    def _refuse(self, frames: list[Any]) -> None:
        if len(frames) >= 2:
            as_bytes = [frame.bytes if isinstance(frame, zmq.Frame) else frame for frame in frames]
            self._send(as_bytes[:-1], encode_error(request_id_of(as_bytes[-1]), BackendUnavailable(
                "the experiment process is shutting down; the request was not run")))

    async def _answer(self, frames: list[bytes]) -> None:
        # DEALER clients send [identity, request]; REQ clients add an empty
        # delimiter frame.  Whatever came before the request goes back unchanged.
        envelope, payload = frames[:-1], frames[-1]
        if not envelope:
            log.warning("dropped a message with no routing envelope")
            return
        request: Request | None = None
        request_id = ""
        copy = True
        try:
            request = Request.decode(payload)
            request_id = request.id
            body = await self.experiment.handle(request)
            if isinstance(body, NpyAnswer):  # an array's memory goes out as it lies, not copied into a message
                reply, size = encode_npy_reply(request_id, body.parts), body.nbytes
            else:
                reply = encode_reply(request_id, body)
                size = len(reply[1])
            if 0 <= self._max_reply_bytes < size:
                raise InstrumentError(f"the answer to {request.op} {request.module}.{request.attribute} is "
                                      f"{size} bytes, over experiment_socket.max_reply_bytes "
                                      f"({self._max_reply_bytes})")
            copy = not isinstance(body, NpyAnswer)
        except BridgeError as exc:
            reply = encode_error(request_id or request_id_of(payload), exc)
        except asyncio.CancelledError:
            stopping = "the experiment process is shutting down"
            if request is not None and request.op == "put":  # a write cut short may or may not have reached the instrument
                stopping += UNKNOWN_OUTCOME
            self._send(envelope, encode_error(request_id, BackendUnavailable(stopping)))
            raise
        except Exception as exc:  # a bug, not a user mistake: log it, answer anyway, keep serving
            log.exception("unexpected error while answering a request")
            reply = encode_error(request_id, BridgeError(f"internal error in the experiment process: {type(exc).__name__}"))
        self._send(envelope, reply, copy=copy)

    def _send(self, envelope: list[bytes], reply: list[Any], *, copy: bool = True) -> None:
        if self._reader is None:
            return
        try:
            # ROUTER never blocks on send: a reply to a client that is gone is dropped.
            self._reader.send([*envelope, *reply], copy=copy)
        except zmq.ZMQError as exc:
            log.warning("could not send a reply: %s", exc)
