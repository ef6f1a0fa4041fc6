"""ValueRule: what a value sent by a client must be, shared by attribute writes and action arguments.

A rule holds a value's type (from an annotation), unit, limits or choices.
`validate` checks a value strictly before anything reaches an instrument: the
right type (a float takes any JSON number but not `true`), finite, within the
limits (never clipped) or one of the choices; the message names the value,
the limits and the unit.  `check_declaration` refuses a declaration that
makes no sense (limits on a string, minimum above maximum) when the class is
created.  `schema` gives the JSON Schema of the value, for action parameters.

Checks use pydantic in strict mode, whose messages name the problem.  `T | None`
is allowed for action parameters whose default is None: then null is accepted
and the limits apply to the other values.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AllowInfNan, TypeAdapter, ValidationError

from labbridge.core.errors import InvalidValue

_TYPE_NAMES = {float: "float", int: "int", str: "str", bool: "bool"}
DEFAULT_MAX_LENGTH = 4096  # characters of a str attribute: a label, a mode, a serial number
_SHOWN = 60  # characters of a refused value quoted back in a message
_JSON_TYPES = {float: "number", int: "integer", str: "string", bool: "boolean"}


def limits_text(minimum: float | None, maximum: float | None, unit: str = "") -> str:
    """Limits in words ("0 to 100 mm", "at least 0 mm"); `unit` is appended as given."""
    if minimum is not None and maximum is not None:
        return f"{minimum:g} to {maximum:g}{unit}"
    if minimum is not None:
        return f"at least {minimum:g}{unit}"
    if maximum is not None:
        return f"at most {maximum:g}{unit}"
    return "unlimited"


def choices_text(choices: tuple[Any, ...], unit: str = "") -> str:
    """Choices in words ("0.1, 1, 10 V", "'fast', 'slow'"); `unit` is appended as given."""
    return ", ".join(map(repr, choices)) + unit


def shown(value: Any) -> str:
    """A value as quoted in an error message, cut short: a refused value may be megabytes long."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


def split_optional(annotation: Any) -> tuple[Any, bool]:
    """(`T`, True) for `T | None`, else (annotation, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


@cache
def _strict_adapter(annotation: Any) -> TypeAdapter[Any]:
    base, nullable = split_optional(annotation)
    checked: Any = Annotated[base, AllowInfNan(False)] if base in (float, int) else base
    return TypeAdapter(checked | None if nullable else checked)


@dataclass(frozen=True)
class ValueRule:
    """The type, unit and limits or choices that a value must satisfy."""

    name: str
    type: Any
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    max_length: int | None = None  # for str: at most this many characters

    @cached_property
    def base_type(self) -> Any:
        return split_optional(self.type)[0]

    @cached_property
    def nullable(self) -> bool:
        return split_optional(self.type)[1]

    @property
    def type_name(self) -> str:
        base = self.base_type
        if base in _TYPE_NAMES:
            return _TYPE_NAMES[base]
        return str(base) if get_origin(base) else getattr(base, "__name__", str(base))

    @property
    def a_type(self) -> str:
        """The type name with its article, for messages ("a float", "an int")."""
        return f"{'an' if self.type_name[:1] in 'aeiou' else 'a'} {self.type_name}"

    def check_declaration(self, what: str) -> None:
        """Raise TypeError if the declaration makes no sense; `what` names it ("attribute 'x'")."""
        if (self.minimum is not None or self.maximum is not None) and self.base_type not in (float, int):
            raise TypeError(f"{what}: limits need a float or int type, not {self.base_type!r}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise TypeError(f"{what}: minimum {self.minimum} is above maximum {self.maximum}")
        if self.max_length is not None and self.base_type is not str:
            raise TypeError(f"{what}: max_length needs the str type, not {self.base_type!r}")
        if self.max_length is not None and self.max_length < 1:
            raise TypeError(f"{what}: max_length must be at least 1, not {self.max_length}")

    def too_long(self, value: Any) -> bool:
        return isinstance(value, str) and self.max_length is not None and len(value) > self.max_length

    def within_limits(self, value: float) -> bool:
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)

    def limits_text(self) -> str:
        return limits_text(self.minimum, self.maximum, f" {self.unit}" if self.unit else "")

    def choices_text(self) -> str:
        return choices_text(self.choices or (), f" {self.unit}" if self.unit else "")

    def validate(self, value: Any) -> Any:
        """Check a value a client sent; raise InvalidValue naming the problem, the limits and the unit."""
        if self.base_type is int and isinstance(value, float) and value.is_integer():
            value = int(value)  # 3.0 is an integer to JSON Schema (and to JavaScript, which has only numbers)
        try:
            checked = _strict_adapter(self.type).validate_python(value, strict=True)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise InvalidValue(f"{self.name} must be {self.a_type}; got {shown(value)} ({reason})") from None
        if checked is None:
            return None
        if self.too_long(checked):
            raise InvalidValue(f"{self.name} must be at most {self.max_length} characters; got {len(checked)}")
        if self.choices is not None and checked not in self.choices:
            raise InvalidValue(f"{self.name} must be one of {self.choices_text()}; got {shown(value)}")
        if isinstance(checked, (int, float)) and not self.within_limits(checked):
            raise InvalidValue(f"{self.name} must be {self.limits_text()}; got {value!r}")
        return checked

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the value, with its limits, choices and unit (as the `unit` keyword)."""
        base = self.base_type
        schema: dict[str, Any] = ({"type": _JSON_TYPES[base]} if base in _JSON_TYPES
                                  else TypeAdapter(base).json_schema())
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.choices is not None:
            schema["enum"] = list(self.choices)
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        if self.unit:
            schema["unit"] = self.unit
        return schema
