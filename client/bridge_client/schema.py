"""The JSON Schema of an action's parameters, read the way the bridge writes it, to check arguments before sending.

The bridge publishes each parameter of an action as a small JSON Schema:
`{"type": "number", "minimum": 0, "maximum": 100, "unit": "mm"}`, an
`anyOf` with `{"type": "null"}` for a parameter that may be None, `enum` for
choices, `maxLength` for strings, `items` for lists (and, for structured
values, `properties` and `$ref`).  `problem` checks a value against that
subset as strictly as the bridge does (a float takes any number but not
`True`, an int a whole number, nothing takes NaN) and says what is wrong in
the bridge's words ("must be 0 to 100 mm; got 150").  A keyword it does not
know is left to the bridge, which checks every argument again anyway.
`type_name` and `annotation` give a schema's type for messages, `help()`
and signatures.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

_NAMES = {"number": "float", "integer": "int", "string": "str", "boolean": "bool", "array": "list",
          "object": "dict", "null": "None"}
_TYPES: dict[str, Any] = {"number": float, "integer": int, "string": str, "boolean": bool, "array": list,
                          "object": dict, "null": None}
_SHOWN = 60  # characters of a refused value quoted back


def shown(value: Any) -> str:
    """A value as quoted in a message, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


def branches(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the schema of the value, whether None is allowed too): `anyOf: [X, {"type": "null"}]` is X or None."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        others = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
        if len(others) == 1:
            return {**schema, **others[0], "anyOf": None}, len(others) < len(options)
    return schema, schema.get("type") == "null"


def type_name(schema: dict[str, Any]) -> str:
    """A schema's type in Python's words: "float", "list[int]", "float or None"."""
    value, nullable = branches(schema)
    kind = value.get("type")
    name = _NAMES.get(kind, "value") if isinstance(kind, str) else "value"
    items = value.get("items")
    if kind == "array" and isinstance(items, dict) and "type" in items:
        name = f"list[{type_name(items)}]"
    if "$ref" in value or kind == "object" and "title" in value:
        name = str(value.get("title") or str(value["$ref"]).rsplit("/", 1)[-1])
    return f"{name} or None" if nullable and kind != "null" else name


def annotation(schema: dict[str, Any]) -> Any:
    """The Python type a schema stands for, for signatures (`float | None`; `Any` when it says no more)."""
    value, nullable = branches(schema)
    kind = value.get("type")
    python: Any = _TYPES.get(kind, Any) if isinstance(kind, str) else Any
    items = value.get("items")
    if python is list and isinstance(items, dict) and isinstance(items.get("type"), str):
        python = list[annotation(items)]  # type: ignore[misc]
    if nullable and python not in (Any, None):
        return python | None
    return python


def limits_text(schema: dict[str, Any], unit: str | None) -> str | None:
    """The limits in words, as the bridge writes them ("0 to 100 mm", "at least 1"); None when unlimited."""
    value, _ = branches(schema)
    return limits_words(value.get("minimum"), value.get("maximum"), unit)


def limits_words(low: float | None, high: float | None, unit: str | None) -> str | None:
    """Limits in words ("0 to 100 mm", "at least 1"); None when unlimited."""
    unit_text = f" {unit}" if unit else ""
    if low is not None and high is not None:
        return f"{low:g} to {high:g}{unit_text}"
    if low is not None:
        return f"at least {low:g}{unit_text}"
    if high is not None:
        return f"at most {high:g}{unit_text}"
    return None


def problem(value: Any, schema: dict[str, Any], unit: str | None = None,
            root: dict[str, Any] | None = None) -> str | None:
    """What is wrong with `value` ("must be a float; got True"), or None when the schema allows it."""
    root, value = root or schema, plain(value)
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        defined = root.get("$defs", {}).get(reference.removeprefix("#/$defs/"), {})
        schema = {**defined, **{k: v for k, v in schema.items() if k != "$ref"}}
    target, nullable = branches(schema)
    if value is None:
        return None if nullable or target.get("type") in (None, "null") else f"must be {a_type(type_name(target))}; got None"
    kind = target.get("type")
    if isinstance(kind, str) and not _has_type(value, kind):
        return f"must be {a_type(type_name(target))}; got {shown(value)}"
    if "enum" in target and value not in target["enum"]:
        return f"must be one of {', '.join(map(repr, target['enum']))}{f' {unit}' if unit else ''}; got {shown(value)}"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return _out_of_limits(value, target, unit)
    if isinstance(value, str):
        longest = target.get("maxLength")
        return f"must be at most {longest} characters; got {len(value)}" if longest is not None and len(value) > longest else None
    if kind == "array":
        return _items_problem(value, target, unit, root)
    if kind == "object" and isinstance(value, dict):
        return _object_problem(value, target, root)
    return None


def plain(value: Any) -> Any:
    """numpy arrays and scalars as plain Python values (lists, floats), as they will be sent."""
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else value


def _has_type(value: Any, kind: str) -> bool:
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)  # numpy's bool_ is a bool by now: plain()
    if kind == "number":
        return real and math.isfinite(value)
    if kind == "integer":
        return real and (isinstance(value, numbers.Integral) or float(value).is_integer())
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, (list, tuple))
    if kind == "object":
        return isinstance(value, dict)
    return True  # a type this client does not know: the bridge decides


def _out_of_limits(value: numbers.Real, schema: dict[str, Any], unit: str | None) -> str | None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        return f"must be {limits_text(schema, unit)}; got {value!r}"
    low, high, unit_text = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum"), f" {unit}" if unit else ""
    if low is not None and value <= low:
        return f"must be more than {low:g}{unit_text}; got {value!r}"
    if high is not None and value >= high:
        return f"must be less than {high:g}{unit_text}; got {value!r}"
    return None


def _items_problem(value: Any, schema: dict[str, Any], unit: str | None, root: dict[str, Any]) -> str | None:
    fewest, most = schema.get("minItems"), schema.get("maxItems")
    if fewest is not None and len(value) < fewest or most is not None and len(value) > most:
        return f"must have {fewest or 0} to {most if most is not None else 'any number of'} items; got {len(value)}"
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            found = problem(item, items, unit, root)
            if found is not None:
                return f"[{index}] {found}"
    return None


def _object_problem(value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any]) -> str | None:
    properties = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in value:
            return f"needs the key {key!r}"
    for key, item in value.items():
        if key in properties:
            found = problem(item, properties[key], properties[key].get("unit"), root)
            if found is not None:
                return f"[{key!r}] {found}"
        elif schema.get("additionalProperties") is False:
            return f"has no key {key!r}; its keys: {', '.join(properties) or 'none'}"
    return None


def a_type(name: str) -> str:
    """A type name with its article ("a float", "an int")."""
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"
