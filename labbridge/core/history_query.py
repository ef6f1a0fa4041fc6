"""HistoryQuery: what a `history` request asks the experiment process for.

The frontend builds one from `GET /<module>/<attribute>/history?since=&until=&limit=&every=`
and sends it as the `value` of a protocol request with op `history`; the
experiment process checks it again with `from_wire`, since any ZeroMQ client
may send one.  Two modes:

- newest (`page` unset): the newest `limit` points (or buckets, with `every`)
  between `since` and `until`, in time order, in one reply;
- paged (`page` set): up to `page` points in time order after the cursor
  `after`, and the cursor to continue from (`next`, null at the end).  The
  frontend streams CSV this way, one page at a time, so memory stays flat
  however long the range.  With `limit`, the first page starts at the newest
  `limit`-th point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from labbridge.core.errors import MalformedRequest

DEFAULT_LIMIT = 1000  # points (or buckets) a JSON answer holds when no limit is given
MAX_LIMIT = 100_000  # the most a JSON answer may hold; CSV streams any number
PAGE_SIZE = 5000  # points per page when streaming
MIN_EVERY = 0.001  # seconds: the narrowest bucket
MAX_EVERY = 10 * 365 * 86400.0

Cursor = tuple[float, int]  # (time, row id) of the last point sent


@dataclass(frozen=True)
class HistoryQuery:
    """A time range, how many points, optional buckets, and where a page starts."""

    since: float | None = None
    until: float | None = None
    limit: int | None = None
    every: float | None = None
    page: int | None = None
    after: Cursor | None = None

    def to_wire(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_wire(cls, value: Any) -> HistoryQuery:
        """Check a query that came over ZeroMQ; raise MalformedRequest naming the bad field."""
        if not isinstance(value, dict) or not set(value) <= set(cls.__dataclass_fields__):
            raise MalformedRequest(f"history needs an object with only {sorted(cls.__dataclass_fields__)}")
        since, until = _time(value, "since"), _time(value, "until")  # until before since: an empty range
        every = _time(value, "every")
        if every is not None and not MIN_EVERY <= every <= MAX_EVERY:
            raise MalformedRequest(f"every must be {MIN_EVERY} to {MAX_EVERY:g} seconds; got {every}")
        after = value.get("after")
        if after is not None:
            if not (isinstance(after, list) and len(after) == 2 and _is_number(after[0]) and isinstance(after[1], int)):
                raise MalformedRequest("after must be [time, id] from a previous page's 'next'")
            after = (float(after[0]), after[1])
        return cls(since, until, _count(value, "limit", MAX_LIMIT if "page" not in value else None), every,
                   _count(value, "page", PAGE_SIZE), after)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _time(value: dict[str, Any], key: str) -> float | None:
    x = value.get(key)
    if x is not None and not _is_number(x):
        raise MalformedRequest(f"{key} must be a finite number of seconds; got {x!r}")
    return None if x is None else float(x)


def _count(value: dict[str, Any], key: str, maximum: int | None) -> int | None:
    x = value.get(key)
    if x is None:
        return None
    if not isinstance(x, int) or isinstance(x, bool) or x < 1 or (maximum is not None and x > maximum):
        raise MalformedRequest(f"{key} must be a whole number from 1" + (f" to {maximum}" if maximum else "") + f"; got {x!r}")
    return x
