"""Module classes used only by the tests, to make instruments misbehave on purpose."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from base_module import Attribute, BaseModule
from module_a import ModuleA


class WideActuator(ModuleA):
    """ModuleA declaring a wider position range than the instrument accepts."""

    position: float = Attribute(unit="mm", minimum=-1000, maximum=1000, writable=True, doc="Too wide on purpose.")


class ConfusedActuator(ModuleA):
    """ModuleA expecting a number where the instrument sends text."""

    serial_number: float = Attribute(doc="Wrongly declared as a number.")


class Recorder(BaseModule):
    """An in-memory module that records what it executed and can be made slow or faulty."""

    value: float = Attribute(unit="V", minimum=-10, maximum=10, writable=True, doc="A setpoint.")
    delay: float = Attribute(unit="s", minimum=0, maximum=10, writable=True, doc="Seconds each call takes.")
    count: int = Attribute(doc="How many reads and writes ran.")
    mode: str = Attribute(choices=("ok", "raise", "hang"), writable=True, doc="How the next calls behave.")
    writes: list[float] = Attribute(doc="Values of the writes to `value` that started, in order.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.state: dict[str, Any] = {"value": 0.0, "delay": 0.0, "count": 0, "mode": "ok", "writes": []}
        self.executed: list[tuple[str, str, Any, float]] = []

    async def start(self) -> None:
        pass

    async def _act(self, op: str, name: str, value: Any = None) -> None:
        self.executed.append((op, name, value, time.time()))
        self.state["count"] += 1
        if op == "write" and name == "value":
            self.state["writes"].append(value)
        if self.state["mode"] == "raise" and name != "mode":
            raise RuntimeError("driver exploded")
        if self.state["mode"] == "hang" and name != "mode":
            await asyncio.sleep(3600)
        if self.state["delay"] and name not in ("delay", "mode"):
            await asyncio.sleep(self.state["delay"])

    async def read(self, name: str) -> Any:
        await self._act("read", name)
        return self.state[name]

    async def write(self, name: str, value: Any) -> Any:
        await self._act("write", name, value)
        self.state[name] = value
        return value

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {n: self.state[n] for n in names}


class Journal(BaseModule):
    """An in-memory setpoint that appends every write it performs to a file, before answering."""

    value: float = Attribute(minimum=-1e9, maximum=1e9, writable=True, doc="A setpoint.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.current = 0.0
        self.journal = open(self.settings.simulator["journal"], "a", encoding="utf-8")  # noqa: SIM115

    async def read(self, name: str) -> Any:
        return self.current

    async def write(self, name: str, value: Any) -> Any:
        await asyncio.sleep(0.01)  # keep writes in flight long enough to be caught by a signal
        self.current = value
        self.journal.write(f"{value!r}\n")
        self.journal.flush()
        return value

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {"value": self.current}


class SlowWriter(BaseModule):
    """An in-memory setpoint whose writes take `seconds` (1 by default), noting in a file when each starts and ends.

    A slow instrument whose progress a test can watch, to kill a process at the worst moment."""

    value: float = Attribute(minimum=-1e9, maximum=1e9, writable=True, doc="A setpoint.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.current = 0.0
        self.journal = self.settings.simulator["journal"]
        self.seconds = float(self.settings.simulator.get("seconds", 1.0))

    def _note(self, line: str) -> None:
        with open(self.journal, "a", encoding="utf-8") as journal:
            journal.write(line + "\n")

    async def read(self, name: str) -> Any:
        return self.current

    async def write(self, name: str, value: Any) -> Any:
        self._note(f"start {value!r}")
        await asyncio.sleep(self.seconds)
        self.current = value
        self._note(f"done {value!r}")
        return value

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {"value": self.current}
