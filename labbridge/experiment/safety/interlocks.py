"""Interlocks: guards that refuse writes, actions and runs, and trips that drive a safe action and latch.

The experiment process keeps the latest value of every attribute a condition
names: `observe` is one of `Experiment.observers`, so it sees every value
read, polled or written, and every failed read (FAILED).  An attribute no
rule names costs one dict lookup.

- A *guard* is judged when a write, action or run asks: `check_write` (a PUT,
  and each write of a run), `check_action` (an action it names, or one that
  owns an attribute it guards), `check_drives` (a run whose `drives` include
  a guarded attribute, as it starts).  Unless the condition is True (unknown
  fails safe) the request is refused with 409 `interlocked` naming the rule,
  its condition and the values, before anything reaches the instrument.
- A *trip* is judged on each new value of an attribute it names.  When its
  condition becomes True, or unknown (a failed read), it trips at once: its
  `then` runs in a task of its own (trip.py), and it is `tripped`; once the
  condition is clear it is `latched` until an operator acknowledges it
  (`ack`, POST /interlocks/<name>/ack, audited with the identity; 409 while the
  condition still holds).  While tripped or latched, the writes its `then`
  sets and those it `guards` are refused.  An attribute never read yet counts
  as unknown once the start's grace (its poll interval and its module's
  timeouts) has passed.

Conditions name attributes of this experiment process only.  What a trip and
an acknowledgement did goes to `experiment.tell` (kinds "trip" and "ack").
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from labbridge.core.config import ConfigError
from labbridge.core.action import ActionSpec
from labbridge.core.audit import WriteAttempt
from labbridge.core.config import Config
from labbridge.core.errors import BridgeError, InvalidValue, Interlocked, UnknownInterlock
from labbridge.core.protocol import Request
from labbridge.experiment.invocation import current_trip
from labbridge.experiment.safety.condition import FAILED, Key
from labbridge.experiment.safety.interlock_rules import ANY, AllBut, Rule, build_rules
from labbridge.experiment.safety.trip import carry_out

if TYPE_CHECKING:
    from labbridge.experiment.experiment import Experiment

log = logging.getLogger(__name__)


class Interlocks:
    """Every interlock of one experiment process, indexed by what they read and what they refuse."""

    def __init__(self, experiment: Experiment, rules: list[Rule] | None = None) -> None:
        self.experiment = experiment
        self.rules = {rule.name: rule for rule in rules or []}
        self.values: dict[Key, Any] = {}  # the latest value of each attribute a condition names
        self._trips: dict[Key, list[Rule]] = {}  # attribute -> the trips that name it (guards: an empty list)
        self._writes: dict[Key, list[tuple[Rule, Any]]] = {}  # attribute -> rules that refuse writes to it
        self._actions: dict[Key, list[Rule]] = {}  # (module, action) -> rules that refuse it
        self._grace_until = 0.0  # before it, an attribute never read does not trip
        self._tasks: set[asyncio.Task[None]] = set()
        for rule in self.rules.values():
            for key in rule.condition.references:
                watching = self._trips.setdefault(key, [])
                if rule.kind == "trip" and rule not in watching:
                    watching.append(rule)
            for key, value in rule.writes:
                self._writes.setdefault(key, []).append((rule, value))
            for key in rule.actions:
                self._actions.setdefault(key, []).append(rule)
        for name, module in experiment.modules.items():  # an action is guarded with what it owns
            for action in module.actions.values():
                for attribute in action.owns:
                    for rule, _ in self._writes.get((name, attribute), ()):
                        self._actions.setdefault((name, action.name), [])
                        if rule not in self._actions[(name, action.name)]:
                            self._actions[(name, action.name)].append(rule)
        if self.rules:
            experiment.observers.append(self.observe)
            experiment.invocations.check_start = self.check_action

    @classmethod
    def from_config(cls, experiment: Experiment, config: Config, source: str) -> Interlocks:
        rules = build_rules(config, experiment.modules, source)
        for rule in rules:  # a trip that asks for a safe state needs one declared, or it would do nothing when it counts
            for index, step in enumerate(rule.then):
                for module in step.modules if step.safe_state is not None else ():
                    if not experiment.safe_states.declares(module):
                        raise ConfigError(f"{source}: interlocks.{rule.name}.then.{index}.safe_state: {module} declares "
                                          f"no safe state: add modules.{module}.safe_state (or a safe_state() hook)")
        return cls(experiment, rules)

    async def start(self) -> None:
        """Give every named attribute time for its first read; then one never read counts as unknown."""
        grace = 0.0
        for module_name, attribute in self._trips:
            module = self.experiment.modules[module_name]
            settings = module.settings
            grace = max(grace, settings.poll.get(attribute, 0.0) + settings.timeout + settings.connect_timeout)
        self._grace_until = time.time() + grace
        if any(rule.kind == "trip" for rule in self.rules.values()):
            self._spawn(self._after_grace(grace))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=3.0)

    # Values -------------------------------------------------------------------------------------------------

    def observe(self, module: str, attribute: str, reading: dict[str, Any]) -> None:
        """An observer (Experiment.observers): keep the value if a rule names it, and judge the trips naming it."""
        key = (module, attribute)
        trips = self._trips.get(key)
        if trips is None:
            return
        self.values[key] = FAILED if "error" in reading else reading.get("value")
        for rule in trips:
            self._judge(rule)

    def _judge(self, rule: Rule) -> None:
        result = rule.condition.root.evaluate(self.values)  # the root's own: one call less on every value
        if result is None and time.time() < self._grace_until and \
                not all(key in self.values for key in rule.condition.references):
            return  # still waiting for a first read
        active = result is not False  # unknown fails safe: it trips
        if active and rule.state != "tripped":
            self._trip(rule)
        elif not active and rule.state == "tripped":
            rule.state, rule.since = "latched", time.time()
            self.experiment.tell({"kind": "clear", "rule": rule.name, "time": rule.since,
                                  "message": f"interlock {rule.name}: its condition is clear ({rule.condition.source} "
                                             f"no longer holds); latched until acknowledged"})

    def _trip(self, rule: Rule) -> None:
        now = time.time()
        rule.state, rule.since, rule.tripped_at = "tripped", now, now
        rule.trip_values = rule.condition.values(self.values)
        rule.acknowledged_by = rule.acknowledged_at = None
        log.warning("interlock %s tripped: %s (%s)", rule.name, rule.condition.source, _shown(rule.trip_values))
        self._spawn(carry_out(self.experiment, rule))  # at once, but not inside the observer that saw the value

    async def _after_grace(self, grace: float) -> None:
        await asyncio.sleep(grace)
        for rule in self.rules.values():
            if rule.kind == "trip":
                self._judge(rule)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Guards -------------------------------------------------------------------------------------------------

    def check_write(self, module: str, attribute: str, value: Any) -> None:
        """Refuse (Interlocked) a write an interlock forbids now."""
        rules = self._writes.get((module, attribute))
        if rules is None or current_trip.get() is not None:
            return
        for rule, guarded in rules:
            if guarded is ANY or (not _same(guarded.value, value) if isinstance(guarded, AllBut) else
                                  _same(guarded, value)):
                self._refuse_unless_allowed(rule, f"{module}.{attribute} = {value!r}")

    def check_action(self, module: str, spec: ActionSpec) -> None:
        """Refuse an action an interlock names, or one owning an attribute it guards (Invocations.check_start)."""
        rules = self._actions.get((module, spec.name))
        if rules is None or current_trip.get() is not None:
            return
        for rule in rules:
            self._refuse_unless_allowed(rule, f"{module}.{spec.name}")

    def check_drives(self, drives: tuple[tuple[str, str], ...], what: str) -> None:
        """Refuse a run whose procedure drives an attribute an interlock guards (as it starts)."""
        if not self._writes:
            return
        for key in drives:
            for rule, _ in self._writes.get(key, ()):
                self._refuse_unless_allowed(rule, f"{what} (it drives {key[0]}.{key[1]})")

    def _refuse_unless_allowed(self, rule: Rule, what: str) -> None:
        if rule.kind == "guard":
            if rule.condition.evaluate(self.values) is True:
                return
            raise Interlocked(f"{what} refused by interlock {rule.name}: it requires {rule.condition.source}; "
                              f"{_shown(rule.condition.values(self.values))}")
        if rule.state == "ok":
            return
        raise Interlocked(f"{what} refused by interlock {rule.name}: it tripped ({rule.condition.source}; "
                          f"{_shown(rule.trip_values or {})}) and is {rule.state} until its condition is clear and "
                          f"it is acknowledged (POST /interlocks/{rule.name}/ack)")

    # Requests -----------------------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Any:
        if request.op == "interlocks":
            return self.status()
        return await self.ack(request)

    def status(self) -> dict[str, Any]:
        return {"interlocks": {name: self._describe(rule) for name, rule in self.rules.items()}}

    def _describe(self, rule: Rule) -> dict[str, Any]:
        if rule.kind == "guard":
            state, since = ("ok" if rule.condition.evaluate(self.values) is True else "tripped"), None
        else:
            state, since = rule.state, rule.since
        return {"kind": rule.kind, "condition": rule.condition.source, "state": state, "since": since,
                "values": rule.condition.values(self.values), "guards": rule.guarded_text(),
                "then": [step.model_dump(exclude_defaults=True) for step in rule.then], "within": rule.within,
                "tripped_at": rule.tripped_at, "trip_values": rule.trip_values,
                "acknowledged_by": rule.acknowledged_by, "acknowledged_at": rule.acknowledged_at}

    async def ack(self, request: Request) -> dict[str, Any]:
        """Acknowledge a latched trip: it is `ok` again (audited with the identity; 409 while its condition holds)."""
        name = request.attribute or ""
        audit = self.experiment.audit
        attempt = WriteAttempt("interlock_ack", "interlocks", name, None, request.client, request.identity,
                               request.id, request.role)
        try:
            rule = self.rules.get(name)
            if rule is None:
                raise UnknownInterlock(f"no interlock {name!r}; known: {', '.join(self.rules) or 'none'}")
            if rule.kind == "guard":
                raise InvalidValue(f"interlock {name} is a guard: it latches nothing, so there is nothing to acknowledge")
            if rule.state == "tripped" or rule.condition.evaluate(self.values) is not False:
                raise Interlocked(f"interlock {name} cannot be acknowledged: its condition still holds "
                                  f"({rule.condition.source}; {_shown(rule.condition.values(self.values))})")
        except BridgeError as exc:
            if audit is not None:
                await audit.record_refusal(attempt, exc.code)
            raise
        was = rule.state
        if audit is not None:
            write = audit.record_write(attempt)
            await write.started(before=was)
            await write.finished("ok", after="ok")
        if was == "latched":
            rule.state, rule.since = "ok", time.time()
            rule.acknowledged_by, rule.acknowledged_at = request.identity or request.client or "anonymous", time.time()
            self.experiment.tell({"kind": "ack", "rule": name, "identity": rule.acknowledged_by, "time": rule.since,
                                  "message": f"interlock {name} acknowledged by {rule.acknowledged_by}"})
        return self._describe(rule)


def _shown(values: dict[str, Any]) -> str:
    return ", ".join(f"{name} is {value!r}" if not isinstance(value, str) else f"{name}: {value}"
                     for name, value in values.items())


def _same(guarded: Any, value: Any) -> bool:
    """A write of `value` is the guarded one (true is not 1: a boolean matches only a boolean)."""
    return bool(guarded == value) and isinstance(guarded, bool) == isinstance(value, bool)
