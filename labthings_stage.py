"""LabThingsStage: a Thing on a LabThings-FastAPI server, behind the bridge.

LabThings-FastAPI serves each Thing under `/<thing>/` on one shared port; its
GET answers a bare JSON value, its PUT takes a bare value and answers 201 with
nothing, and it refuses with FastAPI's `{"detail": ...}`.  The `http` line says
just that; the bridge keeps its own client, timeouts, limits and errors.
`python -m labbridge scaffold http://HOST:PORT/stage/` writes such a module
from the Thing's own description.
"""

from __future__ import annotations

from base_module import Attribute, BaseModule, HttpDialect


class LabThingsStage(BaseModule):
    """A motorised translation stage, served as the Thing `stage` by LabThings-FastAPI."""

    http = HttpDialect(path="/stage/{name}", body="bare", reply="bare", put_reply="read_back",
                       error_key="detail", summary=None)

    position: float = Attribute(unit="mm", minimum=0, maximum=25, writable=True,
                                doc="Position of the carriage from the home switch.")
    speed: float = Attribute(unit="mm/s", minimum=0.01, maximum=10, writable=True,
                             doc="Travel speed of the next moves.")
    step_size: float = Attribute(unit="mm", minimum=0.05, maximum=5, writable=True,
                                 doc="Distance of one jog step (a whole number of 0.05 mm motor steps).")
    temperature: float = Attribute(unit="degC", doc="Temperature of the motor driver.")
    homed: bool = Attribute(doc="True once the stage has found its home switch.")
