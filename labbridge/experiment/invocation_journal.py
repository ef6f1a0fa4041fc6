"""InvocationJournal: what the experiment process must remember of its invocations across a crash.

Invocations live in memory.  So that one running when the process dies is
reported `lost` after a restart, never silently forgotten, each invocation is
written to `<data_dir>/invocations.jsonl` when it is accepted and again when it
ends, each line flushed and fsynced before going on.  At start, `recover` reads
the file: an invocation with a start and no end was running when the process
died, and becomes `lost`.  The file is then rewritten (atomically) with only
the lost ones, kept as start and end records, so it stays small and they are
still reported after a further restart.  A torn last line, as a kill in the
middle of a write leaves, is skipped.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from labbridge.core.config import ConfigError

log = logging.getLogger(__name__)

FILE_NAME = "invocations.jsonl"
# Lost invocations remembered at most (the newest are kept).
KEEP_LOST = 1000
_START_FIELDS = ("id", "module", "action", "arguments", "created", "started")


class InvocationJournal:
    """An append-only, fsynced record of the invocations that were accepted and that ended."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._fd: int | None = None

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
            elif kind == "end" and ident in started:
                if record.get("status") == "lost":
                    started[ident]["finished"] = record.get("finished")
                else:
                    del started[ident]
        lost = sorted(started.values(), key=lambda r: r.get("created") or 0)[-KEEP_LOST:]
        for record in lost:
            record["finished"] = record.get("finished") or now
        self._rewrite(lost)
        return lost

    def started(self, record: dict[str, Any]) -> None:
        self._append({"event": "start", **{k: record[k] for k in _START_FIELDS}})

    def ended(self, ident: str, status: str, finished: float) -> None:
        self._append({"event": "end", "id": ident, "status": status, "finished": finished})

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        os.write(self._fd, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        os.fsync(self._fd)

    def _rewrite(self, lost: list[dict[str, Any]]) -> None:
        self.close()
        lines = b"".join(
            orjson.dumps({"event": "start", **{k: r[k] for k in _START_FIELDS}}, option=orjson.OPT_APPEND_NEWLINE)
            + orjson.dumps({"event": "end", "id": r["id"], "status": "lost", "finished": r["finished"]},
                           option=orjson.OPT_APPEND_NEWLINE)
            for r in lost)
        temporary = self.path.with_suffix(".tmp")
        try:
            with open(temporary, "wb") as file:
                file.write(lines)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
            if sys.platform != "win32":  # make the rename itself durable
                directory = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
        except OSError as exc:
            raise ConfigError(f"data_dir: cannot write {self.path}: {exc.strerror}") from None
