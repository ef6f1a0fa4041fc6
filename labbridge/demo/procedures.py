"""The demo's procedures (config.yml `procedures:`): experiments the run queue carries out on the simulators.

A lab writes its own the same way, in a file beside config.yml (`function: sweeps.voltage_sweep` for a
sweeps.py there): an `async def` taking the run handle and typed parameters, decorated with `@procedure`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from labbridge import Param, Run, procedure


@procedure(drives=["psu.voltage", "psu.output"], axes=["voltage"])
async def voltage_sweep(run: Run,
                        start: Annotated[float, Param(like="psu.voltage", doc="The first voltage.")] = 0.0,
                        stop: Annotated[float, Param(like="psu.voltage", doc="The last voltage.")] = 10.0,
                        steps: Annotated[int, Param(minimum=2, maximum=1000, doc="How many settings.")] = 11) -> None:
    """Switch the supply's output on, set the voltage in equal steps and record what it reports at each."""
    await run.set("psu.output", True)
    try:
        for i in range(steps):
            await run.checkpoint()
            voltage = await run.set("psu.voltage", start + (stop - start) * i / (steps - 1))
            run.record(voltage=voltage, measured_voltage=await run.get("psu.measured_voltage"),
                       measured_current=await run.get("psu.measured_current"))
            run.progress((i + 1) / steps, f"{voltage:g} V")
    finally:  # on a stop, an abort or an error too: the output is never left on
        await run.set("psu.output", False)


@procedure(drives=["module_a.position"], axes=["position"])
async def force_curve(run: Run,
                      start: Annotated[float, Param(like="module_a.position", doc="Where the carriage starts.")] = 0.0,
                      stop: Annotated[float, Param(like="module_a.position", doc="Where it ends.")] = 50.0,
                      points: Annotated[int, Param(minimum=2, maximum=1000, doc="How many positions.")] = 6) -> None:
    """Move the carriage through `points` positions and record where it stopped and the force there."""
    for i in range(points):
        await run.checkpoint()
        await run.call("module_a.move", to=start + (stop - start) * i / (points - 1))
        position = await run.get("module_a.position")
        run.record(position=position, force=await run.get("module_a.force"))
        run.progress((i + 1) / points, f"{position:g} mm")


@procedure(drives=["camera.exposure"], axes=["exposure"])
async def exposure_series(run: Run,
                          shortest: Annotated[float, Param(like="camera.exposure", doc="The first exposure.")] = 1.0,
                          longest: Annotated[float, Param(like="camera.exposure", doc="The last exposure.")] = 100.0,
                          steps: Annotated[int, Param(minimum=2, maximum=50, doc="How many exposures.")] = 4) -> None:
    """Take a camera frame at each of `steps` exposures, evenly spaced on a log scale; record it and its mean."""
    period = 1 / await run.get("camera.frame_rate")
    for i in range(steps):
        await run.checkpoint()
        exposure = await run.set("camera.exposure", shortest * (longest / shortest) ** (i / (steps - 1)))
        await asyncio.sleep(period)  # the camera's next frame is the first one taken with this exposure
        frame = await run.get("camera.frame")
        run.record(exposure=exposure, frame=frame, mean_counts=float(frame.mean()))
        run.progress((i + 1) / steps, f"{exposure:g} ms")
