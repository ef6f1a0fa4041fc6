"""Alarms: a severity per attribute with limits (config.yml `alarms:`), judged on every value the process sees.

Severities, as EPICS has them: `ok`; `minor` at or beyond `low`/`high`;
`major` at or beyond `lolo`/`hihi`; `invalid` when a read or write of the
attribute fails.  A severity drops only once the value is back past the limit
it crossed by that attribute's `hysteresis` (a reading hovering at a limit
does not flap); a worse one is taken at once.

`Alarms.observe` is one of `Experiment.observers`: it sees every scalar value
read, polled or written.  A value of an attribute without limits costs one
dict lookup; one with limits a few comparisons.  Each transition (and the
first severity seen after the start) is published as a live event
`{"module", "attribute": "<attribute>.alarm", "value": {"severity", "limit",
"value"}, "alarm": "<attribute>", "severity", "limit"}`, which the history
records in the channel `<attribute>.alarm` (`GET /<module>/<attribute>.alarm/history`),
and each real transition is told (`Experiment.tell`, kind "alarm"): audit log,
dashboard, webhooks (safety/notices.py).  `describe` answers `GET /alarms`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labbridge.core.config import Config, ConfigError
from labbridge.core.safety_config import AlarmLimits

if TYPE_CHECKING:
    from labbridge.experiment.base_module import BaseModule
    from labbridge.experiment.experiment import Experiment

log = logging.getLogger(__name__)

SEVERITIES = ("ok", "minor", "major", "invalid")  # the index is the severity's rank (and its /metrics value)
RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
CHANNEL = ".alarm"  # the history channel of an attribute's severity: "<attribute>.alarm"
_ORDER = ("lolo", "low", "high", "hihi")
_NUMBERS = frozenset({int, float})  # exactly (a bool is not a number here); subclasses take the longer way
_WORDS = {"lolo": "at or below", "low": "at or below", "high": "at or above", "hihi": "at or above"}


@dataclass(slots=True)
class AlarmState:
    """One attribute's limits and its current severity."""

    module: str
    attribute: str
    unit: str | None
    limits: AlarmLimits
    severity: str = "ok"
    limit: str | None = None  # the limit crossed ("high"), or None (ok, invalid)
    value: Any = None  # the last value judged (None: none yet, or the read failed)
    since: float | None = None  # Unix time of the last transition (None: nothing seen yet)
    seen: bool = False
    # The limits as plain floats (an absent one: infinitely far), and the band strictly inside them that is ok.
    lolo: float = -math.inf
    low: float = -math.inf
    high: float = math.inf
    hihi: float = math.inf
    ok_above: float = -math.inf
    ok_below: float = math.inf

    def __post_init__(self) -> None:
        for name in _ORDER:
            bound = getattr(self.limits, name)
            if bound is not None:
                setattr(self, name, float(bound))
        self.ok_above, self.ok_below = max(self.lolo, self.low), min(self.high, self.hihi)

    def judge(self, value: float) -> tuple[str, str | None]:
        """The severity and limit crossed for `value`, hysteresis applied to the limit crossed now."""
        if value >= self.hihi:
            worst: tuple[str, str | None] = ("major", "hihi")
        elif value <= self.lolo:
            worst = ("major", "lolo")
        elif value >= self.high:
            worst = ("minor", "high")
        elif value <= self.low:
            worst = ("minor", "low")
        else:
            worst = ("ok", None)
        if self.limit is None or RANK[worst[0]] >= RANK[self.severity]:
            return worst
        # Less severe than now: kept until the value is back past the limit crossed by the hysteresis.
        bound, band = getattr(self, self.limit), self.limits.hysteresis
        still = value > bound - band if self.limit in ("high", "hihi") else value < bound + band
        return (self.severity, self.limit) if still else worst

    def as_dict(self) -> dict[str, Any]:
        limits = self.limits.model_dump(exclude_none=True)
        return {"module": self.module, "attribute": self.attribute, "severity": self.severity, "limit": self.limit,
                "value": self.value, "since": self.since, "unit": self.unit, "limits": limits}


