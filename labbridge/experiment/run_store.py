"""The run store: every run of a procedure with its provenance and points, in SQLite (WAL) plus .npy files.

`runs.sqlite3` in config.yml's `data_dir`, a file of its own (the history's
writer never waits for it).  Two tables: `runs`, one row per run (procedure,
source text and hash, parameters, metadata, who queued it, times, status,
progress, error, the config.yml in force, the bridge's version, the snapshot
of every module's scalar attributes at start and end, the recorded columns
with their units) and `points`, one row per recorded point (run, number,
time, the values as JSON).  An array is not put in the database: it is
written to `runs/<run id>/<point>-<column>.npy` beside it (npy_file.py: the
bytes of `np.save`, a large array past the page cache), and the point
holds `{"npy": path, "dtype": ..., "shape": [...]}` in its place.

Writes come from the run queue, batched (points at most every
`runs.interval`), through one connection guarded by a lock and used from
worker threads (`asyncio.to_thread`); reads share it.  WAL and
`synchronous=NORMAL` keep every committed batch through a kill -9.  The
file's layout has a version (core/store_version.py): an older file is
migrated on open, a newer one refused.

`open` also ends what a crash left: a run that was running or paused becomes
`interrupted` (its points kept); queued runs stay queued.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from labbridge.core.store_version import migrate_sqlite
from labbridge.experiment.npy_file import write_npy
from labbridge.experiment.run_state import FINISHED

FILE_NAME = "runs.sqlite3"
ARRAY_FOLDER = "runs"
_JSON_FIELDS = ("parameters", "metadata", "error", "columns", "axes", "snapshot_start", "snapshot_end")
# The fields every listing shows; the detail adds the provenance.
SUMMARY = ("id", "procedure", "parameters", "metadata", "status", "progress", "message", "queued_by", "created",
           "started", "finished", "points", "error")
# What one page of points (GET /runs/<id>/data) may cost as JSON, estimated from its arrays' sizes: a run of
# camera frames is read a frame or two per page.  All at once, 49 frames of 8 MB were 900 MB of JSON that the
# experiment process built for seconds, holding its event loop, only to refuse it as over max_reply_bytes.
PAGE_BYTES = 16 * 1024 * 1024
PROVENANCE = ("axes", "columns", "source", "source_hash", "version", "config", "snapshot_start", "snapshot_end")


def _to_v1(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, procedure TEXT NOT NULL, "
               "parameters TEXT NOT NULL, metadata TEXT NOT NULL, status TEXT NOT NULL, progress REAL, message TEXT, "
               "queued_by TEXT, created REAL NOT NULL, started REAL, finished REAL, points INTEGER NOT NULL DEFAULT 0, "
               "error TEXT, axes TEXT, columns TEXT, source TEXT, source_hash TEXT, version TEXT, config TEXT, "
               "snapshot_start TEXT, snapshot_end TEXT)")
    db.execute("CREATE INDEX runs_by_status ON runs (status, seq)")
    db.execute("CREATE TABLE points (run TEXT NOT NULL, n INTEGER NOT NULL, t REAL NOT NULL, data TEXT NOT NULL, "
               "PRIMARY KEY (run, n)) WITHOUT ROWID")


# Step n brings a file of version n to n + 1; a change of layout appends a step (never edits one).
MIGRATIONS = (_to_v1,)
SCHEMA_VERSION = len(MIGRATIONS)


class RunStore:
    """The runs and their points on disk; every method blocks (call it from a worker thread)."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir
        self.path = data_dir / FILE_NAME
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def open(self) -> list[dict[str, Any]]:
        """Open (migrating an older file), mark the runs a crash cut short `interrupted`; the queued runs, in order."""
        self.folder.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate_sqlite(db, self.path, MIGRATIONS)
            db.execute("UPDATE runs SET status = 'interrupted', finished = ?, message = ? "
                       "WHERE status IN ('running', 'paused')",
                       (time.time(), "the experiment process stopped while this ran; its points up to then are kept"))
        except BaseException:
            db.close()
            raise
        self._db = db
        return [_row(r) for r in self._query("SELECT * FROM runs WHERE status = 'queued' ORDER BY seq", ())]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def next_seq(self) -> int:
        rows = self._query("SELECT coalesce(max(seq), 0) + 1 AS seq FROM runs", ())
        return int(rows[0]["seq"])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one transaction, committed when the block ends, rolled back if it raises."""
        with self._lock:
            db = self._connection()
            db.execute("BEGIN")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def insert(self, record: dict[str, Any]) -> None:
        """A new run (a dict of the `runs` columns)."""
        names = list(record)
        values = [_cell(name, record[name]) for name in names]
        self._execute(f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values)

    def update(self, run_id: str, **fields: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._execute(f"UPDATE runs SET {assignments} WHERE id = ?",
                      [*(_cell(name, value) for name, value in fields.items()), run_id])

    def delete(self, run_id: str) -> None:
        self._execute("DELETE FROM runs WHERE id = ?", [run_id])

    def finished_runs(self) -> list[tuple[str, float]]:
        """(id, when it ended) of every finished run, the oldest first."""
        rows = self._query("SELECT id, coalesce(finished, created) AS ended FROM runs "
                           f"WHERE status IN ({', '.join('?' * len(FINISHED))}) ORDER BY ended, seq", tuple(sorted(FINISHED)))
        return [(str(r["id"]), float(r["ended"])) for r in rows]

    def remove(self, run_id: str) -> None:
        """A run, its points and its files, gone (retention: never one that is queued or running)."""
        with self._transaction() as db:
            db.execute("DELETE FROM points WHERE run = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.run_folder(run_id), ignore_errors=True)

    def used_bytes(self) -> int:
        """What the database's content takes (pages in use, not those freed by deletions)."""
        with self._lock:
            db = self._connection()
            page_size, pages, free = (db.execute(f"PRAGMA {name}").fetchone()[0]
                                      for name in ("page_size", "page_count", "freelist_count"))
        return int(page_size * (pages - free))

    def reorder(self, run_ids: list[str]) -> None:
        """Hand the sequence numbers of the runs `run_ids` out again in this order, in one transaction: the
        queue's order after a move, kept across a restart (`open` lists the queued runs by seq)."""
        with self._transaction() as db:
            marks = ", ".join("?" * len(run_ids))
            found = dict(db.execute(f"SELECT id, seq FROM runs WHERE id IN ({marks})", run_ids).fetchall())
            kept = [run_id for run_id in run_ids if run_id in found]  # one deleted meanwhile is left out
            db.executemany("UPDATE runs SET seq = ? WHERE id = ?", zip(sorted(found.values()), kept))

    def add_points(self, run_id: str, batch: list[tuple[int, float, dict[str, Any]]], **fields: Any) -> None:
        """Append points (number, time, values; arrays written to .npy files first) and update the run, at once."""
        folders: set[str] = set()
        rows = [(run_id, n, t, orjson.dumps(self._stored(run_id, n, values, folders)).decode())
                for n, t, values in batch]
        assignments = "".join(f", {name} = ?" for name in fields)
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO points (run, n, t, data) VALUES (?, ?, ?, ?)", rows)
            if fields:
                db.execute(f"UPDATE runs SET id = id{assignments} WHERE id = ?",
                           [*(_cell(name, value) for name, value in fields.items()), run_id])

    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _row(rows[0]) if rows else None

    def list_runs(self, status: str | None, procedure: str | None, text: str | None, limit: int) -> list[dict[str, Any]]:
        """Runs, newest first, filtered by status, procedure and text in their metadata (case-insensitive)."""
        where, args = [], []
        for clause, value in (("status = ?", status), ("procedure = ?", procedure),
                              ("instr(lower(metadata), lower(?)) > 0", text)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = (f"SELECT {', '.join(SUMMARY)} FROM runs{' WHERE ' + ' AND '.join(where) if where else ''} "
               "ORDER BY seq DESC LIMIT ?")
        return [_row(r) for r in self._query(sql, (*args, limit))]

    def loaded(self, points: list[tuple[int, float, dict[str, Any]]]) -> list[tuple[int, float, dict[str, Any]]]:
        """Points as stored (`stored_points`), their arrays read back as NumPy arrays."""
        return [(n, t, self._loaded(values)) for n, t, values in points]

    def stored_points(self, run_id: str, since: int, limit: int) -> list[tuple[int, float, dict[str, Any]]]:
        """Points as stored: an array is its reference `{"npy", "dtype", "shape"}` (`load_array` reads it)."""
        rows = self._query("SELECT n, t, data FROM points WHERE run = ? AND n >= ? ORDER BY n LIMIT ?",
                           (run_id, since, limit))
        return [(int(r["n"]), float(r["t"]), orjson.loads(r["data"])) for r in rows]

    def load_array(self, reference: dict[str, Any]) -> np.ndarray[Any, Any]:
        array: np.ndarray[Any, Any] = np.load(self.folder / reference["npy"], allow_pickle=False)
        return array

    def run_folder(self, run_id: str) -> Path:
        """Where a run's files are (its arrays, its exports); it may not exist."""
        return self.folder / ARRAY_FOLDER / run_id

    def _stored(self, run_id: str, n: int, values: dict[str, Any], folders: set[str]) -> dict[str, Any]:
        """The values as the point's row holds them, each array written to its file (`folders`: those made)."""
        stored: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, np.ndarray):
                relative = f"{ARRAY_FOLDER}/{run_id}/{n}-{name}.npy"
                if run_id not in folders:
                    self.run_folder(run_id).mkdir(parents=True, exist_ok=True)
                    folders.add(run_id)
                write_npy(self.folder / relative, value)
                value = {"npy": relative, "dtype": str(value.dtype), "shape": list(value.shape)}
            stored[name] = value
        return stored

    def _loaded(self, values: dict[str, Any]) -> dict[str, Any]:
        return {name: self.load_array(value) if isinstance(value, dict) else value for name, value in values.items()}

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the run store is not open")
        return self._db

    def _execute(self, sql: str, args: list[Any]) -> None:
        with self._lock:
            self._connection().execute(sql, args)

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._connection().execute(sql, args)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()


