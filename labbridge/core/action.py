"""`@action`: an operation that takes time, declared once on an async method of a module.

    class ModuleA(BaseModule):
        @action(owns=("position",))
        async def move(self, to: Annotated[float, Param(like="position", doc="Where the carriage goes.")],
                       speed: Annotated[float | None, Param(like="speed", doc="Travel speed.")] = None,
                       ) -> Annotated[float, Param(unit="mm", doc="Where the carriage stopped.")]:
            \"\"\"Move the carriage to `to`.\"\"\"

Each parameter's type is its annotation; `Param` inside `Annotated` adds unit,
limits or choices and a doc line, or takes them from an attribute with
`like="position"` (including any narrower limits config.yml sets).  A parameter
with a default may be left out; a plain annotation (`count: int = 1`) needs no
`Param`.  The return annotation describes the result.  `owns` names the
attributes the action drives: while it runs, a PUT to one of them, or another
action owning one of them, is refused (409 busy).  `targets` names the fixed
values it drives some of them to whatever its arguments (`home` drives
`position` to 0): where config.yml's limits exclude one, the action is refused
before it starts, as an argument outside its limits would be.

BaseModule collects the actions of a class when it is created (`collect_actions`),
next to its attributes, and refuses a name that is both.  `ActionSpec.check_arguments`
validates a client's arguments with the rules of attribute writes (values.py)
before anything runs; `describe` gives the parameters and result as JSON Schema.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints, overload

from pydantic import PydanticUserError, TypeAdapter, ValidationError

from labbridge.core.attribute import RESERVED_NAMES, AttributeSpec
from labbridge.core.errors import InstrumentError, InvalidValue
from labbridge.core.values import ValueRule, shown

# What an invocation can be; the last four are final.
Status = Literal["pending", "running", "completed", "failed", "cancelled", "lost"]
STATUSES: tuple[str, ...] = get_args(Status)
FINISHED = frozenset({"completed", "failed", "cancelled", "lost"})
# The longest a client may wait for an invocation's status to change in one request (seconds).
MAX_WAIT = 60.0

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MARK = "__bridge_action__"
_REQUIRED: Any = inspect.Parameter.empty


@dataclass(frozen=True)
class ParamInfo:
    """What `Param()` declares about one parameter (or the result)."""

    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    like: str | None = None


def Param(*, unit: str | None = None, minimum: float | None = None, maximum: float | None = None,  # noqa: N802
          choices: tuple[Any, ...] | None = None, doc: str = "", like: str | None = None) -> Any:
    """Describe an action's parameter (inside `Annotated`); `like` takes unit and limits from an attribute."""
    if like is not None and (unit, minimum, maximum, choices) != (None, None, None, None):
        raise TypeError(f"Param(like={like!r}) takes unit, limits and choices from the attribute; give only doc")
    return ParamInfo(unit, minimum, maximum, choices, doc, like)


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: the rule its argument must satisfy, its doc line and default."""

    rule: ValueRule
    doc: str = ""
    like: str | None = None
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def rule_for(self, specs: dict[str, AttributeSpec[Any]]) -> ValueRule:
        """The rule on one module: a `like` parameter follows that module's (possibly narrowed) attribute."""
        if self.like is None:
            return self.rule
        spec = specs[self.like]
        return _following(self.rule, spec)

    def schema(self, specs: dict[str, AttributeSpec[Any]]) -> dict[str, Any]:
        schema = self.rule_for(specs).schema()
        if self.doc:
            schema["description"] = self.doc
        if not self.required:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class ActionSpec:
    """One declared action: its method, what it owns, its parameters and its result."""

    name: str
    function: Callable[..., Awaitable[Any]]
    doc: str
    owns: tuple[str, ...]
    parameters: dict[str, Parameter]
    returns: Parameter
    targets: dict[str, Any] = field(default_factory=dict)  # attribute -> the fixed value the action drives it to

    def check_arguments(self, arguments: dict[str, Any], specs: dict[str, AttributeSpec[Any]]) -> dict[str, Any]:
        """The arguments, checked and completed with defaults; InvalidValue names the first problem
        (or a fixed target that this module's limits exclude: then the action cannot run here at all)."""
        for attribute, value in self.targets.items():
            spec = specs[attribute]
            if isinstance(value, (int, float)) and not spec.within_limits(value):
                unit = f" {spec.unit}" if spec.unit else ""
                raise InvalidValue(f"{self.name} cannot run: it drives {attribute} to {value:g}{unit}, "
                                   f"and {attribute} must be {spec.limits_text()}")
        for key in arguments:
            if key not in self.parameters:
                known = ", ".join(self.parameters) or "none"
                raise InvalidValue(f"{self.name} has no parameter {shown(key)}; its parameters: {known}")
        checked: dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            rule = parameter.rule_for(specs)
            if name in arguments:
                checked[name] = rule.validate(arguments[name])
            elif parameter.required:
                limits = "" if rule.limits_text() == "unlimited" else f", {rule.limits_text()}"
                raise InvalidValue(f"{self.name} needs the argument {name!r} ({rule.a_type}{limits})")
            else:
                checked[name] = parameter.default
        return checked

    def output(self, result: Any) -> Any:
        """The action's result as JSON-ready data, checked against its return annotation."""
        adapter = _lax_adapter(self.returns.rule.type)
        try:
            return adapter.dump_python(adapter.validate_python(result), mode="json")
        except ValidationError as exc:
            raise InstrumentError(f"action {self.name} returned {result!r}, expected {self.returns.rule.a_type} "
                                  f"({exc.errors()[0]['msg']})") from None

    def describe(self, specs: dict[str, AttributeSpec[Any]]) -> dict[str, Any]:
        """The action as JSON-ready data: doc, what it owns, its parameters and result as JSON Schema."""
        parameters = {
            "type": "object",
            "properties": {name: p.schema(specs) for name, p in self.parameters.items()},
            "required": [name for name, p in self.parameters.items() if p.required],
            "additionalProperties": False,
        }
        return {"doc": self.doc, "owns": list(self.owns), "parameters": parameters,
                "returns": self.returns.schema(specs)}


