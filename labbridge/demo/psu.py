"""PowerSupply: a bench power supply that speaks SCPI, one line per attribute.

Over LXI (`resource: TCPIP::192.168.1.60::5025::SOCKET`), USB-TMC, GPIB or a
serial line, through PyVISA.  `simulate: true` in config.yml runs it on
pyvisa-sim with labbridge/experiment/simulators/psu.yaml instead, a simulated
supply that keeps its own limits and reports refused values in its error queue.
`ramp_voltage` is an action: it changes the voltage steadily, one setting every
50 ms, each sent in the module's turn (its VISA calls block, so they run on
the module's own thread), and a cancel stops it where it got.
"""

from __future__ import annotations

from typing import Annotated

from labbridge import Attribute, Param, ScpiModule, action, ramp_value
from labbridge.experiment.simulators import PSU_DEVICE_FILE


class PowerSupply(ScpiModule):
    """A single-channel bench power supply, 0 to 30 V and 0 to 3 A."""

    sim_file = PSU_DEVICE_FILE
    bool_words = ("1", "0")  # OUTP 1 / OUTP 0

    voltage: float = Attribute(unit="V", minimum=0, maximum=30, writable=True, scpi="SOUR:VOLT",
                               doc="Output voltage setpoint.")
    current_limit: float = Attribute(unit="A", minimum=0, maximum=3, writable=True, scpi="SOUR:CURR",
                                     doc="Current the supply limits its output to.")
    output: bool = Attribute(writable=True, scpi="OUTP", doc="True while the output is on.")
    measured_voltage: float = Attribute(unit="V", scpi="MEAS:VOLT", doc="Voltage measured at the terminals.")
    measured_current: float = Attribute(unit="A", scpi="MEAS:CURR", doc="Current measured at the terminals.")
    idn: str = Attribute(scpi="*IDN", doc="What the instrument says it is (*IDN?).")

    @action(owns=("voltage",))
    async def ramp_voltage(self, to: Annotated[float, Param(like="voltage", doc="The voltage to end at.")],
                           rate: Annotated[float, Param(unit="V/s", minimum=0.01, maximum=100,
                                                        doc="How fast the voltage changes.")],
                           ) -> Annotated[float, Param(unit="V", doc="The voltage reached, as the supply reports it.")]:
        """Change the output voltage steadily to `to` at `rate`, one setting every 50 ms; cancelling leaves it
        where it got."""
        return await ramp_value(self, "voltage", to, rate)
