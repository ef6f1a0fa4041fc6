"""timed: runs a procedure's coroutine step by step, and says in the log when a step held the event loop.

A procedure is `async`: between two of its awaits nothing else in the
experiment process runs (no request is answered, no module polled, no other
action moves).  A step that takes long (a `time.sleep`, a blocking driver call
made directly, a long computation) therefore stalls the whole lab.  `timed`
drives the coroutine as `await` would, with two clock readings per step, and
reports each step over SLOW_STEP seconds with the time it took; after the
first report, further ones of the same run are at most one line every
REPORT_EVERY seconds (with how many were not written and the longest), so a
procedure that blocks at each point does not flood the log.
"""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Awaitable, Generator
from typing import Any

log = logging.getLogger(__name__)

SLOW_STEP = 0.1  # seconds between two awaits that are reported (asyncio's debug mode uses the same)
REPORT_EVERY = 10.0


class LoopWatch:
    """The slow steps of one run: reported as they happen, within the log's bounds."""

    def __init__(self, what: str, slow: float = SLOW_STEP) -> None:
        self.what = what
        self.slow = slow
        self.slow_steps = 0
        self.longest = 0.0
        self._last_report = -REPORT_EVERY
        self._unreported = 0
        self._unreported_longest = 0.0

    def step_took(self, seconds: float) -> None:
        if seconds < self.slow:
            return
        self.slow_steps += 1
        self.longest = max(self.longest, seconds)
        now = time.monotonic()
        if now - self._last_report < REPORT_EVERY:
            self._unreported += 1
            self._unreported_longest = max(self._unreported_longest, seconds)
            return
        more = (f" ({self._unreported} more such step(s) since the last report, the longest "
                f"{self._unreported_longest:.3f} s)" if self._unreported else "")
        log.warning("%s held the event loop for %.3f s without awaiting: nothing else in the experiment process ran "
                    "meanwhile%s. Await instead of blocking (asyncio.sleep, run.get/set, or asyncio.to_thread for "
                    "blocking work)", self.what, seconds, more)
        self._last_report, self._unreported, self._unreported_longest = now, 0, 0.0

    def summary(self) -> None:
        """Say, once the run has ended, what the rate limit left out."""
        if self._unreported:
            log.warning("%s held the event loop %d time(s) for %.3f s at most (%d not reported one by one)",
                        self.what, self.slow_steps, self.longest, self._unreported)


@types.coroutine
def timed(awaitable: Awaitable[Any], watch: LoopWatch) -> Generator[Any, Any, Any]:
    """Await `awaitable` (as `await timed(awaitable, watch)`), timing each of its steps on `watch`: from
    one resumption to its next await, as `await awaitable` would drive it."""
    coroutine = awaitable.__await__()  # a generator: send, throw and close drive it as a task would
    clock = time.perf_counter
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        started = clock()
        try:
            yielded = coroutine.send(sent) if thrown is None else coroutine.throw(thrown)
        except StopIteration as done:
            watch.step_took(clock() - started)
            return done.value
        except BaseException:
            watch.step_took(clock() - started)
            raise
        watch.step_took(clock() - started)
        try:
            sent, thrown = (yield yielded), None  # the future the procedure waits on goes to the task
        except GeneratorExit:  # this awaiter is closed: close the procedure too
            coroutine.close()
            raise
        except BaseException as exc:  # a cancellation: into the procedure, where it waits
            sent, thrown = None, exc
