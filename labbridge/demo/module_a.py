"""ModuleA: the example module, a linear actuator with an HTTP API.

The original proof of concept measured an actuator's force and position; this
is that instrument, declared attribute by attribute, with the operations that
take time (move, home, stop, force-measurement cycles) declared as actions.
Everything the bridge needs (routing, validation, the HTTP cycle,
documentation, invocations) follows from these declarations.
`simulate: true` in config.yml serves the simulator
(labbridge/experiment/simulators/actuator.py) in its place.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from numpy.typing import NDArray

from labbridge import Attribute, BaseModule, InstrumentError, InvalidValue, Param, Target, action
from labbridge.experiment.simulators.actuator import create_app

# Seconds between two looks at the carriage while it moves (each look is one turn of the module).
WATCH_INTERVAL = 0.1


@dataclass
class CycleSummary:
    """What `cycle` returns: how many strokes ran and the force at the far end of each (N)."""

    cycles: int
    peak_force: list[float]
    max_force: float


class ModuleA(BaseModule):
    """A linear actuator: set where the carriage goes and how fast; read the force it feels."""

    simulator = staticmethod(create_app)

    position: float = Attribute(unit="mm", minimum=0, maximum=100, writable=True,
                                doc="Carriage position from the home switch.")
    speed: float = Attribute(unit="mm/s", minimum=0.1, maximum=50, writable=True,
                             doc="Travel speed used for the next moves.")
    force: float = Attribute(unit="N", doc="Actuation force measured by the load cell.")
    temperature: float = Attribute(unit="degC", doc="Temperature of the drive electronics.")
    serial_number: str = Attribute(doc="The instrument's serial number.")
    trace: NDArray[np.float64] = Attribute(unit="N", shape=(None,), doc="Force samples of the last actuation cycle.")
    moving: bool = Attribute(doc="True while the carriage travels.")

    @action(owns=("position",))
    async def move(self, to: Annotated[float, Param(like="position", doc="Where the carriage goes.")],
                   speed: Annotated[float | None, Param(like="speed", doc="Travel speed; the current speed if left out.")]
                   = None) -> Annotated[float, Param(unit="mm", doc="Where the carriage stopped.")]:
        """Move the carriage to `to`, reporting how far it got; cancelling stops it where it is."""
        return await self._travel(to, speed, report=True)

    @action(owns=("position",), targets={"position": 0.0})  # refused where config.yml's limits exclude 0
    async def home(self) -> Annotated[float, Param(unit="mm", doc="Where the carriage stopped (0).")]:
        """Drive the carriage back to the home switch (position 0) at the current speed."""
        return await self._travel(0.0, None, report=True)

    @action
    async def stop(self) -> Annotated[float, Param(unit="mm", doc="Where the carriage stopped.")]:
        """Halt the carriage at once, wherever it is (a move, home or cycle under way then fails)."""
        return await self._halt()

    @action(owns=("position",))
    async def cycle(self, count: Annotated[int, Param(minimum=1, maximum=1000, doc="How many strokes.")],
                    amplitude: Annotated[float, Param(unit="mm", minimum=0.1, maximum=100,
                                                      doc="How far each stroke goes out from the current position.")],
                    ) -> CycleSummary:
        """Force-measurement cycles: out by `amplitude` and back, `count` times, at the current speed;
        the force at the far end of each stroke is its peak (the load cell is a spring)."""
        self.report(0.0, f"stroke 1 of {count}")
        origin = await self.read_value("position")
        self.check_target("position", origin, "each stroke comes back there")  # before the first stroke
        far, limit = origin + amplitude, self.specs["position"].maximum
        if limit is not None and far > limit:
            raise InvalidValue(f"a stroke of {amplitude:g} mm from {origin:g} mm would pass {limit:g} mm; "
                               "move back first or choose a smaller amplitude")
        speed = await self.read_value("speed")
        peaks: list[float] = []
        for stroke in range(1, count + 1):
            self.report((stroke - 1) / count, f"stroke {stroke} of {count}")
            await self._travel(far, speed, report=False)
            peaks.append(await self.read_value("force"))
            await self._travel(origin, speed, report=False)
        self.report(1.0, f"{count} strokes, peak force up to {max(peaks):.2f} N")
        return CycleSummary(cycles=count, peak_force=peaks, max_force=max(peaks))

    async def _travel(self, to: float, speed: float | None, *, report: bool) -> float:
        """Drive to `to` and watch the carriage until it stops there; a cancel halts it on the way."""
        start = await self.read_value("position")
        distance = abs(to - start)
        if speed is None:
            speed = await self.read_value("speed")
        await self.send_command("move", to=Target("position", to), speed=Target("speed", speed))
        try:
            while True:
                moving = await self.read_value("moving")  # first: a position read after "stopped" is final
                position = await self.read_value("position")
                if report:
                    done = 1.0 if distance == 0 else min(1.0, abs(position - start) / distance)
                    self.report(done, f"at {position:.1f} mm, {abs(to - position) / speed:.1f} s to go" if moving
                                else f"arrived at {position:g} mm")
                if not moving:
                    break
                await asyncio.sleep(WATCH_INTERVAL)
        except asyncio.CancelledError:
            stopped = await self._halt()  # clean-up: leave the carriage where it is, not travelling on
            if report:
                self.report(message=f"stopped at {stopped:g} mm")
            raise
        if abs(position - to) > 1e-6:
            raise InstrumentError(f"the carriage was halted at {position:g} mm before reaching {to:g} mm")
        return float(position)

    async def _halt(self) -> float:
        """Stop the carriage, then read (and so publish) that it stands still, and where."""
        await self.send_command("stop")
        await self.read_value("moving")
        return float(await self.read_value("position"))
