"""Which async HTTP client should BaseModule use?  Measures them against the simulator.

    python bench/http_clients.py [--requests 3000]

Starts the simulator in a subprocess, then, for each installed client (httpx,
aiohttp), on the stock asyncio loop and on uvloop: sequential keep-alive GETs of
a small value and of the 100,000-sample trace.  Prints the median latency of
each in microseconds.  The result decided the client in base_module.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import Process, free_port, http_answers, wait_until  # noqa: E402

Fetch = Callable[[str], Awaitable[bytes]]


async def _time(fetch: Fetch, path: str, count: int) -> float:
    for _ in range(20):
        await fetch(path)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await fetch(path)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


async def _httpx(base: str, count: int) -> tuple[float, float]:
    import httpx

    async with httpx.AsyncClient(base_url=base) as client:
        async def fetch(path: str) -> bytes:
            return (await client.get(path)).content
        return await _time(fetch, "/position", count), await _time(fetch, "/trace", count // 10)


async def _aiohttp(base: str, count: int) -> tuple[float, float]:
    import aiohttp

    async with aiohttp.ClientSession(base_url=base) as session:
        async def fetch(path: str) -> bytes:
            async with session.get(path) as response:
                return await response.read()
        return await _time(fetch, "/position", count), await _time(fetch, "/trace", count // 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    port = free_port()
    sim = Process([sys.executable, "-m", "labbridge.experiment.simulators.actuator", "--port", str(port)], Path("/tmp") / f"sim-{port}.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_answers(base + "/position"), 15, "simulator")
        rows = []
        for loop_name in ("asyncio", "uvloop"):
            for client_name, run in (("httpx", _httpx), ("aiohttp", _aiohttp)):
                try:
                    factory = None
                    if loop_name == "uvloop":
                        import uvloop
                        factory = uvloop.new_event_loop
                    with asyncio.Runner(loop_factory=factory) as runner:
                        small, trace = runner.run(run(base, args.requests))
                    rows.append(f"| {client_name} | {loop_name} | {small:.0f} | {trace:.0f} |")
                except ImportError as exc:
                    rows.append(f"| {client_name} | {loop_name} | not installed ({exc.name}) | |")
        sys.stdout.write("| client | loop | GET /position p50 us | GET /trace p50 us |\n|---|---|---|---|\n")
        sys.stdout.write("\n".join(rows) + "\n")
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
