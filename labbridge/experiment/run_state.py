"""QueuedRun: one run not yet finished, as the experiment process holds it in memory.

The store (run_store.py) has its record; this has what changes while it runs:
its status, progress and message, the points not yet written to disk, and
the requests a procedure sees at its next `checkpoint()` (pause, stop).

Each change is handed to `on_change` (the queue publishes it live, as
invocations' changes are): a change of status at once, progress, message and
new points at most every LIVE_INTERVAL seconds, so a procedure recording
thousands of points a second sends a few events, not one per point.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labbridge.experiment.lab_handle import RunStopped

STATUSES = ("queued", "running", "paused", "completed", "stopped", "failed", "aborted", "interrupted")
FINISHED = frozenset({"completed", "stopped", "failed", "aborted", "interrupted"})
# Progress, message and points of a running run are published at most this often (seconds).
LIVE_INTERVAL = 0.1


def _ignore(run: QueuedRun) -> None:
    """No one follows the run's changes."""


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
    on_change: Callable[[QueuedRun], None] = _ignore  # publishes each change live
    _live_due: asyncio.TimerHandle | None = None  # a publication of progress already due

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "procedure": self.procedure, "parameters": self.parameters, "metadata": self.metadata,
                "status": self.status, "progress": self.progress, "message": self.message,
                "queued_by": self.queued_by, "created": self.created, "started": self.started,
                "finished": self.finished, "points": self.points, "error": self.error}

    def live(self) -> dict[str, Any]:
        """What a live event says of the run: its state, without its parameters and metadata (GET has them)."""
        return {"id": self.id, "procedure": self.procedure, "status": self.status, "progress": self.progress,
                "message": self.message, "points": self.points, "queued_by": self.queued_by, "created": self.created,
                "started": self.started, "finished": self.finished, "error": self.error, "href": f"/runs/{self.id}"}

    def busy_text(self) -> str:
        return (f"run {self.id} ({self.procedure}, {self.status}); stop it with POST /runs/{self.id}/stop "
                f"or abort it with DELETE /runs/{self.id}")

    def set_status(self, status: str) -> None:
        self.status = status
        self._changed.set()
        self._changed = asyncio.Event()
        if self._live_due is not None:  # this event says it all
            self._live_due.cancel()
            self._live_due = None
        self.on_change(self)

    def _touched(self) -> None:
        """Progress, message or points changed: published within LIVE_INTERVAL (one event for many changes)."""
        if self._live_due is None:
            self._live_due = asyncio.get_running_loop().call_later(LIVE_INTERVAL, self._publish_due)

    def _publish_due(self) -> None:
        self._live_due = None
        self.on_change(self)

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
        self._touched()

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
        self._touched()
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
