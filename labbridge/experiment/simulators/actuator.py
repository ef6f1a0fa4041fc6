"""A simulated linear actuator that speaks ModuleA's instrument HTTP API.

It lets the demo and the tests run with no hardware while the HTTP hop stays
real.  The API is the one BaseModule's default driver expects:

    GET  /<name>          -> {"value": ...}
    PUT  /<name>          {"value": ...} -> {"value": <value after the write>}
    GET  /attributes      -> {"position": ..., "speed": ..., ...}
    GET  /parameters      -> {"position": {"value": ..., "min": ..., "max": ..., "unit": ...}, ...}
    POST /move            {"to": mm, "speed": mm/s (optional)} -> {"position", "target", "speed", "moving"}
    POST /stop            -> {"position", "moving"}
    PUT  /sim/<sensor>    {"value": v} holds force or temperature at v ({"value": null} lets it go);
                          {"fail": true} makes its reads fail with HTTP 503 until {"fail": false}

Like a real instrument it keeps its own ranges and refuses values outside them
(HTTP 422).  The carriage moves for real (motion.py): `POST /move` starts it
towards a target at a speed, `position` changes along the way, `moving` is true
until it arrives or `POST /stop` halts it where it is.  A `PUT /position` puts
it there at once (a move under way is halted first).  `force` follows position
and the speed it moves at, `temperature` drifts, so values move, and `trace`
holds the force samples along the last move (100,000 by default, as in the
original example's 100 x 1000 force data): computed once per move, encoded as
JSON on every request, as an instrument's web API would; a client whose
`Accept` names application/x-npy gets the same numbers as a NumPy .npy file,
made once per move (the instrument's buffer, as it lies).
`GET /attributes` leaves the trace out.  Options (config.yml `simulator:`):
`delay` adds seconds to every answer, to imitate a slow instrument;
`trace_samples` sets the trace length; `serial_number`.  Run it alone with
`python -m labbridge.experiment.simulators.actuator --port 8888`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import random
import time
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from labbridge.experiment.simulators.motion import Carriage, Travel

# name: (unit, min, max) for the writable settings; the instrument's own ranges.
RANGES: dict[str, tuple[str, float, float]] = {"position": ("mm", 0.0, 100.0), "speed": ("mm/s", 0.1, 50.0)}
SENSORS = ("force", "temperature", "serial_number", "moving")  # read-only scalars
READ_ONLY = (*SENSORS, "trace")
DRIVEN = ("force", "temperature")  # sensors a test can hold at a value or make fail


class ActuatorSimulator:
    """The actuator's state and physics, independent of HTTP."""

    def __init__(self, serial_number: str = "SIM-0001", trace_samples: int = 100_000) -> None:
        if not 1 <= trace_samples <= 10_000_000:
            raise ValueError(f"trace_samples must be 1 to 10000000, got {trace_samples}")
        self.values: dict[str, Any] = {"speed": 10.0}
        self.carriage = Carriage(0.0, self.values["speed"])
        self.serial_number = serial_number
        self.trace_samples = trace_samples
        self._started = time.monotonic()
        self._trace: tuple[Travel, list[float], bytes] | None = None
        # What a test drives: a sensor held at a value, and sensors whose reads fail (a cable pulled out).
        self.held: dict[str, float] = {}
        self.failing: set[str] = set()

    def trace(self) -> list[float]:
        """The force samples along the last move."""
        return self._traced()[1]

    def trace_npy(self) -> bytes:
        """The same samples as a NumPy .npy file (float64), as a camera or scope keeps its last buffer."""
        return self._traced()[2]

    def _traced(self) -> tuple[Travel, list[float], bytes]:
        travel = self.carriage.last_travel
        if self._trace is None or self._trace[0] != travel:
            n = self.trace_samples
            drag = 0.05 * travel.speed
            step = (travel.end - travel.start) / n
            # Force along the travel, with a small deterministic ripple.
            samples = [round(0.8 * (travel.start + step * i) + drag + 0.01 * ((i * 7919) % 101 - 50) / 50, 4)
                       for i in range(n)]
            npy = io.BytesIO()
            np.save(npy, np.asarray(samples, dtype=np.float64))
            self._trace = (travel, samples, npy.getvalue())
        return self._trace

    def drive(self, name: str, value: float | None = None, fail: bool | None = None) -> dict[str, Any]:
        """Hold a sensor at `value` (None lets it go) or make its reads fail: tests drive alarms and interlocks."""
        if name not in DRIVEN:
            raise KeyError(name)
        if fail is not None:
            (self.failing.add if fail else self.failing.discard)(name)
        elif value is None:
            self.held.pop(name, None)
        else:
            self.held[name] = _number(name, value)
        return {"value": self.held.get(name), "fail": name in self.failing}

    def read(self, name: str) -> Any:
        if name in self.failing:
            raise SensorFailure(f"{name} sensor does not answer")
        if name in self.held:
            return self.held[name]
        if name == "position":
            return round(self.carriage.position(), 6)
        if name == "moving":
            return self.carriage.moving()
        if name in self.values:
            return self.values[name]
        if name == "force":
            # A spring (0.8 N/mm) plus viscous drag (0.05 N per mm/s of the move, or of the set speed) plus noise.
            speed = self.carriage.speed() or self.values["speed"]
            return round(0.8 * self.carriage.position() + 0.05 * speed + random.gauss(0, 0.01), 4)
        if name == "temperature":
            return round(22.5 + 0.3 * math.sin((time.monotonic() - self._started) / 60), 3)
        if name == "serial_number":
            return self.serial_number
        if name == "trace":
            return self.trace()
        raise KeyError(name)

    def write(self, name: str, value: Any) -> Any:
        """Set a value; raise ValueError with the instrument's message if refused."""
        value = _checked(name, value)
        if name == "position":
            self.carriage.jump(value, self.values["speed"])
        else:
            self.values[name] = value
        return self.read(name)

    def move(self, to: Any, speed: Any = None) -> dict[str, Any]:
        """Start moving to `to` at `speed` (default: the speed setting); ValueError if either is out of range."""
        speed = self.values["speed"] if speed is None else speed
        to, speed = _checked("position", to, "to"), _checked("speed", speed)
        self.carriage.move(to, speed)
        return {"position": self.read("position"), "target": to, "speed": speed,
                "moving": self.carriage.moving()}

    def stop(self) -> dict[str, Any]:
        self.carriage.halt()
        return {"position": self.read("position"), "moving": False}

    def all_values(self) -> dict[str, Any]:
        return {name: self.read(name) for name in (*RANGES, *SENSORS)}

    def parameters(self) -> dict[str, Any]:
        return {n: {"value": self.read(n), "min": lo, "max": hi, "unit": u} for n, (u, lo, hi) in RANGES.items()}


