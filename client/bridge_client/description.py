"""What the bridge says about its modules (`GET /modules`), as typed, documented objects.

The client learns every name, type, unit, limit and doc line from the bridge
when it connects; nothing about the lab is written into the client.  A
section of a module's description that this client does not know yet (a newer
bridge) is kept in `ModuleInfo.raw` and otherwise ignored.  An action's
parameters and result come as JSON Schema (schema.py reads it): `ActionInfo`
checks arguments against it before anything is sent, and gives the action's
Python signature and help text.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from bridge_client import schema as json_schema
from bridge_client.errors import InvalidValue


@dataclass(frozen=True)
class AttributeInfo:
    """One attribute as the bridge declares it: type, unit, limits or choices, writable, doc."""

    module: str
    name: str
    type: str
    unit: str | None = None
    writable: bool = False
    doc: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None

    @classmethod
    def from_json(cls, module: str, name: str, data: dict[str, Any]) -> AttributeInfo:
        choices = data.get("choices")
        return cls(module=module, name=name, type=str(data.get("type", "")), unit=data.get("unit"),
                   writable=bool(data.get("writable", False)), doc=str(data.get("doc", "")),
                   minimum=data.get("min"), maximum=data.get("max"),
                   choices=tuple(choices) if choices is not None else None)

    @property
    def is_array(self) -> bool:
        return self.type.startswith(("list[", "ndarray["))

    def limits_text(self) -> str | None:
        """The limits in words ("0 to 100 mm"), or None when there are none."""
        return json_schema.limits_words(self.minimum, self.maximum, self.unit)

    def help_text(self) -> str:
        """The doc line, then type, unit, limits or choices, and access: what help() and `?` show."""
        facts = [f"type: {self.type}"]
        if self.unit:
            facts.append(f"unit: {self.unit}")
        if (limits := self.limits_text()) is not None:
            facts.append(f"limits: {limits}")
        if self.choices is not None:
            facts.append(f"choices: {', '.join(map(repr, self.choices))}")
        facts.append("writable" if self.writable else "read-only")
        return f"{self.doc or self.name}\n{'; '.join(facts)}."


@dataclass(frozen=True)
class ParameterInfo:
    """One parameter of an action (or its result): JSON Schema, unit, doc, and whether it must be given."""

    name: str
    schema: dict[str, Any] = field(repr=False)
    unit: str | None = None
    doc: str = ""
    required: bool = True
    default: Any = None

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any], required: bool) -> ParameterInfo:
        return cls(name=name, schema=data, unit=data.get("unit"), doc=str(data.get("description", "")),
                   required=required, default=data.get("default"))

    @property
    def type(self) -> str:
        """The type in Python's words: "float", "int or None", "list[float]"."""
        return json_schema.type_name(self.schema)

    def limits_text(self) -> str | None:
        return json_schema.limits_text(self.schema, self.unit)

    def help_text(self) -> str:
        """One line: name, type, unit or limits, default, doc ("to: float, 0 to 100 mm. Where it goes.")."""
        value, _ = json_schema.branches(self.schema)
        facts = [self.type]
        if (limits := self.limits_text()) is not None:
            facts.append(limits)
        elif self.unit:
            facts.append(self.unit)
        if "enum" in value:
            facts.append(f"one of {', '.join(map(repr, value['enum']))}")
        if not self.required:
            facts.append(f"default {self.default!r}")
        return f"{self.name}: {', '.join(facts)}." + (f" {self.doc}" if self.doc else "")

    def check(self, value: Any) -> None:
        """Raise InvalidValue, in the bridge's words, if the bridge would refuse `value`."""
        found = json_schema.problem(value, self.schema, self.unit)
        if found is not None:
            raise InvalidValue(f"{self.name}{'' if found.startswith('[') else ' '}{found}")


