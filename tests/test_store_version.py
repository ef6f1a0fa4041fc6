"""Schema versions of the stores (core/store_version.py): migrations are all-or-nothing, versions are read right."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import orjson
import pytest

from labbridge.core.store_version import StoreTooNew, jsonl_header, jsonl_version, migrate_sqlite, sqlite_version
from labbridge.experiment.invocation_journal import FILE_NAME, SCHEMA_VERSION, InvocationJournal


def _create_table(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE made (x)")


def _fail(db: sqlite3.Connection) -> None:
    raise sqlite3.OperationalError("database or disk is full")  # as a full disk mid-migration would


def test_a_failing_migration_step_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        with pytest.raises(sqlite3.OperationalError, match="full"):
            migrate_sqlite(db, path, (_create_table, _fail))
        assert sqlite_version(db) == 0
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'made'").fetchall() == []  # step 1 undone
        migrate_sqlite(db, path, (_create_table,))
        assert sqlite_version(db) == 1
        with pytest.raises(StoreTooNew, match=r"schema version 1, .* reads up to version 0"):
            migrate_sqlite(db, path, ())


def test_a_jsonl_file_without_a_header_is_version_0() -> None:
    record = b'{"event": "start", "id": "a"}'
    assert jsonl_version([record]) == (0, [record])
    assert jsonl_version([b'{"event": "sta']) == (0, [b'{"event": "sta'])  # torn: a record, not a header
    assert jsonl_version([jsonl_header(3).rstrip(), record]) == (3, [record])
    assert jsonl_version([]) == (0, [])


def test_a_journal_removed_while_the_process_runs_starts_again_with_its_version(tmp_path: Path) -> None:
    journal = InvocationJournal(tmp_path)
    journal.recover(time.time())
    (tmp_path / FILE_NAME).unlink()
    journal.started({"id": "a", "module": "winch", "action": "reel", "arguments": {}, "created": 1.0})
    lines = (tmp_path / FILE_NAME).read_bytes().splitlines()
    assert orjson.loads(lines[0]) == {"schema": SCHEMA_VERSION}  # else the next start would read it as version 0
    assert [r["id"] for r in InvocationJournal(tmp_path).recover(2.0)] == ["a"]
