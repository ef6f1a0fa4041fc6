"""ModuleWorker: one module's own thread for its blocking driver calls, and the one way to run a hook.

A driver hook written with `async def` runs on the event loop; one written with
plain `def` blocks (PyVISA, pyserial, a vendor DLL, a PyMeasure driver object)
and runs on its module's worker thread, the way FastAPI runs `def` endpoints in
a thread pool, but with one thread per module: a slow GPIB read holds up only
its own module, never the event loop, and never a pool that other modules
share.  Calls run in the order they were handed over, one at a time, so a
driver that is not thread-safe is safe.

`run(hook, *args)` is how the experiment process calls any driver code of a
module (Experiment for `start`/`close`, BaseModule for `read`/`write`/
`read_many`, actions for their steps).  A call whose caller gave up (its
request timed out) before the thread reached it is skipped, so a write the
client was told timed out is not sent later.  A call that is already running
cannot be interrupted: the calls queued behind it wait for it.  The thread is a
daemon, so a driver stuck forever cannot keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import queue
import threading
from collections.abc import Callable
from typing import Any

_Job = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class ModuleWorker:
    """Runs a module's driver calls: coroutines on the loop, blocking functions on the module's own thread."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def thread_name(self) -> str:
        return f"module-{self.module}"

    async def run(self, hook: Callable[..., Any], *args: Any) -> Any:
        """Call `hook(*args)`: awaited if it is a coroutine function, else on this module's thread."""
        if inspect.iscoroutinefunction(hook):
            return await hook(*args)
        return await self.call(hook, *args)

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run blocking `function(*args)` on this module's thread, after every call handed over before it."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self._thread is None:  # started on first use: a module without blocking calls costs no thread
            self._thread = threading.Thread(target=self._serve, name=self.thread_name, daemon=True)
            self._thread.start()
        self._jobs.put((future, function, args))
        # Cancelling the awaiting task cancels `future`, which the thread then skips if it has not started it.
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Let the thread finish the calls handed over so far and end (without waiting for it)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, function, args = job
            if not future.set_running_or_notify_cancel():
                continue  # its caller gave up before its turn came
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the caller, who turns it into an error reply
                future.set_exception(exc)
            else:
                future.set_result(result)
