"""SqliteStore: the history in one SQLite file (the default: nothing to install); its SQL is in history_db.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from labbridge.core.history_query import HistoryQuery
from labbridge.core.store_version import StoreTooNew
from labbridge.experiment import history_db
from labbridge.experiment.history_store import Found, NeedsHeavyRead, ReadExceeded, Sample, StoreUnreadable


class SqliteStore:
    """The HistoryStore of one file: one writing connection (the writer thread's), a read-only one per read."""

    close_timeout = 2 * history_db.BUSY_TIMEOUT + 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._db: sqlite3.Connection | None = None
        self._channels: dict[tuple[str, str], tuple[int, str | None]] = {}  # the writer's cache of channel ids

    def open(self) -> None:
        """Raises StoreTooNew for a file of a newer release (the process must not start on it)."""
        self.close_writer()
        self._db = history_db.open_for_writing(self.path)
        self._channels.clear()

    def close_writer(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def write(self, samples: list[Sample]) -> None:
        if self._db is None:
            self.open()
        db = self._db
        assert db is not None
        rows = [(self._channel(db, module, attribute, unit), t, value) for module, attribute, unit, t, value in samples]
        if rows:
            history_db.insert(db, rows)

    def apply_retention(self, oldest: float, max_bytes: float) -> None:
        if self._db is None:
            self.open()
        assert self._db is not None
        history_db.apply_retention(self._db, oldest, max_bytes)

    def _channel(self, db: sqlite3.Connection, module: str, attribute: str, unit: str | None) -> int:
        known = self._channels.get((module, attribute))
        if known is None or known[1] != unit:
            known = (history_db.channel_id(db, module, attribute, unit), unit)
            self._channels[(module, attribute)] = known
        return known[0]

    def read(self, module: str, attribute: str, query: HistoryQuery, max_rows: int, heavy: bool,
             deadline: float) -> Found | None:
        budget = history_db.ReadBudget(deadline, max_rows)
        try:
            db = history_db.open_for_reading(self.path, budget)
            if db is None:
                return None
            try:
                found = history_db.find_channel(db, module, attribute)
                if found is None:
                    return None
                rows = history_db.rows_to_read(db, found[0], query, max_rows)
                if not heavy and (rows is None or rows > max_rows):
                    raise NeedsHeavyRead
                if rows is not None and rows > max_rows:
                    raise ReadExceeded("rows")
                points, cursor = history_db.read(db, found[0], query)
                return found[1], points, cursor
            finally:
                db.close()
        except sqlite3.OperationalError as exc:
            if budget.exceeded is not None:
                raise ReadExceeded(budget.exceeded) from None
            raise StoreUnreadable(str(exc)) from None
        except (sqlite3.Error, StoreTooNew) as exc:
            raise StoreUnreadable(str(exc)) from None
