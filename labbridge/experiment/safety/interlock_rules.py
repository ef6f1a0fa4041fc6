"""Rule: one interlock of config.yml, checked against the module classes at start, with its state.

`build_rules` turns `interlocks:` into Rules, refusing with a ConfigError
naming the key whatever does not fit: a name that is not lower_snake_case, a
condition that does not parse (with its column), an attribute or action that
no module declares, an array, a comparison of a boolean with a number, a
guarded attribute that cannot be written, a `set` value the attribute would
refuse, arguments the action would refuse, an attribute named in a condition
that is not polled at least every `within` seconds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from labbridge.core.config import Config, ConfigError
from labbridge.core.errors import BridgeError
from labbridge.core.interlocks_config import InterlockSettings, TripStep
from labbridge.experiment.base_module import BaseModule
from labbridge.experiment.safety.condition import Compare, Condition, Const, Key, Node, Ref, parse

ANY: Any = type("Any", (), {"__repr__": lambda self: "ANY"})()  # a guard on every value of an attribute


@dataclass(frozen=True)
class AllBut:
    """A trip's guard on every value of an attribute but the one it puts there (its safe value is never refused)."""

    value: Any
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_GUARD = re.compile(r"^\s*([A-Za-z_]\w*)\.([A-Za-z_]\w*)\s*(?:=\s*(\S+)\s*)?$")


@dataclass(eq=False)
class Rule:
    """One interlock, as config.yml declares it, and where it stands."""

    name: str
    kind: str  # "guard" or "trip"
    condition: Condition
    writes: list[tuple[Key, Any]]  # (module, attribute) and the value it guards (ANY: every value)
    actions: list[Key]  # (module, action) it names
    then: list[TripStep]
    within: float
    state: str = "ok"  # a trip: "ok", "tripped" (its condition holds, or is unknown), "latched" (clear, not acked)
    since: float = field(default_factory=time.time)
    tripped_at: float | None = None
    trip_values: dict[str, Any] | None = None  # the values that tripped it
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None

    @property
    def modules_acted_on(self) -> set[str]:
        return {module for step in self.then for module in step.modules}

    def guarded_text(self) -> list[str]:
        return ([f"{m}.{a}" + _guarded_value(value) for (m, a), value in self.writes]
                + [f"{m}.{a}" for m, a in self.actions])


def build_rules(config: Config, modules: dict[str, BaseModule], source: str) -> list[Rule]:
    return [_rule(name, settings, config, modules, f"{source}: interlocks.{name}")
            for name, settings in config.interlocks.items()]


def _rule(name: str, settings: InterlockSettings, config: Config, modules: dict[str, BaseModule],
          where: str) -> Rule:
    if not _NAME.match(name):
        raise ConfigError(f"{where}: an interlock's name must be lower_snake_case (letters, digits, _)")
    key = "requires" if settings.kind == "guard" else "trips_when"
    condition = parse(settings.condition, f"{where}.{key}")
    _check_node(condition.root, modules, f"{where}.{key}")
    for module, attribute in condition.references:
        poll = config.modules[module].poll.get(attribute)
        if poll is None:
            raise ConfigError(f"{where}.within: {module}.{attribute} is not polled, so the rule would not see it "
                              f"change: add modules.{module}.poll.{attribute}: {settings.within:g} (or less)")
        if poll > settings.within:
            raise ConfigError(f"{where}.within: {module}.{attribute} is polled every {poll:g} s "
                              f"(modules.{module}.poll.{attribute}), less often than within: {settings.within:g}")
    writes: list[tuple[Key, Any]] = []
    actions: list[Key] = []
    for index, text in enumerate(settings.guards):
        target, value = _guard(text, modules, f"{where}.guards.{index}")
        (writes.append((target, value)) if value is not _ACTION else actions.append(target))
    for index, step in enumerate(settings.then):
        _check_step(step, modules, f"{where}.then.{index}")
        # While the trip is tripped or latched, what it set stays set: any other value is refused.
        if step.set is not None:
            writes.append((_split(step.set), AllBut(step.value)))
        for module_name in step.modules if step.safe_state is not None else ():
            safe = config.modules[module_name].safe_state or {}  # a class's hook: its writes are not known here
            writes += [((module_name, attribute), AllBut(value)) for attribute, value in safe.items()]
    unique = [entry for index, entry in enumerate(writes) if entry not in writes[:index]]  # a set and a safe state
    return Rule(name, settings.kind, condition, unique, actions, list(settings.then), settings.within)


