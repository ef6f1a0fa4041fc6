"""ScpiModule's declarations and its SCPI text, both ways: what is sent is exactly one command, what is read is typed.

The end-to-end behaviour on pyvisa-sim is in test_psu.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from base_module import Attribute, InstrumentError, InvalidValue, ModuleSettings, ScpiModule
from labbridge.core.config import ConfigError
from psu import PowerSupply


class FunctionGenerator(ScpiModule):
    """A module to format and parse with: one attribute per type."""

    frequency: float = Attribute(unit="Hz", minimum=1e-6, maximum=1e8, writable=True, scpi="FREQ")
    cycles: int = Attribute(minimum=1, maximum=1_000_000, writable=True, scpi="BURS:NCYC")
    output: bool = Attribute(writable=True, scpi="OUTP")
    shape: str = Attribute(choices=("SIN", "SQU"), writable=True, scpi="FUNC")
    label: str = Attribute(writable=True, scpi="DISP:TEXT")
    samples: list[float] = Attribute(writable=True, scpi="DATA")


def module(cls: type[ScpiModule] = FunctionGenerator, **settings: Any) -> Any:
    return cls("gen", ModuleSettings.model_validate({"class": "x.Y", **settings}))


@pytest.mark.parametrize(("name", "value", "text"), [
    ("frequency", 1e-05, "0.00001"),  # no exponent: pyvisa-sim (and some instruments) cannot parse 1e-05
    ("frequency", 12.5, "12.5"),
    ("frequency", 7, "7.0"),
    ("cycles", 3, "3"),
    ("output", True, "ON"),
    ("shape", "SQU", "SQU"),  # a mnemonic from choices, as it is
    ("samples", [1.5, 2.0, 1e-05], "1.5,2.0,0.00001"),
    ("label", 'run 4; "hot"', '"run 4; ""hot"""'),  # any other text quoted: its ; cannot start a command
])
def test_values_are_written_as_one_scpi_parameter(name: str, value: Any, text: str) -> None:
    gen = module(port=5025)
    assert gen.to_scpi(gen.specs[name], value) == text


@pytest.mark.parametrize("text", ["hello\n*RST", "h\u00e9llo", "tab\there", "del\x7f"])
def test_a_string_that_is_not_printable_ascii_is_never_sent(text: str) -> None:
    gen = module(port=5025)
    with pytest.raises(InvalidValue, match="printable ASCII only"):
        gen.specs["label"].validate(text)  # refused with the value's other checks, before the module's turn
    with pytest.raises(InvalidValue, match="printable ASCII only"):
        gen.to_scpi(gen.specs["label"], text)


def test_bool_words_are_the_class_s_choice() -> None:
    psu = module(PowerSupply, simulate=True)
    assert psu.to_scpi(psu.specs["output"], False) == "0"


@pytest.mark.parametrize(("name", "text", "value"), [
    ("frequency", "+1.25000000E+01", 12.5),
    ("cycles", "+5.000E+00", 5),
    ("output", "1", True),
    ("output", "OFF", False),
    ("label", '"run ""4"""', 'run "4"'),
    ("samples", "1.5,2,-3e-3", [1.5, 2.0, -0.003]),
    ("samples", "", []),
])
def test_answers_are_read_as_the_attribute_s_type(name: str, text: str, value: Any) -> None:
    gen = module(port=5025)
    assert gen.from_scpi(gen.specs[name], text) == value


@pytest.mark.parametrize(("name", "text"), [("frequency", "abc"), ("cycles", "2.5"), ("output", "maybe")])
def test_an_answer_of_the_wrong_kind_is_an_instrument_error(name: str, text: str) -> None:
    gen = module(port=5025)
    with pytest.raises(InstrumentError, match=rf"answered {gen.specs[name].scpi}\? with '{text}'"):
        gen.from_scpi(gen.specs[name], text)


def test_the_resource_comes_from_config_or_from_ip_and_port() -> None:
    assert module(resource="ASRL/dev/ttyUSB0::INSTR").session.resource_name == "ASRL/dev/ttyUSB0::INSTR"
    assert module(ip="127.0.0.1", port=5025).session.resource_name == "TCPIP::127.0.0.1::5025::SOCKET"
    assert module(PowerSupply, simulate=True).session.library.endswith("psu.yaml@sim")
    with pytest.raises(ConfigError, match="resource: required key is missing"):
        module()
    with pytest.raises(ConfigError, match="simulate: FunctionGenerator has no pyvisa-sim device file"):
        module(simulate=True)


def test_line_endings_from_config_may_be_written_as_escapes() -> None:
    gen = module(port=5025, read_termination="\\r\\n", write_termination="\r")
    assert (gen.session.read_termination, gen.session.write_termination) == ("\r\n", "\r")


def test_an_attribute_without_its_command_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match=r"Meter.volts needs its SCPI command"):
        type("Meter", (ScpiModule,), {"__annotations__": {"volts": float}, "volts": Attribute(unit="V")})


def test_connect_commands_and_the_compound_error_query_are_the_class_s_choice() -> None:
    class Resetting(FunctionGenerator):
        connect_commands = ("*RST", "*CLS")
        compound_error_query = True

    plain, resetting = module(port=5025), module(Resetting, port=5025)
    assert (plain.session.connect_commands, plain.session.compound_error_query) == ((), False)  # no *CLS unasked
    assert (resetting.session.connect_commands, resetting.session.compound_error_query) == (("*RST", "*CLS"), True)
