"""The condition language of interlocks: a small expression language of its own, parsed, never run as Python.

    module_a.temperature < 40
    module_a.force > 90 or (psu.output == true and not module_a.temperature <= 35.5)

A condition is comparisons (`<` `<=` `>` `>=` `==` `!=`) between attribute
references (`module.attribute`), numbers and `true`/`false`, joined by `and`,
`or`, `not` and parentheses.  `parse` reads it with a tokenizer and a
recursive-descent parser into a tree of the node classes below; nothing in it
reaches `eval`, `compile` or Python's `ast`.  The text is bounded (MAX_CHARS
characters, MAX_DEPTH levels of parentheses and `not`), so any text is parsed
in time proportional to its length, and every refusal is a ConfigError naming
the key and the column: `config.yml: interlocks.x.requires: column 17: ...`.

`Condition.evaluate(values)` judges it against the latest values, a dict
(module, attribute) -> value, in three-valued logic: a comparison of a value
that is missing (never read yet), FAILED (its last read failed), NaN or of
the wrong type is *unknown* (None), and `and`/`or`/`not` carry unknown on as
Kleene's logic does.  The caller decides what unknown means so that it fails
safe: a guard allows a write only when its condition is True, a trip trips
unless its condition is False.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labbridge.core.config import ConfigError

MAX_CHARS = 1000  # the longest condition
MAX_DEPTH = 32  # the most parentheses and `not`s nested
# The latest value of an attribute whose last read failed.
FAILED: Any = type("Failed", (), {"__repr__": lambda self: "FAILED"})()
Key = tuple[str, str]  # (module, attribute)

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<paren>[()])
""", re.VERBOSE | re.ASCII)
_KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
_ORDERING = frozenset({"<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number, ref, keyword, op, paren, end
    text: str
    column: int  # 1-based


class Node:
    """A node of a parsed condition."""

    __slots__ = ()

    def evaluate(self, values: dict[Key, Any]) -> bool | None:
        """True, False, or None when a value it needs is unknown."""
        raise NotImplementedError

    def text(self) -> str:
        """The node written out again (canonical spacing, parentheses where needed)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Ref:
    """An attribute reference, `module.attribute`."""

    key: Key

    def text(self) -> str:
        return f"{self.key[0]}.{self.key[1]}"


@dataclass(frozen=True, slots=True)
class Const:
    """A number, `true` or `false`."""

    value: float | bool

    def text(self) -> str:
        return ("true" if self.value else "false") if isinstance(self.value, bool) else repr(self.value)


Operand = Ref | Const


class Compare(Node):
    """`left op right`: unknown when either side is missing, FAILED, NaN or of the other side's kind."""

    __slots__ = ("left", "op", "right", "_left_key", "_right_key", "_left_value", "_right_value", "_test")

    def __init__(self, left: Operand, op: str, right: Operand) -> None:
        self.left, self.op, self.right = left, op, right
        # Judged on every value an attribute it names gets: the sides and the test are looked up once, here.
        self._left_key = left.key if isinstance(left, Ref) else None
        self._right_key = right.key if isinstance(right, Ref) else None
        self._left_value = left.value if isinstance(left, Const) else None
        self._right_value = right.value if isinstance(right, Const) else None
        self._test: Callable[[Any, Any], bool] = _TESTS[op]

    def evaluate(self, values: dict[Key, Any]) -> bool | None:
        a = self._left_value if self._left_key is None else _usable(values.get(self._left_key))
        b = self._right_value if self._right_key is None else _usable(values.get(self._right_key))
        if a is None or b is None or (a.__class__ is bool) != (b.__class__ is bool):
            return None
        return self._test(a, b)

    def text(self) -> str:
        return f"{self.left.text()} {self.op} {self.right.text()}"


class Not(Node):
    __slots__ = ("operand",)

    def __init__(self, operand: Node) -> None:
        self.operand = operand

    def evaluate(self, values: dict[Key, Any]) -> bool | None:
        result = self.operand.evaluate(values)
        return None if result is None else not result

    def text(self) -> str:
        return f"not {_wrapped(self.operand, Compare, Not)}"


class And(Node):
    __slots__ = ("parts",)

    def __init__(self, parts: list[Node]) -> None:
        self.parts = parts

    def evaluate(self, values: dict[Key, Any]) -> bool | None:
        unknown = False
        for part in self.parts:  # False wins over unknown: the answer does not depend on it
            result = part.evaluate(values)
            if result is False:
                return False
            unknown = unknown or result is None
        return None if unknown else True

    def text(self) -> str:
        return " and ".join(_wrapped(part, Compare, Not, And) for part in self.parts)


class Or(Node):
    __slots__ = ("parts",)

    def __init__(self, parts: list[Node]) -> None:
        self.parts = parts

    def evaluate(self, values: dict[Key, Any]) -> bool | None:
        unknown = False
        for part in self.parts:  # True wins over unknown
            result = part.evaluate(values)
            if result is True:
                return True
            unknown = unknown or result is None
        return None if unknown else False

    def text(self) -> str:
        return " or ".join(_wrapped(part, Compare, Not, And, Or) for part in self.parts)


class Condition:
    """A parsed condition: its source text, its tree, and the attributes it references in order of appearance."""

    __slots__ = ("source", "root", "references")

    def __init__(self, source: str, root: Node, references: tuple[Key, ...]) -> None:
        self.source, self.root, self.references = source, root, references

    def evaluate(self, values: dict[Key, Any]) -> bool | None:
        return self.root.evaluate(values)

    def values(self, values: dict[Key, Any]) -> dict[str, Any]:
        """The latest value of each referenced attribute, for people: "read failed" or "unknown" when there is none."""
        shown: dict[str, Any] = {}
        for key in self.references:
            value = values.get(key, _MISSING)
            shown[f"{key[0]}.{key[1]}"] = ("unknown (not read yet)" if value is _MISSING
                                           else "read failed" if value is FAILED else value)
        return shown


def parse(source: Any, where: str) -> Condition:
    """Parse `source` (the text at config key `where`); ConfigError naming `where` and the column if it is not a
    condition."""
    if not isinstance(source, str):
        raise ConfigError(f"{where}: a condition is text, like 'module_a.temperature < 40'; got {source!r}")
    if len(source) > MAX_CHARS:
        raise ConfigError(f"{where}: a condition is at most {MAX_CHARS} characters; this one has {len(source)}")
    parser = _Parser(_tokens(source, where), where)
    root = parser.expression(0)
    end = parser.peek()
    if end.kind != "end":
        raise parser.error(end, f"unexpected {_shown(end)} after a complete condition")
    return Condition(source, root, tuple(dict.fromkeys(parser.references)))


def _tokens(source: str, where: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise ConfigError(f"{where}: column {position + 1}: unexpected character {source[position]!r}")
        kind, text = match.lastgroup or "", match.group()
        if kind == "name":
            if text in _KEYWORDS:
                kind = "keyword"
            elif text.count(".") != 1:
                raise ConfigError(f"{where}: column {position + 1}: {text!r} is not an attribute: name one as "
                                  "module.attribute, like module_a.temperature")
            else:
                kind = "ref"
        if kind != "space":
            tokens.append(Token(kind, text, position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(source) + 1))
    return tokens


class _Parser:
    """Recursive descent over the tokens: or -> and -> not -> comparison or ( or )."""

    def __init__(self, tokens: list[Token], where: str) -> None:
        self.tokens, self.where, self.at = tokens, where, 0
        self.references: list[Key] = []

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def error(self, token: Token, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: column {token.column}: {message}")

    def expression(self, depth: int) -> Node:
        parts = [self.conjunction(depth)]
        while self.peek().text == "or" and self.peek().kind == "keyword":
            self.take()
            parts.append(self.conjunction(depth))
        return parts[0] if len(parts) == 1 else Or(parts)

    def conjunction(self, depth: int) -> Node:
        parts = [self.negation(depth)]
        while self.peek().text == "and" and self.peek().kind == "keyword":
            self.take()
            parts.append(self.negation(depth))
        return parts[0] if len(parts) == 1 else And(parts)

    def negation(self, depth: int) -> Node:
        token = self.peek()
        if token.kind == "keyword" and token.text == "not":
            self._deeper(token, depth)
            self.take()
            return Not(self.negation(depth + 1))
        if token.kind == "paren" and token.text == "(":
            self._deeper(token, depth)
            self.take()
            inner = self.expression(depth + 1)
            closing = self.take()
            if closing.text != ")":
                raise self.error(closing, f"expected ')' to close the '(' of column {token.column}, "
                                          f"found {_shown(closing)}")
            return inner
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        token = self.peek()
        if token.kind != "op":
            raise self.error(token, f"expected a comparison after {left.text()!r} (<, <=, >, >=, == or !=), "
                                    f"found {_shown(token)}")
        self.take()
        right = self.operand()
        if isinstance(left, Const) and isinstance(right, Const):
            raise self.error(token, f"{left.text()} {token.text} {right.text()} compares no attribute")
        for side in (left, right):
            if isinstance(side, Const) and isinstance(side.value, bool) and token.text in _ORDERING:
                raise self.error(token, f"{token.text} compares numbers; true and false take == or !=")
        return Compare(left, token.text, right)

    def operand(self) -> Operand:
        token = self.take()
        if token.kind == "ref":
            module, _, attribute = token.text.partition(".")
            self.references.append((module, attribute))
            return Ref((module, attribute))
        if token.kind == "number":
            number = float(token.text)
            if not math.isfinite(number):
                raise self.error(token, f"{token.text} is too large a number")
            return Const(number)
        if token.kind == "keyword" and token.text in ("true", "false"):
            return Const(token.text == "true")
        raise self.error(token, f"expected an attribute (module.attribute), a number, true or false; "
                                f"found {_shown(token)}")

    def _deeper(self, token: Token, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise self.error(token, f"nested more than {MAX_DEPTH} deep (parentheses and not)")


_MISSING: Any = object()


def _usable(value: Any) -> Any:
    """A value a comparison can use (a bool, or a number that is not NaN, as a Python int or float), or None."""
    kind = value.__class__
    if kind is float:
        return None if value != value else value  # NaN
    if kind is int or kind is bool:
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return None if math.isnan(value) else float(value) if isinstance(value, (float, np.floating)) else int(value)
    return None  # missing, FAILED, text


_TESTS: dict[str, Callable[[Any, Any], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                                  ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


def _shown(token: Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


def _wrapped(node: Node, *bare: type) -> str:
    """A child's text, in parentheses unless it binds at least as tightly as its parent."""
    return node.text() if isinstance(node, bare) else f"({node.text()})"
