"""AnswerBudget: the bytes of large answers the frontend holds until their clients have taken them, bounded.

An array read (a camera frame: 8 MiB as .npy, about 20 MB as JSON) comes from
ZeroMQ as one block and stays in the frontend until its client has taken it:
50 connections that asked for a frame and never read took the frontend from
69 MiB to 460 MiB, and 200 to 1.7 GB (issue 18); 50 that asked for 2,000 recorded labels
each (JSON of a history) took it from 61 to 285 MiB.  So answers of LARGE bytes
and more are counted, from the moment their body arrives from ZeroMQ until it
has left for the socket or the connection is gone (PartsResponse), against
two bounds: `frontend.max_answer_bytes` in all (64 MiB by default, for a small
edge computer) and `frontend.max_answer_bytes_per_client` (16 MiB).  A client
is the token's identity when reads need a token, else the address it comes
from.  A slow reader is closed after `client_timeout` (server_limits.py), which
ends its hold.

An answer's size is known only once it has arrived, so the frontend
remembers the size of each attribute's last answer (per format asked for) and
a read reserves that size, when large, before it is sent to the experiment
process.  A read that would go over a bound waits up to WAIT seconds for room,
then gets `503 too_many_large_answers` with Retry-After, without the
instrument being asked.  While the size of an attribute's answer is not known
yet (its first read since the frontend started), one read of it at a time is
sent and the others wait for its answer (at most the request timeout), so
that a burst of first reads cannot bring in more than one answer uncounted.  A large answer that does not fit
all the same (one larger than the last) is dropped at once and refused the
same way.  One answer is always let through while its client (or the whole
frontend) holds none, so an answer larger than a bound can still be read,
one at a time.

After large answers, the C library's free memory is given back to the system
(memory_trim.py), at most every TRIM_DELAY seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from labbridge.core.errors import TooManyLargeAnswers
from labbridge.core.protocol import Chunk, Reply
from labbridge.frontend.memory_trim import trim

LARGE = 64 * 1024  # bytes from which an answer is counted: below, max_connections of them stay small
WAIT = 1.0  # seconds a large read waits for room before its 503
TRIM_DELAY = 0.5  # seconds from a large answer's end to giving free memory back (at most this often)
KNOWN_SIZES = 4096  # answer sizes remembered (only of reads answered: real attributes); the oldest goes past it
MIB = 1024 * 1024


class AnswerBudget(Collector):
    """Bytes of large answers held, in all and per client; also a Prometheus collector of them for /metrics."""

    def __init__(self, total: int, per_client: int, patience: float = 5.0) -> None:
        self.total = total
        self.per_client = per_client
        self.patience = patience  # seconds a read waits for another to learn its size (the request timeout)
        self.used = 0
        self.by_client: dict[str, int] = {}  # only clients that hold something
        self.refused = 0
        self._sizes: dict[Hashable, int] = {}  # what a read asks for -> its last answer's size (0: small)
        self._probes: dict[Hashable, asyncio.Future[None]] = {}  # reads out to learn an answer's size
        self._room: set[asyncio.Future[None]] = set()  # reads waiting for an answer to end
        self._trim: asyncio.TimerHandle | None = None

    def expected(self, key: Hashable) -> int | None:
        """The bytes to reserve for a read of `key`: its last answer's size if that was large, 0 if small, None if
        not known (then call `learn`)."""
        return self._sizes.get(key)

    async def learn(self, key: Hashable) -> int:
        """The bytes to reserve for a read of `key` whose answer's size is not known: 0 when this read is to be the
        one that finds out (`settle` or `abandon` must follow), else what the read that found out learned.  A read
        that waited `patience` seconds (reads that fail, each in turn) goes ahead without knowing (0)."""
        try:
            async with asyncio.timeout(self.patience):
                while True:
                    size = self._sizes.get(key)
                    if size is not None:
                        return size
                    probe = self._probes.get(key)
                    if probe is None:
                        self._probes[key] = asyncio.get_running_loop().create_future()
                        return 0
                    await asyncio.shield(probe)  # shared by every read waiting: one of them cancelled must not end it
        except TimeoutError:
            return 0  # its answer is still counted when it comes, and refused if it does not fit

    async def reserve(self, client: str, size: int) -> None:
        """Count `size` bytes for `client`, waiting up to WAIT seconds for room; TooManyLargeAnswers if none came."""
        if not self._fits(client, size):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while not self._fits(client, size):
                room = loop.create_future()
                self._room.add(room)
                try:
                    async with asyncio.timeout_at(deadline):
                        await room
                except TimeoutError:
                    raise self._refuse(client) from None
                finally:
                    self._room.discard(room)
        self._add(client, size)

    def settle(self, client: str, key: Hashable, reserved: int, size: int) -> int:
        """Count the answer that arrived, `size` bytes, instead of the `reserved`: the bytes now held for it (0 for
        an answer below LARGE, which is not counted).  TooManyLargeAnswers if it does not fit."""
        if size < LARGE:
            if self._sizes.get(key) != 0:  # nearly every read finds its 0 there already (the hot path)
                self._remember(key, 0)
            self.release(client, reserved)
            return 0
        self._remember(key, size)
        if size > reserved:
            if not self._fits(client, size - reserved, reserved):
                self.release(client, reserved)
                self._schedule_trim()  # the answer is dropped on the way out
                raise self._refuse(client)
            self._add(client, size - reserved)
        elif size < reserved:
            self.release(client, reserved - size)
        return size

    def abandon(self, client: str, key: Hashable, reserved: int) -> None:
        """A read that got no answer (an error, a timeout, cancelled): give back what it reserved."""
        if reserved == 0 and key not in self._sizes:
            probe = self._probes.pop(key, None)
            if probe is not None:
                probe.set_result(None)  # the next read waiting finds out instead
        self.release(client, reserved)

    def release(self, client: str, size: int) -> None:
        """`size` bytes of `client`'s answers have gone: room for the reads waiting."""
        if not size:
            return
        self.used -= size
        left = self.by_client[client] - size
        if left:
            self.by_client[client] = left
        else:
            del self.by_client[client]
        for room in self._room:
            if not room.done():
                room.set_result(None)
        self._room.clear()
        self._schedule_trim()

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("bridge_large_answer_bytes",
                                "Bytes of large answers held until their clients take them", self.used)
        yield CounterMetricFamily("bridge_large_answers_refused",
                                  "Large reads refused with 503 too_many_large_answers", self.refused)

    def _fits(self, client: str, size: int, already: int = 0) -> bool:
        """Whether `size` more bytes keep within both bounds (`already` of the client's own are this answer's)."""
        others = self.used - already
        mine = self.by_client.get(client, 0) - already
        return (others == 0 or others + size <= self.total) and (mine == 0 or mine + size <= self.per_client)

    def _add(self, client: str, size: int) -> None:
        if size:
            self.used += size
            self.by_client[client] = self.by_client.get(client, 0) + size

    def _remember(self, key: Hashable, size: int) -> None:
        if key not in self._sizes and len(self._sizes) >= KNOWN_SIZES:
            del self._sizes[next(iter(self._sizes))]
        self._sizes[key] = size
        probe = self._probes.pop(key, None)
        if probe is not None:
            probe.set_result(None)  # the reads waiting to know the size go on

    def _refuse(self, client: str) -> TooManyLargeAnswers:
        self.refused += 1
        mine = self.by_client.get(client, 0)
        return TooManyLargeAnswers(
            f"the frontend holds {self.used / MIB:.1f} MiB of large answers not yet taken by their clients "
            f"({mine / MIB:.1f} MiB of them yours); its bounds are {self.total / MIB:g} MiB in all and "
            f"{self.per_client / MIB:g} MiB per client (frontend.max_answer_bytes, max_answer_bytes_per_client); "
            "try again shortly")

    def _schedule_trim(self) -> None:
        if self._trim is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a response dropped unsent after its loop ended (Held.__del__): nothing to serve
                return
            self._trim = loop.call_later(TRIM_DELAY, self._give_back)

    def _give_back(self) -> None:
        self._trim = None
        trim()