@overload
def action(function: F, /) -> F: ...
@overload
def action(*, owns: tuple[str, ...] | list[str] = (), targets: dict[str, Any] | None = None) -> Callable[[F], F]: ...
def action(function: F | None = None, /, *, owns: tuple[str, ...] | list[str] = (),
           targets: dict[str, Any] | None = None) -> F | Callable[[F], F]:
    """Declare an async method of a BaseModule subclass as an action (`@action` or `@action(owns=(...))`).

    `targets` maps owned attributes to the fixed values the action drives them to (`{"position": 0.0}`)."""
    def mark(method: F) -> F:
        is_async = inspect.iscoroutinefunction(method)  # (kept apart: as a condition it would narrow `method`)
        if not is_async:
            raise TypeError(f"@action needs an `async def` method; {method.__qualname__} is not one")
        setattr(method, _MARK, (tuple(owns), dict(targets or {})))
        return method

    if isinstance(owns, str):
        raise TypeError(f"@action(owns=...) takes a tuple of attribute names, not the string {owns!r}")
    return mark if function is None else mark(function)


def collect_actions(cls: type, attributes: dict[str, AttributeSpec[Any]],
                    inherited: dict[str, ActionSpec]) -> dict[str, ActionSpec]:
    """The actions of `cls`: inherited ones, minus those it redefines as plain methods, plus its own."""
    table = dict(inherited)
    for name, value in vars(cls).items():
        marked = getattr(value, _MARK, None)
        if marked is None:
            if not isinstance(value, AttributeSpec):  # a plain method of that name replaces the inherited action
                table.pop(name, None)
            continue
        where = f"{cls.__name__}.{name}"
        if not _NAME.match(name) or name in RESERVED_NAMES:
            raise TypeError(f"action {where} must be lower_snake_case and not one of {sorted(RESERVED_NAMES)}")
        owns, targets = marked
        table[name] = _build(where, name, value, owns, targets, attributes)
    for name in table:
        if name in attributes:
            raise TypeError(f"{cls.__name__}.{name} is both an attribute and an action; give them different names")
    return table