class Alarms:
    """Every attribute's alarm state, indexed by module and attribute name; an observer of the experiment."""

    def __init__(self, experiment: Experiment, states: list[AlarmState]) -> None:
        self.experiment = experiment
        self.states = states
        self._index: dict[str, dict[str, AlarmState]] = {}
        for state in states:
            self._index.setdefault(state.module, {})[state.attribute] = state

    @classmethod
    def from_config(cls, config: Config, modules: dict[str, BaseModule], experiment: Experiment,
                    source: str = "config.yml") -> Alarms:
        """The alarms config.yml declares, checked against the modules; ConfigError naming the key."""
        states = []
        for key, limits in config.alarms.items():
            where = f"{source}: alarms.{key}"
            module_name, _, attribute = key.partition(".")
            module = modules.get(module_name)
            if module is None or not attribute:
                known = ", ".join(modules) or "none"
                raise ConfigError(f"{where}: name an attribute as module.attribute; modules: {known}")
            spec = module.specs.get(attribute)
            if spec is None:
                raise ConfigError(f"{where}: module {module_name} has no attribute {attribute!r}; "
                                  f"known: {', '.join(module.specs)}")
            if spec.is_array or spec.type not in (int, float):
                raise ConfigError(f"{where}: alarm limits need a number (int or float); {attribute} is a "
                                  f"{spec.type_name}")
            _check_order(limits, where)
            states.append(AlarmState(module_name, attribute, spec.unit, limits))
        return cls(experiment, states)

    def observe(self, module: str, attribute: str, reading: dict[str, Any]) -> None:
        """Judge one reading (an observer: called for every scalar value the process reads or writes)."""
        watched = self._index.get(module)
        if watched is None:
            return
        state = watched.get(attribute)
        if state is None:
            return
        value: Any = reading.get("value")
        if (type(value) in _NUMBERS and state.ok_above < value < state.ok_below and state.seen
                and state.severity == "ok"):
            state.value = value  # the common case, a number that is ok and stays ok (NaN is not)
            return
        if "error" in reading:
            severity, limit, value = "invalid", None, None
        else:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                return  # nothing read yet (None): nothing to judge
            severity, limit = state.judge(value)
        if state.seen and severity == state.severity and limit == state.limit:
            state.value = value
            return
        self._change(state, severity, limit, value, reading.get("message"))

    def _change(self, state: AlarmState, severity: str, limit: str | None, value: Any, error: str | None) -> None:
        previous = state.severity if state.seen else None
        now = time.time()
        state.severity, state.limit, state.value, state.since, state.seen = severity, limit, value, now, True
        judged = {"severity": severity, "limit": limit, "value": value}
        self.experiment.publish({"module": state.module, "attribute": state.attribute + CHANNEL, "value": judged,
                                 "alarm": state.attribute, "severity": severity, "limit": limit, "time": now})
        if previous is None and severity == "ok":
            return  # the first value seen, and fine: nothing to tell
        self.experiment.tell({"kind": "alarm", "message": _message(state, previous, error), "module": state.module,
                              "attribute": state.attribute, "severity": severity, "previous": previous,
                              "limit": limit, "value": value, "time": now})

    def describe(self) -> dict[str, Any]:
        """The answer to `GET /alarms`: every attribute with limits and its severity now."""
        return {"alarms": [state.as_dict() for state in self.states]}


def _check_order(limits: AlarmLimits, where: str) -> None:
    given = [(name, getattr(limits, name)) for name in _ORDER if getattr(limits, name) is not None]
    if not given:
        raise ConfigError(f"{where}: give at least one of lolo, low, high, hihi")
    for (lower, low_value), (upper, up_value) in zip(given, given[1:]):
        strict = lower in ("lolo", "low") and upper in ("high", "hihi")  # ok lies between them
        if low_value > up_value or (strict and low_value == up_value):
            relation = "is not above" if strict else "is below"
            raise ConfigError(f"{where}.{upper}: {up_value:g} {relation} {lower} ({low_value:g}); "
                              "limits go lolo <= low < high <= hihi")


def _message(state: AlarmState, previous: str | None, error: str | None) -> str:
    """One line for people: what is in alarm, how bad, the value and the limit it crossed."""
    name = f"{state.module}.{state.attribute}"
    unit = f" {state.unit}" if state.unit else ""
    if state.severity == "invalid":
        return f"{name} is INVALID: its read failed" + (f" ({error})" if error else "")
    if state.severity == "ok":
        return f"{name} is back to ok: {state.value:g}{unit}" + (f" (was {previous})" if previous else "")
    assert state.limit is not None
    bound = getattr(state.limits, state.limit)
    return (f"{name} is {state.severity.upper()}: {state.value:g}{unit}, {_WORDS[state.limit]} "
            f"{state.limit} {bound:g}{unit}")
