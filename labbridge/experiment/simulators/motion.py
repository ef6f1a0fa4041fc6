"""Carriage: the simulated actuator's kinematics, computed from the clock (no background task).

A move from `start` to `target` at `speed` takes |target - start| / speed
seconds; the position in between follows linearly from the time elapsed, so a
read at any moment sees where the carriage is.  A halt freezes it where it is.
Every move, finished or halted, is remembered as the last path travelled
(start, end, speed), from which the simulator builds its force trace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
    began: float  # the clock's time at the start

    def position_at(self, now: float) -> float:
        travelled = self.path.speed * max(0.0, now - self.began)
        distance = self.path.end - self.path.start
        if travelled >= abs(distance):
            return self.path.end
        return self.path.start + (travelled if distance > 0 else -travelled)


class Carriage:
    """Where the carriage is, whether it moves, and the last path it travelled."""

    def __init__(self, position: float = 0.0, speed: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # seconds, monotonic; tests pass their own
        self._position = position
        self._move: _Move | None = None
        self._last_travel = Travel(position, position, speed)

    @property
    def last_travel(self) -> Travel:
        """The last stretch travelled; a move under way counts once it has arrived."""
        self._settle(self._clock())
        return self._last_travel

    def position(self) -> float:
        self._settle(self._clock())
        return self._position if self._move is None else self._move.position_at(self._clock())

    def moving(self) -> bool:
        self._settle(self._clock())
        return self._move is not None

    def speed(self) -> float | None:
        """The speed of the move under way, None when still."""
        self._settle(self._clock())
        return None if self._move is None else self._move.path.speed

    def move(self, target: float, speed: float) -> None:
        """Start towards `target` from wherever the carriage is (a move under way is replaced)."""
        self.halt()
        self._move = _Move(Travel(self._position, target, speed), self._clock())

    def halt(self) -> None:
        """Stop where the carriage is now."""
        now = self._clock()
        self._settle(now)
        if self._move is not None:
            self._position = self._move.position_at(now)
            self._last_travel = Travel(self._move.path.start, self._position, self._move.path.speed)
            self._move = None

    def jump(self, position: float, speed: float) -> None:
        """Be at `position` at once (a write of the position); recorded as a path at `speed`."""
        self.halt()
        self._last_travel = Travel(self._position, position, speed)
        self._position = position

    def _settle(self, now: float) -> None:
        if self._move is not None and self._move.position_at(now) == self._move.path.end:
            self._position = self._move.path.end
            self._last_travel = self._move.path
            self._move = None