def _build(where: str, name: str, function: Callable[..., Awaitable[Any]], owns: tuple[str, ...],
           targets: dict[str, Any], attributes: dict[str, AttributeSpec[Any]]) -> ActionSpec:
    for owned in owns:
        if owned not in attributes:
            raise TypeError(f"action {where} owns {owned!r}, which is not an attribute; known: {', '.join(attributes)}")
    checked_targets = {attribute: _target(where, attribute, value, owns, attributes)
                       for attribute, value in targets.items()}
    try:
        hints = get_type_hints(function, include_extras=True)
    except Exception as exc:  # a name in an annotation that cannot be resolved
        raise TypeError(f"action {where}: its annotations cannot be read ({exc})") from None
    if "return" not in hints:
        raise TypeError(f"action {where} needs a return annotation (`-> None` if it returns nothing)")
    parameters: dict[str, Parameter] = {}
    for parameter in list(inspect.signature(function).parameters.values())[1:]:  # after self
        label = f"action {where} parameter {parameter.name!r}"
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TypeError(f"{label}: actions take named parameters only (no *args, **kwargs or positional-only)")
        if parameter.name not in hints:
            raise TypeError(f"{label} needs a type annotation, e.g. `{parameter.name}: float`")
        parameters[parameter.name] = _parameter(label, parameter.name, hints[parameter.name], parameter.default,
                                                attributes)
    returns = _parameter(f"action {where} result", "result", hints["return"], _REQUIRED, attributes)
    return ActionSpec(name, function, inspect.getdoc(function) or "", owns, parameters, returns, checked_targets)


def _target(where: str, attribute: str, value: Any, owns: tuple[str, ...],
            attributes: dict[str, AttributeSpec[Any]]) -> Any:
    """A fixed target, checked against the class's declaration (config.yml may only narrow it further)."""
    if attribute not in owns:
        raise TypeError(f"action {where} targets {attribute!r}, which it does not own; add it to owns")
    try:
        return attributes[attribute].validate(value)
    except InvalidValue as exc:
        raise TypeError(f"action {where} targets {attribute!r} to {value!r}: {exc.detail}") from None


def declared_parameter(label: str, name: str, hint: Any, default: Any,
                       attributes: dict[str, AttributeSpec[Any]]) -> Parameter:
    """One parameter from its annotation and default, `like=` resolved in `attributes` (a procedure's parameters
    are built the same way, with attributes named `module.attribute`); TypeError naming `label` if it is wrong."""
    return _parameter(label, name, hint, default, attributes)


def _parameter(label: str, name: str, hint: Any, default: Any, attributes: dict[str, AttributeSpec[Any]]) -> Parameter:
    annotation, info = hint, ParamInfo()
    if get_origin(hint) is Annotated:
        annotation, *extras = get_args(hint)
        info = next((x for x in extras if isinstance(x, ParamInfo)), info)
    rule = ValueRule(name, annotation, info.unit, info.minimum, info.maximum, info.choices)
    if info.like is not None:
        spec = attributes.get(info.like)
        if spec is None:
            raise TypeError(f"{label}: Param(like={info.like!r}) names no attribute; known: {', '.join(attributes)}")
        if rule.base_type != spec.type:
            raise TypeError(f"{label} is {rule.a_type} but attribute {info.like!r} is {spec.rule.a_type}")
        rule = _following(rule, spec)
    rule.check_declaration(label)
    try:  # a type pydantic cannot describe or check is refused now, not on the first request
        rule.schema()
        _lax_adapter(rule.type)
    except PydanticUserError as exc:
        raise TypeError(f"{label}: {exc.message}") from None
    if default is not _REQUIRED:
        try:
            rule.validate(default)
        except InvalidValue as exc:
            raise TypeError(f"{label}: its default does not satisfy its own declaration: {exc.detail}") from None
    return Parameter(rule, info.doc, info.like, default)


@cache
def _lax_adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _following(rule: ValueRule, spec: AttributeSpec[Any]) -> ValueRule:
    """`rule` with the unit, limits and choices of the attribute a `like=` parameter follows."""
    return replace(rule, unit=spec.unit, minimum=spec.minimum, maximum=spec.maximum, choices=spec.choices)
