"""ramp_value: change one attribute steadily to a target, as the body of an action.

    @action(owns=("voltage",))
    async def ramp_voltage(self, to: ..., rate: ...) -> ...:
        return await ramp_value(self, "voltage", to, rate)

Its end is checked against the attribute's limits (as config.yml narrows
them) before anything is read or written.  Every RAMP_STEP seconds the
attribute is written (`write_value`: validated like a PUT, so a step outside
the limits is refused before it is sent; in the module's turn, published live) with where a straight line
from its current value to `to` at `rate` per second has got to; the
action's progress and status line ("at 5.2 V") follow each confirmed step.
Cancelling stops it at its current await: no further step is written, and
the value stays where it got.  With a blocking driver the await is the
worker thread's write, which the cancel does not wait for: a step already
handed to the instrument still completes, and nothing after it is sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labbridge.experiment.base_module import BaseModule

# Seconds between two steps of a ramp.
RAMP_STEP = 0.05


async def ramp_value(module: BaseModule, name: str, to: float, rate: float, *, step: float = RAMP_STEP) -> float:
    """Change attribute `name` of `module` steadily to `to` at `rate` per second; return the value reached."""
    unit = f" {module.specs[name].unit}" if module.specs[name].unit else ""
    module.check_target(name, to, "where the ramp would end")  # before any step; each step is checked as written
    start = await module.read_value(name)
    duration = abs(to - start) / rate
    began = time.monotonic()
    while True:
        done = 1.0 if duration == 0 else min(1.0, (time.monotonic() - began) / duration)
        value = await module.write_value(name, to if done >= 1.0 else start + (to - start) * done)
        module.report(done, f"at {value:g}{unit}")
        if done >= 1.0:
            return float(value)
        await asyncio.sleep(step)
