"""InvocationJournal: what the experiment process must remember of its invocations across a crash.

Invocations live in memory.  So that one running when the process dies is
reported `lost` after a restart, never silently forgotten, each invocation is
written to `<data_dir>/invocations.jsonl` when it is accepted, when its action
starts (`run`, with the time) and when it ends, each line flushed and fsynced
before going on.  At start, `recover` reads the file: an invocation with a
start and no end was pending or running when the process died, and becomes
`lost` (its `started` says whether the action had begun; `newly_lost` marks
the ones this start found, not those an earlier start reported already).  The file is then rewritten (atomically) with only
the lost ones, kept as start and end records, so they are still reported after
a further restart; it is rewritten the same way (with the open ones too) every
COMPACT_AFTER lines, so it stays small however long the process runs.  A torn
last line, as a kill in the middle of a write leaves, is skipped.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import orjson

from labbridge.core.config import ConfigError

log = logging.getLogger(__name__)

FILE_NAME = "invocations.jsonl"
# Lost invocations remembered at most (the newest are kept).
KEEP_LOST = 1000
# Lines after which the file is rewritten with only what must be kept.
COMPACT_AFTER = 10_000
_START_FIELDS = ("id", "module", "action", "arguments", "created", "started", "identity", "role", "client")


class InvocationJournal:
    """An append-only, fsynced record of the invocations that were accepted and that ended."""

    def __init__(self, data_dir: Path, compact_after: int = COMPACT_AFTER) -> None:
        self.path = data_dir / FILE_NAME
        self.compact_after = compact_after
        self._fd: int | None = None
        self._lock = threading.Lock()  # called from worker threads (the fsync is kept off the event loop)
        self._open: dict[str, dict[str, Any]] = {}  # accepted and not ended yet
        self._lost: list[dict[str, Any]] = []
        self._lines = 0

    def recover(self, now: float) -> list[dict[str, Any]]:
        """The invocations that never ended (now lost) or ended lost before; then start a fresh file with them."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lines = self.path.read_bytes().splitlines() if self.path.exists() else []
        except OSError as exc:
            raise ConfigError(f"data_dir: cannot use {self.path.parent}: {exc.strerror}") from None
        started: dict[str, dict[str, Any]] = {}
        for number, line in enumerate(lines, 1):
            try:
                record = orjson.loads(line)
                kind, ident = record["event"], record["id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning("%s line %d is not a journal record (cut short by a crash?); skipped", self.path, number)
                continue
            if kind == "start":
                started[ident] = {k: record.get(k) for k in _START_FIELDS}
            elif kind == "run" and ident in started:
                started[ident]["started"] = record.get("started")
            elif kind == "end" and ident in started:
                if record.get("status") == "lost":
                    started[ident]["finished"] = record.get("finished")
                else:
                    del started[ident]
        lost = sorted(started.values(), key=lambda r: r.get("created") or 0)[-KEEP_LOST:]
        newly_lost = {record["id"] for record in lost if not record.get("finished")}
        for record in lost:
            record["finished"] = record.get("finished") or now
        with self._lock:
            self._lost, self._open = lost, {}
            try:
                self._rewrite()
            except OSError as exc:
                raise ConfigError(f"data_dir: cannot write {self.path}: {exc.strerror}") from None
        return [{**r, "newly_lost": r["id"] in newly_lost} for r in lost]

    def started(self, record: dict[str, Any]) -> None:
        """An invocation accepted (not running yet): `record` holds _START_FIELDS."""
        entry = {k: record.get(k) for k in _START_FIELDS}
        with self._lock:
            self._open[record["id"]] = entry
            self._append({"event": "start", **entry})

    def running(self, ident: str, started: float) -> None:
        """Its action is about to run: a lost invocation then says it had started."""
        with self._lock:
            if ident in self._open:
                self._open[ident]["started"] = started
            self._append({"event": "run", "id": ident, "started": started})

    def ended(self, ident: str, status: str, finished: float) -> None:
        with self._lock:
            self._open.pop(ident, None)
            self._append({"event": "end", "id": ident, "status": status, "finished": finished})
            if self._lines >= self.compact_after:  # a process running for months keeps a small file
                self._rewrite()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        os.fsync(self._fd)
        self._lines += 1

    def _rewrite(self) -> None:
        """Replace the file, atomically, by the lost invocations and those still open."""
        self._close()
        records = [record for lost in self._lost for record in (
            {"event": "start", **{k: lost[k] for k in _START_FIELDS}},
            {"event": "end", "id": lost["id"], "status": "lost", "finished": lost["finished"]})]
        records += [{"event": "start", **entry} for entry in self._open.values()]
        temporary = self.path.with_suffix(".tmp")
        # os.open: created for this user only, whatever the umask (open() would leave it to the umask).
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            file.write(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        if sys.platform != "win32":  # make the rename itself durable
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        self._lines = len(records)
