"""Turns: one driver call at a time per module, in arrival order, for requests and actions alike.

Instrument drivers are rarely thread-safe, so only one call at a time reaches a
module: clients' requests (experiment.py) and the driver calls of running
actions wait in the same FIFO queue, the module's `Turns`.  An action does not
hold its module for its whole run: each of its driver calls takes a turn
(`BaseModule.turn()`, and the helpers built on it), so reads and polls go on in
between and a dashboard sees a move progress.  Actions' turns first wait
behind one another (`actions_gate`), so that at most one of them is in the
module's queue at a time: a read waits for at most one action's driver call,
however many actions are under way (about 100 invocations of `stop` sent at
once once kept reads waiting for minutes).  A task that already holds the
turn and takes it again (a helper called inside `async with self.turn()`) goes
on at once instead of waiting for itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

# The ids of the Turns the current task holds.
_HELD: ContextVar[frozenset[int]] = ContextVar("held_turns", default=frozenset())


@dataclass(eq=False)
class Turns:
    """A module's FIFO lock, and how many requests and action calls hold or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: int = 0
    actions_gate: asyncio.Lock = field(default_factory=asyncio.Lock)  # actions' turns queue here first

    @asynccontextmanager
    async def take(self) -> AsyncIterator[None]:
        """Wait for the module's turn (after the other actions' turns and then the requests already waiting)
        and hold it for the block."""
        held = _HELD.get()
        if id(self) in held:
            yield
            return
        async with self.actions_gate:
            self.pending += 1
            try:
                async with self.lock:
                    token = _HELD.set(held | {id(self)})
                    try:
                        yield
                    finally:
                        _HELD.reset(token)
            finally:
                self.pending -= 1
