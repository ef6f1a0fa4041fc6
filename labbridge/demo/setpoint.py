"""Setpoint: a module whose value lives in the experiment process, not on an instrument.

It shows that BaseModule's HTTP cycle is only the default: a module overrides
the driver hooks `read`, `write` and `read_many` and talks to whatever it
likes.  Here that is memory: a software setpoint that scripts and notebooks
share (a target temperature that a control loop reads, a run label).  `ramp`
changes it steadily over time, as an action.  The benchmark uses it to measure
the bridge without an instrument hop.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from labbridge import Attribute, BaseModule, ModuleSettings, Param, action, ramp_value


class Setpoint(BaseModule):
    """A value shared through the bridge and kept in memory by the experiment process."""

    value: float = Attribute(minimum=-1e12, maximum=1e12, writable=True,
                             doc="The setpoint (unitless; narrow its limits with config.yml's `limits`).")
    label: str = Attribute(writable=True, doc="What the setpoint is for.")
    changed_at: float = Attribute(unit="s", doc="Unix time of the last write (0 before the first).")

    def __init__(self, name: str, settings: ModuleSettings) -> None:
        super().__init__(name, settings)
        self.state: dict[str, Any] = {"value": 0.0, "label": "", "changed_at": 0.0}

    @action(owns=("value",))
    async def ramp(self, to: Annotated[float, Param(like="value", doc="The value to end at.")],
                   rate: Annotated[float, Param(minimum=0.001, maximum=1e9, doc="How fast the value changes, per second.")],
                   ) -> Annotated[float, Param(doc="The value reached.")]:
        """Change the value steadily to `to` at `rate` per second, one step every 50 ms; cancelling leaves it
        where it got."""
        return await ramp_value(self, "value", to, rate)

    async def read(self, name: str) -> Any:
        return self.state[name]

    async def write(self, name: str, value: Any) -> Any:
        self.state[name] = value
        self.state["changed_at"] = time.time()
        return value

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {name: self.state[name] for name in names}
