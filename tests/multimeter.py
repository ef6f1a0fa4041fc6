"""ScpiModule classes for the multimeter of tests/scpi_instrument.py (on a real socket or a pseudo-terminal)."""

from __future__ import annotations

from base_module import Attribute, ScpiModule


class Multimeter(ScpiModule):
    """A DC voltmeter: a discrete range, an integration time, a slow measurement."""

    voltage_range: float = Attribute(unit="V", minimum=0, maximum=10000, writable=True, scpi="VOLT:DC:RANG",
                                     doc="Too wide on purpose: the instrument refuses above 1000 V itself.")
    nplc: float = Attribute(minimum=0.01, maximum=100, writable=True, scpi="VOLT:DC:NPLC",
                            doc="Integration time in power-line cycles.")
    voltage: float = Attribute(unit="V", scpi="MEAS:VOLT:DC", doc="A measurement (slow).")
    idn: str = Attribute(scpi="*IDN", doc="What the instrument says it is.")


class CompoundMultimeter(Multimeter):
    """The same, each write sent with its error query as one line (`VOLT:DC:RANG 10;:SYST:ERR?`)."""

    compound_error_query = True


class ResettingMultimeter(Multimeter):
    """The same, reset to its defaults on every connect (an explicit opt-in)."""

    connect_commands = ("*RST",)


class QueuelessMultimeter(Multimeter):
    """The same, declared without an error queue: nothing is asked after a write, nothing drained on connect."""

    error_query = None
