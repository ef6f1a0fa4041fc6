"""InvocationJournal: what the experiment process remembers of its invocations across a restart or a crash.

Invocations live in memory.  So that a restart (a clean stop, `--reload`, a
crash) forgets none a client may still ask about, each invocation is written
to `<data_dir>/invocations.jsonl` when it is accepted (`start`), when its
action starts (`run`, with the time) and when it ends (`end`, with its final
status, progress, message, result and error), each line flushed and fsynced
before going on.  An invocation accepted and then refused after all (its audit
line could not be written, the process stopped mid-start) gets a `drop` line:
it never ran and is forgotten.  At start, `recover` reads the file: an
invocation with a start and no end was pending or running when the process
died, and becomes `lost` (its `started` says whether the action had begun;
`newly_lost` marks the ones this start found, not those an earlier start
reported already); one that ended is returned as it ended.  Of both, the
newest `kept` per module are kept (config.yml's `actions.history`).  The file
is then rewritten (atomically) with only those, as start and end records, so
they are still there after a further restart; it is rewritten the same way
(with the open ones too) every COMPACT_AFTER lines, so it stays small however
long the process runs.  A torn last line, as a kill in the middle of a write
leaves, is skipped.

The file starts with a header line `{"schema": SCHEMA_VERSION}`
(core/store_version.py).  One without it was written before versions
(version 0): its `end` lines carry only status and time, and those releases
forgot, on restart, every invocation that had not ended lost, so `recover`
keeps only the lost ones of such a file, then rewrites it (write-new-then-
rename) in the current version.  A file of a newer release is refused
(StoreTooNew) and left as it is.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from labbridge.core.audit import recordable
from labbridge.core.config import ConfigError
from labbridge.core.store_version import check_version, jsonl_header, jsonl_version, replace_file

log = logging.getLogger(__name__)

FILE_NAME = "invocations.jsonl"
# Finished (and lost) invocations remembered per module unless told otherwise (config.yml's actions.history).
KEPT = 100
# Lines after which the file is rewritten with only what must be kept.
COMPACT_AFTER = 10_000
_START_FIELDS = ("id", "module", "action", "arguments", "created", "started", "identity", "role", "client")
_END_FIELDS = ("status", "progress", "message", "result", "error", "finished")
# Version 1: the header line, and `end` lines with the whole final state (version 0: status and time only).
SCHEMA_VERSION = 1


class InvocationJournal:
    """An append-only, fsynced record of the invocations that were accepted and that ended."""

    def __init__(self, data_dir: Path, compact_after: int = COMPACT_AFTER, kept: int = KEPT) -> None:
        self.path = data_dir / FILE_NAME
        self.compact_after = compact_after
        self.kept = kept  # ended invocations remembered per module
        self._fd: int | None = None
        self._lock = threading.Lock()  # called from worker threads (the fsync is kept off the event loop)
        self._open: dict[str, dict[str, Any]] = {}  # accepted and not ended yet
        self._ended: dict[str, deque[dict[str, Any]]] = {}  # per module, the newest `kept`
        self._dropped: set[str] = set()  # withdrawn before their start line was written: it is not written
        self._lines = 0

    def recover(self, now: float) -> list[dict[str, Any]]:
        """The invocations that ended (as they ended) or never did (now lost), oldest first, the newest `kept` per
        module; then start a fresh file with them."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lines = self.path.read_bytes().splitlines() if self.path.exists() else []
        except OSError as exc:
            raise ConfigError(f"data_dir: cannot use {self.path.parent}: {exc.strerror}") from None
        version, records = jsonl_version(lines)
        check_version(self.path, version, SCHEMA_VERSION)  # a newer release's file: not read, not rewritten
        first = len(lines) - len(records) + 1  # the number of the first record's line, for the warnings
        started: dict[str, dict[str, Any]] = {}
        ended: list[dict[str, Any]] = []
        for number, line in enumerate(records, first):
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
                record = {**started.pop(ident), **{k: record.get(k) for k in _END_FIELDS}}
                if version >= 1 or record["status"] == "lost":  # version 0 kept only the lost ones
                    ended.append(record)
            elif kind == "drop":
                started.pop(ident, None)
        kept: dict[str, deque[dict[str, Any]]] = {}
        for record in sorted(ended, key=lambda r: r.get("created") or 0):
            kept.setdefault(record["module"], deque(maxlen=self.kept)).append(record)
        for record in started.values():  # never ended: the process died while they ran; each is reported, however old
            record.update(status="lost", finished=now, newly_lost=True)
            kept.setdefault(record["module"], deque(maxlen=self.kept)).append(record)
        with self._lock:
            self._ended, self._open = kept, {}
            try:
                self._rewrite()
            except OSError as exc:
                raise ConfigError(f"data_dir: cannot write {self.path}: {exc.strerror}") from None
        if version != SCHEMA_VERSION:
            log.info("%s: schema version %d brought up to %d", self.path, version, SCHEMA_VERSION)
        found = sorted((r for records in kept.values() for r in records), key=lambda r: r.get("created") or 0)
        return [{**r, "newly_lost": bool(r.get("newly_lost"))} for r in found]

    def started(self, record: dict[str, Any]) -> None:
        """An invocation accepted (not running yet): `record` holds _START_FIELDS."""
        entry = {k: record.get(k) for k in _START_FIELDS}
        with self._lock:
            if entry["id"] in self._dropped:  # withdrawn while this call waited for its thread
                self._dropped.discard(entry["id"])
                return
            self._open[record["id"]] = entry
            self._append({"event": "start", **entry})

    def running(self, ident: str, started: float) -> None:
        """Its action is about to run: a lost invocation then says it had started."""
        with self._lock:
            if ident in self._open:
                self._open[ident]["started"] = started
            self._append({"event": "run", "id": ident, "started": started})

    def ended(self, record: dict[str, Any]) -> None:
        """An invocation ended: `record` holds its final state (_START_FIELDS and _END_FIELDS), kept across restarts."""
        entry = {k: record.get(k) for k in (*_START_FIELDS, *_END_FIELDS)}
        try:
            orjson.dumps(entry["result"])
        except orjson.JSONEncodeError:  # kept as the audit log keeps such a value
            entry["result"] = recordable(entry["result"])
        with self._lock:
            self._open.pop(record["id"], None)
            self._ended.setdefault(record["module"], deque(maxlen=self.kept)).append(entry)
            self._append({"event": "end", "id": entry["id"], **{k: entry[k] for k in _END_FIELDS}})
            if self._lines >= self.compact_after:  # a process running for months keeps a small file
                self._rewrite()

    def dropped(self, ident: str) -> None:
        """An accepted invocation was refused after all (never ran): forget it, now and after a restart."""
        with self._lock:
            if self._open.pop(ident, None) is None:  # its start line is not written yet: it never will be
                self._dropped.add(ident)
                return
            self._append({"event": "drop", "id": ident})

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
            if os.fstat(self._fd).st_size == 0:  # removed since it was rewritten: a new file starts with its version
                os.write(self._fd, jsonl_header(SCHEMA_VERSION))
        os.write(self._fd, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        os.fsync(self._fd)
        self._lines += 1

    def _rewrite(self) -> None:
        """Replace the file, atomically, by the ended invocations kept and those still open."""
        self._close()
        records = [line for ended in self._ended.values() for record in ended for line in (
            {"event": "start", **{k: record.get(k) for k in _START_FIELDS}},
            {"event": "end", "id": record["id"], **{k: record.get(k) for k in _END_FIELDS}})]
        records += [{"event": "start", **entry} for entry in self._open.values()]
        replace_file(self.path, jsonl_header(SCHEMA_VERSION) +
                     b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records))
        self._lines = len(records)
