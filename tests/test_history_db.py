"""The history database on its own: pages that never skip or repeat a point, buckets, newest N, what is stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labbridge.core.errors import MalformedRequest
from labbridge.core.history_query import PAGE_SIZE, HistoryQuery
from labbridge.experiment import history_db
from labbridge.experiment.history import sample_of

T0 = 1_800_000_000.0


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = history_db.open_for_writing(tmp_path / "data" / "h.sqlite3")
    yield connection
    connection.close()


def fill(db: sqlite3.Connection, rows: list[tuple[float, Any]]) -> int:
    channel = history_db.channel_id(db, "m", "a", "mm")
    history_db.insert(db, [(channel, t, history_db.stored(v)) for t, v in rows])
    return channel


def all_pages(db: sqlite3.Connection, channel: int, query: HistoryQuery) -> list[list[Any]]:
    points: list[list[Any]] = []
    while True:
        page, cursor = history_db.read(db, channel, query)
        points += page
        if cursor is None:
            return points
        query = HistoryQuery(since=query.since, until=query.until, every=query.every, page=query.page, after=cursor)


def test_pages_neither_skip_nor_repeat_points_that_share_a_time(db: sqlite3.Connection) -> None:
    rows = [(T0 + i // 3, float(i)) for i in range(20)]  # three points per second
    channel = fill(db, rows)
    assert all_pages(db, channel, HistoryQuery(page=4)) == [[t, v] for t, v in rows]
    assert all_pages(db, channel, HistoryQuery(page=4, since=T0 + 2, until=T0 + 4)) == [[t, v] for t, v in rows[6:15]]
    newest = all_pages(db, channel, HistoryQuery(page=4, limit=5))
    assert newest == [[t, v] for t, v in rows[-5:]]


def test_buckets_page_through_a_range_in_order(db: sqlite3.Connection) -> None:
    channel = fill(db, [(T0 + i, float(i)) for i in range(100)])
    buckets = all_pages(db, channel, HistoryQuery(page=3, every=10))
    assert buckets == [[T0 + 10 * b, 10 * b + 4.5, 10 * b, 10 * b + 9] for b in range(10)]
    assert all_pages(db, channel, HistoryQuery(page=3, every=10, limit=4)) == buckets[-4:]
    newest, _ = history_db.read(db, channel, HistoryQuery(every=10, limit=2))
    assert newest == buckets[-2:]


def test_bucket_pages_skip_empty_stretches_instead_of_paging_through_them(db: sqlite3.Connection) -> None:
    channel = fill(db, [(T0, 1.0), (T0 + 0.5, 3.0), (T0 + 1e6, 5.0)])  # a lone point eleven days later
    query, pages = HistoryQuery(page=3, every=1), []
    while True:
        page, cursor = history_db.read(db, channel, query)
        pages.append(page)
        if cursor is None:
            break
        query = HistoryQuery(page=3, every=1, after=cursor)
    assert pages == [[[T0, 2.0, 1.0, 3.0], [T0 + 1e6, 5.0, 5.0, 5.0]], []]  # a page reaches its third point


def test_buckets_narrower_than_the_data_page_by_points_not_by_widths(db: sqlite3.Connection) -> None:
    rows = [(T0 + i, float(i)) for i in range(20_000)]  # 1 Hz, in buckets of a millisecond
    channel = fill(db, rows)
    query, pages, buckets = HistoryQuery(page=PAGE_SIZE, every=0.001), 0, []
    while True:
        page, cursor = history_db.read(db, channel, query)
        pages, buckets = pages + 1, buckets + page
        assert len(page) <= PAGE_SIZE
        if cursor is None:
            break
        query = HistoryQuery(page=PAGE_SIZE, every=0.001, after=cursor)
    assert [bucket[1] for bucket in buckets] == [value for _, value in rows]  # each point its own bucket
    assert pages <= len(rows) // PAGE_SIZE + 2  # four pages and an empty one, not one page per five points


def test_values_keep_their_type_and_failed_reads_are_gaps(db: sqlite3.Connection) -> None:
    channel = fill(db, [(T0, 1), (T0 + 1, 2.5), (T0 + 2, "run 7"), (T0 + 3, True), (T0 + 4, None), (T0 + 5, [1, 2])])
    points, _ = history_db.read(db, channel, HistoryQuery())
    assert points == [[T0, 1], [T0 + 1, 2.5], [T0 + 2, "run 7"], [T0 + 3, True], [T0 + 4, None], [T0 + 5, [1, 2]]]
    buckets, _ = history_db.read(db, channel, HistoryQuery(every=60))
    assert buckets == [[T0 // 60 * 60, 1.75, 1, 2.5]]  # only the numbers are averaged


def test_events_map_to_samples_and_finished_invocations_are_recorded() -> None:
    assert sample_of({"module": "m", "attribute": "a", "value": 1.5, "unit": "mm", "time": T0}) == ("m", "a", "mm", T0, 1.5)
    assert sample_of({"module": "m", "attribute": "a", "error": "instrument_timeout", "message": "x", "time": T0}) == (
        "m", "a", None, T0, None)
    running = {"module": "m", "action": "move", "status": "running", "progress": 0.5}
    assert sample_of({"module": "m", "invocation": running, "time": T0}) is None
    done = {**running, "status": "completed", "finished": T0 + 3, "result": {"peak": 2}}
    assert sample_of({"module": "m", "invocation": done, "time": T0 + 4}) == (
        "m", "move", None, T0 + 3, history_db.stored(done))


@pytest.mark.parametrize("wire", [
    "x", {"since": "today"}, {"limit": 0}, {"limit": 100_001}, {"every": 0},
    {"after": [1.0]}, {"page": True}, {"unknown": 1}, {"since": float("inf")},
])
def test_a_query_from_the_wire_is_checked(wire: Any) -> None:
    with pytest.raises(MalformedRequest):
        HistoryQuery.from_wire(wire)
