"""AuditLog: every write that reaches an instrument is on disk first, and so is every write refused.

config.yml's top-level `audit_log` names one JSON Lines file.  Both processes
append to it, one `write()` per line on an O_APPEND descriptor, each line
fsynced before the code goes on:

- The experiment process owns the instruments, so it records every write that
  reaches it: a `started` line before the driver is called, then a `finished`
  line with the outcome once the driver is done.  A `started` line with no
  `finished` line of the same `id` means the process died in between: whether
  the instrument applied the value is unknown.  A write it turns down before
  calling the driver (invalid value, read-only, queue full, expired) is one
  `refused` line.
- The frontend records the writes it turns down itself, before anything is
  sent (no or wrong token, malformed or oversized body, a client gone
  mid-body): one `refused` line each.  And a write it sent whose answer never
  came because the experiment process went away: one `unanswered` line with
  the request's `id`.  A `started` line of that `id` means it reached the
  driver (outcome unknown); none means it never did.

- Safety notices (an alarm's change, a failed run, a trip, an acknowledgement,
  a safe state applied; experiment/safety/notices.py): one `notice` line
  each, `op` the notice's kind, its own fields in `after`, never awaited
  (`record_notice`).

Every line has the same keys (`time`, `id`, `op`, `stage`, `client`,
`identity`, `role` (the token's, see frontend/auth.py), `module`,
`attribute`, `requested`, `before`, `after`, `outcome`).
A value whose JSON is over `MAX_VALUE_BYTES`, or that cannot be written as
JSON at all, is recorded as `{"truncated": "<its start>", "bytes": <size>}`;
names are cut to MAX_NAME_CHARS, so no line is much over 5 KB.

Refusals cost the least an attacker can make them cost: of identical ones
(same client, identity, operation and reason) at most REFUSALS_PER_SECOND a
second are written in full; the rest of that second are counted, and the
count is written as one more `refused` line with `"repeated": <count>` (and
no module, attribute or value) when the second is over.  A flood of requests
without a token therefore adds a few lines a second, not one fsynced line
per request.  Safety notices are bounded alike, per kind, module and attribute
(or rule): an alarm flapping between ok and invalid writes at most
REFUSALS_PER_SECOND `notice` lines a second, then one with `"repeated"`.
Lines go through one writer thread per process, so they reach the file in the
order they were recorded and fsync never blocks the event loop.

A line the disk will not take (full, failing) is handled by what it is for: a
`started` line, which must be on disk before the instrument is called, raises
AuditUnavailable (503 audit_unavailable) so the write is refused and nothing
reaches the instrument; any other line (a refusal, an outcome) is logged to
the process's log instead, and the request's own answer stands.  A line cut
short by a full disk is taken back (or, failing that, ended before the next
one), so each line stays whole.

To record another kind of write (an action, say): build a `WriteAttempt`, call
`AuditLog.record_refusal` when it is turned down before it is sent, or
`AuditLog.record_write` to get an `AuditedWrite` whose `started` is awaited
just before the instrument is called and whose `finished` is awaited after.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import reprlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from labbridge.core.config import Config, ConfigError, resolve
from labbridge.core.errors import AuditUnavailable

log = logging.getLogger(__name__)

# A recorded value's JSON is cut to this many bytes (with its full size noted).
MAX_VALUE_BYTES = 4096
# Module and attribute names come from the URL: cut them too.
MAX_NAME_CHARS = 200
# Identical refusals written in full per second; the rest of the second are counted in one line.
REFUSALS_PER_SECOND = 10
# A notice's fields that have a key of their own in its line; the others go in `after`.
NOTICE_LINE_KEYS = frozenset({"kind", "module", "attribute", "identity", "previous", "time"})


@dataclass
class WriteAttempt:
    """Who asked for which write: the part every line of one write repeats."""

    op: str
    module: str | None
    attribute: str | None
    requested: Any = None
    client: str | None = None  # the client's address, as the frontend saw it
    identity: str | None = None  # the token's identity, when tokens are configured
    id: str | None = None  # the request's id on the ZeroMQ hop (None for what the frontend refused)
    role: str | None = None  # the identity's role ("read", "operate", "admin"), when tokens are configured


class AuditLog:
    """Appends audit lines to one JSON Lines file, fsynced, in the order they are recorded."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
        self._refusals: dict[tuple[str | None, str | None, str, str], _RefusalWindow] = {}  # this second's
        self._torn = False  # the last line was cut short (a full disk): the next one starts on a line of its own

    @classmethod
    def from_config(cls, config: Config, config_file: Path) -> AuditLog | None:
        """The audit log config.yml names (relative to its folder), or None; ConfigError if it cannot be opened."""
        if config.audit_log is None:
            return None
        path = resolve(config_file, config.audit_log)
        try:
            return cls(path)
        except OSError as exc:
            raise ConfigError(f"{config_file}: audit_log: cannot open {path}: {exc.strerror}") from None

    async def record_refusal(self, attempt: WriteAttempt, outcome: str) -> None:
        """Record a write turned down before anything was sent to the instrument; `outcome` is the error code.

        Past REFUSALS_PER_SECOND identical ones in a second, it is only counted (see the module's doc)."""
        if self._counted_only(attempt, "refused", outcome):
            return
        await self._append_or_log(self._line(attempt, "refused", outcome=outcome))

    def _counted_only(self, attempt: WriteAttempt, stage: str, outcome: str = "") -> bool:
        """True past REFUSALS_PER_SECOND identical lines in this second (refusals of one client, notices of one
        attribute or rule): counted, written as one line with `repeated` when the second is over."""
        if stage == "refused":
            key: tuple[str | None, str | None, str, str] = (attempt.client, attempt.identity, attempt.op, outcome)
        else:
            key = (attempt.module, attempt.attribute, attempt.op, stage)
        window = self._refusals.get(key)
        if window is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a tool, a test): nothing to count against
                return False
            window = self._refusals[key] = _RefusalWindow(attempt, outcome, stage=stage)
            loop.call_later(1.0, self._close_window, key)
        if window.written >= REFUSALS_PER_SECOND:
            window.repeated += 1
            return True
        window.written += 1
        return False

    async def record_unanswered(self, attempt: WriteAttempt, outcome: str) -> None:
        """An `unanswered` line: the write was sent and the experiment process went away before answering."""
        await self._append_or_log(self._line(attempt, "unanswered", outcome=outcome))

    async def record_outcome(self, attempt: WriteAttempt, outcome: str) -> None:
        """A `finished` line for a write whose `started` line an earlier run of the process wrote (an
        invocation lost when it died: outcome "lost")."""
        await self._append_or_log(self._line(attempt, "finished", outcome=outcome))

    def record_notice(self, notice: dict[str, Any]) -> None:
        """A safety notice (an alarm's change, a trip, an acknowledgement, a safe state, a failed run): one
        `notice` line with `op` its kind, queued for the writer thread (never awaited: a notice must not hold up
        the experiment); a line the disk does not take goes to the process's log."""
        attempt = WriteAttempt(str(notice.get("kind")), notice.get("module"),
                               notice.get("attribute", notice.get("rule")), identity=notice.get("identity"))
        if self._counted_only(attempt, "notice"):  # a flapping alarm: the rest of this second only counted
            return
        details = {k: v for k, v in notice.items() if k not in NOTICE_LINE_KEYS}
        line = self._line(attempt, "notice", before=notice.get("previous"), after=details,
                          outcome=notice.get("severity", notice.get("state")))
        self._submit(line).add_done_callback(partial(_logged_if_failed, self.path, line))

    def record_write(self, attempt: WriteAttempt) -> AuditedWrite:
        """The lines of one write that may reach the instrument: await `started`, then `finished`."""
        return AuditedWrite(self, attempt)

    def close(self) -> None:
        for key in list(self._refusals):  # refusals counted and not written yet
            self._close_window(key)
        self._writer.shutdown(wait=True)  # every line recorded so far reaches the file first
        os.close(self._fd)

    def _line(self, attempt: WriteAttempt, stage: str, *, before: Any = None, after: Any = None,
              outcome: str | None = None, repeated: int | None = None) -> bytes:
        line = {
            "time": time.time(), "id": attempt.id, "op": attempt.op, "stage": stage, "client": attempt.client,
            "identity": attempt.identity, "role": attempt.role, "module": _name(attempt.module),
            "attribute": _name(attempt.attribute),
            "requested": recordable(attempt.requested), "before": recordable(before), "after": recordable(after),
            "outcome": outcome,
        }
        if repeated is not None:  # a count of identical refusals not written one by one
            line["repeated"] = repeated
        return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)

    def _close_window(self, key: tuple[str | None, str | None, str, str]) -> None:
        window = self._refusals.pop(key, None)
        if window is not None and window.repeated and window.stage == "notice":  # its kind, module and attribute
            self._submit(self._line(window.attempt, "notice", repeated=window.repeated))
        elif window is not None and window.repeated:
            attempt = WriteAttempt(window.attempt.op, None, None, client=window.attempt.client,
                                   identity=window.attempt.identity, role=window.attempt.role)
            self._submit(self._line(attempt, "refused", outcome=window.outcome, repeated=window.repeated))

    def _submit(self, line: bytes) -> Future[None]:
        return self._writer.submit(self._write, line)

    async def _append(self, line: bytes) -> None:
        """Write `line`; AuditUnavailable if the disk does not take it."""
        try:
            # Shielded: a request cancelled meanwhile (a timeout, a shutdown) still gets its line written.
            await asyncio.shield(asyncio.wrap_future(self._submit(line)))
        except OSError as exc:
            raise AuditUnavailable(f"the audit log {self.path} cannot be written ({exc.strerror}); the write was "
                                   "refused and nothing reached the instrument") from None

    async def _append_or_log(self, line: bytes) -> None:
        """Write a line no instrument call waits for; one the disk does not take goes to the process's log."""
        try:
            await self._append(line)
        except AuditUnavailable as exc:
            log.error("%s; this line is not in it: %s", exc.detail.split(";")[0], line.decode().rstrip())

    def _write(self, line: bytes) -> None:
        if self._torn:  # end the line a full disk cut short, so this one is whole
            line = b"\n" + line
        # One write per line: O_APPEND keeps lines of both processes whole.
        written = os.write(self._fd, line)
        self._torn = False
        if written < len(line):  # the disk filled up mid-line: take the piece back, or end it with the next line
            try:
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            except OSError:
                self._torn = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(self._fd)


