"""Carriage: the simulated actuator's kinematics, computed from the clock (no background task).

A move from `start` to `target` at `speed` takes |target - start| / speed
seconds; the position in between follows linearly from the time elapsed, so a
read at any moment sees where the carriage is.  A halt freezes it where it is.
Every move, finished or halted, is remembered as the last path travelled
(start, end, speed), from which the simulator builds its force trace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Travel:
    """A stretch the carriage travelled, or is travelling: from `start` to `end` at `speed` (mm, mm/s)."""

    start: float
    end: float
    speed: float


@dataclass(frozen=True)
class _Move:
    path: Travel
    began: float  # time.monotonic() at the start

    def position_at(self, now: float) -> float:
        travelled = self.path.speed * max(0.0, now - self.began)
        distance = self.path.end - self.path.start
        if travelled >= abs(distance):
            return self.path.end
        return self.path.start + (travelled if distance > 0 else -travelled)


class Carriage:
    """Where the carriage is, whether it moves, and the last path it travelled."""

    def __init__(self, position: float = 0.0, speed: float = 10.0) -> None:
        self._position = position
        self._move: _Move | None = None
        self.last_travel = Travel(position, position, speed)

    def position(self) -> float:
        self._settle(time.monotonic())
        return self._position if self._move is None else self._move.position_at(time.monotonic())

    def moving(self) -> bool:
        self._settle(time.monotonic())
        return self._move is not None

    def speed(self) -> float | None:
        """The speed of the move under way, None when still."""
        self._settle(time.monotonic())
        return None if self._move is None else self._move.path.speed

    def move(self, target: float, speed: float) -> None:
        """Start towards `target` from wherever the carriage is (a move under way is replaced)."""
        self.halt()
        self._move = _Move(Travel(self._position, target, speed), time.monotonic())

    def halt(self) -> None:
        """Stop where the carriage is now."""
        now = time.monotonic()
        self._settle(now)
        if self._move is not None:
            self._position = self._move.position_at(now)
            self.last_travel = Travel(self._move.path.start, self._position, self._move.path.speed)
            self._move = None

    def jump(self, position: float, speed: float) -> None:
        """Be at `position` at once (a write of the position); recorded as a path at `speed`."""
        self.halt()
        self.last_travel = Travel(self._position, position, speed)
        self._position = position

    def _settle(self, now: float) -> None:
        if self._move is not None and self._move.position_at(now) == self._move.path.end:
            self._position = self._move.path.end
            self.last_travel = self._move.path
            self._move = None
