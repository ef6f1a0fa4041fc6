"""The history database: SQLite in WAL mode; its schema, batched inserts, retention and reads.

Two tables.  `channels` names each recorded series once (module, attribute,
unit); `samples` holds one row per value: channel, Unix time, value.  A number
is stored as a number, so SQL takes min/max/mean per bucket itself; anything
else (text, a boolean, an action's outcome) as its JSON text; NULL is a failed
read, which plots show as a gap.  Rows are inserted in time order, so rowid
order is age order and size retention deletes the lowest rowids.

The recorder (history.py) owns the one writing connection, on its own thread;
reads open their own read-only connections (WAL lets them run beside a write).
Each read has a cost bound (`ReadBudget`): `rows_to_read` counts beforehand,
cheaply and only up to a cap, how many rows a query will go through, and a
progress handler stops any statement that does much more work than that many
rows, or outlives its request.

The file's layout has a version (`PRAGMA user_version`, core/store_version.py):
opening it for writing brings an older file up to SCHEMA_VERSION in one
transaction; a newer one (a downgrade) is refused, for writing and reading.
Version 0 is a new file or one written before versions (the same tables).
"""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from labbridge.core.history_query import Cursor, HistoryQuery
from labbridge.core.store_version import check_version, migrate_sqlite, sqlite_version

# Version 1's tables, as releases before versions made them (IF NOT EXISTS: an old file keeps its own).
# One statement each: executescript() would commit the migration's transaction half-way.
_TABLES_V1 = (
    "CREATE TABLE IF NOT EXISTS channels (id INTEGER PRIMARY KEY, module TEXT NOT NULL, attribute TEXT NOT NULL, "
    "unit TEXT, UNIQUE (module, attribute))",
    "CREATE TABLE IF NOT EXISTS samples (channel INTEGER NOT NULL, t REAL NOT NULL, value)",
    "CREATE INDEX IF NOT EXISTS samples_by_time ON samples (channel, t)",
)


def _to_v1(db: sqlite3.Connection) -> None:
    """From a new file or one written before versions: the tables (an old one has them already)."""
    for statement in _TABLES_V1:
        db.execute(statement)


# Step n brings a file of version n to n + 1; a change of layout appends a step (never edits one).
MIGRATIONS = (_to_v1,)
SCHEMA_VERSION = len(MIGRATIONS)
# How long a statement waits for another connection's lock before giving up (the writer then retries later).
BUSY_TIMEOUT = 0.5
WAL_LIMIT = 8 * 1024 * 1024  # bytes of write-ahead log kept on disk after a checkpoint
_FOREVER = 1e300  # bounds for an open-ended range (SQLite compares REAL with Inf awkwardly)
# Only numbers go into a bucket's min/max/mean.
_NUMERIC = "typeof(value) IN ('integer', 'real')"
# SQLite virtual machine steps per row read: a bucket query takes about 31, counting or listing points about 8.
STEPS_PER_ROW = 40
CHECK_STEPS = 10_000  # how often (in steps) the progress handler looks at the budget and the clock


