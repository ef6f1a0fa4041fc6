"""History queries have a cost bound: with 3 million rows recorded, sixteen clients asking for every value in
buckets of 1 s are refused with 422 (naming a narrower range) instead of tying up the readers, and a dashboard's
few points keep answering fast beside them."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from labbridge.experiment import history_db
from tests.processes import running_stack, write_config

ROWS = 3_000_000
SPACING = 0.1  # seconds between two rows: 3 million rows span 3.5 days, within the default retention
HEAVY_CLIENTS = 16
PATH = "setpoint/value/history"


@dataclass
class Stack:
    url: str
    start: float  # time of the first row


def build(path: Path, rows: int, start: float) -> None:
    """A history database holding `rows` values of setpoint.value, made in one statement (about 5 s)."""
    with closing(history_db.open_for_writing(path)) as db:
        channel = history_db.channel_id(db, "setpoint", "value", None)
        db.execute("BEGIN")
        db.execute("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                   "INSERT INTO samples (channel, t, value) SELECT ?, ? + i * ?, i % 100 FROM n",
                   (rows - 1, channel, start, SPACING))
        db.execute("COMMIT")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("history_cost")
    start = time.time() - ROWS * SPACING - 60
    build(tmp / "data" / "history.sqlite3", ROWS, start)
    config = write_config(tmp / "config.yml", {"setpoint": {"class": "setpoint.Setpoint"}},
                          history={"path": "data/history.sqlite3", "interval": 0.2})
    with running_stack(config, tmp) as (_, _, url):
        yield Stack(url, start)


def test_a_query_past_the_row_bound_gets_422_naming_a_narrower_range(stack: Stack) -> None:
    began = time.perf_counter()
    response = httpx.get(f"{stack.url}/{PATH}", params={"every": 1, "limit": 100_000}, timeout=30)
    took = time.perf_counter() - began
    assert response.status_code == 422, response.text[:300]
    assert response.json()["error"] == "history_too_large"
    assert "since/until" in response.json()["message"] and "1,000,000" in response.json()["message"]
    assert took < 1.0, f"refused only after {took:.2f} s"


def test_a_query_within_the_bound_is_answered_in_full(stack: Stack) -> None:
    # 100,000 rows in buckets of 1 s: 10,000 buckets, read on the heavy-read thread.
    since, until = stack.start, stack.start + 100_000 * SPACING - SPACING / 2
    response = httpx.get(f"{stack.url}/{PATH}", params={"every": 1, "since": since, "until": until, "limit": 100_000},
                         timeout=30)
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["points"]) in (10_000, 10_001)  # the first bucket may start before `since`


def test_few_points_answer_fast_while_sixteen_heavy_queries_run(stack: Stack) -> None:
    stop = threading.Event()
    heavy: list[tuple[int, float]] = []

    def ask_heavy() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                began = time.perf_counter()
                response = client.get(f"{stack.url}/{PATH}", params={"every": 1, "limit": 100_000})
                heavy.append((response.status_code, time.perf_counter() - began))

    threads = [threading.Thread(target=ask_heavy) for _ in range(HEAVY_CLIENTS)]
    for thread in threads:
        thread.start()
    latencies = []
    try:
        with httpx.Client(timeout=30) as client:
            deadline = time.monotonic() + 10
            while len(heavy) < HEAVY_CLIENTS and time.monotonic() < deadline:  # every heavy client is under way
                time.sleep(0.05)
            for _ in range(100):
                began = time.perf_counter()
                response = client.get(f"{stack.url}/{PATH}", params={"limit": 5})
                latencies.append(time.perf_counter() - began)
                assert response.status_code == 200, response.text[:300]
                assert len(response.json()["points"]) == 5
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    p99 = sorted(latencies)[98]
    print(f"5-point query beside {HEAVY_CLIENTS} heavy ones: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms; {len(heavy)} heavy queries answered {sorted({s for s, _ in heavy})}, "
          f"slowest {max(t for _, t in heavy):.2f} s")
    assert p99 < 0.2
    assert {status for status, _ in heavy} == {422}