@dataclass(frozen=True)
class ActionInfo:
    """One action as the bridge declares it: doc, what it owns, its parameters and its result."""

    module: str
    name: str
    doc: str
    owns: tuple[str, ...]
    parameters: dict[str, ParameterInfo]
    returns: ParameterInfo

    @classmethod
    def from_json(cls, module: str, name: str, data: dict[str, Any]) -> ActionInfo:
        return cls(module=module, name=name, doc=str(data.get("doc", "")), owns=tuple(data.get("owns", ())),
                   parameters=parameters_from_json(data.get("parameters")),
                   returns=ParameterInfo.from_json("result", data.get("returns") or {}, True))

    def check_arguments(self, arguments: dict[str, Any]) -> None:
        """Raise InvalidValue naming the first argument the bridge would refuse: unknown, missing or wrong."""
        check_arguments(self.name, self.parameters, arguments)

    def signature(self) -> inspect.Signature:
        """`(self, *, to: float, speed: float | None = None) -> float`: keyword-only, as the bridge takes them."""
        return signature(self.parameters, json_schema.annotation(self.returns.schema))

    def help_text(self) -> str:
        """The doc, then each parameter and the result: what help() and `?` show."""
        lines = [self.doc or self.name, ""]
        if self.parameters:
            lines += ["Parameters:", *(f"  {p.help_text()}" for p in self.parameters.values())]
        result = self.returns.help_text().partition(": ")[2]
        lines += [f"Returns {result}" if self.returns.schema else "Returns nothing.", "",
                  "Starts the action and returns its Invocation at once: .wait() waits for the result "
                  "(.wait(progress=True) with a progress bar), .cancel() stops it."]
        if self.owns:
            lines.append(f"While it runs, writing {' or '.join(self.owns)} is refused (Busy).")
        return "\n".join(lines)


@dataclass(frozen=True)
class ModuleInfo:
    """One module: its class, doc line, attributes and actions, from the bridge's description."""

    name: str
    doc: str
    class_path: str
    attributes: dict[str, AttributeInfo]
    raw: dict[str, Any] = field(repr=False, compare=False)
    actions: dict[str, ActionInfo] = field(default_factory=dict)

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> ModuleInfo:
        attributes = {attr: AttributeInfo.from_json(name, attr, info)
                      for attr, info in data.get("attributes", {}).items()}
        actions = {act: ActionInfo.from_json(name, act, info) for act, info in (data.get("actions") or {}).items()}
        return cls(name=name, doc=str(data.get("doc", "")), class_path=str(data.get("class", "")),
                   attributes=attributes, raw=data, actions=actions)

    def help_text(self) -> str:
        lines = [self.doc or self.name, "", f"Module {self.name!r} of the bridge ({self.class_path}). Attributes:"]
        for attr in self.attributes.values():
            first, _, facts = attr.help_text().partition("\n")
            lines.append(f"  {attr.name}: {first} ({facts.rstrip('.')})")
        if self.actions:
            lines.append("Actions (each returns an Invocation at once; .wait() for its result):")
            for act in self.actions.values():
                arguments = ", ".join(f"{p}=" for p in act.parameters)
                lines.append(f"  {act.name}({arguments}): {act.doc.partition(chr(10))[0]}")
        return "\n".join(lines)


def parameters_from_json(data: dict[str, Any] | None) -> dict[str, ParameterInfo]:
    """The parameters of an action or a procedure, from their JSON Schema object (`properties`, `required`)."""
    data = data or {}
    required = set(data.get("required", []))
    return {p: ParameterInfo.from_json(p, info, p in required) for p, info in data.get("properties", {}).items()}


def check_arguments(what: str, parameters: dict[str, ParameterInfo], arguments: dict[str, Any]) -> None:
    """Raise InvalidValue naming the first argument of `what` the bridge would refuse: unknown, missing or wrong."""
    for key in arguments:
        if key not in parameters:
            raise InvalidValue(f"{what} has no parameter {json_schema.shown(key)}; its parameters: "
                               f"{', '.join(parameters) or 'none'}")
    for name, parameter in parameters.items():
        if name in arguments:
            parameter.check(arguments[name])
        elif parameter.required:
            limits = parameter.limits_text()
            raise InvalidValue(f"{what} needs the argument {name!r} "
                               f"({json_schema.a_type(parameter.type)}{f', {limits}' if limits else ''})")


def signature(parameters: dict[str, ParameterInfo], returns: Any) -> inspect.Signature:
    """`(self, *, to: float, speed: float | None = None) -> float`: keyword-only, as the bridge takes them."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    listed = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    listed += [inspect.Parameter(p.name, keyword, annotation=json_schema.annotation(p.schema),
                                 default=inspect.Parameter.empty if p.required else p.default)
               for p in parameters.values()]
    return inspect.Signature(listed, return_annotation=returns)


def modules_from_json(data: dict[str, Any]) -> dict[str, ModuleInfo]:
    """Every module of a `GET /modules` answer."""
    return {name: ModuleInfo.from_json(name, info) for name, info in data["modules"].items()}
