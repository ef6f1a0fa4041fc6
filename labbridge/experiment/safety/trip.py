"""carry_out: what a tripped interlock does, in a task of its own, the moment it trips.

1. It cancels the invocations that own attributes of the modules its `then`
   acts on, and aborts the runs that hold any (without waiting for their
   clean-up): a move must not drive on while the supply goes off, and a
   move cancelled now ends `cancelled` (its clean-up halts the carriage)
   rather than failed under a stop.
2. It does each step of `then`, in order, each whatever became of the one
   before: `set` through the normal write path (Experiment.handle: limits,
   the module's turn, the audit log with the client "interlock <name>"),
   `run` starts the action (it is not waited for), `safe_state` asks
   `experiment.safe_states.apply(module, reason)`.  The task runs as the
   trip (`current_trip`), so its steps pass the claims of what it just
   cancelled and its own refusal of writes.
3. It tells people (`experiment.tell`, kind "trip"): the rule, its
   condition, the values that tripped it and what each step came to.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from labbridge.core.errors import BridgeError
from labbridge.core.interlocks_config import TripStep
from labbridge.core.protocol import Request
from labbridge.experiment.invocation import current_trip

if TYPE_CHECKING:
    from labbridge.experiment.experiment import Experiment
    from labbridge.experiment.safety.interlock_rules import Rule

log = logging.getLogger(__name__)

# The most a trip's write or action start may take (the module's own timeouts end it sooner).
STEP_BUDGET = 10.0
# How long a run aborted by a trip is given to clean up before the abort's own answer (it goes on regardless).
ABORT_BUDGET = 5.0


async def carry_out(experiment: Experiment, rule: Rule) -> None:
    current_trip.set(rule.name)
    reason = f"interlock {rule.name} tripped: {rule.condition.source}"
    cancelled, aborts = _cancel_what_drives(experiment, rule, reason)
    outcomes = []
    for step in rule.then:
        outcomes.append(await _do(experiment, rule, step, reason))
    experiment.tell({"kind": "trip", "rule": rule.name, "condition": rule.condition.source,
                     "values": rule.trip_values, "time": rule.tripped_at, "cancelled": cancelled, "steps": outcomes,
                     "message": f"{reason} ({_values(rule.trip_values or {})}); " + "; ".join(outcomes)})
    if aborts:
        await asyncio.wait(aborts)


def _cancel_what_drives(experiment: Experiment, rule: Rule, reason: str) -> tuple[list[str], list[asyncio.Task[None]]]:
    invocations, holders = experiment.invocations.driving(rule.modules_acted_on)
    cancelled, aborts = [], []
    for invocation in invocations:
        invocation.message = f"cancelled: {reason}"
        experiment.invocations.request_cancel(invocation)
        cancelled.append(f"invocation {invocation.id} ({invocation.module}.{invocation.action})")
    for holder in holders:
        ident = getattr(holder, "id", None)
        if experiment.runs is None or not isinstance(ident, str):
            continue
        setattr(holder, "message", f"aborted: {reason}")
        aborts.append(asyncio.create_task(_abort(experiment, ident)))  # its clean-up must not hold up the safe action
        cancelled.append(f"run {ident}")
    return cancelled, aborts


async def _abort(experiment: Experiment, ident: str) -> None:
    assert experiment.runs is not None
    try:
        await experiment.runs.control(ident, "abort", time.time() + ABORT_BUDGET)
    except BridgeError as exc:  # it ended meanwhile
        log.info("run %s was not aborted: %s", ident, exc.detail)


async def _do(experiment: Experiment, rule: Rule, step: TripStep, reason: str) -> str:
    """Do one step; what came of it, in a few words (a failure is logged, and the next step goes on)."""
    client = f"interlock {rule.name}"
    try:
        if step.set is not None:
            module, _, attribute = step.set.partition(".")
            await experiment.handle(_request("put", module, attribute, step.value, client))
            return f"{step.set} set to {step.value!r}"
        if step.run is not None:
            module, _, action = step.run.partition(".")
            started = await experiment.handle(_request("invoke", module, action, {"arguments": step.arguments},
                                                       client))
            return f"{step.run} started (invocation {started['id']})"
        done = []
        for module in step.modules:
            applied = await experiment.safe_states.apply(module, reason)
            failed = ", ".join(applied.get("failed") or {})
            done.append(f"{module} put in its safe state" + (f" except {failed}" if failed else ""))
        return ", ".join(done)
    except BridgeError as exc:
        log.error("interlock %s: %s failed: %s", rule.name, _step_text(step), exc.detail)
        return f"{_step_text(step)} FAILED: {exc.detail}"
    except Exception as exc:  # a bug in a safe state hook: the next step still runs
        log.exception("interlock %s: %s failed", rule.name, _step_text(step))
        return f"{_step_text(step)} FAILED: {type(exc).__name__}: {exc}"


def _request(op: Any, module: str, name: str, value: Any, client: str) -> Request:
    return Request(op, module, name, value, time.time() + STEP_BUDGET, uuid.uuid4().hex, client=client)


def _step_text(step: TripStep) -> str:
    if step.set is not None:
        return f"set {step.set} = {step.value!r}"
    return f"run {step.run}" if step.run is not None else f"safe state of {', '.join(step.modules)}"


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{name} = {value}" for name, value in values.items())
