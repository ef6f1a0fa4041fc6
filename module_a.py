"""ModuleA: the example module, a linear actuator with an HTTP API.

The original proof of concept measured an actuator's force and position; this
is that instrument, declared attribute by attribute.  Everything the bridge
needs (routing, validation, the HTTP cycle, documentation) follows from these
declarations.  `simulate: true` in config.yml serves the simulator
(labbridge/experiment/simulators/actuator.py) in its place.
"""

from __future__ import annotations

from base_module import Attribute, BaseModule
from labbridge.experiment.simulators.actuator import create_app


class ModuleA(BaseModule):
    """A linear actuator: set where the carriage goes and how fast; read the force it feels."""

    simulator = staticmethod(create_app)

    position: float = Attribute(unit="mm", minimum=0, maximum=100, writable=True,
                                doc="Carriage position from the home switch.")
    speed: float = Attribute(unit="mm/s", minimum=0.1, maximum=50, writable=True,
                             doc="Travel speed used for the next moves.")
    force: float = Attribute(unit="N", doc="Actuation force measured by the load cell.")
    temperature: float = Attribute(unit="degC", doc="Temperature of the drive electronics.")
    serial_number: str = Attribute(doc="The instrument's serial number.")
    trace: list[float] = Attribute(unit="N", doc="Force samples of the last actuation cycle.")