def _cell(name: str, value: Any) -> Any:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode() if name in _JSON_FIELDS else value


def _row(row: sqlite3.Row) -> dict[str, Any]:
    return {key: (orjson.loads(row[key]) if key in _JSON_FIELDS and row[key] is not None else row[key])
            for key in row.keys()}


def json_size(values: dict[str, Any]) -> int:
    """About the most bytes a point's values take as JSON: an array (or its stored reference) by its element
    count and item size; anything else a few dozen bytes."""
    size = 0
    for value in values.values():
        if isinstance(value, np.ndarray):
            count, itemsize = value.size, value.itemsize
        elif isinstance(value, dict):  # {"npy", "dtype", "shape"}
            count, itemsize = int(np.prod(value["shape"])), np.dtype(value["dtype"]).itemsize
        else:
            size += 32 + (len(value) * 2 if isinstance(value, str) else 0)
            continue
        size += count * (8 if itemsize <= 2 else 3 * itemsize + 4)  # "65535," or "-1.2345678901234567e-300,"
    return size


def within_page(points: list[tuple[int, float, dict[str, Any]]], budget: int = PAGE_BYTES) -> int:
    """How many of the first `points` a page holds: those whose JSON fits in `budget`, and always the first."""
    total = 0
    for count, (_, _, values) in enumerate(points):
        total += json_size(values)
        if total > budget and count > 0:
            return count
    return len(points)
