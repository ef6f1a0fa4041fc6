"""HistoryRecorder: every published event into the history database, off the event loop.

The experiment process publishes each value it polls or writes (and each failed
poll, and, with actions, each invocation's outcome) through
`ExperimentServer._publish`, which hands the event to `record`: one append to
a bounded queue, nothing else on the event loop.  A writer thread wakes every
`history.interval` seconds, writes what has queued up in one transaction
(history_db.py) and applies retention.  A process that crashes therefore loses
at most the last interval's values.

Nothing here may fail a request.  When the database cannot be written (a full
disk, another program holding a lock, a read-only folder), the recorder logs
one line, reports "not recording" (with the reason) in `/health`, keeps the
newest values in memory (up to MAX_WAITING of them and about MAX_WAITING_BYTES:
8,000 labels of 4 KB once grew the process by 36 MiB) and retries every
interval; it logs once more when recording resumes.

Reads (`read`) run on their own threads with read-only connections, so a long
range never holds up the event loop or the writer, and each has a cost bound.
A read first counts, up to SMALL_ROWS, the rows it would go through: a small
one (a dashboard's few points) is answered there, on the two small-read
threads; any other goes to the one heavy-read thread, so heavy queries, however
many, never take the threads small ones need.  There it is counted up to
`history.max_query_rows` and refused past it (422 history_too_large, naming a
narrower range), and its statements are stopped if they do much more work than
that many rows (history_db.ReadBudget) or outlive the request (504).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterable
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from labbridge.core.action import FINISHED  # an invocation's outcome is recorded, its progress updates are not
from labbridge.core.config import Config, HistorySettings, resolve
from labbridge.core.errors import DeadlineExceeded, HistoryTooLarge, HistoryUnavailable
from labbridge.core.history_query import HistoryQuery
from labbridge.core.store_version import StoreTooNew
from labbridge.experiment import history_db

log = logging.getLogger(__name__)

MAX_WAITING = 50_000  # events kept in memory while the database cannot be written (the oldest go first)
MAX_WAITING_BYTES = 8 * 1024 * 1024  # and about this much memory for them, text and all
EVENT_BYTES = 300  # about what an event of a number costs in memory (a dict of a few small values)
SMALL_ROWS = 10_000  # a read going through at most this many rows is answered on the small-read threads
Sample = tuple[str, str, "str | None", float, Any]  # module, attribute, unit, time, value as stored


class HistoryRecorder:
    """Records published events into SQLite in batches, and answers history queries."""

    def __init__(self, path: Path, settings: HistorySettings) -> None:
        self.path = path
        self.settings = settings
        # (event, its approximate bytes): appended on the loop, drained by the writer.
        self._waiting: deque[tuple[dict[str, Any], int]] = deque()
        self._unwritten: list[tuple[dict[str, Any], int]] = []  # the writer's last failed batch, retried first
        # Bytes waiting, kept as counters each written by one thread only: no update is ever lost.
        self._bytes_queued = self._bytes_dropped = 0  # by the event loop
        self._bytes_taken = self._unwritten_bytes = 0  # by the writer
        self._channels: dict[tuple[str, str], tuple[int, str | None]] = {}  # the writer's cache of channel ids
        self._db: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="history-read")  # small reads
        self._heavy_readers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-read-heavy")
        self.error: str | None = None
        self.last_write: float | None = None
        self._dropped_waiting = 0  # counted on the event loop
        self._dropped_unwritten = 0  # counted by the writer

    @classmethod
    def from_config(cls, config: Config, config_file: Path) -> HistoryRecorder | None:
        if config.history is None:
            return None
        return cls(resolve(config_file, config.history.path), config.history)

    def start(self) -> None:
        """Open the database, bringing an older file up to date, and start the writer thread.

        Raises StoreTooNew for a file of a newer release (the process must not start on it); any other
        failure to open is logged and retried each interval, as a failed write is."""
        try:
            self._open()
        except StoreTooNew:
            raise
        except Exception as exc:
            self._failed(exc)
        log.info("recording history to %s (a batch every %g s; kept %g days, up to %g MB)", self.path,
                 self.settings.interval, self.settings.max_age_days, self.settings.max_size_mb)
        self._thread.start()

    def close(self) -> None:
        """Write what is waiting and stop (blocks: call it off the event loop)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * history_db.BUSY_TIMEOUT + 1)
        self._readers.shutdown(wait=False, cancel_futures=True)
        self._heavy_readers.shutdown(wait=False, cancel_futures=True)

    def record(self, event: dict[str, Any]) -> None:
        """Queue one published event (called on the event loop: an append and a size, no more)."""
        size = approximate_bytes(event)
        self._waiting.append((event, size))
        self._bytes_queued += size
        while len(self._waiting) > MAX_WAITING or self._waiting_bytes() > MAX_WAITING_BYTES:
            try:
                _, dropped = self._waiting.popleft()  # the oldest go first
            except IndexError:  # the writer has just taken them all
                break
            self._bytes_dropped += dropped
            self._dropped_waiting += 1

    def _waiting_bytes(self) -> int:
        return self._bytes_queued - self._bytes_dropped - self._bytes_taken + self._unwritten_bytes

    def status(self) -> dict[str, Any]:
        """For /health and /metrics: recording or not (and why), the last batch written, values lost."""
        return {"enabled": True, "recording": self.error is None, "error": self.error, "last_write": self.last_write,
                "waiting": len(self._waiting) + len(self._unwritten),
                "dropped": self._dropped_waiting + self._dropped_unwritten}

    async def read(self, module: str, attribute: str, unit: str | None, declared: bool, query: HistoryQuery,
                   deadline: float) -> dict[str, Any] | None:
        """The reply to a history request; None when `attribute` is neither declared nor ever recorded."""
        loop = asyncio.get_running_loop()
        where = f"{module}.{attribute}"
        try:
            try:
                return await loop.run_in_executor(self._readers, self._read, module, attribute, unit, declared, query,
                                                  deadline, False)
            except _Heavy:
                return await loop.run_in_executor(self._heavy_readers, self._read, module, attribute, unit, declared,
                                                  query, deadline, True)
        except _Exceeded as exc:
            raise self._exceeded(where, query, exc.args[0]) from None
        except (sqlite3.Error, StoreTooNew) as exc:
            raise HistoryUnavailable(f"the history of {where} cannot be read: {exc}") from None

    def _exceeded(self, where: str, query: HistoryQuery, what: str) -> HistoryTooLarge | DeadlineExceeded:
        if what == "time":
            return DeadlineExceeded(f"reading the history of {where} did not finish in time; ask for a shorter range")
        narrower = "a shorter range (since/until)" + (" or fewer points (limit)" if query.every is None else
                                                      "; with `every`, each value in the range is read")
        return HistoryTooLarge(f"this query of the history of {where} would read more than "
                               f"{self.settings.max_query_rows:,} recorded values, the most one query may read "
                               f"(history.max_query_rows); ask for {narrower}")

    def _read(self, module: str, attribute: str, unit: str | None, declared: bool, query: HistoryQuery,
              deadline: float, heavy: bool) -> dict[str, Any] | None:
        """The reply, read in at most about SMALL_ROWS rows (else _Heavy), or max_query_rows when `heavy`."""
        max_rows = self.settings.max_query_rows if heavy else SMALL_ROWS
        budget = history_db.ReadBudget(deadline, max_rows)
        if time.time() > deadline:  # waited in the queue until its client gave up
            raise _Exceeded("time")
        db = history_db.open_for_reading(self.path, budget)
        points: list[list[Any]] = []
        cursor = None
        try:
            found = history_db.find_channel(db, module, attribute) if db is not None else None
            if found is not None and db is not None:
                unit = unit if declared else found[1]
                rows = history_db.rows_to_read(db, found[0], query, max_rows)
                if not heavy and (rows is None or rows > max_rows):
                    raise _Heavy
                if rows is not None and rows > max_rows:
                    raise _Exceeded("rows")
                points, cursor = history_db.read(db, found[0], query)
        except sqlite3.OperationalError:
            if budget.exceeded is None:
                raise
            raise _Exceeded(budget.exceeded) from None
        finally:
            if db is not None:
                db.close()
        if found is None and not declared:
            return None
        reply: dict[str, Any] = {"module": module, "attribute": attribute, "unit": unit, "points": points}
        if query.every is not None:
            reply["every"] = query.every
        if query.page is not None:
            reply["next"] = cursor
        return reply

    # -- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval):
            self._write_waiting()
        self._write_waiting()  # the last batch, on the way out
        if self._db is not None:
            self._db.close()
        lost = len(self._waiting) + len(self._unwritten)
        if lost:
            log.error("history: %d values could not be recorded before stopping", lost)

    def _take_waiting(self) -> list[tuple[dict[str, Any], int]]:
        taken = []
        for _ in range(len(self._waiting)):
            item = self._waiting.popleft()
            self._bytes_taken += item[1]
            taken.append(item)
        return taken

    def _write_waiting(self) -> None:
        batch = self._unwritten + self._take_waiting()
        try:
            db = self._db or self._open()
            rows = [(self._channel(db, s[0], s[1], s[2]), s[3], s[4])
                    for s in map(sample_of, (event for event, _ in batch)) if s is not None]
            if rows:
                history_db.insert(db, rows)
            batch = self._unwritten = []  # written: a failing retention below must not write it again
            self._unwritten_bytes = 0
            history_db.apply_retention(db, time.time() - self.settings.max_age_days * 86400,
                                       self.settings.max_size_mb * 1e6)
        except Exception as exc:  # whatever goes wrong, requests go on: log once, keep the newest, retry
            self._unwritten = newest_within(batch, MAX_WAITING, MAX_WAITING_BYTES)
            self._unwritten_bytes = sum(size for _, size in self._unwritten)
            self._dropped_unwritten += len(batch) - len(self._unwritten)
            self._failed(exc)
            return
        self.last_write = time.time()
        if self.error is not None:
            log.warning("history: recording again to %s", self.path)
            self.error = None

    def _open(self) -> sqlite3.Connection:
        self._db = history_db.open_for_writing(self.path)
        self._channels.clear()
        return self._db

    def _channel(self, db: sqlite3.Connection, module: str, attribute: str, unit: str | None) -> int:
        known = self._channels.get((module, attribute))
        if known is None or known[1] != unit:
            known = (history_db.channel_id(db, module, attribute, unit), unit)
            self._channels[(module, attribute)] = known
        return known[0]

    def _failed(self, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, (sqlite3.Error, OSError)) else str(exc)
        if self.error is None:
            log.error("history: not recording to %s: %s; requests are not affected, the newest values (up to %d, "
                      "about %d MiB) wait in memory and recording resumes when it can", self.path, reason, MAX_WAITING,
                      MAX_WAITING_BYTES // (1024 * 1024))
        self.error = reason
        if self._db is not None:  # open afresh next time: the file or its folder may have been fixed meanwhile
            self._db.close()
            self._db = None


class _Heavy(Exception):
    """A read is too large for the small-read threads: the heavy-read thread answers it."""


class _Exceeded(Exception):
    """A read ran out of its budget: args[0] is "time" or "rows" (history_db.ReadBudget.exceeded)."""


def approximate_bytes(event: dict[str, Any]) -> int:
    """About how much memory an event holds: a small dict, plus its text and anything structured in it."""
    size = EVENT_BYTES
    for part in event.values():
        if isinstance(part, str):
            size += len(part)
        elif isinstance(part, (dict, list)):  # an invocation, with its arguments and result
            try:
                size += len(orjson.dumps(part, default=repr))
            except orjson.JSONEncodeError:  # nested too deep to encode: count it as large
                size += MAX_WAITING_BYTES // 100
    return size


def newest_within(items: Iterable[tuple[Any, int]], count: int, size: int) -> list[tuple[Any, int]]:
    """The newest of (item, bytes) pairs, oldest first, that fit in `count` items and `size` bytes."""
    kept: list[tuple[Any, int]] = []
    total = 0
    for item in reversed(list(items)):
        if len(kept) == count or total + item[1] > size:
            break
        kept.append(item)
        total += item[1]
    return kept[::-1]


def sample_of(event: dict[str, Any]) -> Sample | None:
    """What an event records: (module, attribute, unit, time, stored value), or None for nothing.

    A value event records its value; a failed read records NULL (a gap); an event carrying an
    "invocation" records the invocation under its action's name once it has finished.
    """
    when = event.get("time")
    t = float(when) if isinstance(when, (int, float)) else time.time()
    invocation = event.get("invocation")
    if isinstance(invocation, dict):
        module, action = invocation.get("module", event.get("module")), invocation.get("action")
        if invocation.get("status") not in FINISHED or not isinstance(module, str) or not isinstance(action, str):
            return None
        finished = invocation.get("finished")
        return (module, action, None, float(finished) if isinstance(finished, (int, float)) else t,
                history_db.stored(invocation))
    module, attribute = event.get("module"), event.get("attribute")
    if not isinstance(module, str) or not isinstance(attribute, str):
        return None
    unit = event.get("unit")
    return (module, attribute, unit if isinstance(unit, str) else None, t,
            None if "error" in event else history_db.stored(event.get("value")))
