"""`Run`: the handle a procedure receives, its only way to the lab's modules and to its own record.

    await run.set("psu.voltage", 2.5)          # a PUT: type, limits, read-only, ownership, audit log
    current = await run.get("psu.measured_current")
    await run.call("module_a.move", to=50)      # start an action and wait for its end (its result)
    run.record(voltage=2.5, current=current)    # one data point
    run.progress(0.5, "half way")
    await run.checkpoint()                      # a pause takes effect here; a stop raises RunStopped

A write goes through `Experiment.handle` exactly as an HTTP PUT does, with the
run's id as the client and the identity that queued the run, so the audit log
says which run wrote what for whom.  A read takes the module's turn as an
action's does.  `get` and `set` return a `Quantity`: a float that carries its
attribute's unit, so `record(voltage=await run.set(...))` files the column
with its unit; an array comes read-only (a module must not change an array it
has returned, and nor may the procedure), which `record` keeps as it is where
it copies a writable one.  The run's own writes pass the claim it holds on its `drives`
(`current_holder`), and so do the actions it starts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from labbridge.core.errors import InstrumentError, InvalidValue
from labbridge.core.protocol import Request

if TYPE_CHECKING:
    from labbridge.experiment.experiment import Experiment
    from labbridge.experiment.run_state import QueuedRun

# The most a run's request may wait for its module's turn and the instrument (seconds).
REQUEST_BUDGET = 60.0
# How long an aborted run waits for the action it was in to end before its own clean-up runs.
CANCEL_WAIT = 2.0
_SCALARS = (bool, int, float, str, np.bool_, np.integer, np.floating)


class RunStopped(Exception):
    """Raised by `checkpoint()` when the run was asked to stop: it ends `stopped`, its clean-up runs."""


class Quantity(float):
    """A number read from (or written to) an attribute, with that attribute's unit."""

    unit: str | None = None

    def __new__(cls, value: float, unit: str | None = None) -> Quantity:
        reading = super().__new__(cls, value)
        reading.unit = unit
        return reading


class Run:
    """What a procedure drives the lab with, and records its points through."""

    def __init__(self, experiment: Experiment, state: QueuedRun) -> None:
        self._experiment = experiment
        self._state = state

    @property
    def id(self) -> str:
        return self._state.id

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self._state.parameters)

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._state.metadata)

    async def set(self, name: str, value: Any) -> Any:
        """Write `module.attribute` as a PUT would; return what the instrument reports (a Quantity for numbers)."""
        module, attribute = _split(name)
        answer = await self._experiment.handle(self._request("put", module, attribute, value))
        return _reading(answer["value"], answer.get("unit"))

    async def get(self, name: str) -> Any:
        """Read `module.attribute` in its module's turn (a Quantity for numbers, a NumPy array for arrays)."""
        module_name, attribute = _split(name)
        module = self._experiment.module(module_name)
        value = await module.read_value(attribute)
        return _reading(value, module.spec(attribute).unit)

    async def call(self, name: str, **arguments: Any) -> Any:
        """Start the action `module.action` with `arguments` and wait for its end; its result.  An action that
        fails or is cancelled raises InstrumentError; aborting the run cancels the action first."""
        module, action = _split(name)
        started = await self._experiment.handle(self._request("invoke", module, action, {"arguments": arguments}))
        invocation = self._experiment.invocations.find(started["id"])
        if invocation.task is not None:
            try:
                await asyncio.shield(invocation.task)
            except asyncio.CancelledError:  # the run is aborted: the action stops first, then the run's clean-up
                self._experiment.invocations.request_cancel(invocation)
                await asyncio.wait([invocation.task], timeout=CANCEL_WAIT)
                raise
        if invocation.status != "completed":
            reason = (invocation.error or {}).get("message") or invocation.status
            raise InstrumentError(f"{name} ended {invocation.status}: {reason}")
        return invocation.result

    def record(self, **values: Any) -> int:
        """Add one data point of named values (numbers, text, booleans, NumPy arrays); its number."""
        if not values:
            raise InvalidValue("record() needs at least one named value, like record(voltage=1.5)")
        checked: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, np.ndarray):
                # Kept as it is if read-only (as get() returns them): an 8 MiB copy costs more than writing it.
                # A writable one is copied: the procedure may reuse its buffer.
                checked[key] = np.array(value, copy=True) if value.flags.writeable else value
            elif isinstance(value, _SCALARS):
                checked[key] = value.item() if isinstance(value, np.generic) else value
                if isinstance(value, Quantity):
                    checked[key] = float(value)
            else:
                raise InvalidValue(f"record({key}=...) takes a number, text, a boolean or a NumPy array; "
                                   f"got {type(value).__name__}")
            self._state.note_column(key, checked[key], getattr(value, "unit", None))
        return self._state.add_point(time.time(), checked)

    def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Say how far the run is (0..1) and what it does now."""
        self._state.report(fraction, message)

    async def checkpoint(self) -> None:
        """Where a pause takes effect (the run waits here until resumed) and a stop ends the run (RunStopped)."""
        await self._state.checkpoint()

    def _request(self, op: Any, module: str, name: str, value: Any) -> Request:
        return Request(op, module, name, value, time.time() + REQUEST_BUDGET, uuid.uuid4().hex,
                       client=f"run {self._state.id}", identity=self._state.queued_by, role=self._state.role)


def _split(name: str) -> tuple[str, str]:
    module, dot, attribute = name.partition(".")
    if not dot or not module or not attribute:
        raise InvalidValue(f"name the attribute as module.attribute, like 'psu.voltage'; got {name!r}")
    return module, attribute


def _reading(value: Any, unit: str | None) -> Any:
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        return Quantity(value, unit)
    if isinstance(value, (list, np.ndarray)):
        # Read-only: the module may hand the same array out again and record() keeps it without a copy
        array = np.asarray(value).view()
        array.flags.writeable = False
        return array
    return value
