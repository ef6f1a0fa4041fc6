"""What live dashboards cost the frontend: 100 / 1,000 / 10,000 polled values/s, 0 to 50 dashboards on /ws.

    python bench/dashboard_fanout.py [--rates 100,1000,10000] [--dashboards 0,1,10,50] [--seconds 3]

For each rate, starts the real experiment and frontend processes
(tests/processes.py) with in-memory modules (bench/fanout_gauges.py, ten readings
each) polled at 10 Hz: rate / 100 modules.  Then, for each number of
dashboards, opens that many WebSocket clients that do what the dashboard does
(static/app.js): subscribe to the attributes on screen, here SCREEN of them
(the readings of the first two modules; ten at 100 values/s), at max_rate 10.
Among 50, one reads slowly (one message every SLOW_READ s, its socket's receive
buffer small, so that the frontend's send to it waits).  Measures over
`seconds`:

- the frontend's CPU, % of one core (/proc/<pid>/stat utime + stime, before and after), against its CPU with
  the same modules and nothing polled (idle); the goal of issue 22 for values nobody watches is idle + 1%;
- messages/s that each dashboard gets, and of one attribute at most (goal: at most about 10, that is <= 11);
- the delivery lag of each value the dashboards get (arrival minus the time the experiment process stamped on
  it; one machine, one clock): median and p99, of the others when one of 50 reads slowly (goal: p99 < 100 ms).

A last row, for comparison, has 10 clients that do not subscribe (the Python client's `watch()`, and every
dashboard before subscriptions): each gets every value.  Prints one table with PASS or MISS for each goal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from bench.fanout_gauges import READINGS  # noqa: E402
from bench.point_latency import percentile  # noqa: E402
from bench.runs import stat_cpu_seconds, verdict  # noqa: E402
from tests.processes import running_stack, wait_until, write_config  # noqa: E402

POLL = 0.1  # seconds: 10 Hz, as issue 22 measures
VALUES_PER_MODULE = len(READINGS) / POLL  # 100 values/s
SCREEN = 20  # attributes a dashboard shows on one screen
SLOW_READ = 0.5  # seconds between two reads of the slow dashboard
MAX_RATE = 10
WARM_UP = 1.0  # seconds after connecting, before measuring


@dataclass
class Dashboard:
    """What one client got: (arrival, event time, module, attribute) of each value."""

    slow: bool = False
    values: list[tuple[float, float, str, str]] = field(default_factory=list)


@dataclass
class Row:
    rate: int
    dashboards: int
    subscribed: bool
    cpu: float  # % of one core
    per_client: float  # messages/s, median over the fast clients
    per_attribute: float  # messages/s of one attribute, the most of any
    lags: list[float]  # seconds, of the fast clients' values


@contextmanager
def lab(folder: Path, modules: int, polled: bool) -> Iterator[tuple[str, int]]:
    """A stack with `modules` Gauges, polled at 10 Hz or not at all: (frontend URL, frontend pid)."""
    folder.mkdir()
    poll = {name: POLL for name in READINGS} if polled else {}
    config = write_config(folder / "config.yml", {f"gauges{i}": {"class": "bench.fanout_gauges.Gauges", "poll": poll}
                                                  for i in range(modules)})
    with running_stack(config, folder) as (_, frontend, url):
        wait_until(lambda: httpx.get(url + "/modules", timeout=5).status_code == 200, 30, "the modules")
        yield url, frontend.proc.pid


def screen(modules: int) -> list[str]:
    """What a dashboard shows: the readings of the first modules, SCREEN of them at most."""
    return [f"gauges{m}.{name}" for m in range(modules) for name in READINGS][:SCREEN]


def slow_socket(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def open_dashboard(url: str, names: list[str] | None, slow: bool) -> ClientConnection:
    """A /ws client subscribed to `names` (None: to nothing, it gets every value), its acknowledgement read."""
    ws_url = url.replace("http://", "ws://") + "/ws"
    options: dict[str, Any] = {"sock": slow_socket(url), "max_queue": 1} if slow else {}
    ws = await connect(ws_url, max_size=2**22, **options)
    if names is not None:
        await ws.send(orjson.dumps({"subscribe": names, "max_rate": MAX_RATE}).decode())
        while "subscribed" not in orjson.loads(await ws.recv()):
            pass
    return ws


async def follow(ws: ClientConnection, dashboard: Dashboard, since: float) -> None:
    """Read (quickly, or slowly) until cancelled; keep the values that arrive from `since` on.

    No timeout per message (asyncio.wait_for makes a task each time): 50 clients read 10,000 messages a second
    in this one process, and its own delays would count as the frontend's.
    """
    async for message in ws:
        arrival = time.time()
        if arrival >= since:
            event = orjson.loads(message)
            if "value" in event:
                dashboard.values.append((arrival, event["time"], event["module"], event["attribute"]))
        if dashboard.slow:
            await asyncio.sleep(SLOW_READ)


async def measure(url: str, pid: int, rate: int, dashboards: int, seconds: float, subscribed: bool) -> Row:
    names = screen(rate // int(VALUES_PER_MODULE)) if subscribed else None
    clients = [Dashboard(slow=dashboards == 50 and i == 0) for i in range(dashboards)]
    sockets = [await open_dashboard(url, names, c.slow) for c in clients]
    try:
        since = time.time() + WARM_UP
        until = since + seconds
        reading = [asyncio.create_task(follow(ws, c, since)) for ws, c in zip(sockets, clients)]
        await asyncio.sleep(max(0.0, since - time.time()))
        cpu_before = stat_cpu_seconds(pid)
        await asyncio.sleep(max(0.0, until - time.time()))
        cpu = (stat_cpu_seconds(pid) - cpu_before) / seconds * 100
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)
        for c in clients:
            c.values = [v for v in c.values if v[0] <= until]
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    fast = [c for c in clients if not c.slow]
    per_attribute = max((n for c in fast for n in Counter((m, a) for *_, m, a in c.values).values()), default=0)
    return Row(rate, dashboards, subscribed, cpu,
               statistics.median(len(c.values) for c in fast) / seconds if fast else 0.0,
               per_attribute / seconds, [arrival - stamped for c in fast for arrival, stamped, *_ in c.values])


async def idle_cpu(url: str, pid: int, seconds: float) -> float:
    await asyncio.sleep(WARM_UP)
    before = stat_cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (stat_cpu_seconds(pid) - before) / seconds * 100


def row_line(row: Row, idle: float) -> str:
    lag = f"{statistics.median(row.lags) * 1000:.1f} | {percentile(row.lags, 0.99) * 1000:.1f}" if row.lags else " | "
    paced = verdict(row.per_attribute <= MAX_RATE * 1.1) if row.subscribed and row.dashboards else ""
    lagged = verdict(percentile(row.lags, 0.99) < 0.1) if row.dashboards == 50 and row.lags else ""
    unwatched = verdict(row.cpu <= idle + 1) if row.dashboards == 0 else ""
    who = f"{row.dashboards}{' (1 slow)' if row.dashboards == 50 else ''}" + ("" if row.subscribed else ", every value")
    return (f"| {row.rate:,} | {who} | {row.cpu:.1f} | {row.per_client:,.0f} | {row.per_attribute:.1f} | {lag} "
            f"| {paced} | {lagged} | {unwatched} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,1000,10000", help="polled values/s, multiples of 100")
    parser.add_argument("--dashboards", default="0,1,10,50", help="live dashboards at each rate")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement (default 3)")
    parser.add_argument("--no-compare", action="store_true", help="leave out the row of clients that do not subscribe")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    counts = [int(d) for d in args.dashboards.split(",")]
    rows: list[Row] = []
    idle: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bridge-bench-fanout-") as tmp_name:
        for rate in rates:
            modules = max(1, rate // int(VALUES_PER_MODULE))
            with lab(Path(tmp_name) / f"idle{rate}", modules, polled=False) as (url, pid):
                idle[rate] = asyncio.run(idle_cpu(url, pid, args.seconds))
            with lab(Path(tmp_name) / f"rate{rate}", modules, polled=True) as (url, pid):
                for dashboards in counts:
                    rows.append(asyncio.run(measure(url, pid, rate, dashboards, args.seconds, True)))
                if not args.no_compare and rate == 1000:
                    rows.append(asyncio.run(measure(url, pid, rate, 10, args.seconds, False)))
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Linux {platform.release()}, Python {platform.python_version()}; {args.seconds:g} s per row, "
             f"dashboards subscribed to {SCREEN} attributes at max_rate {MAX_RATE}",
             "", "| values/s | dashboards | frontend CPU % | msgs/s per dashboard | msgs/s of one attribute "
             "| lag p50 ms | lag p99 ms | <= ~10/s per attribute | p99 < 100 ms, 1 slow of 50 "
             "| idle + 1% unwatched |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [row_line(row, idle[row.rate]) for row in rows]
    lines += ["", "Frontend idle (same modules, nothing polled), % of a core: "
              + ", ".join(f"{idle[r]:.1f} at {r:,} values/s" for r in rates)]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
