"""Upgrades: the files the previous release left on disk are read by this one and brought up to date; a
downgrade (files of a newer release) is refused with one line, leaving them untouched.

The previous release is the code at PREVIOUS (its stores carry no version).  It is not imitated: its own
experiment process runs from a `git archive` of that commit, records values, completes one invocation and
is killed during another; then the current one starts on the same data_dir.
"""

from __future__ import annotations

import io
import signal
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq

from labbridge.core.protocol import MISSING, Chunk, Request, decode_reply
from labbridge.core.store_version import sqlite_version
from labbridge.experiment import history_db
from labbridge.experiment.invocation_journal import FILE_NAME, SCHEMA_VERSION
from labbridge.experiment.process import EXIT_STARTUP
from tests.processes import ROOT, Process, backend_endpoint, start_backend, wait_until, write_config

PREVIOUS = "63c427a"  # the last release: no schema versions yet


def ask(endpoint: str, op: str, value: Any = MISSING, module: str | None = None,
        attribute: str | None = None) -> Any:
    """One request to an experiment process, of either release (the wire protocol did not change)."""
    request = Request.new(op, module, attribute, value, timeout=5.0)  # type: ignore[arg-type]
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REQ)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send(request.encode())
        assert sock.poll(5000), f"no answer to {op}"
        frames: list[Chunk] = list(sock.recv_multipart())
        return orjson.loads(decode_reply(frames, request.id))
    finally:
        sock.close()


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's files (as `git archive` gives them), to run its experiment process."""
    archive = subprocess.run(["git", "archive", "--format=tar", PREVIOUS], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"the previous release ({PREVIOUS}) is not in this checkout's git history")
    folder = tmp_path_factory.mktemp("previous")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Path]:
    """A lab folder whose config.yml records history and keeps invocations in data/: either release runs it."""
    yield write_config(tmp_path / "config.yml", {"sp": {"class": "setpoint.Setpoint"}}, data_dir="data",
                       history={"path": "data/history.sqlite3", "interval": 0.05})


def history_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        try:
            return int(db.execute("SELECT count(*) FROM samples").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


def run_previous_release(old: Path, config: Path, log: Path) -> tuple[str, str]:
    """Record values and invocations with the previous release, killed while an action runs:
    (the completed invocation's id, the one running when it died)."""
    proc = Process([sys.executable, "start_experiment.py", "--config", str(config)], log, cwd=old)
    try:
        endpoint = backend_endpoint(config)
        wait_until(lambda: not proc.alive() or _answers(endpoint), 20, "previous release ready")
        assert proc.alive(), proc.output
        ask(endpoint, "put", 3.5, "sp", "value")
        ask(endpoint, "put", "run 1", "sp", "label")
        done = ask(endpoint, "invoke", {"arguments": {"to": 4.0, "rate": 1000.0}}, "sp", "ramp")["id"]
        wait_until(lambda: ask(endpoint, "invocation", {"id": done})["status"] == "completed", 10, "ramp done")
        running = ask(endpoint, "invoke", {"arguments": {"to": 1e6, "rate": 1.0}}, "sp", "ramp")["id"]
        wait_until(lambda: ask(endpoint, "invocation", {"id": running})["status"] == "running", 10, "ramp running")
        history = config.parent / "data" / "history.sqlite3"
        wait_until(lambda: history_rows(history) >= 3, 10, "values recorded")
        proc.signal(signal.SIGKILL)  # dies mid-action: its journal has a start and no end
        proc.wait(5)
    finally:
        proc.stop()
    return done, running


def _answers(endpoint: str) -> bool:
    try:
        return ask(endpoint, "ping") is not None
    except AssertionError:
        return False


def test_the_previous_releases_history_and_journal_are_read_and_brought_up_to_date(
        previous_release: Path, lab: Path) -> None:
    data = lab.parent / "data"
    done, running = run_previous_release(previous_release, lab, lab.parent / "previous.log")
    with closing(sqlite3.connect(data / "history.sqlite3")) as db:
        assert sqlite_version(db) == 0  # the previous release wrote no version
    assert orjson.loads((data / FILE_NAME).read_bytes().splitlines()[0])["event"] == "start"  # nor a header

    backend = start_backend(lab, lab.parent / "current.log")
    try:
        endpoint = backend_endpoint(lab)
        points = ask(endpoint, "history", {}, "sp", "value")["points"]
        assert 3.5 in [value for _, value in points]  # what the previous release recorded
        assert [value for _, value in ask(endpoint, "history", {}, "sp", "label")["points"]] == ["run 1"]
        lost = ask(endpoint, "invocation", {"id": running})
        assert lost["status"] == "lost" and lost["arguments"] == {"to": 1e6, "rate": 1.0}
        assert lost["started"] is not None  # the previous release's `run` line was read
        # The previous release forgot ended invocations at each start (it kept no result for them): so does this.
        assert [i["id"] for i in ask(endpoint, "invocations", {})["invocations"]] == [running]
        assert done != running
        ask(endpoint, "put", 9.25, "sp", "value")  # and recording goes on in the migrated database
        wait_until(lambda: 9.25 in [v for _, v in ask(endpoint, "history", {}, "sp", "value")["points"]], 10,
                   "new value recorded")
    finally:
        backend.stop()
    with closing(sqlite3.connect(data / "history.sqlite3")) as db:
        assert sqlite_version(db) == history_db.SCHEMA_VERSION
    lines = (data / FILE_NAME).read_bytes().splitlines()
    assert orjson.loads(lines[0]) == {"schema": SCHEMA_VERSION}
    assert running.encode() in lines[1]


@pytest.mark.parametrize("store", ["history", "journal"])
def test_files_of_a_newer_release_stop_the_start_with_one_line_and_are_left_alone(lab: Path, store: str) -> None:
    data = lab.parent / "data"
    start_backend(lab, lab.parent / "first.log").stop()  # both files, in the current version
    if store == "history":
        with closing(sqlite3.connect(data / "history.sqlite3")) as db:
            db.execute("PRAGMA user_version = 99")
        newer = data / "history.sqlite3"
    else:
        lines = (data / FILE_NAME).read_bytes().splitlines(keepends=True)
        (data / FILE_NAME).write_bytes(b'{"schema": 99}\n' + b"".join(lines[1:]))
        newer = data / FILE_NAME
    before = contents(data)

    proc = Process([sys.executable, "start_experiment.py", "--config", str(lab)], lab.parent / "downgrade.log")
    try:
        assert proc.wait(20) == EXIT_STARTUP
    finally:
        proc.stop()
    errors = [line for line in proc.output.splitlines() if " ERROR " in line]
    assert errors == [errors[0]] and "Traceback" not in proc.output, proc.output
    assert str(newer) in errors[0] and "schema version 99" in errors[0] and \
        f"reads up to version {history_db.SCHEMA_VERSION if store == 'history' else SCHEMA_VERSION}" in errors[0]
    assert contents(data) == before  # not migrated down, not rewritten


def contents(data: Path) -> tuple[int, list[Any], list[Any], bytes]:
    """What the files hold: the database's version and rows (SQLite may touch its header on close), the journal."""
    with closing(sqlite3.connect(f"{(data / 'history.sqlite3').as_uri()}?mode=ro", uri=True)) as db:
        return (sqlite_version(db), db.execute("SELECT * FROM channels").fetchall(),
                db.execute("SELECT rowid, * FROM samples").fetchall(), (data / FILE_NAME).read_bytes())
