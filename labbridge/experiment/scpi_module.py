"""ScpiModule: an instrument that speaks SCPI over VISA, each attribute declared with its command.

Power supplies, multimeters, oscilloscopes and function generators speak SCPI
over a TCP socket (LXI, port 5025), USB-TMC, GPIB or a serial line.  In the
spirit of PyMeasure's `Instrument.control`, one line declares an attribute::

    class PowerSupply(ScpiModule):
        voltage: float = Attribute(unit="V", minimum=0, maximum=30, writable=True, scpi="SOUR:VOLT")
        measured_voltage: float = Attribute(unit="V", scpi="MEAS:VOLT")

A read sends `SOUR:VOLT?`; a write sends `SOUR:VOLT 12.5`, then asks the error
queue (`SYST:ERR?`, when the instrument has one) whether it was refused, then
reads the value back.  On connect the error queue is read empty (drivers/visa.py).  Out-of-range values are refused by the bridge before
they are sent, never clipped.  config.yml names the VISA resource
(`resource: TCPIP::192.168.1.60::5025::SOCKET`, `ASRL/dev/ttyUSB0::INSTR`,
`USB0::...`; or `ip` and `port` of a raw TCP socket), and `simulate: true`
runs the class's pyvisa-sim device file (`sim_file`) instead.

PyVISA blocks, so the hooks here are plain `def`: they run on the module's own
worker thread, one at a time and in order.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, get_args

import yaml

from labbridge.core.attribute import AttributeSpec, check_scpi_text
from labbridge.core.config import ConfigError, ModuleSettings
from labbridge.core.errors import BridgeError, InstrumentError
from labbridge.experiment.base_module import BaseModule
from labbridge.experiment.drivers.visa import VisaSession

log = logging.getLogger(__name__)

_TRUE_WORDS, _FALSE_WORDS = {"1", "ON", "TRUE"}, {"0", "OFF", "FALSE"}


class ScpiModule(BaseModule):
    """An instrument that speaks SCPI over VISA; each attribute declares its command with `scpi=`."""

    sim_file: ClassVar[str | Path | None] = None  # pyvisa-sim device file that `simulate: true` runs
    error_query: ClassVar[str | None] = "SYST:ERR?"  # asked after each write; None: the instrument has no queue
    # Sent on each connect before the error queue is drained, for an instrument to start from a known state,
    # e.g. ("*RST", "*CLS"); none by default (an instrument that does not know *CLS queues an error for it).
    connect_commands: ClassVar[tuple[str, ...]] = ()
    # True: a write is one line, `SOUR:VOLT 5;:SYST:ERR?`, for instruments that take compound commands.
    compound_error_query: ClassVar[bool] = False
    bool_words: ClassVar[tuple[str, str]] = ("ON", "OFF")  # how a bool is written: ("ON", "OFF") or ("1", "0")
    read_termination: ClassVar[str] = "\n"  # config.yml's read_termination / write_termination override these
    write_termination: ClassVar[str] = "\n"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.read is ScpiModule.read:
            for name, spec in cls.attributes.items():
                if not spec.scpi:
                    raise TypeError(f"{cls.__name__}.{name} needs its SCPI command, e.g. Attribute(..., scpi=\"SOUR:VOLT\")")

    def __init__(self, name: str, settings: ModuleSettings) -> None:
        super().__init__(name, settings)
        library, resource = "", settings.resource
        if settings.simulate:
            if self.sim_file is None:
                raise ConfigError(f"simulate: {type(self).__name__} has no pyvisa-sim device file (sim_file)")
            library, resource = f"{self.sim_file}@sim", resource or _first_resource(Path(self.sim_file))
        elif resource is None and settings.port is not None:
            resource = f"TCPIP::{settings.ip}::{settings.port}::SOCKET"
        if resource is None:
            raise ConfigError("resource: required key is missing (a VISA resource such as "
                              "TCPIP::192.168.1.60::5025::SOCKET, or ip and port of a TCP socket)")
        self.session = VisaSession(
            name, resource, library=library, timeout=settings.timeout, open_timeout=settings.connect_timeout,
            read_termination=_unescape(settings.read_termination, self.read_termination),
            write_termination=_unescape(settings.write_termination, self.write_termination),
            error_query=self.error_query, connect_commands=self.connect_commands,
            compound_error_query=self.compound_error_query,
            options={"baud_rate": settings.baud_rate} if settings.baud_rate else None)

    @classmethod
    def simulates_itself(cls) -> bool:
        return cls.sim_file is not None

    @property
    def address(self) -> str:
        return self.session.resource_name + (" (pyvisa-sim)" if self.settings.simulate else "")

    # -- driver hooks: blocking, so on this module's worker thread -------------------

    def start(self) -> None:
        """Open the resource and log what `*IDN?` says; an instrument that is off now is retried on each request."""
        try:
            log.info("module %s: %s answers *IDN? with %r", self.name, self.address, self.session.query("*IDN?"))
        except BridgeError as exc:
            log.warning("module %s: %s (tried again on each request)", self.name, exc.detail)

    def close(self) -> None:
        self.session.close()

    def read(self, name: str) -> Any:
        spec = self.specs[name]
        return self.from_scpi(spec, self.session.query(f"{spec.scpi}?"))

    def write(self, name: str, value: Any) -> Any:
        """Send the set command, then read the value back: what the instrument holds (it may round)."""
        spec = self.specs[name]
        self.session.write(f"{spec.scpi} {self.to_scpi(spec, value)}")
        return self.read(name)

    # -- values as SCPI text ----------------------------------------------------------

    def to_scpi(self, spec: AttributeSpec[Any], value: Any) -> str:
        """A checked value as SCPI text: 12.5, ON, 1.5,2.0, a mnemonic from `choices`, or a quoted string."""
        if isinstance(value, bool):
            return self.bool_words[0] if value else self.bool_words[1]
        if isinstance(value, float) or spec.type is float:
            return format(Decimal(repr(float(value))), "f")  # no exponent: not every instrument parses 1e-05
        if isinstance(value, int):
            return str(value)
        if isinstance(value, list):  # a list[float] or list[int]: comma-separated, as instruments answer them
            return ",".join(format(Decimal(repr(item)), "f") for item in value)
        if spec.choices is not None and value in spec.choices:
            return str(value)  # a mnemonic such as VOLT or SIN, sent as it is
        text = str(value)
        check_scpi_text(spec.name, text)  # as validate did: a module calling write itself is checked too
        return '"' + text.replace('"', '""') + '"'  # quoted, so `;` or a header inside it stays text

    def from_scpi(self, spec: AttributeSpec[Any], text: str) -> Any:
        """The instrument's answer as a value of the attribute's type."""
        try:
            if spec.type is bool:
                word = text.upper()
                if word not in _TRUE_WORDS | _FALSE_WORDS:
                    raise ValueError(word)
                return word in _TRUE_WORDS
            if spec.type is float:
                return float(text)
            if spec.type is int:
                number = float(text)  # "+5.000E+00" is an integer too
                if not number.is_integer():
                    raise ValueError(text)
                return int(number)
            if spec.is_array:
                item = get_args(spec.type)[0]
                return [item(part) for part in text.split(",")] if text else []
        except ValueError:
            raise InstrumentError(f"instrument of {self.name} answered {spec.scpi}? with {text!r}, "
                                  f"expected a {spec.type_name}") from None
        return text[1:-1].replace('""', '"') if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _first_resource(device_file: Path) -> str:
    """The first resource a pyvisa-sim device file declares."""
    resources = yaml.safe_load(device_file.read_text(encoding="utf-8")).get("resources") or {}
    if not resources:
        raise ConfigError(f"simulate: {device_file} declares no resources")
    return str(next(iter(resources)))


def _unescape(configured: str | None, default: str) -> str:
    r"""A line ending from config.yml, where `\n` and `\r` may be written as those two characters."""
    if configured is None:
        return default
    return configured.replace("\\r", "\r").replace("\\n", "\n")
