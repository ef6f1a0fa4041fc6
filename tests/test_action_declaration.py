"""Action declarations: collected from the class, refused when they make no sense, arguments checked strictly."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import pytest

from base_module import Attribute, BaseModule, Param, action
from labbridge.core.config import ModuleSettings
from labbridge.core.errors import InstrumentError, InvalidValue
from module_a import ModuleA
from setpoint import Setpoint

MOVE = ModuleA.actions["move"]


def module_a(**limits: dict[str, float]) -> ModuleA:
    return ModuleA("module_a", ModuleSettings.model_validate({"class": "module_a.ModuleA", "port": 1, "limits": limits}))


def test_actions_are_collected_with_parameters_defaults_and_result() -> None:
    assert list(ModuleA.actions) == ["move", "home", "stop", "cycle"]
    assert list(MOVE.parameters) == ["to", "speed"]
    assert MOVE.parameters["to"].required and not MOVE.parameters["speed"].required
    assert MOVE.owns == ("position",) and ModuleA.actions["stop"].owns == ()
    assert list(Setpoint.actions) == ["ramp"]


def test_description_gives_parameters_and_result_as_json_schema() -> None:
    described = module_a().describe()["actions"]["move"]
    assert described["owns"] == ["position"]
    assert described["parameters"] == {
        "type": "object", "required": ["to"], "additionalProperties": False,
        "properties": {
            "to": {"type": "number", "minimum": 0, "maximum": 100, "unit": "mm", "description": "Where the carriage goes."},
            "speed": {"anyOf": [{"type": "number", "minimum": 0.1, "maximum": 50}, {"type": "null"}], "unit": "mm/s",
                      "description": "Travel speed; the current speed if left out.", "default": None},
        }}
    assert described["returns"] == {"type": "number", "unit": "mm", "description": "Where the carriage stopped."}
    cycle = module_a().describe()["actions"]["cycle"]
    assert cycle["parameters"]["properties"]["count"] == {"type": "integer", "minimum": 1, "maximum": 1000,
                                                          "description": "How many strokes."}
    assert cycle["returns"]["properties"]["peak_force"] == {"items": {"type": "number"}, "title": "Peak Force", "type": "array"}


def test_a_parameter_like_an_attribute_follows_the_limits_config_narrows() -> None:
    narrow = module_a(position={"min": 0, "max": 50})
    assert narrow.describe()["actions"]["move"]["parameters"]["properties"]["to"]["maximum"] == 50
    with pytest.raises(InvalidValue, match="to must be 0 to 50 mm; got 80"):
        MOVE.check_arguments({"to": 80}, narrow.specs)
    assert MOVE.check_arguments({"to": 80}, module_a().specs) == {"to": 80.0, "speed": None}


@pytest.mark.parametrize(("arguments", "message"), [
    ({"to": 150}, "to must be 0 to 100 mm; got 150"),
    ({"to": -1}, "to must be 0 to 100 mm; got -1"),
    ({"to": True}, "to must be a float; got True"),
    ({"to": "80"}, "to must be a float; got '80'"),
    ({"to": math.nan}, "to must be a float; got nan"),
    ({"to": math.inf}, "to must be a float; got inf"),
    ({"to": 10, "speed": 0}, "speed must be 0.1 to 50 mm/s; got 0"),
    ({}, "move needs the argument 'to' (a float, 0 to 100 mm)"),
    ({"to": 10, "sped": 3}, "move has no parameter 'sped'; its parameters: to, speed"),
])
def test_bad_arguments_are_refused_naming_parameter_limits_and_unit(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        MOVE.check_arguments(arguments, module_a().specs)
    assert message in refused.value.detail


def test_an_unknown_parameter_of_a_megabyte_is_named_cut_short() -> None:
    with pytest.raises(InvalidValue) as refused:
        MOVE.check_arguments({"to": 10, "k" * 1_000_000: 1}, module_a().specs)
    assert refused.value.detail.startswith("move has no parameter 'kkk") and len(refused.value.detail) < 500
    assert "(1000002 characters)" in refused.value.detail


def test_an_int_parameter_refuses_a_fraction_and_an_optional_one_takes_null() -> None:
    cycle = ModuleA.actions["cycle"]
    with pytest.raises(InvalidValue, match="count must be an int; got 1.5"):
        cycle.check_arguments({"count": 1.5, "amplitude": 2}, module_a().specs)
    assert MOVE.check_arguments({"to": 5, "speed": None}, module_a().specs) == {"to": 5.0, "speed": None}
    assert MOVE.check_arguments({"to": 5, "speed": 7}, module_a().specs) == {"to": 5.0, "speed": 7.0}


def test_the_result_is_checked_against_the_return_annotation() -> None:
    assert MOVE.output(12) == 12.0
    with pytest.raises(InstrumentError, match="action move returned 'far', expected a float"):
        MOVE.output("far")


class Lamp(BaseModule):
    """A module for declaring actions in tests."""

    brightness: float = Attribute(unit="%", minimum=0, maximum=100, writable=True, doc="How bright.")
    colour: str = Attribute(writable=True, doc="Its colour.")

    @action(owns=("brightness",))
    async def fade(self, to: Annotated[float, Param(like="brightness")], seconds: float = 1.0) -> None:
        """Fade to `to`."""

    @action
    async def blink(self) -> int:
        """Blink once."""
        return 1


def test_a_plain_annotation_and_default_need_no_param() -> None:
    fade = Lamp.actions["fade"]
    assert fade.check_arguments({"to": 50}, Lamp.attributes) == {"to": 50.0, "seconds": 1.0}
    assert fade.describe(Lamp.attributes)["parameters"]["properties"]["seconds"] == {"type": "number", "default": 1.0}
    assert fade.describe(Lamp.attributes)["returns"] == {"type": "null"}


def test_a_subclass_inherits_actions_and_a_plain_method_of_the_same_name_replaces_one() -> None:
    class Quiet(Lamp):
        async def blink(self) -> int:  # no longer an action
            return 0

    assert list(Quiet.actions) == ["fade"]
    assert list(Lamp.actions) == ["fade", "blink"]


@dataclass
class Summary:
    """A result made of fields."""

    count: int


class Legacy(TypedDict):
    count: int


def declare(namespace: dict[str, Any], base: type = BaseModule) -> type:
    return type("Gadget", (base,), {"__annotations__": {"level": "float"},
                                    "level": Attribute(minimum=0, maximum=1, writable=True), **namespace})


@pytest.mark.parametrize(("source", "message"), [
    ("@action(owns=('height',))\nasync def go(self) -> None: ...", "owns 'height', which is not an attribute"),
    ("@action(owns='level')\nasync def go(self) -> None: ...", "takes a tuple of attribute names, not the string"),
    ("@action\ndef go(self) -> None: ...", "needs an `async def` method"),
    ("@action\nasync def go(self, speed) -> None: ...", "parameter 'speed' needs a type annotation"),
    ("@action\nasync def go(self, speed: float): ...", "needs a return annotation"),
    ("@action\nasync def go(self, *speeds: float) -> None: ...", "named parameters only"),
    ("@action\nasync def go(self, name: Annotated[str, Param(minimum=1)]) -> None: ...", "limits need a float or int"),
    ("@action\nasync def go(self, x: Annotated[float, Param(minimum=2, maximum=1)]) -> None: ...", "minimum 2 is above"),
    ("@action\nasync def go(self, x: Annotated[float, Param(like='height')]) -> None: ...", "names no attribute"),
    ("@action\nasync def go(self, x: Annotated[int, Param(like='level')]) -> None: ...", "is an int but attribute 'level'"),
    ("@action\nasync def go(self, x: Annotated[float, Param(like='level')] = 5) -> None: ...", "its default does not"),
    ("@action\nasync def attributes(self) -> None: ...", "must be lower_snake_case and not one of"),
    ("@action\nasync def Go(self) -> None: ...", "must be lower_snake_case"),
    ("@action\nasync def go(self) -> Legacy: ...", "typing_extensions.TypedDict"),
    ("@action(targets={'level': 0.0})\nasync def go(self) -> None: ...", "targets 'level', which it does not own"),
    ("@action(owns=('level',), targets={'level': 2.0})\nasync def go(self) -> None: ...",
     "targets 'level' to 2.0: level must be 0 to 1; got 2.0"),
    ("@action(owns=('level',), targets={'level': 'up'})\nasync def go(self) -> None: ...", "level must be a float"),
])
def test_declarations_that_make_no_sense_are_refused_when_the_class_is_created(source: str, message: str) -> None:
    namespace: dict[str, Any] = {"action": action, "Param": Param, "Annotated": Annotated, "Legacy": Legacy}
    with pytest.raises(TypeError) as refused:
        exec(compile(source, "test", "exec"), namespace)  # noqa: S102 - test declarations
        declare({k: v for k, v in namespace.items() if k not in ("action", "Param", "Annotated", "Legacy", "__builtins__")})
    assert message in str(refused.value)


def test_param_like_takes_nothing_but_a_doc() -> None:
    with pytest.raises(TypeError, match=r"Param\(like='level'\) takes unit"):
        Param(like="level", unit="mm")


def test_an_attribute_redeclaring_an_inherited_action_is_refused() -> None:
    with pytest.raises(TypeError, match="Gadget.blink is both an attribute and an action"):
        type("Gadget", (Lamp,), {"__annotations__": {"blink": "float"}, "blink": Attribute()})


def test_an_action_named_like_an_inherited_attribute_is_refused() -> None:
    async def colour(self: Any) -> None:
        """Change colour."""

    with pytest.raises(TypeError, match="Gadget.colour is both an attribute and an action"):
        type("Gadget", (Lamp,), {"colour": action(colour)})


def test_a_dataclass_result_is_described_and_returned_as_an_object() -> None:
    async def count(self: Any) -> Summary:
        return Summary(3)

    gadget = declare({"count": action(count)})
    spec = gadget.actions["count"]  # type: ignore[attr-defined]
    assert spec.output(Summary(3)) == {"count": 3}
    assert spec.describe({})["returns"]["properties"] == {"count": {"title": "Count", "type": "integer"}}
