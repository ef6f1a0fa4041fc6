"""Polling: each module's `poll:` attributes read at their intervals, those due together in one `read_many`.

One task per module that polls (Experiment.start_polling).  Each attribute keeps
its own schedule, fixed-rate: a read is due `interval` after the previous read
of it was due (it started then, or later if the module was busy), never after
it ended, so an interlock's `within` holds; a read that took longer than the
interval is followed by the next at once, never by a burst.  At each turn, every
attribute due by then (or within JOIN of it, so that float rounding does not
split attributes of the same interval) is read in one `read_many` call, in the
module's turn like any client request (Experiment.read_polled: it waits its
turn in the module's queue, so polls never starve clients).  Its values are
shown to the observers one by one and published together (publish_values: one
message, one time, one call to the history).  Attributes of the same interval
start together, so they stay due together: a module's polls read at most one
set of attributes per combination of its intervals, and keep one schedule per interval.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labbridge.core.errors import BridgeError, InstrumentError
from labbridge.experiment.base_module import BaseModule

if TYPE_CHECKING:
    from labbridge.experiment.experiment import Experiment

JOIN = 0.002  # seconds: attributes due this soon after the turn starts are read in it (early by at most this)


async def poll_module(experiment: Experiment, module: BaseModule) -> None:
    """Read `module`'s polled attributes at their intervals, those due together in one read, until cancelled."""
    loop = asyncio.get_running_loop()
    # Attributes of the same interval are read together from the start, so they share one schedule: [due,
    # interval, names], in the order config.yml names them.
    schedules: dict[float, list[str]] = {}
    for name, interval in module.settings.poll.items():
        schedules.setdefault(interval, []).append(name)
    start = loop.time()
    plan = [_Schedule(start, interval, names) for interval, names in schedules.items()]
    while True:
        now = loop.time()
        due = [schedule for schedule in plan if schedule.due <= now + JOIN]
        names = [name for schedule in due for name in schedule.names]
        readings = await experiment.read_polled(module, names, min(schedule.interval for schedule in due))
        experiment.publish_values(module.name, readings)
        ended = loop.time()
        for schedule in due:
            schedule.due = max(schedule.due + schedule.interval, ended)
        await asyncio.sleep(max(0.0, min(schedule.due for schedule in plan) - loop.time()))


@dataclass
class _Schedule:
    """When the attributes polled at one interval are next due (loop time)."""

    due: float
    interval: float
    names: list[str]


async def read_batch(module: BaseModule, names: list[str]) -> dict[str, Any]:
    """Read `names` in one `read_many` (in the module's turn): `{"module", "attributes": {name: reading}}`,
    a reading being `{"value", "unit"}`, or `{"error", "message"}` for a value the instrument did not report or
    that is not of the attribute's type.  A read_many that fails raises, for the caller to report per name."""
    await module.retry_start()  # in the module's turn: a module whose start failed tries again
    raw = await module.worker.run(module.read_many, names)
    if not isinstance(raw, dict):
        raise InstrumentError(f"read_many of {module.name} returned {type(raw).__name__}, not a dict of values")
    readings: dict[str, dict[str, Any]] = {}
    for name in names:
        spec = module.specs[name]
        try:
            if name not in raw:
                raise InstrumentError(f"instrument of {module.name} did not report {name}")
            value = spec.coerce_reading(raw[name], module.name)
        except BridgeError as exc:
            readings[name] = {"error": exc.code, "message": exc.detail}
            continue
        module.last_values[name] = value
        readings[name] = {"value": value, "unit": spec.unit}
    return {"module": module.name, "attributes": readings}
