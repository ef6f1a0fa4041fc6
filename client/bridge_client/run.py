"""Run: one run of a procedure, for blocking code (notebooks, scripts): what `lab.runs.submit(...)` returns.

    run = lab.runs.submit("voltage_sweep", start=0, stop=10, steps=50, metadata={"sample": "A12"})
    run.wait(progress=True)        # a tqdm bar; Ctrl+C aborts the run
    run.data()["measured_current"] # NumPy columns; run.units has their units

Every call is handed to the AsyncRun underneath (async_run.py) on the
bridge's Portal, so both behave the same by construction; what the methods
do and raise is told there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bridge_client.async_run import AsyncRun, describe, interrupted
from bridge_client.invocation import LONG_POLL, PROGRESS_POLL, Waiting
from bridge_client.portal import Portal
from bridge_client.progress import ProgressBar
from bridge_client.run_data import NumpyColumns


class Run:
    """One run, for blocking code: what `lab.runs.submit(...)` returns.

    `status`, `progress`, `message`, `error` and `point_count` are read from the bridge each time while it has
    not ended; `wait()` waits for its end, `data()` gives its points."""

    def __init__(self, run: AsyncRun, portal: Portal) -> None:
        self._async = run
        self._portal = portal

    @property
    def id(self) -> str:
        return self._async.id

    @property
    def procedure(self) -> str:
        return self._async.procedure

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters as the bridge checked them, defaults filled in."""
        return self._async.parameters

    @property
    def metadata(self) -> dict[str, Any]:
        return self._async.metadata

    @property
    def queued_by(self) -> str | None:
        """The identity that queued it (its token's name), if tokens are configured."""
        return self._async.queued_by

    @property
    def created(self) -> float:
        return self._async.created

    @property
    def href(self) -> str:
        return self._async.href

    @property
    def status(self) -> str:
        """queued, running, paused, then completed, stopped, failed, aborted or interrupted."""
        return self._fresh().status

    @property
    def progress(self) -> float | None:
        """0 to 1 as the procedure reports it, or None."""
        return self._fresh().progress

    @property
    def message(self) -> str | None:
        """The latest status line the procedure reported."""
        return self._fresh().message

    @property
    def error(self) -> dict[str, str] | None:
        """Why it failed: `{"error": code, "message": text, "traceback": last lines}`."""
        return self._fresh().error

    @property
    def started(self) -> float | None:
        return self._fresh().started

    @property
    def finished(self) -> float | None:
        return self._fresh().finished

    @property
    def point_count(self) -> int:
        """How many points it has recorded."""
        return self._fresh().point_count

    @property
    def done(self) -> bool:
        """Whether it has ended."""
        return self._fresh().done

    @property
    def axes(self) -> tuple[str, ...]:
        """The columns the procedure declared independent."""
        return self._described().axes

    @property
    def units(self) -> dict[str, str | None]:
        """Each column's unit, as recorded so far."""
        return self._described(fresh=True).units

    def refresh(self) -> Run:
        self._portal.call(self._async.refresh())
        return self

    def wait(self, timeout: float | None = None, *, progress: bool = False) -> Run:
        """Wait until it has ended; itself once completed or stopped, else RunFailed, RunAborted or
        RunInterrupted (TimeoutError after `timeout` s: it goes on).  `progress=True` shows a tqdm bar with its
        progress and message.  Ctrl+C aborts the run, then raises KeyboardInterrupt saying so."""
        self._portal.call(self._async.warn_if_queue_stopped())
        bar = ProgressBar(self._async.procedure) if progress else None
        waiting = Waiting(timeout, PROGRESS_POLL if progress else LONG_POLL, "run", "abort() ends it")
        try:
            while not self._async.done:
                self._portal.call(self._async.refresh(waiting.next_wait(self._async)))
                if bar is not None:
                    bar.show(self._async)
        except KeyboardInterrupt:
            problem = self._portal.call(self._async.abort_quietly())
            raise KeyboardInterrupt(interrupted(self._async, problem)) from None
        finally:
            if bar is not None:
                bar.close(self._async)
        self._async.outcome()
        return self

    def pause(self) -> Run:
        """Pause at the procedure's next checkpoint (WrongRunState while it is still queued)."""
        self._portal.call(self._async.pause())
        return self

    def resume(self) -> Run:
        self._portal.call(self._async.resume())
        return self

    def stop(self) -> Run:
        """End it at its next checkpoint, as a success (`stopped`; its clean-up runs)."""
        self._portal.call(self._async.stop())
        return self

    def abort(self) -> Run:
        """Abort it at once (its clean-up runs), or remove it from the queue if it has not started."""
        self._portal.call(self._async.abort())
        return self

    def rerun(self) -> Run:
        """Queue the same procedure again with the same parameters and metadata: the new run."""
        return Run(self._portal.call(self._async.rerun()), self._portal)

    def data(self) -> NumpyColumns:
        """Every point recorded so far as NumPy columns: `point`, `time` (Unix s) and each recorded column."""
        return self._portal.call(self._async.data())

    def points(self) -> Iterator[dict[str, Any]]:
        """Each point as it is recorded, live, until the run has ended; leave the loop to stop following."""
        return self._portal.iterate(self._async.points())

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per point, indexed by point number (needs `bridge-client[data]`)."""
        return self._portal.call(self._async.to_pandas())

    def to_xarray(self) -> Any:
        """An xarray Dataset whose dimensions are the declared axes (needs `bridge-client[data]`)."""
        return self._portal.call(self._async.to_xarray())

    def _fresh(self) -> AsyncRun:
        if not self._async.done:
            self._portal.call(self._async.refresh())
        return self._async

    def _described(self, fresh: bool = False) -> AsyncRun:
        """The run with its provenance (axes, columns) read at least once, and again while it records."""
        if "columns" not in self._async._data or (fresh and not self._async.done):
            self._portal.call(self._async.refresh())
        return self._async

    def __repr__(self) -> str:
        return f"<Run {describe(self._async)}>"