_ACTION: Any = object()


def _guarded_value(value: Any) -> str:
    if value is ANY:
        return ""
    if isinstance(value, AllBut):
        return f" != {_literal(value.value)}"
    return f" = {_literal(value)}"


def _guard(text: str, modules: dict[str, BaseModule], where: str) -> tuple[Key, Any]:
    """(module, attribute) and the value guarded (ANY), or (module, action) and _ACTION."""
    match = _GUARD.match(text)
    if match is None:
        raise ConfigError(f"{where}: expected module.attribute, module.attribute = value or module.action; "
                          f"got {text!r}")
    module_name, name, literal = match.groups()
    module = _module(module_name, modules, where)
    if name in module.actions:
        if literal is not None:
            raise ConfigError(f"{where}: {module_name}.{name} is an action: it takes no value")
        return (module_name, name), _ACTION
    spec = module.specs.get(name)
    if spec is None or not spec.writable:
        raise ConfigError(f"{where}: {module_name} has no writable attribute or action {name!r}")
    if literal is None:
        return (module_name, name), ANY
    value = _value(literal, where)
    try:
        spec.validate(value)
    except BridgeError as exc:
        raise ConfigError(f"{where}: {exc.detail}") from None
    return (module_name, name), value


def _check_step(step: TripStep, modules: dict[str, BaseModule], where: str) -> None:
    if step.set is not None:
        module_name, name = _split(step.set)
        spec = _module(module_name, modules, f"{where}.set").specs.get(name)
        if spec is None or not spec.writable:
            raise ConfigError(f"{where}.set: {module_name} has no writable attribute {name!r}")
        try:
            spec.validate(step.value)
        except BridgeError as exc:
            raise ConfigError(f"{where}.value: {exc.detail}") from None
    elif step.run is not None:
        module_name, name = _split(step.run)
        module = _module(module_name, modules, f"{where}.run")
        action = module.actions.get(name)
        if action is None:
            raise ConfigError(f"{where}.run: {module_name} has no action {name!r}; "
                              f"known: {', '.join(module.actions) or 'none'}")
        try:
            action.check_arguments(step.arguments, module.specs)
        except BridgeError as exc:
            raise ConfigError(f"{where}.arguments: {exc.detail}") from None
    else:
        for module_name in step.modules:
            _module(module_name, modules, f"{where}.safe_state")


def _check_node(node: Node, modules: dict[str, BaseModule], where: str) -> None:
    """Every attribute named exists and is a number or a boolean; a comparison compares like with like."""
    if isinstance(node, Compare):
        kinds = [_kind(side, modules, where) for side in (node.left, node.right)]
        if kinds[0] != kinds[1]:
            raise ConfigError(f"{where}: {node.text()} compares a {kinds[0]} with a {kinds[1]}")
        if kinds[0] == "boolean" and node.op not in ("==", "!="):
            raise ConfigError(f"{where}: {node.text()}: {node.op} compares numbers; booleans take == or !=")
        return
    for child in getattr(node, "parts", None) or [getattr(node, "operand")]:
        _check_node(child, modules, where)


def _kind(side: Ref | Const, modules: dict[str, BaseModule], where: str) -> str:
    if isinstance(side, Const):
        return "boolean" if isinstance(side.value, bool) else "number"
    module_name, name = side.key
    spec = _module(module_name, modules, where).specs.get(name)
    if spec is None:
        raise ConfigError(f"{where}: {module_name} has no attribute {name!r}")
    if spec.type is bool:
        return "boolean"
    if spec.type in (int, float):
        return "number"
    raise ConfigError(f"{where}: {module_name}.{name} is not a number or a boolean, so a condition cannot compare it")


def _module(name: str, modules: dict[str, BaseModule], where: str) -> BaseModule:
    module = modules.get(name)
    if module is None:
        raise ConfigError(f"{where}: no module {name!r} in this experiment process (known: {', '.join(modules)}); "
                          "a condition names attributes of the same process only")
    return module


def _split(target: str) -> Key:
    module, _, name = target.partition(".")
    return module, name


def _value(literal: str, where: str) -> Any:
    if literal in ("true", "false"):
        return literal == "true"
    try:
        number = float(literal)
    except ValueError:
        raise ConfigError(f"{where}: {literal!r} is not a number, true or false") from None
    return int(number) if number.is_integer() else number


def _literal(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else f"{value:g}"
