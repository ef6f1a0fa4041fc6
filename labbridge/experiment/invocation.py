"""Invocation: one run of an action, as clients see it, and the run's link to the action's code.

A client sees `public()`: id, module, action, arguments, status, progress (null
or 0..1), message (the latest status line the action reported), result, error,
created/started/finished (Unix times) and href.  The action's own code reaches
its invocation through `current_invocation` (a context variable set for the
action's task, also seen by threads it starts with `asyncio.to_thread`): that is
how `BaseModule.report`, `cancelled` and `raise_if_cancelled` work.
`cancel_requested` is a threading.Event, so a driver blocking in a thread can
check it too.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from labbridge.core.action import FINISHED

current_invocation: ContextVar[Invocation | None] = ContextVar("current_invocation", default=None)
# The run of a procedure the current task works for (run_queue.py): its own writes pass the claim it holds,
# and so do the actions it starts (their tasks inherit the context).
current_holder: ContextVar[Holder | None] = ContextVar("current_holder", default=None)
# The interlock whose trip the current task carries out (experiment/safety/interlocks.py): its safe writes and
# actions pass every claim and interlock, as a hand on the emergency stop would.
current_trip: ContextVar[str | None] = ContextVar("current_trip", default=None)


class Holder(Protocol):
    """Whatever besides an invocation may hold attributes (a run of a procedure)."""

    def busy_text(self) -> str:
        """What holds them and how to free them, for a 409 busy."""
        ...


def _ignore(invocation: Invocation) -> None:
    """The default change listener: nobody is told."""


@dataclass(eq=False)
class Invocation:
    """One run of an action: its arguments, status, progress and outcome."""

    id: str
    module: str
    action: str
    arguments: dict[str, Any]
    created: float
    owns: tuple[str, ...] = ()
    identity: str | None = None  # who asked (the token's identity), for the audit log
    client: str | None = None  # from where (the client's address), for the audit log
    status: str = "pending"
    progress: float | None = None
    message: str | None = None
    result: Any = None
    error: dict[str, str] | None = None
    started: float | None = None
    finished: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task[None] | None = None
    on_change: Callable[[Invocation], None] = _ignore  # publishes each change live
    _status_changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def href(self) -> str:
        return f"/invocations/{self.id}"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "module": self.module, "action": self.action, "arguments": self.arguments,
                "status": self.status, "progress": self.progress, "message": self.message, "result": self.result,
                "error": self.error, "created": self.created, "started": self.started, "finished": self.finished,
                "href": self.href}

    def report(self, progress: float | None = None, message: str | None = None) -> None:
        """Record what the action says of itself; progress is kept within 0..1 to 4 places (NaN is ignored)."""
        if progress is not None and not math.isnan(progress):
            self.progress = round(min(1.0, max(0.0, float(progress))), 4)
        if message is not None:
            self.message = str(message)[:1000]
        self.on_change(self)

    def set_status(self, status: str) -> None:
        """Move to `status`, waking every client waiting for a change, and publish it."""
        self.status = status
        self._status_changed.set()
        self._status_changed = asyncio.Event()
        self.on_change(self)

    async def wait_for_change(self, seen: str, timeout: float) -> None:
        """Return when the status is no longer `seen`, or after `timeout` seconds."""
        if self.status != seen or timeout <= 0:
            return
        changed = self._status_changed
        try:
            async with asyncio.timeout(timeout):
                await changed.wait()
        except TimeoutError:
            pass
