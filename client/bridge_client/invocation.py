"""Invocations: one run of an action, followed and cancelled from Python.

    inv = lab.module_a.move(to=80, speed=10)   # started; returns at once
    inv.status, inv.progress, inv.message       # as the bridge reports them now
    inv.wait(timeout=None, progress=True)       # its result; a tqdm bar meanwhile
    inv.cancel()                                # DELETE: the action stops where it is

`AsyncInvocation` does the work for asyncio code: it keeps the invocation as
last seen (the bridge's JSON: docs/reference/actions.md), `refresh()` reads it again
(`GET /invocations/<id>`, with `?wait=` a long poll that answers as soon as
the status changes: a read, so retried on 503), `wait()` loops on that until
the invocation has finished, and `cancel()` sends `DELETE` once.  `wait`
returns the result, or raises: the failed action's own error class, or
`ActionCancelled`, `ActionLost`; TimeoutError when `timeout` passes first (the
action goes on).  Cancelling the task that waits (Ctrl+C under `asyncio.run`)
cancels the invocation too.  `Invocation` is the blocking form, on the same
code through the Portal; its `status`, `progress`, `message` and `result` are
read afresh while the invocation runs, as an attribute is, and Ctrl+C during
its `wait` cancels the invocation and says so in the KeyboardInterrupt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote

from bridge_client.errors import (
    ActionCancelled,
    ActionLost,
    AlreadyFinished,
    BridgeError,
    error_of_invocation,
)
from bridge_client.http import Http
from bridge_client.portal import Portal
from bridge_client.progress import Followed, ProgressBar

log = logging.getLogger("bridge_client")

FINISHED = frozenset({"completed", "failed", "cancelled", "lost"})
# Seconds one long poll may wait for a change of status (the bridge takes at most 60).
LONG_POLL = 30.0
# Seconds between two looks at the progress while a bar is shown (progress changes do not end a long poll).
PROGRESS_POLL = 0.25


class AsyncInvocation:
    """One run of an action, for asyncio code: its state as last seen, `refresh()`, `wait()`, `cancel()`."""

    def __init__(self, data: dict[str, Any], http: Http) -> None:
        self._http = http
        self._data = _checked(data, None)

    # -- the invocation as last seen (docs/reference/actions.md) --------------------------

    @property
    def id(self) -> str:
        return str(self._data["id"])

    @property
    def module(self) -> str:
        return str(self._data["module"])

    @property
    def action(self) -> str:
        return str(self._data["action"])

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments as the bridge checked them, defaults filled in."""
        return dict(self._data.get("arguments") or {})

    @property
    def status(self) -> str:
        """pending, running, then completed, failed, cancelled or lost."""
        return str(self._data["status"])

    @property
    def progress(self) -> float | None:
        """0 to 1 as the action reports it, or None."""
        return self._data.get("progress")

    @property
    def message(self) -> str | None:
        """The latest status line the action reported."""
        return self._data.get("message")

    @property
    def result(self) -> Any:
        """What the action returned, once completed (else None)."""
        return self._data.get("result")

    @property
    def error(self) -> dict[str, str] | None:
        """Why it failed (or was lost): `{"error": code, "message": text}`."""
        return self._data.get("error")

    @property
    def created(self) -> float:
        return float(self._data["created"])

    @property
    def started(self) -> float | None:
        return self._data.get("started")

    @property
    def finished(self) -> float | None:
        """The Unix time it ended (None while it runs); `done` says whether it has."""
        return self._data.get("finished")

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def href(self) -> str:
        return f"/invocations/{quote(self.id, safe='')}"

    @property
    def name(self) -> str:
        """`module_a.move`."""
        return f"{self.module}.{self.action}"

    # -- talking to the bridge ---------------------------------------------------

    async def refresh(self, wait: float = 0.0) -> AsyncInvocation:
        """Read the invocation again; with `wait`, the bridge answers when its status changes, or after `wait` s."""
        params = {"wait": round(wait, 3)} if wait > 0 else None
        self._data = _checked(await self._http.read(self.href, params=params, waits=wait), self.id)
        return self

    async def wait(self, timeout: float | None = None, *, progress: bool = False) -> Any:
        """Wait until it has finished and return its result (see the module's doc for what it raises).

        `progress=True` shows a tqdm bar with the action's status line.  If the task that waits is
        cancelled (Ctrl+C under asyncio.run), the invocation is cancelled too."""
        waiting = Waiting(timeout, PROGRESS_POLL if progress else LONG_POLL)
        await follow(self, waiting, progress, self.cancel_quietly, partial(interrupted, self))
        return self.outcome()

    async def cancel(self) -> None:
        """Cancel it (`DELETE`, sent once); returns when the bridge has stopped it (or has given its clean-up
        a second).  Raises AlreadyFinished when it had already ended."""
        self._data = _checked(await self._http.write("DELETE", self.href), self.id)

    async def cancel_quietly(self) -> BridgeError | None:
        """Cancel it unless it has already ended; the error that kept it from being cancelled, if any."""
        try:
            await self.cancel()
        except AlreadyFinished:
            await self.refresh()
        except BridgeError as exc:
            return exc
        return None

    def outcome(self) -> Any:
        """The result of a finished invocation, or the exception its end calls for."""
        if self.status == "completed":
            return self.result
        if self.status == "cancelled":
            said = f": {self.message}" if self.message else ""
            raise ActionCancelled(f"{self.name} (invocation {self.id}) was cancelled{said}")
        if self.status == "lost":
            raise ActionLost(f"{self.name} (invocation {self.id}) was lost: "
                             f"{(self.error or {}).get('message', 'the experiment process stopped while it ran')}")
        if self.status == "failed":
            raise error_of_invocation(self.error, self.name)
        raise BridgeError(f"{self.name} (invocation {self.id}) has not finished: {self.status}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {describe(self)}>"


class Invocation:
    """One run of an action, for blocking code: what `lab.module_a.move(to=80)` returns.

    `status`, `progress`, `message`, `result`, `error`, `started` and `finished` are read from the bridge
    each time while it runs (a finished invocation no longer changes); `wait()` returns its result."""

    def __init__(self, invocation: AsyncInvocation, portal: Portal) -> None:
        self._async = invocation
        self._portal = portal

    @property
    def id(self) -> str:
        return self._async.id

    @property
    def module(self) -> str:
        return self._async.module

    @property
    def action(self) -> str:
        return self._async.action

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments as the bridge checked them, defaults filled in."""
        return self._async.arguments

    @property
    def created(self) -> float:
        return self._async.created

    @property
    def href(self) -> str:
        return self._async.href

    @property
    def status(self) -> str:
        """pending, running, then completed, failed, cancelled or lost."""
        return self._fresh().status

    @property
    def progress(self) -> float | None:
        """0 to 1 as the action reports it, or None."""
        return self._fresh().progress

    @property
    def message(self) -> str | None:
        """The latest status line the action reported."""
        return self._fresh().message

    @property
    def result(self) -> Any:
        """What the action returned, once completed (else None)."""
        return self._fresh().result

    @property
    def error(self) -> dict[str, str] | None:
        """Why it failed (or was lost): `{"error": code, "message": text}`."""
        return self._fresh().error

    @property
    def started(self) -> float | None:
        return self._fresh().started

    @property
    def finished(self) -> float | None:
        """The Unix time it ended (None while it runs); `done` says whether it has."""
        return self._fresh().finished

    @property
    def done(self) -> bool:
        return self._fresh().done

    def refresh(self) -> Invocation:
        """Read the invocation from the bridge again."""
        self._portal.call(self._async.refresh())
        return self

    def wait(self, timeout: float | None = None, *, progress: bool = False) -> Any:
        """Wait until it has finished and return its result; raise its error if it failed, ActionCancelled or
        ActionLost, or TimeoutError after `timeout` s (it goes on).  `progress=True` shows a tqdm bar with the
        action's status line.  Ctrl+C cancels the invocation, then raises KeyboardInterrupt saying so."""
        bar = ProgressBar(self._async.name) if progress else None
        waiting = Waiting(timeout, PROGRESS_POLL if progress else LONG_POLL)
        try:
            while not self._async.done:
                self._portal.call(self._async.refresh(waiting.next_wait(self._async)))
                if bar is not None:
                    bar.show(self._async)
        except KeyboardInterrupt:
            problem = self._portal.call(self._async.cancel_quietly())
            raise KeyboardInterrupt(interrupted(self._async, problem)) from None
        finally:
            if bar is not None:
                bar.close(self._async)
        return self._async.outcome()

    def cancel(self) -> None:
        """Cancel it (`DELETE`, sent once); returns when the bridge has stopped it (or has given its clean-up
        a second).  Raises AlreadyFinished when it had already ended."""
        self._portal.call(self._async.cancel())

    def _fresh(self) -> AsyncInvocation:
        if not self._async.done:
            self._portal.call(self._async.refresh())
        return self._async

    def __repr__(self) -> str:
        return f"<Invocation {describe(self._async)}>"


class Waited(Protocol):
    """What a timeout says of the invocation (or run) waited for."""

    @property
    def name(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...


class Waiting:
    """How long each look at an invocation (or a run) may wait, within an overall `timeout` (None: no limit)."""

    def __init__(self, timeout: float | None, poll: float, kind: str = "invocation",
                 stopper: str = "cancel() stops it") -> None:
        self.timeout = timeout
        self.poll = poll
        self.kind = kind
        self.stopper = stopper
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def next_wait(self, waited: Waited) -> float:
        """Seconds the next long poll may wait; TimeoutError once the time is up."""
        if self.deadline is None:
            return self.poll
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{waited.name} ({self.kind} {waited.id}) is still {waited.status} after "
                               f"{self.timeout:g} s; it goes on ({self.stopper})")
        return min(self.poll, left)


class Refreshed(Waited, Followed, Protocol):
    """What `follow` needs of an invocation or a run: read it again, and know when it has ended."""

    @property
    def done(self) -> bool: ...

    async def refresh(self, wait: float = 0.0) -> Any: ...


async def follow(record: Refreshed, waiting: Waiting, progress: bool,
                 stop_quietly: Callable[[], Awaitable[BridgeError | None]],
                 interrupted_by: Callable[[BridgeError | None], str]) -> None:
    """Read `record` again until it has ended, each read a long poll, with a tqdm bar if `progress`.  If the
    task that waits is cancelled (Ctrl+C under asyncio.run), `stop_quietly` ends it first and the log says how."""
    bar = ProgressBar(record.name) if progress else None
    try:
        while not record.done:
            await record.refresh(waiting.next_wait(record))
            if bar is not None:
                bar.show(record)
    except asyncio.CancelledError:
        problem = await asyncio.shield(asyncio.ensure_future(stop_quietly()))
        log.warning("%s", interrupted_by(problem))
        raise
    finally:
        if bar is not None:
            bar.close(record)


def describe(invocation: AsyncInvocation) -> str:
    """`module_a.move(to=80.0, speed=10.0): running 42%, at 33.6 mm, 4.6 s to go` (as last seen)."""
    arguments = ", ".join(f"{k}={v!r}" for k, v in invocation.arguments.items())
    state = invocation.status
    if invocation.progress is not None and not invocation.done:
        state += f" {100 * invocation.progress:.0f}%"
    if invocation.message:
        state += f", {invocation.message}"
    return f"{invocation.name}({arguments}): {state}"


def interrupted(invocation: AsyncInvocation, problem: BridgeError | None = None) -> str:
    """What Ctrl+C did to the invocation that was waited for."""
    if problem is not None:
        return (f"interrupted; {invocation.name} (invocation {invocation.id}) could not be cancelled ({problem}): "
                f"it may still run; cancel it with DELETE {invocation.href}")
    if invocation.status == "cancelled":
        said = f": {invocation.message}" if invocation.message else ""
        return f"interrupted: cancelled {invocation.name} (invocation {invocation.id}){said}"
    if invocation.done:
        return f"interrupted: {invocation.name} (invocation {invocation.id}) had already {invocation.status}"
    return f"interrupted: cancelling {invocation.name} (invocation {invocation.id}), still {invocation.status}"


def _checked(data: Any, ident: str | None) -> dict[str, Any]:
    """The bridge's JSON of an invocation (of `ident`, if given), or a clear error."""
    if not isinstance(data, dict) or not {"id", "module", "action", "status"} <= data.keys() or (
            ident is not None and data["id"] != ident):
        raise BridgeError(f"the bridge answered something that is not the invocation: {str(data)[:200]}")
    return data