@dataclass
class _RefusalWindow:
    """Identical refusals within one second: how many were written in full, how many only counted."""

    attempt: WriteAttempt
    outcome: str
    written: int = 0
    repeated: int = 0
    stage: str = "refused"  # or "notice": a safety notice of one attribute or rule


class AuditedWrite:
    """One write's lines: `started` just before the instrument is called, `finished` once the outcome is known."""

    def __init__(self, log: AuditLog, attempt: WriteAttempt) -> None:
        self._log, self.attempt = log, attempt
        self._before: Any = None
        self.is_started = False
        self.is_done = False

    async def started(self, before: Any = None) -> None:
        """On disk before this returns: call it just before handing the value to the driver.  AuditUnavailable
        if the disk does not take it: then refuse the write (the instrument must not be called)."""
        self.is_started, self._before = True, before  # set first: a task cancelled meanwhile still writes the line
        try:
            await self._log._append(self._log._line(self.attempt, "started", before=before))
        except AuditUnavailable:
            self.is_started = False  # not on disk: its end is a refusal
            raise

    async def finished(self, outcome: str, after: Any = None) -> None:
        """The outcome: "ok" (with the value the instrument reports) or the error code.  A write
        that never started is recorded as refused.  A line the disk does not take is logged instead."""
        await self._log._append_or_log(self._final_line(outcome, after))

    def finished_soon(self, outcome: str) -> None:
        """`finished` for a task being cancelled: queued for the writer thread, not awaited."""
        self._log._submit(self._final_line(outcome, None))

    def _final_line(self, outcome: str, after: Any) -> bytes:
        self.is_done = True
        if not self.is_started:
            return self._log._line(self.attempt, "refused", outcome=outcome)
        return self._log._line(self.attempt, "finished", before=self._before, after=after, outcome=outcome)


def _logged_if_failed(path: Path, line: bytes, done: Future[None]) -> None:
    failure = done.exception()
    if failure is not None:
        log.error("the audit log %s cannot be written (%s); this line is not in it: %s", path, failure,
                  line.decode().rstrip())


def recordable(value: Any) -> Any:
    """`value` itself when its JSON is small, else `{"truncated": <start of its JSON or repr>, "bytes": <size>}`."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # nested deeper than JSON encoders go: keep a short, bounded repr
        return {"truncated": _SHORT.repr(value), "bytes": None}
    if len(encoded) <= MAX_VALUE_BYTES:
        return value
    return {"truncated": encoded[:MAX_VALUE_BYTES].decode("utf-8", errors="ignore"), "bytes": len(encoded)}


def _name(name: str | None) -> str | None:
    return name if name is None or len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS] + "..."


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxstring, _SHORT.maxother = 10, 10, 200, 200
