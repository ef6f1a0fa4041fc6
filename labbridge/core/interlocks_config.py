"""config.yml's `interlocks:`: rules across instruments, as pydantic models (the shapes only).

    interlocks:
      supply_only_when_cool:
        guards: [psu.output = true, psu.voltage]    # writes (and actions) refused unless the condition holds
        requires: module_a.temperature < 40
        within: 2                                   # each referenced attribute polled at least this often
      overforce:
        trips_when: module_a.force > 90
        then: [{run: module_a.stop}, {set: psu.output, value: false}, {safe_state: psu}]
        within: 0.5

A rule is a *guard* (`requires`) or a *trip* (`trips_when` and `then`).  What
needs the module classes (the names exist, the conditions parse, the values
fit, the poll intervals are short enough) is checked by the experiment
process at start (experiment/safety/interlocks.py), with the same ConfigError.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

Seconds = Annotated[float, Field(gt=0, le=3600)]
Target = Annotated[str, Field(min_length=3, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TripStep(_Strict):
    """One thing a trip does, in order: `{set: module.attribute, value: v}`, `{run: module.action, arguments:
    {...}}` (started, not waited for) or `{safe_state: module}` (or a list of modules)."""

    set: Target | None = None
    value: Any = None
    run: Target | None = None
    arguments: dict[str, Any] = {}
    safe_state: Target | list[Target] | None = None

    @model_validator(mode="after")
    def _one_thing(self) -> TripStep:
        given = [key for key in ("set", "run", "safe_state") if getattr(self, key) is not None]
        if len(given) != 1:
            raise _refused("a step of `then` is one of {set: module.attribute, value: v}, "
                             "{run: module.action}, {safe_state: module}; got " + (", ".join(given) or "none"))
        if self.set is not None and "value" not in self.model_fields_set:
            raise _refused(f"{{set: {self.set}}} needs the value to set, like {{set: {self.set}, value: false}}")
        if self.set is None and "value" in self.model_fields_set:
            raise _refused("`value` goes with `set`")
        if self.run is None and self.arguments:
            raise _refused("`arguments` go with `run`")
        return self

    @property
    def modules(self) -> list[str]:
        """The modules this step acts on."""
        if self.safe_state is not None:
            return [self.safe_state] if isinstance(self.safe_state, str) else list(self.safe_state)
        return [(self.set or self.run or "").partition(".")[0]]


class InterlockSettings(_Strict):
    """One rule: a guard (`guards` + `requires`) or a trip (`trips_when` + `then`, and optionally `guards` refused
    while it is tripped or latched).  `within`: seconds; every attribute the condition names must be polled at
    least this often."""

    guards: list[Target] = []  # module.attribute, module.attribute = value (only writes of that value), module.action
    requires: Annotated[str, Field(max_length=1000)] | None = None
    trips_when: Annotated[str, Field(max_length=1000)] | None = None
    then: list[TripStep] = []
    within: Seconds

    @model_validator(mode="after")
    def _guard_or_trip(self) -> InterlockSettings:
        if (self.requires is None) == (self.trips_when is None):
            raise _refused("a rule has either `requires` (a guard) or `trips_when` (a trip)")
        if self.requires is not None and not self.guards:
            raise _refused("a guard needs `guards`: what it refuses unless `requires` holds, like [psu.output]")
        if self.requires is not None and self.then:
            raise _refused("`then` belongs to a trip (`trips_when`), not a guard")
        if self.trips_when is not None and not self.then:
            raise _refused("a trip needs `then`: what it does, like [{set: psu.output, value: false}]")
        return self

    @property
    def kind(self) -> str:
        return "guard" if self.requires is not None else "trip"

    @property
    def condition(self) -> str:
        return self.requires if self.requires is not None else self.trips_when or ""


def _refused(message: str) -> PydanticCustomError:
    """An error config.py's messages put after the key it is at (a ValueError's would stand alone)."""
    return PydanticCustomError("interlock", message)
