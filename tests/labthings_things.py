"""A small LabThings-FastAPI Thing, served by a real LabThings server for the bridge's tests.

It runs in the LabThings environment (labbridge.tools.setup_env.labthings_python),
not in the bridge's: labthings-fastapi pins other FastAPI and pydantic versions.
Its refusals come in both of FastAPI's shapes: a property with pydantic limits
answers 422 with `{"detail": [{"msg": ...}]}`, a setter that raises answers with
`{"detail": "<message>"}`.
"""

from __future__ import annotations

import labthings_fastapi as lt

MOTOR_STEP = 0.05  # mm


class Stage(lt.Thing):
    """A motorised translation stage."""

    position: float = lt.property(default=0.0, ge=0, le=25)
    """Position of the carriage from the home switch, in mm."""

    speed: float = lt.property(default=2.0, gt=0, le=10)
    """Travel speed of the next moves, in mm/s."""

    temperature: float = lt.property(default=21.5, readonly=True)
    """Temperature of the motor driver, in degC."""

    homed: bool = lt.property(default=True, readonly=True)
    """True once the stage has found its home switch."""

    _step_size = 0.5

    @lt.property
    def step_size(self) -> float:
        """Distance of one jog step, in mm: a whole number of motor steps (0.05 mm)."""
        return self._step_size

    @step_size.setter
    def _set_step_size(self, value: float) -> None:
        steps = value / MOTOR_STEP
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"step_size {value} mm is not a whole number of motor steps ({MOTOR_STEP} mm)")
        self._step_size = value

    @lt.action
    def home(self) -> None:
        """Drive to the home switch."""
        self.position = 0.0
