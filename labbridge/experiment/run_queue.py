"""The run queue: runs of procedures, one at a time, in the experiment process, with nobody connected.

`submit` checks the procedure's parameters (422 naming the first bad one)
before anything is stored, then files the run `queued`.  While the queue is
started its worker takes the first queued run and hands it to the
RunExecutor (run_execution.py), which carries it out and puts its outcome on
record.  A failed run stops the queue unless `runs.continue_after_failure`
is set.

The queue starts stopped whenever the process starts (`queue_start`), so a
lab PC that reboots never drives hardware by itself; the run that a crash
cut short is `interrupted` (run_store.py).  A store that cannot be opened at
start (a data_dir read-only, full, or not a folder) refuses every run
request with 503 `runs_unavailable`, and a run request tries to open it
again, at most once every RETRY_INTERVAL so a flood does not hammer the
disk: once it opens, its queued runs are loaded as at start (the queue
stopped), without restarting the process.  Pause and stop are requests the
procedure sees at its next `checkpoint()`.

A queued run can be moved to another place in the queue (`move`), and any
run queued again with the same parameters and metadata (`rerun`).  The
order is kept in the store (the runs' sequence numbers), so it survives a
restart.  Every change of a run (run_state.py) and of the queue is published
live on the events socket, as an invocation's is, under the module name
"runs": `{"module": "runs", "run": {...}}` and `{"module": "runs", "queue":
{...}}` (the same as GET /runs/queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labbridge import __version__
from labbridge.core.action import MAX_WAIT
from labbridge.core.config import RunSettings
from labbridge.core.errors import (
    AlreadyFinished,
    InvalidValue,
    MalformedRequest,
    RunsUnavailable,
    UnknownProcedure,
    UnknownRun,
    WrongRunState,
)
from labbridge.core.protocol import Request
from labbridge.experiment.procedure import ProcedureSpec
from labbridge.experiment.run_execution import RunExecutor
from labbridge.experiment.run_retention import keep_within
from labbridge.experiment.run_state import FINISHED, STATUSES, QueuedRun
from labbridge.experiment.run_store import PROVENANCE, SUMMARY, RunStore, within_page

if TYPE_CHECKING:
    from labbridge.experiment.experiment import Experiment

log = logging.getLogger(__name__)

# How long DELETE waits for an aborted run's clean-up before answering (the clean-up goes on regardless).
ABORT_WAIT = 2.0
# How long a clean stop of the process gives an aborted run's clean-up.
STOP_GRACE = 3.0
# The least time between two tries to open a run store that could not be opened.
RETRY_INTERVAL = 1.0


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
        self.retry_interval = RETRY_INTERVAL
        self._tried = 0.0  # time.monotonic() of the last failed try to open the store
        self._opening = asyncio.Lock()  # one try at a time, however many requests arrive meanwhile
        self._queued: list[QueuedRun] = []
        self._current: QueuedRun | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None  # run_retention.py, when config.yml bounds the runs
        self.executor = RunExecutor(experiment, store, self.settings)
        self._order_lock = asyncio.Lock()  # the order is written to the store one move at a time

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
        async with self._opening:
            await self._open()
        if self.problem is not None:
            log.error("runs cannot be queued: %s; each run request tries again (at most once every %g s)",
                      self.problem, self.retry_interval)

    async def ensure_usable(self) -> None:
        """Nothing if the store is open; else try to open it again (at most once every `retry_interval`), and
        RunsUnavailable naming what is wrong if it still cannot be."""
        if self.problem is None:
            return
        async with self._opening:
            if self.problem is not None and time.monotonic() >= self._tried + self.retry_interval:
                await self._open()
                if self.problem is None:
                    log.info("the run store opened at last: %s; runs can be queued", self.store.path)
                    self._publish_queue()  # the dashboard sees the runs still queued
        if self.problem is not None:
            raise RunsUnavailable(f"runs cannot be queued or read: {self.problem}; fix it: it is tried again on the "
                                  f"next run request (at most once every {self.retry_interval:g} s), no restart needed")

    async def _open(self) -> None:
        """One try to open the store; on success the queued runs are loaded and the worker starts."""
        try:
            records = await asyncio.to_thread(self.store.open)
        except (OSError, sqlite3.Error) as exc:  # a data_dir that cannot be written stops the runs, nothing else
            self.problem = f"{self.store.path} cannot be used ({exc})"
            self._tried = time.monotonic()
            return
        self.problem = None
        for record in records:
            self._queued.append(QueuedRun(record["id"], record["procedure"], record["parameters"],
                                          record["metadata"], record["created"], record["queued_by"],
                                          on_change=self._publish_run))
        if records:
            log.info("%d run(s) still queued; the queue starts with POST /runs/queue/start", len(records))
        self._worker = asyncio.create_task(self._work())
        if self.settings.max_age_days is not None or self.settings.max_size_mb is not None:
            self._retention = asyncio.create_task(keep_within(self.store, self.settings, self.executor.run_ended))

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
        await self.ensure_usable()
        unknown = sorted(set(payload) - {"procedure", "parameters", "metadata"})
        if unknown:  # a misspelt "parameters" must not queue a run with the defaults
            raise MalformedRequest(f'a run is {{"procedure", "parameters", "metadata"}}; unknown: {", ".join(unknown)}')
        name, parameters, metadata = payload.get("procedure"), payload.get("parameters", {}), payload.get("metadata", {})
        spec = self.procedure(name)
        if not isinstance(parameters, dict):
            raise MalformedRequest('"parameters" must be a JSON object, like {"steps": 11}')
        if not isinstance(metadata, dict):
            raise MalformedRequest('"metadata" must be a JSON object, like {"sample": "A12"}')
        checked = spec.check(parameters)
        run = QueuedRun(uuid.uuid4().hex, spec.name, checked, metadata, time.time(), request.identity, request.role,
                        on_change=self._publish_run)
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
        self._publish_run(run)
        self._publish_queue()
        return run.public()

    async def rerun(self, ident: Any, request: Request) -> dict[str, Any]:
        """Queue a new run of the same procedure with the same parameters and metadata (checked again: the
        procedure's limits may have changed since)."""
        record = await self._record(ident)
        return await self.submit({key: record[key] for key in ("procedure", "parameters", "metadata")}, request)

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
        await self.ensure_usable()
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
        """Points `since` and after (at most `limit`; fewer if their arrays are large: `next` is where the next
        page starts), columnar: time, and each column's values, with units."""
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidValue(f"since must be a point number, 0 or more; got {since!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise InvalidValue(f"limit must be 1 to 100000; got {limit!r}")
        record = await self._record(ident)
        live = self._live(ident)
        points = await asyncio.to_thread(self.store.stored_points, record["id"], since, limit)
        if live is not None:  # the points recorded since the last write to disk
            seen = {n for n, _, _ in points}
            points += [p for p in list(live.unwritten) if p[0] >= since and p[0] not in seen][:limit - len(points)]
        # A shorter page when arrays are large (`next` says where the next one starts); only its arrays are read.
        points = await asyncio.to_thread(self.store.loaded, points[:within_page(points)])
        # Its columns now, not before the reads: a point recorded meanwhile may bring the run's first columns.
        columns = dict(live.columns) if live is not None else (record.get("columns") or {})
        total = live.points if live is not None else record["points"]
        status = live.status if live is not None else record["status"]
        return {"id": record["id"], "procedure": record["procedure"], "status": status, "parameters": record["parameters"], "metadata": record["metadata"],
                "axes": record.get("axes") or [], "columns": columns, "since": since,
                "next": since + len(points), "total": total,
                "point": [n for n, _, _ in points], "time": [t for _, t, _ in points],
                "values": {name: [values.get(name) for _, _, values in points] for name in columns}}

    def queue_status(self) -> dict[str, Any]:
        """Started or not, the current run's id, the queued ones' in order, and `runs`: each of them (the
        current one first) as a live event shows it."""
        current = [] if self._current is None else [self._current]
        return {"started": self.started, "stop_after_current": self.stop_after_current,
                "continue_after_failure": self.settings.continue_after_failure,
                "current": None if self._current is None else self._current.id,
                "queued": [run.id for run in self._queued],
                "runs": [run.live() for run in current + self._queued]}

    # Control ------------------------------------------------------------------------------------------------

    async def queue_start(self) -> dict[str, Any]:
        await self.ensure_usable()
        self.started, self.stop_after_current = True, False
        self._wake.set()
        log.info("the run queue is started")
        self._publish_queue()
        return self.queue_status()

    def queue_stop(self) -> dict[str, Any]:
        """Take no further run once the current one (if any) has ended."""
        if self._current is None:
            self.started = False
        else:
            self.stop_after_current = True
        log.info("the run queue is stopped%s", "" if self._current is None else " after the current run")
        self._publish_queue()
        return self.queue_status()

    async def move(self, ident: Any, to: Any, by: Any) -> dict[str, Any]:
        """Move a queued run `to` a place in the queue (0: next; past the end: last), or `by` places
        (negative: earlier, stopping at either end); the queue as it is then."""
        run = await self._unfinished(ident)
        if run.status != "queued":
            raise WrongRunState(f"run {run.id} is {run.status}: only a queued run can be moved")
        if (to is None) == (by is None):
            raise MalformedRequest('give either "to" (a place in the queue, 0 is next) or "by" (places to move, '
                                   'negative is earlier), like {"to": 0} or {"by": -1}')
        last = len(self._queued) - 1
        to, by = _whole(to), _whole(by)
        if to is not None:  # a place past the end is the last one, as `by` stops at either end
            if isinstance(to, bool) or not isinstance(to, int) or to < 0:
                raise InvalidValue(f"to must be a place in the queue, 0 (next) or more; got {to!r}")
            place = min(to, last)
        else:
            if isinstance(by, bool) or not isinstance(by, int):
                raise InvalidValue(f"by must be a whole number of places (negative: earlier); got {by!r}")
            place = min(last, max(0, self._queued.index(run) + by))
        self._queued.remove(run)
        self._queued.insert(place, run)
        log.info("run %s moved to place %d of the queue", run.id, place)
        self._publish_queue()
        async with self._order_lock:  # the order as it is when written: a later move's write comes after
            await asyncio.to_thread(self.store.reorder, [queued.id for queued in self._queued])
        return self.queue_status()

    async def control(self, ident: Any, what: Any, until: float) -> dict[str, Any]:
        live = await self._unfinished(ident)
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
            run.on_change = self._publish_removed
            run.set_status("aborted")
            self._publish_queue()
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
            self._publish_queue()
            try:
                await self.executor.execute(run, self.procedures.get(run.procedure))
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
            self._publish_queue()

    def _publish_run(self, run: QueuedRun) -> None:
        self.experiment.publish({"module": "runs", "run": run.live()})

    def _publish_removed(self, run: QueuedRun) -> None:
        self.experiment.publish({"module": "runs", "run": {**run.live(), "status": "removed"}})

    def _publish_queue(self) -> None:
        self.experiment.publish({"module": "runs", "queue": self.queue_status()})

    async def _unfinished(self, ident: Any) -> QueuedRun:
        """The queued or current run `ident`; AlreadyFinished naming its status if it has ended, or UnknownRun."""
        live = self._live(ident)
        if live is None:
            record = await self._record(ident)  # UnknownRun if there is none
            raise AlreadyFinished(f"run {record['id']} has already finished ({record['status']})")
        return live

    def _live(self, ident: Any) -> QueuedRun | None:
        if self._current is not None and self._current.id == ident:
            return self._current
        return next((run for run in self._queued if run.id == ident), None)

    async def _record(self, ident: Any) -> dict[str, Any]:
        await self.ensure_usable()
        record = await asyncio.to_thread(self.store.get, ident) if isinstance(ident, str) else None
        if record is None:
            raise UnknownRun(f"no run {ident!r}")
        return record


def _whole(number: Any) -> Any:
    """A whole number given as 3.0 (JSON does not tell 3.0 from 3) as 3; anything else as it is."""
    return int(number) if isinstance(number, float) and number.is_integer() else number
