"""How long a recorded point takes to reach a dashboard that watches the run (bench/runs.py's `latency` rows).

A watcher does what the dashboard's Runs panel does (labbridge/frontend/static/runs.js): it reads
GET /runs/<id>/data?since=<next> every DATA_MS (the interval read from runs.js itself), one read at a time,
and, with `events`, reads at once when a run event on /ws says the run has more points than it has (one more
read after the current one if that one is under way).  A point's latency is from its `time` (taken by
`run.record()` in the procedure) to the moment the answer holding it has arrived, on the same machine's clock.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

RUNS_JS = Path(__file__).resolve().parent.parent / "labbridge" / "frontend" / "static" / "runs.js"


def dashboard_data_ms() -> int:
    """The Runs panel's interval between two reads of a run's points, as runs.js sets it."""
    found = re.search(r"\bDATA_MS = (\d+)", RUNS_JS.read_text(encoding="utf-8"))
    if found is None:
        raise RuntimeError(f"no DATA_MS in {RUNS_JS}")
    return int(found.group(1))


class Watcher:
    """One dashboard following one run's points; the latency of each, in ms."""

    def __init__(self, client: httpx.AsyncClient, ident: str) -> None:
        self.client = client
        self.ident = ident
        self.next = 0
        self.status = "queued"
        self.latencies: list[float] = []
        self.reading = False
        self.again = False

    async def read(self) -> None:
        """Read the points not yet seen (as runs.js readPoints: never two reads at once, one more if asked)."""
        if self.reading:
            self.again = True
            return
        self.reading = True
        try:
            while True:
                self.again = False
                answer = await self.client.get(f"/runs/{self.ident}/data", params={"since": self.next, "limit": 10000})
                arrived = time.time()
                page = answer.raise_for_status().json()
                self.latencies += [(arrived - t) * 1000 for t in page["time"]]
                self.next, self.status = page["next"], page["status"]
                if not self.again:
                    return
        finally:
            self.reading = False

    async def poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.read()

    async def listen(self, socket: Any) -> None:
        async for message in socket:
            run = orjson.loads(message).get("run")
            if run is not None and run["id"] == self.ident and run["points"] > self.next:
                await self.read()


async def _watch(url: str, procedure: str, parameters: dict[str, Any], events: bool) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client, \
            websockets.connect(url.replace("http", "ws", 1) + "/ws") as socket:
        answer = await client.post("/runs", json={"procedure": procedure, "parameters": parameters})
        watcher = Watcher(client, str(answer.raise_for_status().json()["id"]))
        tasks = [asyncio.create_task(watcher.poll(dashboard_data_ms() / 1000))]
        if events:
            tasks.append(asyncio.create_task(watcher.listen(socket)))
        try:
            async with asyncio.timeout(600):
                while watcher.status in ("queued", "running") or watcher.next < parameters["points"]:
                    await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if watcher.status != "completed":
            raise RuntimeError(f"run {watcher.ident} of {procedure} ended {watcher.status}")
        return watcher.latencies


def point_latencies(url: str, points: int, period: float, events: bool) -> list[float]:
    """ms from record() to a watching dashboard, for each point of a run recording `points` every `period` s
    (the procedure `paced` of bench/runs.py), the queue started."""
    return asyncio.run(_watch(url, "paced", {"points": points, "period": period}, events))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
