"""Stage: a linear stage with an HTTP API, this lab's first module (copy it to start another).

Each `Attribute` becomes `GET /stage/<name>` (and `PUT` when writable), with
its unit and limits checked by the bridge; reading one is an HTTP GET to the
instrument at config.yml's ip:port.  `simulate: true` serves the bridge's
simulated actuator there instead.  The bridge's manual (docs/reference/module-api.md
and its how-to guides) shows instruments that speak otherwise (SCPI over VISA, a
driver of your own).
"""

from __future__ import annotations

from labbridge import Attribute, BaseModule
from labbridge.experiment.simulators.actuator import create_app


class Stage(BaseModule):
    """A linear stage: set where the carriage goes and how fast; read the force it feels."""

    simulator = staticmethod(create_app)  # what `simulate: true` serves on ip:port

    position: float = Attribute(unit="mm", minimum=0, maximum=100, writable=True,
                                doc="Carriage position from the home switch.")
    speed: float = Attribute(unit="mm/s", minimum=0.1, maximum=50, writable=True,
                             doc="Travel speed used for the next moves.")
    force: float = Attribute(unit="N", doc="Force measured by the load cell.")