class ReadBudget:
    """A read's bounds, as a SQLite progress handler: a deadline (Unix time) and, optionally, about `rows` rows.

    `exceeded` says which ran out ("time" or "rows") once a statement was interrupted."""

    def __init__(self, deadline: float, rows: int | None = None) -> None:
        self.deadline = deadline
        self.checks_left = None if rows is None else max(1, rows * STEPS_PER_ROW // CHECK_STEPS)
        self.exceeded: str | None = None

    def __call__(self) -> bool:
        if time.time() > self.deadline:
            self.exceeded = "time"
        elif self.checks_left is not None:
            self.checks_left -= 1
            if self.checks_left < 0:
                self.exceeded = "rows"
        return self.exceeded is not None


def open_for_writing(path: Path) -> sqlite3.Connection:
    """The recorder's connection, creating the folder and the database if needed; raises OSError or sqlite3.Error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # lets size retention give space back (new files only)
        if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise sqlite3.OperationalError("cannot switch the database to WAL mode")
        db.execute("PRAGMA synchronous = FULL")  # a committed batch survives a power cut too
        db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
        migrate_sqlite(db, path, MIGRATIONS)  # raises StoreTooNew for a file of a newer release
    except BaseException:
        db.close()
        raise
    return db


def open_for_reading(path: Path, budget: ReadBudget) -> sqlite3.Connection | None:
    """A read-only connection whose statements stop when `budget` runs out; None when nothing was recorded yet.

    Raises StoreTooNew for a file of a newer release (put in place while this process ran)."""
    if not path.exists():
        return None
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT, check_same_thread=False)
    try:
        check_version(path, sqlite_version(db), SCHEMA_VERSION)
    except BaseException:
        db.close()
        raise
    # Checked every CHECK_STEPS virtual machine steps: a huge range can neither outlive its request nor its budget.
    db.set_progress_handler(budget, CHECK_STEPS)
    return db


def channel_id(db: sqlite3.Connection, module: str, attribute: str, unit: str | None) -> int:
    db.execute("INSERT INTO channels (module, attribute, unit) VALUES (?, ?, ?) "
               "ON CONFLICT (module, attribute) DO UPDATE SET unit = excluded.unit", (module, attribute, unit))
    return int(db.execute("SELECT id FROM channels WHERE module = ? AND attribute = ?", (module, attribute)).fetchone()[0])


def find_channel(db: sqlite3.Connection, module: str, attribute: str) -> tuple[int, str | None] | None:
    row = db.execute("SELECT id, unit FROM channels WHERE module = ? AND attribute = ?", (module, attribute)).fetchone()
    return None if row is None else (int(row[0]), row[1])


def insert(db: sqlite3.Connection, rows: list[tuple[int, float, Any]]) -> None:
    """Write one batch of (channel, time, stored value) in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany("INSERT INTO samples (channel, t, value) VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def stored(value: Any) -> Any:
    """A value as the database keeps it: numbers as numbers, None as NULL, anything else as JSON text."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    return orjson.dumps(value).decode()


def loaded(value: Any) -> Any:
    if isinstance(value, str):
        return orjson.loads(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no infinity
    return value


def apply_retention(db: sqlite3.Connection, oldest: float, max_bytes: float) -> int:
    """Delete values older than `oldest` (Unix time), then the oldest ones until the data fits
    `max_bytes`; give freed space back to the file system.  Returns how many rows went."""
    deleted = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for (channel,) in db.execute("SELECT id FROM channels").fetchall():
            deleted += db.execute("DELETE FROM samples WHERE channel = ? AND t < ?", (channel, oldest)).rowcount
        while (used := _used_bytes(db)) > max_bytes:
            low, high = db.execute("SELECT min(rowid), max(rowid) FROM samples").fetchone()
            if low is None:
                break
            # Rows are about the same size: drop the share that is over, plus 5% so this runs rarely.
            count = max(1, math.ceil((high - low + 1) * ((used - max_bytes) / used + 0.05)))
            deleted += db.execute("DELETE FROM samples WHERE rowid < ?", (low + count,)).rowcount
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if deleted:
        db.executescript("PRAGMA incremental_vacuum;")  # execute() would free one page: Python steps it once
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return deleted


def _used_bytes(db: sqlite3.Connection) -> int:
    page_size, pages, free = (db.execute(f"PRAGMA {name}").fetchone()[0]
                              for name in ("page_size", "page_count", "freelist_count"))
    return int(page_size * (pages - free))


def read(db: sqlite3.Connection, channel: int, query: HistoryQuery) -> tuple[list[list[Any]], Cursor | None]:
    """The points a query asks for, in time order, and the cursor of the next page (paged mode only).

    A cursor is (time, rowid) of the last point sent, or (bucket start, bucket number) with `every`.
    """
    since = -_FOREVER if query.since is None else query.since
    until = _FOREVER if query.until is None else query.until
    if query.page is None:
        if query.every is not None:
            return _buckets(db, channel, query.every, since, until, query.limit, newest=True), None
        rows = db.execute("SELECT t, value FROM samples WHERE channel = ? AND t >= ? AND t <= ? "
                          "ORDER BY t DESC, rowid DESC LIMIT ?", (channel, since, until, query.limit or -1)).fetchall()
        return [[t, loaded(v)] for t, v in reversed(rows)], None
    after = query.after
    if after is None and query.limit is not None:
        after = _start_of_newest(db, channel, since, until, query.limit, query.every)
    if query.every is not None:
        return _bucket_page(db, channel, query.every, since, until, query.page, None if after is None else after[1])
    # (t, rowid) > (since, -1) is t >= since: the first page starts at `since` itself.
    rows = db.execute("SELECT t, rowid, value FROM samples WHERE channel = ? AND (t, rowid) > (?, ?) AND t <= ? "
                      "ORDER BY t, rowid LIMIT ?", (channel, *(after or (since, -1)), until, query.page)).fetchall()
    cursor = (rows[-1][0], rows[-1][1]) if len(rows) == query.page else None
    return [[t, loaded(v)] for t, _, v in rows], cursor


def rows_to_read(db: sqlite3.Connection, channel: int, query: HistoryQuery, cap: int) -> int | None:
    """How many rows `query` goes through, counted only up to `cap` + 1 (so at most that much work);
    None when it cannot be told beforehand (a page of buckets: the progress handler bounds those)."""
    if query.every is not None and query.page is not None:
        return None
    since = -_FOREVER if query.since is None else query.since
    until = _FOREVER if query.until is None else query.until
    wanted = None if query.every is not None else query.page or query.limit  # the index reads no more points
    if query.after is not None:
        since = max(since, query.after[0])
    # Counting rows of the index costs about an eighth of aggregating them (measured on 3 million rows).
    counted = int(db.execute("SELECT count(*) FROM (SELECT 1 FROM samples WHERE channel = ? AND t >= ? AND t <= ? "
                             "LIMIT ?)", (channel, since, until, min(cap, wanted or cap) + 1)).fetchone()[0])
    return counted if wanted is None else min(counted, wanted)


def _buckets(db: sqlite3.Connection, channel: int, every: float, since: float, until: float, limit: int | None,
             newest: bool, after: int | None = None, upto: int | None = None) -> list[list[Any]]:
    """[bucket start, mean, min, max] of the numbers in each bucket of `every` seconds that holds any
    (bucket n holds the times from n * every up to (n + 1) * every), for buckets after `after` up to `upto`."""
    # The time bounds let the index narrow the scan; the bucket numbers are the exact test.
    if after is not None:
        since = max(since, after * every)
    if upto is not None:
        until = min(until, (upto + 1) * every)
    rows = db.execute(
        f"SELECT CAST(t / :every AS INTEGER) AS bucket, avg(value), min(value), max(value) FROM samples "
        f"WHERE channel = :channel AND t >= :since AND t <= :until AND {_NUMERIC} "
        f"AND bucket > :after AND bucket <= :upto "
        f"GROUP BY bucket ORDER BY bucket {'DESC' if newest else ''} LIMIT :limit",
        {"every": every, "channel": channel, "since": since, "until": until, "limit": limit or -1,
         "after": -(2**62) if after is None else after, "upto": 2**62 if upto is None else upto}).fetchall()
    points = [[bucket * float(every), loaded(mean), loaded(low), loaded(high)] for bucket, mean, low, high in rows]
    return points[::-1] if newest else points


def _bucket_page(db: sqlite3.Connection, channel: int, every: float, since: float, until: float, page: int,
                 after: int | None) -> tuple[list[list[Any]], Cursor | None]:
    """The buckets from the first point after bucket `after` up to `page` bucket widths on, or up to its
    `page`-th point if that is further: each page reads only its own rows and holds at most `page` buckets,
    however long the range, however sparse the data and however narrow the buckets."""
    start = since if after is None else max(since, (after + 1) * every)
    first = db.execute("SELECT t FROM samples WHERE channel = ? AND t >= ? AND t <= ? ORDER BY t LIMIT 1",
                       (channel, start, until)).fetchone()
    if first is None:
        return [], None
    last = math.floor(first[0] / every) + page - 1  # the same rounding as SQLite's CAST for positive times
    # Buckets narrower than the points are apart (every=0.001 over 1 Hz data) would otherwise make pages of a
    # few points each: a month of data, half a million round trips.  The index finds the page-th point.
    nth = db.execute("SELECT t FROM samples WHERE channel = ? AND t >= ? AND t <= ? ORDER BY t LIMIT 1 OFFSET ?",
                     (channel, start, until, page - 1)).fetchone()
    if nth is not None:
        last = max(last, math.floor(nth[0] / every))
    points = _buckets(db, channel, every, since, until, None, newest=False, after=after, upto=last)
    return points, ((last * every, last) if (last + 1) * every <= until else None)


def _start_of_newest(db: sqlite3.Connection, channel: int, since: float, until: float, limit: int,
                     every: float | None) -> Cursor | None:
    """The cursor just before the `limit`-th newest point (or bucket) in the range."""
    if every is not None:
        oldest = _buckets(db, channel, every, since, until, limit, newest=True)[:1]
        return None if not oldest else (oldest[0][0], round(oldest[0][0] / every) - 1)
    row = db.execute("SELECT t, rowid FROM samples WHERE channel = ? AND t >= ? AND t <= ? "
                     "ORDER BY t DESC, rowid DESC LIMIT 1 OFFSET ?", (channel, since, until, limit - 1)).fetchone()
    return None if row is None else (row[0], row[1] - 1)
