"""Attribute declarations: collected from the class, validated before the instrument."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from labbridge.core.attribute import Attribute
from base_module import BaseModule
from labbridge.core.config import ModuleSettings
from labbridge.core.errors import InstrumentError, InvalidValue, ReadOnlyAttribute, UnknownAttribute
from module_a import ModuleA
from tests.fixture_modules import Recorder

POSITION = ModuleA.attributes["position"]


def settings(**extra: object) -> ModuleSettings:
    return ModuleSettings.model_validate({"class": "module_a.ModuleA", "port": 8888, **extra})


def test_declarations_are_collected_with_their_annotated_types() -> None:
    assert list(ModuleA.attributes) == ["position", "speed", "force", "temperature", "serial_number", "trace", "moving"]
    trace = ModuleA.attributes["trace"]
    assert trace.type == NDArray[np.float64] and trace.is_array and trace.array is not None
    assert trace.array.dtype == np.float64 and trace.array.shape == (None,)
    assert POSITION.type is float and POSITION.unit == "mm" and POSITION.writable
    assert ModuleA.attributes["serial_number"].type is str
    assert not ModuleA.attributes["force"].writable


def test_class_access_gives_the_declaration_and_instance_access_the_last_value() -> None:
    module = ModuleA("module_a", settings())
    assert ModuleA.position is POSITION
    assert module.position is None
    module.last_values["position"] = 3.0
    assert module.position == 3.0
    with pytest.raises(AttributeError):
        module.position = 4.0


def test_subclass_inherits_and_can_redeclare_attributes() -> None:
    class Narrow(ModuleA):
        speed: float = Attribute(unit="mm/s", minimum=1, maximum=2, writable=True)

    assert Narrow.attributes["speed"].maximum == 2
    assert ModuleA.attributes["speed"].maximum == 50
    assert "position" in Narrow.attributes


def test_declaration_without_annotation_is_refused() -> None:
    with pytest.raises(TypeError, match="needs a type annotation"):
        class Bad(BaseModule):
            level = Attribute(unit="m")


@pytest.mark.parametrize("name", ["attributes", "parameters", "Bad"])
def test_reserved_or_badly_formed_names_are_refused(name: str) -> None:
    with pytest.raises(TypeError, match="lower_snake_case"):
        type("Bad", (BaseModule,), {"__annotations__": {name: float}, name: Attribute()})


@pytest.mark.parametrize("name", ["name", "settings", "worker", "get", "start", "http", "session"])
def test_a_name_the_module_itself_uses_is_refused(name: str) -> None:
    with pytest.raises(TypeError, match=f"the module itself uses the name '{name}'"):
        type("Bad", (BaseModule,), {"__annotations__": {name: float}, name: Attribute()})


def test_limits_on_a_text_attribute_are_refused() -> None:
    with pytest.raises(TypeError, match="limits need a float or int"):
        class Bad(BaseModule):
            label: str = Attribute(minimum=0)


@pytest.mark.parametrize("value", [0, 0.0, 50, 99.5, 100])
def test_values_within_limits_pass(value: float) -> None:
    assert POSITION.validate(value) == value


@pytest.mark.parametrize("value", [-0.001, 100.001, 1e30, -1e30])
def test_out_of_limits_is_rejected_naming_limits_and_unit(value: float) -> None:
    with pytest.raises(InvalidValue, match=r"position must be 0 to 100 mm; got"):
        POSITION.validate(value)


@pytest.mark.parametrize("value", [True, False, math.nan, math.inf, -math.inf, "5", None, [5], {"v": 5}])
def test_wrong_types_nan_infinity_and_booleans_are_rejected(value: object) -> None:
    with pytest.raises(InvalidValue, match="position must be a float"):
        POSITION.validate(value)


def test_int_attribute_rejects_fractions_and_booleans_and_takes_whole_floats() -> None:
    class Counter(BaseModule):
        steps: int = Attribute(minimum=0, maximum=10, writable=True)

    spec = Counter.attributes["steps"]
    assert spec.validate(3) == 3
    # 3.0 is an integer to JSON Schema, and all a JavaScript number can say: it is taken, as the int 3.
    assert spec.validate(3.0) == 3 and type(spec.validate(3.0)) is int
    for bad in (3.5, True, "3", float("inf")):
        with pytest.raises(InvalidValue, match="steps must be an int"):
            spec.validate(bad)
    with pytest.raises(InvalidValue, match="steps must be 0 to 10"):
        spec.validate(1e300)


def test_choices_are_enforced() -> None:
    class Switch(BaseModule):
        mode: str = Attribute(choices=("fast", "slow"), writable=True)

    assert Switch.attributes["mode"].validate("fast") == "fast"
    with pytest.raises(InvalidValue, match=r"^mode must be one of 'fast', 'slow'; got 'medium'$"):
        Switch.attributes["mode"].validate("medium")


def test_numeric_choices_are_refused_with_their_unit() -> None:
    class Meter(BaseModule):
        range: float = Attribute(unit="V", choices=(0.1, 1, 10, 100, 1000), writable=True)

    assert Meter.attributes["range"].validate(10) == 10
    with pytest.raises(InvalidValue, match=r"^range must be one of 0\.1, 1, 10, 100, 1000 V; got 5$"):
        Meter.attributes["range"].validate(5)


def test_text_is_limited_to_max_length_both_ways() -> None:
    class Labelled(BaseModule):
        label: str = Attribute(writable=True)
        note: str = Attribute(writable=True, max_length=10)

    label, note = Labelled.attributes["label"], Labelled.attributes["note"]
    assert label.max_length == 4096 and label.describe()["max_length"] == 4096
    assert label.validate("x" * 4096) == "x" * 4096
    with pytest.raises(InvalidValue, match="^label must be at most 4096 characters; got 100000000$"):
        label.validate("x" * 100_000_000)
    with pytest.raises(InvalidValue, match="^note must be at most 10 characters; got 11$"):
        note.validate("x" * 11)
    with pytest.raises(InstrumentError, match="sent 11 characters for note, over its max_length of 10"):
        note.coerce_reading("x" * 11, "lab")
    with pytest.raises(InvalidValue, match=r"got \['xxxxx.*\.\.\. \(1000004 characters\)"):  # never quoted whole
        Labelled.attributes["note"].validate(["x" * 1_000_000])
    with pytest.raises(TypeError, match="max_length needs the str type"):
        type("Bad", (BaseModule,), {"__annotations__": {"level": float}, "level": Attribute(max_length=3)})


def test_config_narrows_limits_per_instance() -> None:
    module = ModuleA("module_a", settings(limits={"position": {"max": 50}}))
    assert module.specs["position"].maximum == 50
    assert ModuleA.attributes["position"].maximum == 100
    with pytest.raises(InvalidValue, match="0 to 50 mm"):
        module.specs["position"].validate(60)


def test_config_cannot_widen_limits() -> None:
    with pytest.raises(ValueError, match="outside the declared limits"):
        ModuleA("module_a", settings(limits={"position": {"max": 150}}))


def test_readings_are_coerced_and_garbage_is_an_instrument_error() -> None:
    assert POSITION.coerce_reading(5, "m") == 5.0
    assert POSITION.coerce_reading(math.nan, "m") is None
    with pytest.raises(InstrumentError, match="sent 'abc' for position"):
        POSITION.coerce_reading("abc", "m")


@pytest.mark.parametrize("garbage", [[1.0, "x"], [1.0, None], [1.0, [2.0]], [True, 2.0], {"a": 1.0}, "1,2"])
def test_a_list_reading_must_be_a_flat_list_of_numbers(garbage: Any) -> None:
    writes = Recorder.attributes["writes"]
    assert writes.coerce_reading([1, 2.5], "m") == [1.0, 2.5]
    with pytest.raises(InstrumentError, match="for writes, expected a list"):
        writes.coerce_reading(garbage, "m")


def test_routing_only_reaches_declared_attributes() -> None:
    module = ModuleA("module_a", settings())
    for name in ["__class__", "__dict__", "ip", "port", "get", "_client", "settings", "a.b", "../x", "position/x"]:
        with pytest.raises(UnknownAttribute):
            module.spec(name)


def test_put_on_read_only_attribute_is_refused_before_the_instrument() -> None:
    import asyncio

    module = ModuleA("module_a", settings())  # never started: any instrument call would fail differently
    with pytest.raises(ReadOnlyAttribute):
        asyncio.run(module.put("force", 1.0))
    with pytest.raises(InvalidValue):
        asyncio.run(module.put("position", 101.0))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_is_accepted_exactly_when_finite_and_within_limits(value: float) -> None:
    ok = math.isfinite(value) and 0 <= value <= 100
    try:
        assert POSITION.validate(value) == value
        assert ok
    except InvalidValue:
        assert not ok


@given(st.one_of(st.text(), st.booleans(), st.none(), st.lists(st.floats()), st.dictionaries(st.text(), st.integers())))
def test_non_numbers_are_always_rejected(value: object) -> None:
    with pytest.raises(InvalidValue):
        POSITION.validate(value)