def _checked(name: str, value: Any, label: str | None = None) -> float:
    """`value` as a float if it is a number in the instrument's range for `name`; else ValueError, in its words."""
    unit, lo, hi = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ValueError(f"{label or name} must be a number from {lo:g} to {hi:g} {unit}")
    return float(value)


class SensorFailure(RuntimeError):
    """A sensor a test made fail: its reads answer HTTP 503."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def create_app(options: dict[str, Any] | None = None) -> Starlette:
    """The simulator as an ASGI app; `options` come from config.yml's `simulator:` key."""
    options = dict(options or {})
    delay = float(options.pop("delay", 0.0))
    sim = ActuatorSimulator(**options)

    async def pause() -> None:
        if delay:
            await asyncio.sleep(delay)

    async def attributes(request: Request) -> Response:
        await pause()
        try:
            return _json(sim.all_values())
        except SensorFailure as exc:
            return _json({"error": str(exc)}, 503)

    async def parameters(request: Request) -> Response:
        await pause()
        return _json(sim.parameters())

    async def attribute(request: Request) -> Response:
        await pause()
        name = request.path_params["name"]
        if request.method == "GET":
            if name == "trace" and "application/x-npy" in request.headers.get("accept", ""):
                return Response(sim.trace_npy(), media_type="application/x-npy")
            try:
                return _json({"value": sim.read(name)})
            except KeyError:
                return _json({"error": f"no attribute {name}"}, 404)
            except SensorFailure as exc:
                return _json({"error": str(exc)}, 503)
        if name not in RANGES:
            return _json({"error": f"{name} cannot be written"}, 404 if name not in READ_ONLY else 405)
        try:
            value = orjson.loads(await request.body())["value"]
            return _json({"value": sim.write(name, value)})
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _json({"error": 'body must be {"value": ...}'}, 400)
        except ValueError as exc:
            return _json({"error": str(exc)}, 422)

    async def move(request: Request) -> Response:
        await pause()
        try:
            body = orjson.loads(await request.body() or b"{}")
            return _json(sim.move(body["to"], body.get("speed")))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return _json({"error": 'body must be {"to": ..., "speed": ...}'}, 400)
        except ValueError as exc:
            return _json({"error": str(exc)}, 422)

    async def stop(request: Request) -> Response:
        await pause()
        return _json(sim.stop())

    async def drive(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            return _json(sim.drive(request.path_params["name"], body.get("value"), body.get("fail")))
        except KeyError:
            return _json({"error": f"only {', '.join(DRIVEN)} can be driven"}, 404)
        except (orjson.JSONDecodeError, AttributeError):
            return _json({"error": 'body must be {"value": number or null} or {"fail": true or false}'}, 400)
        except ValueError as exc:
            return _json({"error": str(exc)}, 422)

    return Starlette(routes=[
        Route("/attributes", attributes),
        Route("/parameters", parameters),
        Route("/move", move, methods=["POST"]),
        Route("/stop", stop, methods=["POST"]),
        Route("/sim/{name}", drive, methods=["PUT"]),
        Route("/{name}", attribute, methods=["GET", "PUT"]),
    ])


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    uvicorn.run(create_app({"delay": args.delay}), host=args.host, port=args.port, log_level="warning")
