"""The run queue: runs of procedures, one at a time, in the experiment process, with nobody connected.

`submit` checks the procedure's parameters (422 naming the first bad one)
before anything is stored, then files the run `queued`.  While the queue is
started its worker takes the oldest queued run and:

1. claims the attributes the procedure `drives` (Invocations.hold).  If an
   action or another holder has one, the run does not start: it ends
   `failed` with a 409-like error naming the holder (it never waits, so a
   queue never stalls silently behind a forgotten action);
2. takes a snapshot of every module's scalar attributes, runs the procedure in
   a task of its own, writes its points every `runs.interval` seconds, and
   on its end a second snapshot and the outcome:
   `completed`, `stopped` (`RunStopped` from a checkpoint after a stop),
   `aborted` (its task was cancelled by DELETE: at once, at whatever await
   it was in; the procedure's `finally` still runs), or `failed` (it raised:
   the message, and the traceback's last lines);
3. releases the claim.  A failed run stops the queue unless
   `runs.continue_after_failure` is set.

The queue starts stopped whenever the process starts (`queue_start`), so a
lab PC that reboots never drives hardware by itself; the run that a crash
cut short is `interrupted` (run_store.py).  Pause and stop are requests the
procedure sees at its next `checkpoint()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labbridge import __version__
from labbridge.core.action import MAX_WAIT
from labbridge.core.config import RunSettings
from labbridge.core.errors import (
    AlreadyFinished,
    BridgeError,
    InvalidValue,
    MalformedRequest,
    RunsUnavailable,
    UnknownProcedure,
    UnknownRun,
    WrongRunState,
)
from labbridge.core.protocol import Request
from labbridge.experiment.invocation import current_holder
from labbridge.experiment.lab_handle import Run, RunStopped
from labbridge.experiment.procedure import ProcedureSpec
from labbridge.experiment.run_retention import keep_within
from labbridge.experiment.run_store import PROVENANCE, SUMMARY, RunStore

if TYPE_CHECKING:
    from labbridge.experiment.experiment import Experiment

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "paused", "completed", "stopped", "failed", "aborted", "interrupted")
FINISHED = frozenset({"completed", "stopped", "failed", "aborted", "interrupted"})
# How long DELETE waits for an aborted run's clean-up before answering (the clean-up goes on regardless).
ABORT_WAIT = 2.0
# How long a clean stop of the process gives an aborted run's clean-up.
STOP_GRACE = 3.0
SNAPSHOT_TIMEOUT = 10.0


@dataclass(eq=False)
class QueuedRun:
    """A run not yet finished: its state in memory (the store has its record), its points not yet written."""

    id: str
    procedure: str
    parameters: dict[str, Any]
    metadata: dict[str, Any]
    created: float
    queued_by: str | None = None
    role: str | None = None
    status: str = "queued"
    progress: float | None = None
    message: str | None = None
    started: float | None = None
    finished: float | None = None
    error: dict[str, str] | None = None
    points: int = 0
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    unwritten: list[tuple[int, float, dict[str, Any]]] = field(default_factory=list)
    pause_requested: bool = False
    stop_requested: bool = False
    task: asyncio.Task[tuple[str, dict[str, str] | None]] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set once its outcome is on record
    _resumed: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "procedure": self.procedure, "parameters": self.parameters, "metadata": self.metadata,
                "status": self.status, "progress": self.progress, "message": self.message,
                "queued_by": self.queued_by, "created": self.created, "started": self.started,
                "finished": self.finished, "points": self.points, "error": self.error}

    def busy_text(self) -> str:
        return (f"run {self.id} ({self.procedure}, {self.status}); stop it with POST /runs/{self.id}/stop "
                f"or abort it with DELETE /runs/{self.id}")

    def set_status(self, status: str) -> None:
        self.status = status
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, seen: str, timeout: float) -> None:
        if self.status != seen or timeout <= 0:
            return
        changed = self._changed
        try:
            async with asyncio.timeout(timeout):
                await changed.wait()
        except TimeoutError:
            pass

    def report(self, fraction: float | None, message: str | None) -> None:
        if fraction is not None and not math.isnan(fraction):
            self.progress = round(min(1.0, max(0.0, float(fraction))), 4)
        if message is not None:
            self.message = str(message)[:1000]

    def note_column(self, name: str, value: Any, unit: str | None) -> None:
        if name in self.columns:
            return
        kind = ("array" if isinstance(value, np.ndarray) else "bool" if isinstance(value, bool)
                else "str" if isinstance(value, str) else "number")
        self.columns[name] = {"unit": unit, "kind": kind}
        if kind == "array":  # JSON carries numbers only: the client restores the array's dtype from this
            self.columns[name]["dtype"] = str(value.dtype)

    def add_point(self, t: float, values: dict[str, Any]) -> int:
        n = self.points
        self.unwritten.append((n, t, values))
        self.points += 1
        return n

    async def checkpoint(self) -> None:
        if self.stop_requested:
            raise RunStopped
        if self.pause_requested:
            self._resumed.clear()
            self.set_status("paused")
            await self._resumed.wait()
            self.set_status("running")
        if self.stop_requested:
            raise RunStopped


class RunQueue:
    """The queued runs, the worker that runs them, and the store that keeps them."""

    def __init__(self, experiment: Experiment, procedures: dict[str, ProcedureSpec], store: RunStore,
                 settings: RunSettings | None = None, config_text: str = "") -> None:
        self.experiment = experiment
        self.procedures = procedures
        self.store = store
        self.settings = settings or RunSettings()
        self.config_text = config_text
        self.started = False  # the worker takes queued runs
        self.stop_after_current = False
        self.problem: str | None = None  # why the store cannot be used
        self._queued: list[QueuedRun] = []
        self._current: QueuedRun | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None  # run_retention.py, when config.yml bounds the runs
        self._run_ended = asyncio.Event()  # wakes the retention

    @classmethod
    def for_experiment(cls, experiment: Experiment, procedures: dict[str, ProcedureSpec], data_dir: Path,
                       settings: RunSettings, config_file: Path) -> RunQueue:
        try:
            config_text = config_file.read_text(encoding="utf-8")
        except OSError:
            config_text = ""
        return cls(experiment, procedures, RunStore(data_dir), settings, config_text)

    async def start(self) -> None:
        """Open the store (ending what a crash cut short); the queued runs wait for `queue_start`."""
        try:
            records = await asyncio.to_thread(self.store.open)
        except OSError as exc:
            self.problem = f"{self.store.path} cannot be used ({exc})"
            log.error("runs cannot be queued: %s", self.problem)
            return
        for record in records:
            self._queued.append(QueuedRun(record["id"], record["procedure"], record["parameters"],
                                          record["metadata"], record["created"], record["queued_by"]))
        if records:
            log.info("%d run(s) still queued; the queue starts with POST /runs/queue/start", len(records))
        self._worker = asyncio.create_task(self._work())
        if self.settings.max_age_days is not None or self.settings.max_size_mb is not None:
            self._retention = asyncio.create_task(keep_within(self.store, self.settings, self._run_ended))

    async def close(self) -> None:
        current = self._current
        if current is not None and current.task is not None:
            current.message = "aborted: the experiment process is stopping"
            current.task.cancel()
            await asyncio.wait([current.task], timeout=STOP_GRACE)
        for task in (self._worker, self._retention):
            if task is not None:
                task.cancel()
                await asyncio.wait([task], timeout=STOP_GRACE)
        await asyncio.to_thread(self.store.close)

    def describe_procedures(self) -> dict[str, Any]:
        return {"procedures": {name: spec.describe() for name, spec in self.procedures.items()}}

    # Queueing -----------------------------------------------------------------------------------------------

    async def submit(self, payload: dict[str, Any], request: Request) -> dict[str, Any]:
        self._check_usable()
        name, parameters, metadata = payload.get("procedure"), payload.get("parameters", {}), payload.get("metadata", {})
        spec = self.procedure(name)
        if not isinstance(parameters, dict):
            raise MalformedRequest('"parameters" must be a JSON object, like {"steps": 11}')
        if not isinstance(metadata, dict):
            raise MalformedRequest('"metadata" must be a JSON object, like {"sample": "A12"}')
        checked = spec.check(parameters)
        run = QueuedRun(uuid.uuid4().hex, spec.name, checked, metadata, time.time(), request.identity, request.role)
        record = {**run.public(), "seq": await asyncio.to_thread(self.store.next_seq), "axes": list(spec.axes),
                  "source": spec.source, "source_hash": spec.source_hash, "version": __version__,
                  "config": self.config_text}
        record.pop("error")
        try:
            await asyncio.to_thread(self.store.insert, record)
        except Exception as exc:  # sqlite3.Error or OSError: nothing was queued
            raise RunsUnavailable(f"the run could not be stored in {self.store.path} ({exc}); nothing was queued") from None
        self._queued.append(run)
        self._wake.set()
        log.info("run %s: %s(%s) queued by %s", run.id, spec.name, checked, request.identity or request.client)
        return run.public()

    def procedure(self, name: Any) -> ProcedureSpec:
        spec = self.procedures.get(name) if isinstance(name, str) else None
        if spec is None:
            known = ", ".join(self.procedures) or "none (config.yml declares them under procedures:)"
            raise UnknownProcedure(f"no procedure {name!r}; known: {known}")
        return spec

    # Reading ------------------------------------------------------------------------------------------------

    async def get(self, ident: Any, wait: Any, until: float) -> dict[str, Any]:
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_WAIT:
            raise InvalidValue(f"wait must be 0 to {MAX_WAIT:g} s; got {wait!r}")
        live = self._live(ident)
        if live is not None and wait > 0:
            await live.wait_for_change(live.status, min(wait, until - time.time()))
        record = await self._record(ident)
        if live is not None and live.status not in FINISHED:  # memory is newer than the store
            record.update(live.public())
            record["columns"] = dict(live.columns)
        return {**{key: record.get(key) for key in (*SUMMARY, *PROVENANCE)}, "href": f"/runs/{record['id']}"}

    async def list(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._check_usable()
        status, procedure, text = payload.get("status"), payload.get("procedure"), payload.get("q")
        if status is not None and status not in STATUSES:
            raise InvalidValue(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
        limit = payload.get("limit", 100)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidValue(f"limit must be 1 to 10000; got {limit!r}")
        rows = await asyncio.to_thread(self.store.list_runs, status, procedure, text, limit)
        for row in rows:
            live = self._live(row["id"])
            if live is not None and live.status not in FINISHED and (status is None or live.status == status):
                row.update(live.public())
            row["href"] = f"/runs/{row['id']}"
        return {"runs": rows}

    async def data(self, ident: Any, since: Any, limit: Any) -> dict[str, Any]:
        """Points `since` and after (at most `limit`), columnar: time, and each column's values, with units."""
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidValue(f"since must be a point number, 0 or more; got {since!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise InvalidValue(f"limit must be 1 to 100000; got {limit!r}")
        record = await self._record(ident)
        live = self._live(ident)
        columns = dict(live.columns) if live is not None else (record.get("columns") or {})
        points = await asyncio.to_thread(self.store.points, record["id"], since, limit)
        if live is not None:  # the points recorded since the last write to disk
            seen = {n for n, _, _ in points}
            points += [p for p in list(live.unwritten) if p[0] >= since and p[0] not in seen][:limit - len(points)]
        total = live.points if live is not None else record["points"]
        status = live.status if live is not None else record["status"]
        return {"id": record["id"], "procedure": record["procedure"], "status": status, "parameters": record["parameters"], "metadata": record["metadata"],
                "axes": record.get("axes") or [], "columns": columns, "since": since,
                "next": since + len(points), "total": total,
                "point": [n for n, _, _ in points], "time": [t for _, t, _ in points],
                "values": {name: [values.get(name) for _, _, values in points] for name in columns}}

    def queue_status(self) -> dict[str, Any]:
        return {"started": self.started, "stop_after_current": self.stop_after_current,
                "continue_after_failure": self.settings.continue_after_failure,
                "current": None if self._current is None else self._current.id,
                "queued": [run.id for run in self._queued]}

    # Control ------------------------------------------------------------------------------------------------

    def queue_start(self) -> dict[str, Any]:
        self._check_usable()
        self.started, self.stop_after_current = True, False
        self._wake.set()
        log.info("the run queue is started")
        return self.queue_status()

    def queue_stop(self) -> dict[str, Any]:
        """Take no further run once the current one (if any) has ended."""
        if self._current is None:
            self.started = False
        else:
            self.stop_after_current = True
        return self.queue_status()

    async def control(self, ident: Any, what: Any, until: float) -> dict[str, Any]:
        live = self._live(ident)
        if live is None:
            record = await self._record(ident)  # UnknownRun if there is none
            raise AlreadyFinished(f"run {record['id']} has already finished ({record['status']})")
        if what == "abort":
            return await self._abort(live, until)
        if live.status == "queued":
            raise WrongRunState(f"run {live.id} is queued, not running: DELETE /runs/{live.id} removes it")
        if what == "pause":
            live.pause_requested = True
        elif what == "resume":
            if not live.pause_requested:
                raise WrongRunState(f"run {live.id} is {live.status}, not paused")
            live.pause_requested = False
            live._resumed.set()
        elif what == "stop":
            live.stop_requested = True
            live._resumed.set()  # a paused run stops at the checkpoint it waits in
        else:
            raise MalformedRequest(f"a run can be paused, resumed, stopped or aborted; not {what!r}")
        return live.public()

    async def _abort(self, run: QueuedRun, until: float) -> dict[str, Any]:
        if run.status == "queued":  # removed: it never ran
            self._queued.remove(run)
            await asyncio.to_thread(self.store.delete, run.id)
            run.set_status("aborted")
            return {**run.public(), "status": "removed"}
        if run.task is not None:
            run.stop_requested = True
            run.task.cancel()  # at once, wherever it waits; its finally runs
            with contextlib.suppress(TimeoutError):  # answered then anyway: the clean-up goes on
                async with asyncio.timeout(max(0.0, min(ABORT_WAIT, until - time.time()))):
                    await run.ended.wait()  # the clean-up has run and the outcome is on record
        return run.public()

    # Running ------------------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            if not self.started or not self._queued:
                self._wake.clear()
                await self._wake.wait()
                continue
            run = self._queued.pop(0)
            self._current = run
            try:
                await self._execute(run)
            except Exception:  # the store failed: the queue stops, the process goes on
                log.exception("run %s could not be carried out", run.id)
                self.started = False
            finally:
                self._current = None
            if run.status == "failed" and not self.settings.continue_after_failure:
                self.started = False
                log.warning("the run queue stopped: run %s failed (POST /runs/queue/start goes on)", run.id)
            if self.stop_after_current:
                self.started, self.stop_after_current = False, False

    async def _execute(self, run: QueuedRun) -> None:
        spec = self.procedures.get(run.procedure)
        if spec is None:  # queued before a restart with another config.yml
            await self._end(run, "failed", {"error": UnknownProcedure.code, "message": f"config.yml no longer "
                                            f"declares the procedure {run.procedure!r}"})
            return
        try:
            self.experiment.invocations.hold(run, spec.drives)
        except BridgeError as exc:
            await self._end(run, "failed", {"error": exc.code, "message": exc.detail})
            return
        try:
            run.started = time.time()
            run.set_status("running")
            await asyncio.to_thread(self.store.update, run.id, status="running", started=run.started,
                                    snapshot_start=await self._snapshot())
            run.task = asyncio.create_task(self._call(run, spec))
            writer = asyncio.create_task(self._write_points(run))
            try:
                await asyncio.wait([run.task])
            finally:
                writer.cancel()
            status, error = ("aborted", None) if run.task.cancelled() else run.task.result()
        finally:
            self.experiment.invocations.release_held(run)
        await self._end(run, status, error)

    async def _call(self, run: QueuedRun, spec: ProcedureSpec) -> tuple[str, dict[str, str] | None]:
        """Run the procedure in this task (its context names the run as the holder of its claim)."""
        current_holder.set(run)
        try:
            await spec.function(Run(self.experiment, run), **run.parameters)
        except RunStopped:
            return "stopped", None
        except asyncio.CancelledError:
            return "aborted", None
        except BridgeError as exc:
            return "failed", {"error": exc.code, "message": exc.detail, "traceback": _summary(exc)}
        except Exception as exc:  # a bug in the procedure: say what, keep serving
            log.exception("run %s (%s) failed", run.id, run.procedure)
            return "failed", {"error": "procedure_failed", "message": f"{type(exc).__name__}: {exc}",
                              "traceback": _summary(exc)}
        return ("stopped" if run.stop_requested else "completed"), None

    async def _write_points(self, run: QueuedRun) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            await self._flush(run)

    async def _flush(self, run: QueuedRun, **fields: Any) -> None:
        batch, run.unwritten = run.unwritten, []
        try:
            await asyncio.to_thread(self.store.add_points, run.id, batch, points=run.points, columns=run.columns,
                                    progress=run.progress, message=run.message, **fields)
        except BaseException:
            run.unwritten[:0] = batch  # tried again at the next interval
            raise

    async def _end(self, run: QueuedRun, status: str, error: dict[str, str] | None) -> None:
        run.finished = time.time()
        run.error = error
        if status == "completed":
            run.progress = 1.0
        snapshot = await self._snapshot() if run.started is not None else None
        await self._flush(run, status=status, finished=run.finished, error=error, snapshot_end=snapshot)
        run.set_status(status)
        run.ended.set()
        self._run_ended.set()
        log.info("run %s (%s) %s%s", run.id, run.procedure, status, f": {error['message']}" if error else "")

    async def _snapshot(self) -> dict[str, Any]:
        """Every module's scalar attributes as read now (a module that cannot answer: its error)."""
        snapshot: dict[str, Any] = {}
        for name in self.experiment.modules:
            request = Request.new("get", name, "attributes", timeout=SNAPSHOT_TIMEOUT)
            try:
                snapshot[name] = (await self.experiment.handle(request))["attributes"]
            except BridgeError as exc:
                snapshot[name] = {"error": exc.code, "message": exc.detail}
        return snapshot

    def _live(self, ident: Any) -> QueuedRun | None:
        if self._current is not None and self._current.id == ident:
            return self._current
        return next((run for run in self._queued if run.id == ident), None)

    async def _record(self, ident: Any) -> dict[str, Any]:
        self._check_usable()
        record = await asyncio.to_thread(self.store.get, ident) if isinstance(ident, str) else None
        if record is None:
            raise UnknownRun(f"no run {ident!r}")
        return record

    def _check_usable(self) -> None:
        if self.problem is not None:
            raise RunsUnavailable(f"runs cannot be queued or read: {self.problem}")


def _summary(exc: BaseException) -> str:
    """The last frames of a traceback, enough to find the line in the procedure."""
    return "".join(traceback.format_exception(exc, limit=-3)).strip()[-2000:]
