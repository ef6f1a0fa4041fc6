"""REQ-socket pool or one DEALER, read through pyzmq's asyncio sockets or LoopSocket?  Measures the frontend clients.

    python bench/zmq_clients.py [--seconds 3]

Starts the experiment process with the in-memory Setpoint module, then drives
GETs through each client from one asyncio (uvloop) process at concurrency 1 and
32, and prints requests/s, median latency and the CPU time per request of the
client's process and of the experiment process.  `ReqPoolClient` below is the
Lazy Pirate pool of REQ sockets the bridge started with; backend_client.py's
DEALER replaced it because of this measurement.  `AsyncioDealerClient` is that
DEALER as it was read before core/loop_socket.py: through pyzmq's asyncio
socket (a Future per send and receive, a state check after each).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402
import zmq  # noqa: E402
import zmq.asyncio  # noqa: E402

from labbridge.frontend.backend_client import BackendClient  # noqa: E402
from labbridge.core.errors import BackendTimeout, BackendUnavailable  # noqa: E402
from bench.load import cpu_seconds  # noqa: E402
from labbridge.core.protocol import Reply, Request, decode_reply  # noqa: E402
from tests.processes import backend_endpoint, start_backend, write_config  # noqa: E402


class ReqPoolClient:
    """A socket per request in flight, closed and replaced when its reply did not arrive."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        self.endpoint, self.timeout = endpoint, timeout
        self._context = zmq.asyncio.Context.instance()
        self._idle: list[zmq.asyncio.Socket] = []

    async def request(self, op: Any, module: str, attribute: str) -> Any:
        request = Request.new(op, module, attribute, timeout=self.timeout)
        sock = self._idle.pop() if self._idle else self._new_socket()
        clean = False
        try:
            if not await sock.poll(1000, zmq.POLLOUT):  # type: ignore[call-arg]
                raise BackendUnavailable("not running")
            await sock.send(request.encode())
            if not await sock.poll(int(1000 * self.timeout), zmq.POLLIN):  # type: ignore[call-arg]
                raise BackendTimeout("no answer")
            frames = await sock.recv_multipart()
            clean = True
            return decode_reply(list(frames), request.id)
        finally:
            if clean:
                self._idle.append(sock)
            else:
                sock.close(linger=0)

    def close(self) -> None:
        for sock in self._idle:
            sock.close(linger=0)

    def _new_socket(self) -> zmq.asyncio.Socket:
        sock = self._context.socket(zmq.REQ)
        sock.linger, sock.immediate = 0, True
        sock.connect(self.endpoint)
        return sock


class AsyncioDealerClient:
    """One DEALER read through pyzmq's asyncio socket, replies matched by id (backend_client.py before LoopSocket)."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._sock = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        self._sock.linger = 0
        self._sock.connect(endpoint)
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def request(self, op: Any, module: str, attribute: str) -> Any:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        request = Request.new(op, module, attribute, timeout=self.timeout)
        waiter = asyncio.get_running_loop().create_future()
        self._pending[request.id] = waiter
        try:
            await self._sock.send(request.encode(), zmq.NOBLOCK)
            async with asyncio.timeout(self.timeout):
                return await waiter
        finally:
            self._pending.pop(request.id, None)

    async def _read(self) -> None:
        while True:
            frames = await self._sock.recv_multipart()
            reply = Reply.parse(frames)
            waiter = self._pending.get(reply.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(reply.result())

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self._sock.close(linger=0)


async def drive(client: Any, concurrency: int, seconds: float) -> tuple[float, float]:
    latencies: list[float] = []
    until = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < until:
            start = time.perf_counter()
            await client.request("get", "setpoint", "value")
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - start), statistics.median(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    tmp = Path(f"/tmp/zmq-clients-{time.time_ns()}")
    tmp.mkdir()
    config = write_config(tmp / "config.yml", {"setpoint": {"class": "setpoint.Setpoint"}})
    endpoint = backend_endpoint(config)
    backend = start_backend(config, tmp / "backend.log")
    rows = []
    try:
        for name, make in (("REQ pool (Lazy Pirate)", lambda: ReqPoolClient(endpoint)),
                           ("one DEALER, pyzmq asyncio socket", lambda: AsyncioDealerClient(endpoint)),
                           ("one DEALER, LoopSocket (backend_client.py)", lambda: BackendClient(endpoint))):
            for concurrency in (1, 32):
                async def run() -> tuple[float, float, float, float]:
                    client = make()
                    await drive(client, concurrency, 0.3)  # warm up
                    before = cpu_seconds(os.getpid()), cpu_seconds(backend.proc.pid)
                    rps, p50 = await drive(client, concurrency, args.seconds)
                    requests = rps * args.seconds
                    own, served = (cpu_seconds(os.getpid()) - before[0], cpu_seconds(backend.proc.pid) - before[1])
                    client.close()
                    return rps, p50, 1e6 * own / requests, 1e6 * served / requests

                rps, p50, client_us, backend_us = uvloop.run(run())
                rows.append(f"| {name} | {concurrency} | {rps:,.0f} | {p50:.3f} | {client_us:,.0f} | {backend_us:,.0f} |")
    finally:
        backend.stop()
    sys.stdout.write("| client | concurrency | req/s | p50 ms | client CPU us/req | backend CPU us/req |\n"
                     "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
