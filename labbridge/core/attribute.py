"""`Attribute`: one instrument property declared once, at class level, as an `AttributeSpec`.

A module declares its attributes like PyMeasure or Lantz do, with the type as
the annotation and everything else in one call::

    class ModuleA(BaseModule):
        position: float = Attribute(unit="mm", minimum=0, maximum=100, writable=True,
                                    doc="Carriage position from the home switch.")

`Attribute()` returns an `AttributeSpec` but is typed as returning Any (like
pydantic's `Field()`), so the annotation can state the value type.  BaseModule
collects the specs into the class's attribute table; requests are routed only
through that table.  `AttributeSpec.validate` checks a value a client wants to
write (strict type, finite, within limits or choices) before anything is sent
to the instrument; `AttributeSpec.coerce_reading` checks what the instrument sent back.

An array is declared with NumPy's annotation and, optionally, its shape
(`frame: NDArray[np.uint16] = Attribute(shape=(2048, 2048))`, `None` for a
dimension of any length): its readings are checked by arrays.py without a
Python loop, sent as JSON (nested lists) or, when asked, as a `.npy` file.
Array attributes are read-only.

A `str` attribute holds at most `max_length` characters (DEFAULT_MAX_LENGTH
unless declared), in both directions: a longer value is refused before it
reaches the instrument, and a longer reading is an instrument error, so no
oversized value is kept, published live or replayed to dashboards.

Writes are checked by the declaration's `ValueRule` (values.py, shared with
action parameters): pydantic in strict mode, whose messages name the problem
for the client.  Readings, on the path of every GET, are converted with
msgspec, which checks a 100,000-sample trace about four times faster.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_origin, overload

import msgspec

from labbridge.core.errors import InstrumentError, InvalidValue
from labbridge.core.values import DEFAULT_MAX_LENGTH, ValueRule, shown

if TYPE_CHECKING:
    from labbridge.core.arrays import ArrayType

T = TypeVar("T")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Names that the module itself answers (GET /<module>/attributes, /parameters).
RESERVED_NAMES = frozenset({"attributes", "parameters"})


def Attribute(*, unit: str | None = None, minimum: float | None = None, maximum: float | None = None,  # noqa: N802
              choices: tuple[Any, ...] | None = None, writable: bool = False, doc: str = "",
              scpi: str | None = None, max_length: int | None = None,
              shape: tuple[int | None, ...] | None = None) -> Any:
    """Declare an attribute on a BaseModule subclass; the annotation gives its type.

    `scpi` is the command header of an attribute of a ScpiModule: "SOUR:VOLT"
    is read with `SOUR:VOLT?` and written with `SOUR:VOLT <value>`.  `max_length`
    bounds a `str` attribute (DEFAULT_MAX_LENGTH characters when not given).
    `shape` is the shape of an `NDArray[...]` attribute (None: any length).
    """
    return AttributeSpec(unit=unit, minimum=minimum, maximum=maximum, choices=choices, writable=writable, doc=doc,
                         scpi=scpi, max_length=max_length, shape=shape)


@dataclass(frozen=True)
class AttributeSpec(Generic[T]):
    """Declaration of one attribute: unit, limits or choices, access and doc line.

    The value type comes from the class annotation and is filled in by BaseModule.
    On the class, `ModuleA.position` is this declaration; on an instance it is the
    last value read from or written to the instrument (None before first contact).
    """

    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    writable: bool = False
    doc: str = ""
    scpi: str | None = None
    max_length: int | None = None  # str only; DEFAULT_MAX_LENGTH when not declared
    shape: tuple[int | None, ...] | None = None  # NDArray only
    name: str = ""
    type: Any = None
    array: ArrayType | None = None  # an NDArray's dtype and shape, set by `bind`

    def __set_name__(self, owner: type, name: str) -> None:
        # The dataclass is frozen so a declaration cannot be changed by accident
        # at run time; naming happens once, at class creation.
        object.__setattr__(self, "name", name)

    @overload
    def __get__(self, instance: None, owner: type) -> AttributeSpec[T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> T | None: ...
    def __get__(self, instance: object | None, owner: type) -> AttributeSpec[T] | T | None:
        if instance is None:
            return self
        return getattr(instance, "last_values", {}).get(self.name)

    def __set__(self, instance: object, value: Any) -> None:
        raise AttributeError(f"{self.name} lives on the instrument: use `await module.write({self.name!r}, value)`")

    def bind(self, annotation: Any) -> AttributeSpec[T]:
        """Return a copy that knows its value type, checking the declaration makes sense."""
        if not _NAME.match(self.name) or self.name in RESERVED_NAMES:
            raise TypeError(f"attribute name {self.name!r} must be lower_snake_case and not one of {sorted(RESERVED_NAMES)}")
        max_length = DEFAULT_MAX_LENGTH if annotation is str and self.max_length is None else self.max_length
        array = _array_type(annotation, self.shape, f"attribute {self.name!r}")
        if array is None and self.shape is not None:
            raise TypeError(f"attribute {self.name!r}: shape needs an array type, e.g. NDArray[np.uint16]")
        if array is not None and self.writable:
            raise TypeError(f"attribute {self.name!r}: array attributes are read-only")
        bound = replace(self, type=annotation, max_length=max_length, array=array)
        bound.rule.check_declaration(f"attribute {self.name!r}")
        return bound

    def narrowed(self, minimum: float | None, maximum: float | None) -> AttributeSpec[T]:
        """Return a copy with tighter limits (config.yml may narrow, never widen)."""
        for bound, label in ((minimum, "min"), (maximum, "max")):
            if bound is not None and not self.within_limits(bound):
                raise ValueError(f"{label} {bound} is outside the declared limits {self.limits_text()}")
        lo = self.minimum if minimum is None else minimum
        hi = self.maximum if maximum is None else maximum
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min {lo} is above max {hi}")
        return replace(self, minimum=lo, maximum=hi)

    @cached_property
    def is_array(self) -> bool:
        """A list or an NDArray: read on demand, never polled, published live or recorded."""
        return self.array is not None or get_origin(self.type) is list

    @cached_property
    def rule(self) -> ValueRule:
        """What a written value must be (shared with action parameters); built once per declaration."""
        return ValueRule(self.name, self.type, self.unit, self.minimum, self.maximum, self.choices, self.max_length)

    @property
    def type_name(self) -> str:
        return self.array.name if self.array is not None else self.rule.type_name

    def within_limits(self, value: float) -> bool:
        return self.rule.within_limits(value)

    def limits_text(self) -> str:
        return self.rule.limits_text()

    def validate(self, value: Any) -> T:
        """Check a value a client wants to write; raise InvalidValue naming the problem."""
        assert self.type is not None, "Attribute used before BaseModule bound it"
        checked = self.rule.validate(value)
        if self.scpi is not None and isinstance(checked, str):
            check_scpi_text(self.name, checked)
        return checked  # type: ignore[no-any-return]

    def coerce_reading(self, value: Any, module: str) -> T:
        """Check a value the instrument sent; garbage becomes InstrumentError."""
        assert self.type is not None, "Attribute used before BaseModule bound it"
        if self.array is not None:
            from labbridge.core.arrays import ArrayMismatch

            try:
                return self.array.check(value)  # type: ignore[return-value]
            except ArrayMismatch as exc:
                raise InstrumentError(f"instrument of {module} sent {exc} for {self.name}, "
                                      f"expected {self.array.expected()}") from None
        try:
            # Lax: an instrument that sends 5 for a float or "1.5" for a number is still understood.  A value of the
            # declared class itself (most readings) needs no conversion: skipped, it is most of a poll's cost.
            checked = value if type(value) is self.type else msgspec.convert(value, self.type, strict=False)
        except msgspec.ValidationError:
            raise InstrumentError(
                f"instrument of {module} sent {shown(value)} for {self.name}, expected a {self.type_name}"
            ) from None
        if self.rule.too_long(checked):
            raise InstrumentError(f"instrument of {module} sent {len(checked)} characters for {self.name}, "
                                  f"over its max_length of {self.max_length}")
        if isinstance(checked, float) and math.isnan(checked):
            return None  # type: ignore[return-value]  # JSON has no NaN; an unmeasured value reads as null
        return checked  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        """The declaration as JSON-ready data, for `GET /` and documentation."""
        info: dict[str, Any] = {"type": self.type_name, "unit": self.unit, "writable": self.writable, "doc": self.doc}
        if self.minimum is not None:
            info["min"] = self.minimum
        if self.maximum is not None:
            info["max"] = self.maximum
        if self.choices is not None:
            info["choices"] = list(self.choices)
        if self.max_length is not None:
            info["max_length"] = self.max_length
        if self.array is not None:
            info.update(self.array.describe())
        return info


def _array_type(annotation: Any, shape: tuple[int | None, ...] | None, what: str) -> ArrayType | None:
    """The ArrayType of an NDArray annotation, else None; NumPy is imported only for one (the frontend never is)."""
    origin = get_origin(annotation)
    if getattr(origin, "__module__", None) != "numpy" or getattr(origin, "__name__", None) != "ndarray":
        return None
    from labbridge.core.arrays import ArrayType

    return ArrayType.of(annotation, shape, what)


def check_scpi_text(name: str, text: str) -> None:
    """SCPI carries printable ASCII: raise InvalidValue for anything else, before it is sent.

    A line break would end the command early (and start another); é cannot be encoded for the
    instrument, which, found only on the way out, was a 502 that marked the module degraded."""
    if not (text.isascii() and text.isprintable()):
        bad = next(c for c in text if not (c.isascii() and c.isprintable()))
        raise InvalidValue(f"{name} is sent to the instrument as SCPI text, which holds printable ASCII only; "
                           f"got {shown(text)} (with {bad!r})")
