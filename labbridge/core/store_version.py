"""Schema versions of the files the bridge keeps on disk, and how each is brought up to date on start.

Lab PCs are upgraded rarely, often offline, sometimes skipping releases: every
file the bridge keeps and reads back (the history database, the invocation
journal, any store added later) carries the version of its layout, and each
start migrates an older file forward, step by step, before using it.

- An SQLite store keeps its version in `PRAGMA user_version`; `migrate_sqlite`
  runs the missing steps and sets the version in one transaction, so a crash
  or a full disk mid-way leaves the file as it was.
- A JSON Lines store starts with a header line `{"schema": N}`
  (`jsonl_header`, `jsonl_version`); a file without one is version 0 (written
  before versions).  It is migrated by writing the new file beside it
  and renaming it over the old one (`replace_file`).

A file written by a newer release than the running code is never read or
rewritten: `StoreTooNew` says, in one line, which file, both versions and what
to do, and the process does not start.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

SCHEMA_KEY = "schema"  # the one key of a JSON Lines store's header line


class StoreTooNew(Exception):
    """A file on disk was written by a newer release of the bridge than this one (a downgrade): it is left alone."""

    def __init__(self, path: Path, found: int, current: int) -> None:
        super().__init__(f"{path} has schema version {found}, written by a newer release of the bridge; this "
                         f"release reads up to version {current}: upgrade the bridge again, or move the file away "
                         f"to start a new one")
        self.path, self.found, self.current = path, found, current


def check_version(path: Path, found: int, current: int) -> None:
    """Raise StoreTooNew unless this code can read a file of version `found`."""
    if found > current:
        raise StoreTooNew(path, found, current)


def sqlite_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate_sqlite(db: sqlite3.Connection, path: Path,
                   steps: Sequence[Callable[[sqlite3.Connection], None]]) -> None:
    """Bring the database up to version len(steps): step n takes a file of version n to n + 1.

    One IMMEDIATE transaction holds the version check, every step and the new version, so another
    connection never sees half a migration and a failure leaves the file as it was.  `db` must be in
    autocommit mode (isolation_level=None); steps use execute(), never executescript() (which commits)."""
    current = len(steps)
    db.execute("BEGIN IMMEDIATE")
    try:
        found = sqlite_version(db)
        check_version(path, found, current)
        for step in steps[found:]:
            step(db)
        if found != current:
            db.execute(f"PRAGMA user_version = {current}")  # part of the transaction: written with the steps
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if found != current:
        log.info("%s: schema version %d brought up to %d", path, found, current)


def jsonl_header(version: int) -> bytes:
    """The first line of a JSON Lines store of `version`."""
    return orjson.dumps({SCHEMA_KEY: version}, option=orjson.OPT_APPEND_NEWLINE)


def jsonl_version(lines: list[bytes]) -> tuple[int, list[bytes]]:
    """A JSON Lines store's version and its records' lines: a file without a header line is version 0."""
    if lines:
        try:
            first: Any = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            return 0, lines
        if isinstance(first, dict) and isinstance(first.get(SCHEMA_KEY), int):
            return int(first[SCHEMA_KEY]), lines[1:]
    return 0, lines


def replace_file(path: Path, data: bytes) -> None:
    """Replace `path` by `data` atomically and durably: a crash leaves the old file or the new one, never half.

    The file is this user's alone (0600) whatever the umask."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    if sys.platform != "win32":  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
