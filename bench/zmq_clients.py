"""REQ-socket pool or one DEALER?  Measures both frontend clients against a real backend.

    python bench/zmq_clients.py [--seconds 3]

Starts the experiment process with the in-memory Setpoint module, then drives
GETs through each client from one asyncio (uvloop) process at concurrency 1 and
32, and prints requests/s and median latency.  `ReqPoolClient` below is the
Lazy Pirate pool of REQ sockets the bridge started with; backend_client.py's
DEALER replaced it because of this measurement.
"""

from __future__ import annotations

import argparse
import asyncio
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
from labbridge.core.protocol import Request, decode_reply  # noqa: E402
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
                           ("one DEALER (backend_client.py)", lambda: BackendClient(endpoint))):
            for concurrency in (1, 32):
                async def run() -> tuple[float, float]:
                    client = make()
                    await drive(client, concurrency, 0.3)  # warm up
                    result = await drive(client, concurrency, args.seconds)
                    client.close()
                    return result

                rps, p50 = uvloop.run(run())
                rows.append(f"| {name} | {concurrency} | {rps:,.0f} | {p50:.3f} |")
    finally:
        backend.stop()
    sys.stdout.write("| client | concurrency | req/s | p50 ms |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
