"""The interlocks' condition language: parsed by its own parser, bounded, fuzzed with hypothesis.

Any text either parses or raises ConfigError naming the key and column (never anything else, never unbounded
work); generated valid conditions evaluate as a reference evaluation written here, in three-valued logic (a value
that is unknown or failed makes its comparison unknown)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labbridge.core.config import ConfigError
from labbridge.experiment.safety.condition import FAILED, MAX_CHARS, MAX_DEPTH, parse

WHERE = "config.yml: interlocks.supply_on.requires"


def test_a_condition_is_compared_against_the_latest_values() -> None:
    condition = parse("module_a.temperature < 40 and (psu.output == true or not module_a.force >= -2.5e1)", WHERE)
    assert condition.references == (("module_a", "temperature"), ("psu", "output"), ("module_a", "force"))
    values: dict[tuple[str, str], Any] = {("module_a", "temperature"): 35.0, ("psu", "output"): False,
                                          ("module_a", "force"): -30}
    assert condition.evaluate(values) is True
    values[("module_a", "temperature")] = 40
    assert condition.evaluate(values) is False
    assert condition.values(values) == {"module_a.temperature": 40, "psu.output": False, "module_a.force": -30}


def test_a_failed_or_missing_value_makes_its_comparison_unknown() -> None:
    condition = parse("module_a.force > 90", WHERE)
    assert condition.evaluate({}) is None
    assert condition.evaluate({("module_a", "force"): FAILED}) is None
    assert condition.evaluate({("module_a", "force"): math.nan}) is None
    assert condition.evaluate({("module_a", "force"): "high"}) is None
    assert condition.evaluate({("module_a", "force"): True}) is None  # a boolean is not a number here
    assert condition.values({("module_a", "force"): FAILED}) == {"module_a.force": "read failed"}
    # Unknown does not matter where the rest decides: False and unknown is False, True or unknown is True.
    assert parse("module_a.force > 90 and psu.voltage > 1", WHERE).evaluate({("psu", "voltage"): 0}) is False
    assert parse("module_a.force > 90 or psu.voltage > 1", WHERE).evaluate({("psu", "voltage"): 2}) is True
    assert parse("not module_a.force > 90", WHERE).evaluate({}) is None


@pytest.mark.parametrize(("source", "message"), [
    ("module_a.temperature 40", "column 22: expected a comparison after 'module_a.temperature'"),
    ("module_a.temperature <", "column 23: expected an attribute (module.attribute), a number, true or false; "
                               "found the end"),
    ("temperature < 40", "column 1: 'temperature' is not an attribute"),
    ("a.b < 1 $", "column 9: unexpected character '$'"),
    ("(a.b < 1", "column 9: expected ')' to close the '(' of column 1, found the end"),
    ("a.b < 1 a.c", "column 9: unexpected 'a.c' after a complete condition"),
    ("1 < 2", "column 3: 1.0 < 2.0 compares no attribute"),
    ("a.b < true", "column 5: < compares numbers; true and false take == or !="),
    ("a.b == 1e999", "column 8: 1e999 is too large a number"),
    ("", "column 1: expected an attribute"),
    ("__import__('os').system('x') < 1", "column 1: '__import__' is not an attribute"),
    ("a.b < 1 or os.system('x') < 1", "column 22: unexpected character \"'\""),
])
def test_a_refusal_names_the_key_and_the_column(source: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(source, WHERE)
    assert str(refused.value).startswith(f"{WHERE}: {message}")


def test_size_and_nesting_are_bounded() -> None:
    with pytest.raises(ConfigError, match=f"at most {MAX_CHARS} characters"):
        parse("(" * 100_000 + "a.b < 1" + ")" * 100_000, WHERE)
    deep = "(" * (MAX_DEPTH + 1) + "a.b < 1" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ConfigError, match=f"column {MAX_DEPTH + 1}: nested more than {MAX_DEPTH} deep"):
        parse(deep, WHERE)
    with pytest.raises(ConfigError, match="nested more than"):
        parse("not " * 40 + "a.b < 1", WHERE)
    assert parse("(" * MAX_DEPTH + "a.b < 1" + ")" * MAX_DEPTH, WHERE).evaluate({("a", "b"): 0}) is True
    assert parse(" and ".join(["a.b < 1"] * 80), WHERE).evaluate({("a", "b"): 0}) is True  # long, not deep


def test_a_condition_is_not_python() -> None:
    for source in ("a.b.__class__ < 1", "a.b < 1 if 1 else 0", "a.b < 1; x.y > 2", "lambda: 1", "a.b + 1 < 2"):
        with pytest.raises(ConfigError):
            parse(source, WHERE)


TOKENS = ["a.b", "m.x", "(", ")", "and", "or", "not", "<", "<=", ">", ">=", "==", "!=", "true", "false", "1",
          "-2.5", ".5e3", " ", "a", ".", "=", "!", "1e999", "__import__", "'", "\n"]


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(st.sampled_from(TOKENS), max_size=80).map(" ".join),
                 st.lists(st.sampled_from(TOKENS), max_size=80).map("".join)))
def test_any_text_parses_or_is_refused_with_the_key_and_a_column(source: str) -> None:
    started = time.perf_counter()
    try:
        condition = parse(source, WHERE)
    except ConfigError as exc:
        assert str(exc).startswith(f"{WHERE}: ")
        assert "column " in str(exc) or "characters" in str(exc)
    else:
        assert condition.evaluate({}) in (True, False, None)
        assert parse(condition.root.text(), WHERE).root.text() == condition.root.text()  # writes out what it read
    assert time.perf_counter() - started < 0.5


# Generated conditions: ("cmp", left, op, right) | ("not", c) | ("and", [c...]) | ("or", [c...]); operands
# ("ref", name) | ("num", float) | ("bool", b).  Rendered to text with redundant parentheses here and there.
REFS = ["a.b", "a.c", "m.flag"]
number = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda f: ("num", f))
ref = st.sampled_from(REFS).map(lambda r: ("ref", r))
comparison = st.one_of(
    st.tuples(st.just("cmp"), ref, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), st.one_of(number, ref)),
    st.tuples(st.just("cmp"), number, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), ref),
    st.tuples(st.just("cmp"), ref, st.sampled_from(["==", "!="]), st.booleans().map(lambda b: ("bool", b))),
)
trees = st.recursive(comparison, lambda inner: st.one_of(
    st.tuples(st.just("not"), inner),
    st.tuples(st.just("and"), st.lists(inner, min_size=2, max_size=4)),
    st.tuples(st.just("or"), st.lists(inner, min_size=2, max_size=4))), max_leaves=12)
value = st.one_of(st.none(), st.just(FAILED), st.just(math.nan), st.booleans(),
                  st.integers(-10, 10), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))


def render(tree: Any, parens: Any) -> str:
    kind = tree[0]
    if kind == "cmp":
        text = f"{operand_text(tree[1])} {tree[2]} {operand_text(tree[3])}"
    elif kind == "not":
        text = f"not ({render(tree[1], parens)})"
    else:
        text = f" {kind} ".join(f"({render(part, parens)})" for part in tree[1])
    return f"({text})" if parens.draw(st.booleans()) else text


def operand_text(operand: Any) -> str:
    kind, value = operand
    if kind == "bool":
        return "true" if value else "false"
    return repr(value) if kind == "num" else value


def reference(tree: Any, values: dict[str, Any]) -> bool | None:
    """Kleene's three-valued logic, written independently of the module under test."""
    kind = tree[0]
    if kind == "cmp":
        a, b = side(tree[1], values), side(tree[3], values)
        if a is None or b is None or type(a) is bool and type(b) is not bool or type(b) is bool and type(a) is not bool:
            return None
        result: bool = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[tree[2]]
        return result
    if kind == "not":
        inner = reference(tree[1], values)
        return None if inner is None else not inner
    results = [reference(part, values) for part in tree[1]]
    decisive = kind == "or"  # True decides an or, False an and
    if decisive in results:
        return bool(decisive)
    return None if None in results else not decisive


def side(operand: Any, values: dict[str, Any]) -> Any:
    kind, value = operand
    if kind != "ref":
        return value
    seen = values.get(value)
    if seen is FAILED or seen is None or isinstance(seen, float) and math.isnan(seen):
        return None
    return seen


@settings(max_examples=500, deadline=None)
@given(trees, st.fixed_dictionaries({name: value for name in REFS}), st.data())
def test_generated_conditions_evaluate_as_the_reference_does(tree: Any, values: dict[str, Any],
                                                             data: st.DataObject) -> None:
    source = render(tree, data)
    try:
        condition = parse(source, WHERE)
    except ConfigError as exc:  # only the bounds (tested above) may refuse a generated condition
        assert "nested more than" in str(exc) or "characters" in str(exc)
        return
    keyed = {(name.split(".")[0], name.split(".")[1]): v for name, v in values.items() if v is not None}
    assert condition.evaluate(keyed) == reference(tree, values)
