"""RunExecutor: carrying out one run, from the claim of what it drives to its outcome on record.

For the run the queue's worker hands it (run_queue.py), it:

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
3. releases the claim.

The procedure's coroutine is driven through loop_watch.timed, so a step that
holds the event loop (no await for over SLOW_STEP seconds) is in the log
with the time it took.  With an audit log, each run is on record as one
write: `started` (op "run", its procedure and parameters, the identity and
role that queued it) once its claim is taken, `finished` with its outcome
("ok" for completed or stopped, "aborted", or the failure's error code, and
the error) at its end; a run that could not start at all is one `refused`
line with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import TYPE_CHECKING, Any

from labbridge.core.audit import AuditedWrite, WriteAttempt
from labbridge.core.config import RunSettings
from labbridge.core.errors import BridgeError, UnknownProcedure
from labbridge.core.protocol import Request
from labbridge.experiment.invocation import current_holder
from labbridge.experiment.lab_handle import Run, RunStopped
from labbridge.experiment.loop_watch import LoopWatch, timed
from labbridge.experiment.procedure import ProcedureSpec
from labbridge.experiment.run_state import QueuedRun
from labbridge.experiment.run_store import RunStore

if TYPE_CHECKING:
    from labbridge.experiment.experiment import Experiment

log = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT = 10.0


class RunExecutor:
    """Runs one procedure at a time for the queue, keeping its record in the store up to date."""

    def __init__(self, experiment: Experiment, store: RunStore, settings: RunSettings) -> None:
        self.experiment = experiment
        self.store = store
        self.settings = settings
        self.run_ended = asyncio.Event()  # set at each run's end: wakes the retention (run_retention.py)

    async def execute(self, run: QueuedRun, spec: ProcedureSpec | None) -> None:
        """Carry out `run` (of `spec`, None if config.yml no longer declares it) until its outcome is on record."""
        audited = self._audited(run)
        if spec is None:  # queued before a restart with another config.yml
            await self.end(run, "failed", {"error": UnknownProcedure.code, "message": f"config.yml no longer "
                                           f"declares the procedure {run.procedure!r}"}, audited)
            return
        try:
            self.experiment.interlocks.check_drives(spec.drives, f"run {run.id} of {run.procedure}")
            self.experiment.invocations.hold(run, spec.drives)
            if audited is not None:
                await audited.started()  # AuditUnavailable: the run does not start
        except BridgeError as exc:
            self.experiment.invocations.release_held(run)
            await self.end(run, "failed", {"error": exc.code, "message": exc.detail}, audited)
            return
        try:
            run.started = time.time()
            run.set_status("running")
            await asyncio.to_thread(self.store.update, run.id, status="running", started=run.started,
                                    snapshot_start=await self.snapshot())
            run.task = asyncio.create_task(self._call(run, spec))
            writer = asyncio.create_task(self._write_points(run))
            try:
                await asyncio.wait([run.task])
            finally:
                writer.cancel()
            status, error = ("aborted", None) if run.task.cancelled() else run.task.result()
        finally:
            self.experiment.invocations.release_held(run)
        await self.end(run, status, error, audited)

    async def _call(self, run: QueuedRun, spec: ProcedureSpec) -> tuple[str, dict[str, str] | None]:
        """Run the procedure in this task (its context names the run as the holder of its claim)."""
        current_holder.set(run)
        watch = LoopWatch(f"run {run.id} ({run.procedure})")
        try:
            await timed(spec.function(Run(self.experiment, run), **run.parameters), watch)
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
        finally:
            watch.summary()
        return ("stopped" if run.stop_requested else "completed"), None

    async def _write_points(self, run: QueuedRun) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            await self.flush(run)

    async def flush(self, run: QueuedRun, **fields: Any) -> None:
        """Write the points recorded since the last flush, with the run's progress (and `fields`)."""
        batch, run.unwritten = run.unwritten, []
        try:
            await asyncio.to_thread(self.store.add_points, run.id, batch, points=run.points, columns=run.columns,
                                    progress=run.progress, message=run.message, **fields)
        except BaseException:
            run.unwritten[:0] = batch  # tried again at the next interval
            raise

    async def end(self, run: QueuedRun, status: str, error: dict[str, str] | None,
                  audited: AuditedWrite | None = None) -> None:
        """Put the run's outcome on record (with a second snapshot if it started, and in the audit log),
        then say it has ended."""
        run.finished = time.time()
        run.error = error
        if status == "completed":
            run.progress = 1.0
        snapshot = await self.snapshot() if run.started is not None else None
        await self.flush(run, status=status, finished=run.finished, error=error, snapshot_end=snapshot)
        if audited is not None:
            outcome = "ok" if status in ("completed", "stopped") else error["error"] if error else status
            await audited.finished(outcome, after={"status": status, "points": run.points, "error": error})
        run.set_status(status)
        run.ended.set()
        self.run_ended.set()
        log.info("run %s (%s) %s%s", run.id, run.procedure, status, f": {error['message']}" if error else "")
        if status == "failed":  # people are told (safety/notices.py: audit log, dashboards, webhooks)
            self.experiment.tell({"kind": "run_failed", "run": run.id, "procedure": run.procedure,
                                  "identity": run.queued_by, "error": error,
                                  "message": f"run {run.id} ({run.procedure}) failed"
                                             + (f": {error['message']}" if error else "")})

    def _audited(self, run: QueuedRun) -> AuditedWrite | None:
        """The run's lines in the audit log, if there is one: it writes to instruments for whoever queued it."""
        if self.experiment.audit is None:
            return None
        return self.experiment.audit.record_write(WriteAttempt(
            "run", "runs", run.procedure, {"run": run.id, "parameters": run.parameters}, client=f"run {run.id}",
            identity=run.queued_by, id=run.id, role=run.role))

    async def snapshot(self) -> dict[str, Any]:
        """Every module's scalar attributes as read now (a module that cannot answer: its error)."""
        snapshot: dict[str, Any] = {}
        for name in self.experiment.modules:
            request = Request.new("get", name, "attributes", timeout=SNAPSHOT_TIMEOUT)
            try:
                snapshot[name] = (await self.experiment.handle(request))["attributes"]
            except BridgeError as exc:
                snapshot[name] = {"error": exc.code, "message": exc.detail}
        return snapshot


def _summary(exc: BaseException) -> str:
    """The last frames of a traceback, enough to find the line in the procedure."""
    return "".join(traceback.format_exception(exc, limit=-3)).strip()[-2000:]
