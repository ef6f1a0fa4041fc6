"""ArchivePolicy: which values of an attribute are worth recording, as HDB++'s archive events decide.

A lab polling many attributes at 10 Hz writes hundreds of millions of rows a
day, mostly the same value again.  An attribute given a rule in
`history.archive` (`module.attribute: {deadband: 0.01, every: 60}`) records a
value only when it differs from the last one recorded by more than `deadband`
(absolute, in the attribute's unit), or when `every` seconds have passed since
that one; anything that is not a number (text, a failed read, the first value
after one) is recorded when it changes.  An attribute without a rule records
every value, as before.  The decision is made as events are published, on the
event loop: one dict look-up for an attribute without a rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from labbridge.core.config import ArchiveRule

_MISSING = object()  # the last recorded "value" of an attribute that recorded nothing yet


class ArchivePolicy:
    """The rules of `history.archive`, and the last value each ruled attribute recorded (time, value)."""

    def __init__(self, rules: Mapping[str, ArchiveRule]) -> None:
        self._rules: dict[tuple[Any, Any], ArchiveRule] = {}
        for key, rule in rules.items():
            module, attribute = key.split(".", 1)
            self._rules[(module, attribute)] = rule
        self._last: dict[tuple[Any, Any], tuple[float, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def keeps(self, event: dict[str, Any]) -> bool:
        """Whether `event` is recorded; remembers it as the last recorded value of its attribute if so."""
        key: tuple[Any, Any] = (event.get("module"), event.get("attribute"))
        rule = self._rules.get(key)
        if rule is None:
            return True
        value = _MISSING if "error" in event else event.get("value")  # a failed read: a gap, recorded once
        when = event.get("time")
        t = float(when) if isinstance(when, (int, float)) else 0.0
        last = self._last.get(key)
        if last is not None and not _differs(last[1], value, rule.deadband) and (
                rule.every is None or t - last[0] < rule.every):
            return False
        self._last[key] = (t, value)
        return True


def _differs(last: Any, value: Any, deadband: float) -> bool:
    if _is_number(last) and _is_number(value):
        if not (math.isfinite(last) and math.isfinite(value)):
            return bool(last != value) and not (math.isnan(last) and math.isnan(value))
        return bool(abs(value - last) > deadband)
    return bool(last is not value and (type(last) is not type(value) or last != value))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
