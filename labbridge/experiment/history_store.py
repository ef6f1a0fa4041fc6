"""HistoryStore: what the recorder (history.py) needs of a database, so SQLite and PostgreSQL are interchangeable.

The recorder owns the buffering, batching, retrying and the read threads; a
store owns only its SQL: writing a batch of samples on the writer thread,
deleting old ones (retention), and answering one history query on a read
thread within a budget of rows and a deadline.  history_sqlite.py and
history_postgres.py implement it; `open_store` picks one from config.yml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from labbridge.core.config import HistorySettings, resolve
from labbridge.core.history_query import Cursor, HistoryQuery

Sample = tuple[str, str, "str | None", float, Any]  # module, attribute, unit, time, value as stored
Found = tuple["str | None", list[list[Any]], "Cursor | None"]  # the recorded unit, the points, the next page


class NeedsHeavyRead(Exception):
    """A read would go through more rows than a small read may: the recorder sends it to the heavy-read thread."""


class ReadExceeded(Exception):
    """A read ran out of its budget: args[0] is "rows" or "time"."""


class StoreUnreadable(Exception):
    """The database cannot be read (down, locked, of a newer release): the message says why."""


class HistoryStore(Protocol):
    """One history database: written by one thread, read by several."""

    where: str  # for log lines: the file or the database URL
    close_timeout: float  # how long a last write may take when the process stops

    def open(self) -> None:
        """Open (or reopen) the writing connection, creating or migrating the schema; raises on failure."""

    def write(self, samples: list[Sample]) -> None:
        """Write one batch in one transaction; a batch written twice (after a lost reply) is written once."""

    def apply_retention(self, oldest: float, max_bytes: float) -> None:
        """Delete values older than `oldest` (Unix time), and the oldest beyond `max_bytes` where supported."""

    def close_writer(self) -> None:
        """Close the writing connection, if open (after a failure, or on the way out)."""

    def read(self, module: str, attribute: str, query: HistoryQuery, max_rows: int, heavy: bool,
             deadline: float) -> Found | None:
        """The unit and points `query` asks for; None if nothing of module.attribute was ever recorded.

        Raises NeedsHeavyRead (more than `max_rows` rows and not `heavy`), ReadExceeded, StoreUnreadable."""


def open_store(settings: HistorySettings, config_file: Path) -> HistoryStore:
    """The store config.yml's `history:` names: PostgreSQL with `url`, else SQLite at `path`.

    Raises ConfigError when PostgreSQL is asked for and cannot be used (psycopg missing, an open passfile)."""
    if settings.url is not None:
        from labbridge.experiment.history_postgres import PostgresStore  # imports psycopg: only when asked for

        return PostgresStore.from_settings(settings, config_file)
    from labbridge.experiment.history_sqlite import SqliteStore

    return SqliteStore(resolve(config_file, settings.path))
