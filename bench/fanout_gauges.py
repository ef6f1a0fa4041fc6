"""Gauges and Ream: in-memory modules for the dashboard fan-out bench (dashboard_fanout.py) and the /ws tests.

Polling the ten readings of Gauges at 10 Hz gives 100 values/s per module, no instrument
hop, so what is measured is the bridge.  `count` is the number of reads of it
so far: a client that gets every value sees 1, 2, 3... with no gap.  Ream's
`text` is 200 kB, to fill the socket of a client that stops reading.  The tests
of /ws subscriptions poll it fast (tests/test_ws_subscriptions.py).
"""

from __future__ import annotations

import time
from typing import Any

from labbridge import Attribute, BaseModule, ModuleSettings

READINGS = tuple(f"g{i}" for i in range(10))
TEXT_CHARS = 200_000


class Gauges(BaseModule):
    """Ten readings (the Unix time of each read) and a count of reads, all in memory."""

    g0: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    g1: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    g2: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    g3: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    g4: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    g5: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    g6: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    g7: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    g8: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    g9: float = Attribute(unit="s", doc="A reading: the Unix time it was read.")
    count: int = Attribute(doc="Reads of count so far, this one included.")

    def __init__(self, name: str, settings: ModuleSettings) -> None:
        super().__init__(name, settings)
        self.reads = 0

    async def read(self, name: str) -> Any:
        if name == "count":
            self.reads += 1
            return self.reads
        return time.time()

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {name: await self.read(name) for name in names}


class Ream(BaseModule):
    """One long reading, to fill the socket of a client that stops reading."""

    text: str = Attribute(max_length=TEXT_CHARS, doc="200,000 characters.")

    async def read(self, name: str) -> Any:
        return "x" * TEXT_CHARS
