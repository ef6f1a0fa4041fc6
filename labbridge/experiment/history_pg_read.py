"""Reading the PostgreSQL history: newest points, buckets (`every=`) and pages, as history_db.py does in SQLite.

The same answers as SQLite's, in PostgreSQL's SQL.  A point's time is read as
whole microseconds (`us`, what timestamptz keeps), and a page's cursor is
(time, us) of its last point: the next page starts strictly after it, the
primary key making (source, module, attribute, t) unique.  A bucket cursor is
(bucket start, bucket number), as in SQLite.  The row budget is counted
beforehand (`rows_to_read`); the deadline is the connection's statement
timeout (history_postgres.py), which also bounds pages of buckets.
"""

from __future__ import annotations

import math
from typing import Any

from labbridge.core.history_query import Cursor, HistoryQuery
from labbridge.experiment.history_db import loaded
from labbridge.experiment.history_store import Found, NeedsHeavyRead, ReadExceeded

Key = tuple[str, str, str]  # source, module, attribute
LOW, HIGH = -2e11, 2e11  # seconds: inside timestamptz's range (4713 BC to 294276 AD), beyond any lab's
_OF = ("FROM labbridge_history WHERE source = %(source)s AND module = %(module)s AND attribute = %(attribute)s "
       "AND t >= to_timestamp(%(since)s) AND t <= to_timestamp(%(until)s)")
_US = "(extract(epoch FROM t) * 1000000)::int8"  # exact: extract gives a numeric
_BUCKET = "floor(extract(epoch FROM t)::float8 / %(every)s)::int8"


def read(db: Any, key: Key, query: HistoryQuery, max_rows: int, heavy: bool) -> Found | None:
    """The unit and the points of `query` (raises NeedsHeavyRead, ReadExceeded); None if never recorded."""
    row = db.execute("SELECT unit FROM labbridge_channels WHERE source = %s AND module = %s AND attribute = %s",
                     key).fetchone()
    if row is None:
        return None
    rows = rows_to_read(db, key, query, max_rows)
    if not heavy and (rows is None or rows > max_rows):
        raise NeedsHeavyRead
    if rows is not None and rows > max_rows:
        raise ReadExceeded("rows")
    points, cursor = _points(db, key, query)
    return row[0], points, cursor


def _params(key: Key, since: float, until: float, **more: Any) -> dict[str, Any]:
    return {"source": key[0], "module": key[1], "attribute": key[2], "since": max(LOW, min(HIGH, since)),
            "until": max(LOW, min(HIGH, until)), **more}


def _range(query: HistoryQuery) -> tuple[float, float]:
    return (LOW if query.since is None else query.since), (HIGH if query.until is None else query.until)


def _point(us: int, value: float | None, json: str | None) -> list[Any]:
    return [us / 1e6, loaded(json if json is not None else value)]


def _points(db: Any, key: Key, query: HistoryQuery) -> tuple[list[list[Any]], Cursor | None]:
    since, until = _range(query)
    if query.page is None:
        if query.every is not None:
            return _buckets(db, key, query.every, since, until, query.limit, newest=True), None
        rows = db.execute(f"SELECT {_US}, value, json {_OF} ORDER BY t DESC LIMIT %(limit)s",
                          _params(key, since, until, limit=query.limit)).fetchall()
        return [_point(*row) for row in reversed(rows)], None
    after = query.after
    if after is None and query.limit is not None:
        after = _start_of_newest(db, key, since, until, query.limit, query.every)
    if query.every is not None:
        return _bucket_page(db, key, query.every, since, until, query.page, None if after is None else after[1])
    start = "" if after is None else "AND t > timestamptz 'epoch' + %(after)s * interval '1 microsecond'"
    rows = db.execute(f"SELECT {_US}, value, json {_OF} {start} ORDER BY t LIMIT %(page)s",
                      _params(key, since, until, page=query.page, after=None if after is None else after[1])).fetchall()
    cursor = (rows[-1][0] / 1e6, rows[-1][0]) if len(rows) == query.page else None
    return [_point(*row) for row in rows], cursor


def rows_to_read(db: Any, key: Key, query: HistoryQuery, cap: int) -> int | None:
    """How many rows `query` goes through, counted only up to `cap` + 1; None for a page of buckets."""
    if query.every is not None and query.page is not None:
        return None
    since, until = _range(query)
    wanted = None if query.every is not None else query.page or query.limit
    if query.after is not None:
        since = max(since, query.after[0])
    counted = int(db.execute(f"SELECT count(*) FROM (SELECT 1 {_OF} LIMIT %(cap)s) AS counted",
                             _params(key, since, until, cap=min(cap, wanted or cap) + 1)).fetchone()[0])
    return counted if wanted is None else min(counted, wanted)


def _buckets(db: Any, key: Key, every: float, since: float, until: float, limit: int | None, newest: bool,
             after: int | None = None, upto: int | None = None) -> list[list[Any]]:
    """[bucket start, mean, min, max] of the numbers in each bucket of `every` seconds that holds any."""
    if after is not None:
        since = max(since, after * every)
    if upto is not None:
        until = min(until, (upto + 1) * every)
    rows = db.execute(
        f"SELECT bucket, avg(value), min(value), max(value) FROM (SELECT {_BUCKET} AS bucket, value {_OF} "
        f"AND value IS NOT NULL) AS b WHERE bucket > %(after)s AND bucket <= %(upto)s "
        f"GROUP BY bucket ORDER BY bucket {'DESC' if newest else ''} LIMIT %(limit)s",
        _params(key, since, until, every=every, limit=limit, after=-(2**62) if after is None else after,
                upto=2**62 if upto is None else upto)).fetchall()
    points = [[bucket * float(every), loaded(mean), loaded(low), loaded(high)] for bucket, mean, low, high in rows]
    return points[::-1] if newest else points


def _bucket_page(db: Any, key: Key, every: float, since: float, until: float, page: int,
                 after: int | None) -> tuple[list[list[Any]], Cursor | None]:
    """Up to `page` bucket widths from the first point after bucket `after`, or up to its `page`-th point if that
    is further (history_db._bucket_page says why)."""
    start = since if after is None else max(since, (after + 1) * every)
    first = db.execute(f"SELECT extract(epoch FROM t)::float8 {_OF} ORDER BY t LIMIT 1",
                       _params(key, start, until)).fetchone()
    if first is None:
        return [], None
    last = math.floor(first[0] / every) + page - 1
    nth = db.execute(f"SELECT extract(epoch FROM t)::float8 {_OF} ORDER BY t LIMIT 1 OFFSET %(skip)s",
                     _params(key, start, until, skip=page - 1)).fetchone()
    if nth is not None:
        last = max(last, math.floor(nth[0] / every))
    points = _buckets(db, key, every, since, until, None, newest=False, after=after, upto=last)
    return points, ((last * every, last) if (last + 1) * every <= until else None)


def _start_of_newest(db: Any, key: Key, since: float, until: float, limit: int, every: float | None) -> Cursor | None:
    """The cursor just before the `limit`-th newest point (or bucket) in the range."""
    if every is not None:
        oldest = _buckets(db, key, every, since, until, limit, newest=True)[:1]
        return None if not oldest else (oldest[0][0], round(oldest[0][0] / every) - 1)
    row = db.execute(f"SELECT {_US} {_OF} ORDER BY t DESC LIMIT 1 OFFSET %(skip)s",
                     _params(key, since, until, skip=limit - 1)).fetchone()
    return None if row is None else (row[0] / 1e6, row[0] - 1)