async def counted(budget: AnswerBudget, client: str, key: Hashable, fetch: Callable[[], Awaitable[Reply]],
                  ) -> tuple[Reply, Held | None]:
    """The reply `fetch` brings, its bytes counted for `client` when large (None: a small one, not counted): room
    reserved from `key`'s last answer size first, TooManyLargeAnswers when there is none, or when the reply is larger
    than that and does not fit.  Raises the error the reply reports.  Every read whose answer may be large goes
    through here: an attribute's value, and a history's points (up to 100,000 of them, of text too)."""
    reserved = budget.expected(key)  # the size of this read's last answer if large, 0 if small, None: not known
    if reserved is None:
        reserved = await budget.learn(key)  # the first reads of an attribute: one at a time
    if reserved:
        await budget.reserve(client, reserved)
    try:
        reply = await fetch()
        reply.result()
    except BaseException:
        budget.abandon(client, key, reserved)
        raise
    held = budget.settle(client, key, reserved, sum(map(len, reply.parts)))
    return reply, (Held(budget, client, held) if held else None)


class Held:
    """Bytes an answer holds in an AnswerBudget, given back once (by the response, or when it is dropped unsent)."""

    __slots__ = ("budget", "client", "size")

    def __init__(self, budget: AnswerBudget, client: str, size: int) -> None:
        self.budget, self.client, self.size = budget, client, size

    def release(self) -> None:
        size, self.size = self.size, 0
        self.budget.release(self.client, size)

    def __del__(self) -> None:
        if self.size:  # a response made and never sent (its request cancelled): the bytes must not stay counted
            self.release()


class PartsResponse(Response):
    """A body written part by part as it came from the experiment process, never joined into one buffer; with
    `held`, its bytes stay counted until the last part has left for the socket or the connection is gone."""

    def __init__(self, parts: tuple[Chunk, ...], media_type: str, held: Held | None = None) -> None:
        self.parts = parts
        self.held = held
        super().__init__(None, headers={"content-length": str(sum(len(part) for part in parts))},
                         media_type=media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            for part in self.parts:
                await send({"type": "http.response.body", "body": part, "more_body": True})
            # uvicorn takes this empty end of the body only once what it could not write yet (up to the whole
            # last part, for a slow reader) has drained to the socket, or the connection is gone.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.parts = ()  # the ZeroMQ messages can go now, whoever still holds this response
            if self.held is not None:
                self.held.release()
