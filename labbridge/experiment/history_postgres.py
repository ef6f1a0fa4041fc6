"""PostgresStore: the history in a PostgreSQL database that several experiment processes (lab PCs) share.

One table holds every value, tagged with the experiment process that recorded
it (`history.source`, default the host name), its module and attribute, so
Grafana's PostgreSQL data source reads the whole lab with plain SQL:

    labbridge_history (source, module, attribute, t timestamptz, value float8, json text)
        PRIMARY KEY (source, module, attribute, t)
    labbridge_channels (source, module, attribute, unit)

A number goes into `value` (SQL takes min/max/mean itself), anything else into
`json` as its JSON text; both NULL is a failed read (a gap).  Inserts are
`ON CONFLICT DO NOTHING` on the primary key, so a batch written again after its
commit's reply was lost (the server went away mid-commit) is written once.
When the TimescaleDB extension is installed in the database the table is made
a hypertable on `t` (untested here: Debian has no TimescaleDB package).

Connections: the writer thread keeps one (reopened after a failure, the
recorder backs off between attempts); each read opens its own with a
statement timeout at the request's deadline.  The password comes from libpq's
own places (PGPASSWORD, a password file), never from config.yml
(core/database_url.py); a password file other users may read is refused.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

from labbridge.core.config import ConfigError, HistorySettings, resolve
from labbridge.core.history_query import HistoryQuery
from labbridge.experiment.history_store import Found, ReadExceeded, Sample, StoreUnreadable

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # checked in from_settings, which names what to install
    psycopg = None  # type: ignore[assignment]

CONNECT_TIMEOUT = 2  # seconds a connection attempt may take (on the writer thread, never the event loop)
WRITE_TIMEOUT_MS = 10_000  # a write the server does not finish in this long fails and is retried
INSTALL = "pip install 'psycopg[binary]>=3.2,<4'"
SCHEMA = (
    "SELECT pg_advisory_xact_lock(hashtext('labbridge_history'))",  # two processes starting at once: one creates
    "CREATE TABLE IF NOT EXISTS labbridge_history (source text NOT NULL, module text NOT NULL, "
    "attribute text NOT NULL, t timestamptz NOT NULL, value double precision, json text, "
    "PRIMARY KEY (source, module, attribute, t))",
    "CREATE INDEX IF NOT EXISTS labbridge_history_by_time ON labbridge_history (t)",  # retention, lab-wide queries
    "CREATE TABLE IF NOT EXISTS labbridge_channels (source text NOT NULL, module text NOT NULL, "
    "attribute text NOT NULL, unit text, PRIMARY KEY (source, module, attribute))",
)
HYPERTABLE = "SELECT create_hypertable('labbridge_history', 't', if_not_exists => TRUE, migrate_data => TRUE)"
INSERT = ("INSERT INTO labbridge_history (source, module, attribute, t, value, json) "
          "VALUES (%s, %s, %s, to_timestamp(%s), %s, %s) ON CONFLICT DO NOTHING")
UPSERT_CHANNEL = ("INSERT INTO labbridge_channels (source, module, attribute, unit) VALUES (%s, %s, %s, %s) "
                  "ON CONFLICT (source, module, attribute) DO UPDATE SET unit = excluded.unit")


class PostgresStore:
    """The HistoryStore of one PostgreSQL database, writing as `source`."""

    close_timeout = CONNECT_TIMEOUT + WRITE_TIMEOUT_MS / 1000 + 1

    def __init__(self, url: str, source: str, passfile: Path | None) -> None:
        self.url, self.source, self.where = url, source, f"{url} as {source}"
        self._params: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "application_name": f"labbridge {source}"}
        if passfile is not None:
            self._params["passfile"] = str(passfile)
        self._db: Any = None  # psycopg.Connection, the writer thread's
        self._units: dict[tuple[str, str], str | None] = {}  # channels this connection wrote, with their unit

    @classmethod
    def from_settings(cls, settings: HistorySettings, config_file: Path) -> PostgresStore:
        """Raises ConfigError without psycopg, or with a password file other users may read."""
        if psycopg is None:
            raise ConfigError(f"history.url names a PostgreSQL database, which needs psycopg 3: {INSTALL}")
        assert settings.url is not None
        passfile = resolve(config_file, settings.passfile) if settings.passfile else None
        check_passfile(passfile)
        return cls(settings.url, settings.source or socket.gethostname(), passfile)

    def _connect(self, **options: Any) -> Any:
        return psycopg.connect(self.url, **self._params, **options)

    def open(self) -> None:
        self.close_writer()
        db = self._connect(options=f"-c statement_timeout={WRITE_TIMEOUT_MS}")
        try:
            with db.transaction():
                for statement in SCHEMA:
                    db.execute(statement)
                if db.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
                    db.execute(HYPERTABLE)
        except BaseException:
            db.close()
            raise
        self._db = db
        self._units.clear()

    def close_writer(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def write(self, samples: list[Sample]) -> None:
        if self._db is None:
            self.open()
        db = self._db
        channels = {(m, a): u for m, a, u, _, _ in samples if self._units.get((m, a), "") != u}
        with db.transaction(), db.cursor() as cursor:
            if channels:
                cursor.executemany(UPSERT_CHANNEL, [(self.source, m, a, u) for (m, a), u in channels.items()])
            cursor.executemany(INSERT, [(self.source, m, a, t, *_columns(v)) for m, a, _, t, v in samples])
        self._units.update(channels)

    def apply_retention(self, oldest: float, max_bytes: float) -> None:
        """Values of every source older than `oldest` go (one process of the lab does this: history.retention);
        the size bound is SQLite's alone: PostgreSQL reuses the space of deleted rows itself."""
        if self._db is None:
            self.open()
        with self._db.transaction():
            self._db.execute("DELETE FROM labbridge_history WHERE t < to_timestamp(%s)", (oldest,))

    def read(self, module: str, attribute: str, query: HistoryQuery, max_rows: int, heavy: bool,
             deadline: float) -> Found | None:
        from labbridge.experiment import history_pg_read

        left_ms = max(1, int((deadline - time.time()) * 1000))
        try:
            with self._connect(options=f"-c statement_timeout={left_ms} -c default_transaction_read_only=on") as db:
                return history_pg_read.read(db, (self.source, module, attribute), query, max_rows, heavy)
        except pg_errors.QueryCanceled:
            raise ReadExceeded("time") from None
        except pg_errors.UndefinedTable:  # nothing was ever recorded into this database
            return None
        except psycopg.Error as exc:
            raise StoreUnreadable(str(exc).strip() or type(exc).__name__) from None


def _columns(stored: Any) -> tuple[float | None, str | None]:
    """(value, json) of a value as history_db.stored gives it: a number, None, or JSON text."""
    return (None, stored) if isinstance(stored, str) else (stored, None)


def check_passfile(passfile: Path | None) -> None:
    """ConfigError if the password file (the given one, else libpq's default) exists and other users may read it."""
    path = passfile or Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    if passfile is not None and not path.is_file():
        raise ConfigError(f"history.passfile: {path} does not exist")
    if os.name != "posix" or not path.is_file():
        return
    mode = path.stat().st_mode
    if mode & 0o077:
        raise ConfigError(f"{path} holds database passwords that other users may read (mode "
                          f"{stat.S_IMODE(mode):o}): run `chmod 600 {path}`")
