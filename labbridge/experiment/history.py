"""HistoryRecorder: every published event into the history database (history_store.py), off the event loop.

The experiment process publishes each value it polls or writes (and each failed
poll, and, with actions, each invocation's outcome) through
`ExperimentServer._publish`, which hands the event to `record` (a poll's
values, read together, to `record_values`): one append per value to a bounded
queue, nothing else on the event loop.  A writer thread wakes every
`history.interval` seconds, writes what has queued up in one transaction
(the store: SQLite, history_sqlite.py, or PostgreSQL, history_postgres.py)
and applies retention (when `history.retention`: with a database several
experiment processes share, one of them does it).  An attribute with an
archive policy (`history.archive`, archive_policy.py) records only the values
its policy keeps.  A process that crashes therefore loses
at most the last interval's values.

Nothing here may fail a request.  When the database cannot be written (a full
disk, another program holding a lock, a read-only folder), the recorder logs
one line, reports "not recording" (with the reason, `state: buffering` and how
many values wait) in `/health`, keeps the newest values in memory (about
`history.buffer_mb`, and one value per WAITING_BYTES_PER_VALUE of it: 8,000
labels of 4 KB once grew the process by 36 MiB; what overflows is dropped and
counted) and retries, waiting twice as long each time up to MAX_BACKOFF; it
logs once more when recording resumes.

Reads (`read`) run on their own threads with read-only connections, so a long
range never holds up the event loop or the writer, and each has a cost bound.
A read first counts, up to SMALL_ROWS, the rows it would go through: a small
one (a dashboard's few points) is answered there, on the two small-read
threads; any other goes to the one heavy-read thread, so heavy queries, however
many, never take the threads small ones need.  There it is counted up to
`history.max_query_rows` and refused past it (422 history_too_large, naming a
narrower range), and its statements are stopped if they do much more work than
that many rows or outlive the request (504).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from labbridge.core.action import FINISHED  # an invocation's outcome is recorded, its progress updates are not
from labbridge.core.config import Config, HistorySettings
from labbridge.core.errors import DeadlineExceeded, HistoryTooLarge, HistoryUnavailable
from labbridge.core.history_query import HistoryQuery
from labbridge.core.store_version import StoreTooNew
from labbridge.experiment import history_db
from labbridge.experiment.archive_policy import ArchivePolicy
from labbridge.experiment.history_store import (HistoryStore, NeedsHeavyRead, ReadExceeded, Sample, StoreUnreadable,
                                                open_store)

log = logging.getLogger(__name__)

WAITING_BYTES_PER_VALUE = 160  # the buffer holds at most one value per this many of its bytes (8 MiB: 52,428)
EVENT_BYTES = 300  # about what an event of a number costs in memory (a dict of a few small values)
SAMPLE_BYTES = 200  # about what a polled number's sample costs in memory (a tuple of five, its float)
SMALL_ROWS = 10_000  # a read going through at most this many rows is answered on the small-read threads
MAX_BACKOFF = 2.0  # seconds: the longest wait between two attempts to reach a database that went away
__all__ = ["HistoryRecorder", "Sample", "approximate_bytes", "newest_within", "sample_of"]


class HistoryRecorder:
    """Records published events into a HistoryStore in batches, and answers history queries."""

    def __init__(self, store: HistoryStore, settings: HistorySettings) -> None:
        self.store = store
        self.settings = settings
        self.max_bytes = int(settings.buffer_mb * 1024 * 1024)
        self.max_values = max(1, self.max_bytes // WAITING_BYTES_PER_VALUE)
        self.policy = ArchivePolicy(settings.archive)
        # (event or the sample it records, its approximate bytes): appended on the loop, drained by the writer.
        self._waiting: deque[tuple[dict[str, Any] | Sample, int]] = deque()
        # Bytes waiting, kept as counters each written by one thread only: no update is ever lost.
        self._bytes_queued = self._bytes_dropped = 0  # by the event loop
        self._bytes_taken = 0  # by the writer (less what a failed batch puts back)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="history-read")  # small reads
        self._heavy_readers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-read-heavy")
        self.error: str | None = None
        self.last_write: float | None = None
        self._failures = 0  # attempts failed in a row (the writer's): each waits twice as long, up to MAX_BACKOFF
        self._dropped_waiting = 0  # counted on the event loop
        self._dropped_by_writer = 0  # counted by the writer

    @classmethod
    def from_config(cls, config: Config, config_file: Path) -> HistoryRecorder | None:
        """None without `history:`; raises ConfigError when its database cannot be used at all."""
        if config.history is None:
            return None
        return cls(open_store(config.history, config_file), config.history)

    def start(self) -> None:
        """Open the database, bringing an older one up to date, and start the writer thread.

        Raises StoreTooNew for a database of a newer release (the process must not start on it); any other
        failure to open is logged and retried, as a failed write is."""
        try:
            self.store.open()
        except StoreTooNew:
            raise
        except Exception as exc:
            self._failed(exc)
        retention = (f"kept {self.settings.max_age_days:g} days, up to {self.settings.max_size_mb:g} MB"
                     if self.settings.does_retention else "retention left to another process")
        log.info("recording history to %s (a batch every %g s; %s)", self.store.where, self.settings.interval,
                 retention)
        self._thread.start()

    def close(self) -> None:
        """Write what is waiting and stop (blocks: call it off the event loop)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.store.close_timeout)
        self._readers.shutdown(wait=False, cancel_futures=True)
        self._heavy_readers.shutdown(wait=False, cancel_futures=True)

    def record(self, event: dict[str, Any]) -> None:
        """Queue one published event (called on the event loop: a policy look-up, an append and a size, no more)."""
        if self.policy and not self.policy.keeps(event):
            return
        size = approximate_bytes(event)
        self._waiting.append((event, size))
        self._bytes_queued += size
        self._drop_overflow()

    def record_values(self, module: str, time: float, readings: dict[str, dict[str, Any]]) -> None:
        """Queue the readings of one poll of `module` ({"value", "unit"} or {"error", "message"} per attribute),
        each as the event it is published as; without an archive policy, as the sample it records (what
        sample_of would make of that event, made here: a value costs the writer nothing more)."""
        if self.policy:
            for name, reading in readings.items():
                self.record({"module": module, "attribute": name, **reading, "time": time})
            return
        waiting, stored, queued = self._waiting, history_db.stored, 0
        for name, reading in readings.items():
            value = reading.get("value")
            unit = reading.get("unit")
            size = SAMPLE_BYTES + len(name) + (len(value) if isinstance(value, str) else 0)
            waiting.append(((module, name, unit if isinstance(unit, str) else None, time,
                             None if "error" in reading else stored(value)), size))
            queued += size
        self._bytes_queued += queued
        self._drop_overflow()

    def _drop_overflow(self) -> None:
        while len(self._waiting) > self.max_values or self._waiting_bytes() > self.max_bytes:
            try:
                _, dropped = self._waiting.popleft()  # the oldest go first
            except IndexError:  # the writer has just taken them all
                break
            self._bytes_dropped += dropped
            self._dropped_waiting += 1

    def _waiting_bytes(self) -> int:
        return self._bytes_queued - self._bytes_dropped - self._bytes_taken

    def status(self) -> dict[str, Any]:
        """For /health and /metrics: recording or buffering (and why), the last batch written, values lost."""
        waiting = len(self._waiting)
        return {"enabled": True, "recording": self.error is None, "state": "recording" if self.error is None else
                "buffering", "error": self.error, "last_write": self.last_write, "waiting": waiting,
                "dropped": self._dropped_waiting + self._dropped_by_writer}

    async def read(self, module: str, attribute: str, unit: str | None, declared: bool, query: HistoryQuery,
                   deadline: float) -> dict[str, Any] | None:
        """The reply to a history request; None when `attribute` is neither declared nor ever recorded."""
        loop = asyncio.get_running_loop()
        where = f"{module}.{attribute}"
        try:
            try:
                return await loop.run_in_executor(self._readers, self._read, module, attribute, unit, declared, query,
                                                  deadline, False)
            except NeedsHeavyRead:
                return await loop.run_in_executor(self._heavy_readers, self._read, module, attribute, unit, declared,
                                                  query, deadline, True)
        except ReadExceeded as exc:
            raise self._exceeded(where, query, exc.args[0]) from None
        except StoreUnreadable as exc:
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
        """The reply, read in at most about SMALL_ROWS rows (else NeedsHeavyRead), or max_query_rows when `heavy`."""
        if time.time() > deadline:  # waited in the queue until its client gave up
            raise ReadExceeded("time")
        max_rows = self.settings.max_query_rows if heavy else SMALL_ROWS
        found = self.store.read(module, attribute, query, max_rows, heavy, deadline)
        if found is None and not declared:
            return None
        recorded_unit, points, cursor = found if found is not None else (None, [], None)
        reply: dict[str, Any] = {"module": module, "attribute": attribute,
                                 "unit": unit if declared else recorded_unit, "points": points}
        if query.every is not None:
            reply["every"] = query.every
        if query.page is not None:
            reply["next"] = cursor
        return reply

    # -- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._next_wait()):
            self._write_waiting()
        self._write_waiting()  # the last batch, on the way out
        self.store.close_writer()
        lost = len(self._waiting)
        if lost:
            log.error("history: %d values could not be recorded before stopping", lost)

    def _next_wait(self) -> float:
        """The interval, or after failures twice as long per failure up to MAX_BACKOFF (a database that went away
        is not hammered, and one that returns is written to within MAX_BACKOFF)."""
        if not self._failures:
            return self.settings.interval
        backoff: float = self.settings.interval * 2.0 ** (self._failures - 1)
        return min(backoff, max(MAX_BACKOFF, self.settings.interval))

    def _take_waiting(self) -> list[tuple[dict[str, Any] | Sample, int]]:
        taken = []
        for _ in range(len(self._waiting)):
            try:
                item = self._waiting.popleft()
            except IndexError:  # the event loop dropped the oldest meanwhile
                break
            self._bytes_taken += item[1]
            taken.append(item)
        return taken

    def _write_waiting(self) -> None:
        batch = self._take_waiting()
        try:
            samples = [s for s in (item if isinstance(item, tuple) else sample_of(item) for item, _ in batch)
                       if s is not None]
            if samples:
                self.store.write(samples)
            batch = []  # written: a failing retention below must not write it again
            if self.settings.does_retention:
                self.store.apply_retention(time.time() - self.settings.max_age_days * 86400,
                                           self.settings.max_size_mb * 1e6)
        except Exception as exc:  # whatever goes wrong, requests go on: log once, keep the newest, retry
            # Back to the front of the queue, the oldest first: what arrives meanwhile pushes the oldest out, so
            # the buffer keeps the newest values (a separate retry list once kept the oldest, dropping the newest).
            kept = newest_within(batch, self.max_values, self.max_bytes)
            self._dropped_by_writer += len(batch) - len(kept)
            self._bytes_taken -= sum(size for _, size in kept)
            self._waiting.extendleft(reversed(kept))
            self._failed(exc)
            return
        self.last_write = time.time()
        self._failures = 0
        if self.error is not None:
            log.warning("history: recording again to %s", self.store.where)
            self.error = None

    def _failed(self, exc: Exception) -> None:
        reason = str(exc) or type(exc).__name__
        if type(exc).__module__ not in ("sqlite3", "builtins") and not type(exc).__module__.startswith("psycopg"):
            reason = f"{type(exc).__name__}: {exc}"
        if self.error is None:
            log.error("history: not recording to %s: %s; requests are not affected, the newest values (up to %d, "
                      "about %g MiB) wait in memory and recording resumes when it can", self.store.where, reason,
                      self.max_values, self.settings.buffer_mb)
        self.error = reason.strip()
        self._failures += 1
        self.store.close_writer()  # open afresh next time: the file, its folder or the server may have been fixed


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
                size += 80 * 1024  # about a hundredth of the default buffer
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
