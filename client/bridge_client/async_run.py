"""AsyncRun: one run of a procedure on the bridge's queue, followed, controlled and read from asyncio code.

The blocking `Run` (run.py) hands every call to it.  In blocking code:

    run = lab.runs.submit("voltage_sweep", start=0, stop=10, steps=50, metadata={"sample": "A12"})
    run.wait(progress=True)        # a tqdm bar with the run's progress and message; Ctrl+C aborts the run
    run.data()                     # {"point": array, "time": array, "voltage": array, ...}
    run.units                      # {"voltage": "V", ...}
    run.to_xarray()                # the declared axes as dimensions (pip install "bridge-client[data]")

`wait()` returns the run once it has `completed` or `stopped`, and raises
RunFailed, RunAborted or RunInterrupted (errors.py) for the other ends.
`pause()`, `resume()` and `stop()` act at the procedure's next checkpoint;
`abort()` ends it at once (and removes a run still queued).  `points()`
follows a running run live, point by point, polling `/runs/<id>/data?since=`.
`rerun()` queues the same procedure with the same parameters and metadata.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from functools import partial
from typing import Any
from urllib.parse import quote

from bridge_client.errors import AlreadyFinished, BridgeError, RunAborted, RunFailed, RunInterrupted
from bridge_client.http import NO_BODY, Http
from bridge_client.invocation import LONG_POLL, PROGRESS_POLL, Waiting, follow
from bridge_client.run_data import Columns, NumpyColumns, to_pandas, to_xarray

log = logging.getLogger("bridge_client")

# "removed": the answer to aborting a run that was still queued (it is deleted, it never ran).
FINISHED = frozenset({"completed", "stopped", "failed", "aborted", "interrupted", "removed"})
# Seconds between two looks for new points while `points()` follows a run.
POINTS_POLL = 0.2
# Points asked for per request.
PAGE = 10_000


class AsyncRun:
    """One run, for asyncio code: its state as last seen, `refresh()`, `wait()`, control, and its data."""

    def __init__(self, data: dict[str, Any], http: Http) -> None:
        self._http = http
        self._data = _checked(data, None)

    # -- the run as last seen --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return str(self._data["id"])

    @property
    def procedure(self) -> str:
        return str(self._data["procedure"])

    name = procedure  # what progress bars and timeouts call it

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters as the bridge checked them, defaults filled in."""
        return dict(self._data.get("parameters") or {})

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._data.get("metadata") or {})

    @property
    def status(self) -> str:
        """queued, running, paused, then completed, stopped, failed, aborted or interrupted."""
        return str(self._data["status"])

    @property
    def progress(self) -> float | None:
        return self._data.get("progress")

    @property
    def message(self) -> str | None:
        return self._data.get("message")

    @property
    def error(self) -> dict[str, str] | None:
        """Why it failed: `{"error": code, "message": text, "traceback": last lines}`."""
        return self._data.get("error")

    @property
    def queued_by(self) -> str | None:
        return self._data.get("queued_by")

    @property
    def created(self) -> float:
        return float(self._data["created"])

    @property
    def started(self) -> float | None:
        return self._data.get("started")

    @property
    def finished(self) -> float | None:
        return self._data.get("finished")

    @property
    def point_count(self) -> int:
        """How many points it has recorded (as last seen)."""
        return int(self._data.get("points") or 0)

    @property
    def axes(self) -> tuple[str, ...]:
        """The columns the procedure declared independent (as last read with `refresh()`)."""
        return tuple(self._data.get("axes") or ())

    @property
    def units(self) -> dict[str, str | None]:
        """Each column's unit (as last read with `refresh()`: columns appear as the run records them)."""
        return {name: column.get("unit") for name, column in (self._data.get("columns") or {}).items()}

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def href(self) -> str:
        return f"/runs/{quote(self.id, safe='')}"

    # -- following it ----------------------------------------------------------------------------------

    async def refresh(self, wait: float = 0.0) -> AsyncRun:
        """Read the run again (with its provenance); with `wait`, when its status changes or after `wait` s."""
        params = {"wait": round(wait, 3)} if wait > 0 else None
        self._data = _checked(await self._http.read(self.href, params=params, waits=wait), self.id)
        return self

    async def wait(self, timeout: float | None = None, *, progress: bool = False) -> AsyncRun:
        """Wait until it has ended; itself once completed or stopped, else RunFailed, RunAborted or
        RunInterrupted (TimeoutError after `timeout` s: it goes on).  `progress=True` shows a tqdm bar.
        If the task that waits is cancelled (Ctrl+C under asyncio.run), the run is aborted."""
        await self.warn_if_queue_stopped()
        waiting = Waiting(timeout, PROGRESS_POLL if progress else LONG_POLL, "run", "abort() ends it")
        await follow(self, waiting, progress, self.abort_quietly, partial(interrupted, self))
        return self.outcome()

    async def warn_if_queue_stopped(self) -> None:
        """A queued run waits for the queue: say so when nobody has started it (it starts stopped)."""
        if self.status == "queued" and not (await self._http.read("/runs/queue")).get("started"):
            log.warning("run %s is queued but the queue is stopped: lab.runs.start() (POST /runs/queue/start) "
                        "starts it", self.id)

    def outcome(self) -> AsyncRun:
        """Itself if it completed or stopped, or the exception its end calls for."""
        what = f"{self.procedure} (run {self.id})"
        if self.status in ("completed", "stopped"):
            return self
        if self.status in ("aborted", "removed"):
            raise RunAborted(f"{what} was {'removed from the queue' if self.status == 'removed' else 'aborted'}")
        if self.status == "interrupted":
            raise RunInterrupted(f"{what} was interrupted: the experiment process stopped while it ran; "
                                 f"its {self.point_count} points up to then are kept")
        if self.status == "failed":
            error = self.error or {}
            raise RunFailed(f"{what} failed: {error.get('message') or 'no reason given'}",
                            code=error.get("error") or None, traceback=error.get("traceback"))
        raise BridgeError(f"{what} has not ended: {self.status}")

    # -- controlling it --------------------------------------------------------------------------------

    async def pause(self) -> AsyncRun:
        """Pause at the procedure's next checkpoint (WrongRunState while it is still queued)."""
        return await self._control("POST", f"{self.href}/pause")

    async def resume(self) -> AsyncRun:
        return await self._control("POST", f"{self.href}/resume")

    async def stop(self) -> AsyncRun:
        """End it at its next checkpoint, as a success (`stopped`; its clean-up runs)."""
        return await self._control("POST", f"{self.href}/stop")

    async def abort(self) -> AsyncRun:
        """Abort it at once, wherever it waits (its clean-up runs), or remove it from the queue if it has not
        started.  AlreadyFinished if it had ended."""
        return await self._control("DELETE", self.href)

    async def abort_quietly(self) -> BridgeError | None:
        """Abort it unless it has already ended; the error that kept it from being aborted, if any."""
        try:
            await self.abort()
        except AlreadyFinished:
            await self.refresh()
        except BridgeError as exc:
            return exc
        return None

    async def rerun(self) -> AsyncRun:
        """Queue the same procedure again with the same parameters and metadata: the new run."""
        body = {"procedure": self.procedure, "parameters": self.parameters, "metadata": self.metadata}
        return AsyncRun(await self._http.write("POST", "/runs", body), self._http)

    async def _control(self, method: str, path: str) -> AsyncRun:
        reply = await self._http.write(method, path, NO_BODY)
        self._data = {**self._data, **_checked(reply, self.id)}  # keeps the provenance read before
        return self

    # -- its data --------------------------------------------------------------------------------------

    async def data_page(self, since: int = 0, limit: int = PAGE) -> dict[str, Any]:
        """One page of `GET /runs/<id>/data`: points `since` and after, columnar, with units and axes."""
        page: dict[str, Any] = await self._http.read(f"{self.href}/data", params={"since": since, "limit": limit})
        self._data["columns"] = page.get("columns") or self._data.get("columns")
        self._data["axes"] = page.get("axes") or self._data.get("axes")
        return page

    async def data(self) -> NumpyColumns:
        """Every point recorded so far as NumPy columns: `point`, `time` (Unix s) and each recorded column."""
        return (await self._columns()).arrays()

    async def points(self) -> AsyncGenerator[dict[str, Any], None]:
        """Each point as it is recorded (`{"point": n, "time": t, "voltage": ...}`), until the run has ended
        and every point has been given."""
        since = 0
        while self.status != "removed":  # a run removed from the queue never recorded anything
            ended = self.done or (await self.refresh()).done  # looked at first: no point recorded after is missed
            page = await self.data_page(since)
            for i, n in enumerate(page["point"]):
                yield {"point": n, "time": page["time"][i], **{k: v[i] for k, v in page["values"].items()}}
            since = page["next"]
            if ended and not page["point"]:
                return
            if not page["point"]:
                await asyncio.sleep(POINTS_POLL)

    async def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per point, indexed by point number (needs `bridge-client[data]`)."""
        return to_pandas((await self._columns()).arrays())

    async def to_xarray(self) -> Any:
        """An xarray Dataset whose dimensions are the declared axes (needs `bridge-client[data]`)."""
        columns = await self._columns()
        attrs = {"run": self.id, "procedure": self.procedure, "status": self.status}
        return to_xarray(columns.arrays(), columns.axes, columns.units, attrs)

    async def _columns(self) -> Columns:
        columns, since = Columns(), 0
        while True:
            page = await self.data_page(since)
            columns.add(page)
            since = page["next"]
            if not page["point"] or since >= page["total"]:
                return columns

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {describe(self)}>"


def describe(run: AsyncRun) -> str:
    """`voltage_sweep(start=0.0, stop=10.0, steps=50) 3440879f: running 42%, 4.2 V` (as last seen)."""
    parameters = ", ".join(f"{k}={v!r}" for k, v in run.parameters.items())
    state = run.status
    if run.progress is not None and not run.done:
        state += f" {100 * run.progress:.0f}%"
    if run.message:
        state += f", {run.message}"
    return f"{run.procedure}({parameters}) {run.id[:8]}: {state}"


def interrupted(run: AsyncRun, problem: BridgeError | None = None) -> str:
    """What Ctrl+C did to the run that was waited for."""
    what = f"{run.procedure} (run {run.id})"
    if problem is not None:
        return f"interrupted; {what} could not be aborted ({problem}): it may still run; DELETE {run.href} aborts it"
    if run.status in ("aborted", "removed"):
        return f"interrupted: {'removed' if run.status == 'removed' else 'aborted'} {what}"
    if run.done:
        return f"interrupted: {what} had already {run.status}"
    return f"interrupted: aborting {what}, still {run.status}"


def _checked(data: Any, ident: str | None) -> dict[str, Any]:
    """The bridge's JSON of a run (of `ident`, if given), or a clear error."""
    if not isinstance(data, dict) or not {"id", "procedure", "status"} <= data.keys() or (
            ident is not None and data["id"] != ident):
        raise BridgeError(f"the bridge answered something that is not the run: {str(data)[:200]}")
    return data
