"""Gauges: an in-memory module of many scalar attributes, for the cost-per-polled-value benchmark (lab_cost.py).

Its 100 attributes g0..g99 are numbers kept in memory that change on every
read, so what a poll costs is the bridge's work, not an instrument's; `reads`
counts the values read, so the benchmark knows how many were polled.
"""

from __future__ import annotations

from typing import Any

from labbridge import Attribute, BaseModule

GAUGES = 100


def _declarations() -> dict[str, Any]:
    names = [f"g{i}" for i in range(GAUGES)]
    table: dict[str, Any] = {name: Attribute(unit="V", doc="A gauge that changes on every read.") for name in names}
    table["reads"] = Attribute(doc="How many gauge values were read.")
    table["__annotations__"] = {**dict.fromkeys(names, float), "reads": int}
    return table


class _Declared(BaseModule):
    """The declarations (built in a loop: a hundred lines of g0..g99 would say nothing more)."""

    locals().update(_declarations())


class Gauges(_Declared):
    """A hundred in-memory gauges that change on every read."""

    reads: int

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.count = 0

    async def read(self, name: str) -> Any:
        return self.count if name == "reads" else self._next()

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {name: self.count if name == "reads" else self._next() for name in names}

    def _next(self) -> float:
        self.count += 1
        return float(self.count % 1000)
