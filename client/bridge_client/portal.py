"""Portal: an asyncio event loop on a daemon thread, so blocking code can use the async client.

The sync `Bridge` does not duplicate the async client: it hands each call to
this loop and waits for the result.  That works the same in a script and in
Jupyter, whose own event loop is already running in the main thread (where
`asyncio.run` would refuse).  Ctrl+C (or Jupyter's interrupt) while waiting
cancels the call on the loop too, so nothing goes on in the background.  The
waiting thread wakes every WAKE seconds, so that an interrupt is noticed
where a wait on a lock is not interrupted by it (Windows, `_thread.interrupt_main`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# Seconds between two looks for a pending Ctrl+C while a call is waited for.
WAKE = 0.1


class Portal:
    """Runs coroutines on its own event loop thread and waits for them."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bridge-client", daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the portal's loop; return its result or raise its exception."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a blocking Bridge call was made from its own event loop; use AsyncBridge there")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            while True:
                try:
                    return future.result(timeout=WAKE)
                except TimeoutError:
                    if future.done():
                        raise  # the call's own TimeoutError
        except BaseException:  # KeyboardInterrupt while waiting: stop the work, not just the wait
            future.cancel()
            raise

    def iterate(self, generator: AsyncGenerator[T, None]) -> Iterator[T]:
        """Iterate an async generator from blocking code; leaving the loop early closes it."""
        try:
            while True:
                try:
                    item = self.call(_next(generator))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            try:
                self.call(generator.aclose())
            except RuntimeError:
                pass  # it was still being cancelled (Ctrl+C): it closes itself

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


async def _next(generator: AsyncGenerator[T, None]) -> T:
    return await generator.__anext__()
