"""A simulated linear actuator that speaks ModuleA's instrument HTTP API.

It lets the demo and the tests run with no hardware while the HTTP hop stays
real.  The API is the one BaseModule's default driver expects:

    GET  /<name>          -> {"value": ...}
    PUT  /<name>          {"value": ...} -> {"value": <value after the write>}
    GET  /attributes      -> {"position": ..., "speed": ..., ...}
    GET  /parameters      -> {"position": {"value": ..., "min": ..., "max": ..., "unit": ...}, ...}

Like a real instrument it keeps its own ranges and refuses values outside them
(HTTP 422).  `force` follows position and speed, `temperature` drifts, so
values move, and `trace` holds the force samples of the last move (100,000 by
default, as in the original example's 100 x 1000 force data): recorded once per
move, encoded on every request, as an instrument's web API would.
`GET /attributes` leaves the trace out.  Options (config.yml `simulator:`):
`delay` adds seconds to every answer, to imitate a slow instrument;
`trace_samples` sets the trace length; `serial_number`.  Run it alone with
`python -m labbridge.experiment.simulators.actuator --port 8888`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# name: (unit, min, max) for the writable settings; the instrument's own ranges.
RANGES: dict[str, tuple[str, float, float]] = {"position": ("mm", 0.0, 100.0), "speed": ("mm/s", 0.1, 50.0)}
SENSORS = ("force", "temperature", "serial_number")  # read-only scalars
READ_ONLY = (*SENSORS, "trace")


class ActuatorSimulator:
    """The actuator's state and physics, independent of HTTP."""

    def __init__(self, serial_number: str = "SIM-0001", trace_samples: int = 100_000) -> None:
        if not 1 <= trace_samples <= 10_000_000:
            raise ValueError(f"trace_samples must be 1 to 10000000, got {trace_samples}")
        self.values: dict[str, Any] = {"position": 0.0, "speed": 10.0}
        self.serial_number = serial_number
        self.trace_samples = trace_samples
        self._started = time.monotonic()
        self._trace: tuple[tuple[float, float], list[float]] | None = None

    def trace(self) -> list[float]:
        """The force samples of the move to the current position."""
        key = (self.values["position"], self.values["speed"])
        if self._trace is None or self._trace[0] != key:
            position, speed = key
            n = self.trace_samples
            drag = 0.05 * speed
            # Force along the move from home to `position`, with a small deterministic ripple.
            samples = [round(0.8 * position * i / n + drag + 0.01 * ((i * 7919) % 101 - 50) / 50, 4) for i in range(n)]
            self._trace = (key, samples)
        return self._trace[1]

    def read(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name == "force":
            # A spring (0.8 N/mm) plus viscous drag (0.05 N per mm/s) plus a little noise.
            return round(0.8 * self.values["position"] + 0.05 * self.values["speed"] + random.gauss(0, 0.01), 4)
        if name == "temperature":
            return round(22.5 + 0.3 * math.sin((time.monotonic() - self._started) / 60), 3)
        if name == "serial_number":
            return self.serial_number
        if name == "trace":
            return self.trace()
        raise KeyError(name)

    def write(self, name: str, value: Any) -> Any:
        """Set a value; raise ValueError with the instrument's message if refused."""
        unit, lo, hi = RANGES[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ValueError(f"{name} must be a number from {lo:g} to {hi:g} {unit}")
        self.values[name] = float(value)
        return self.values[name]

    def all_values(self) -> dict[str, Any]:
        return {name: self.read(name) for name in (*RANGES, *SENSORS)}

    def parameters(self) -> dict[str, Any]:
        return {n: {"value": self.values[n], "min": lo, "max": hi, "unit": u} for n, (u, lo, hi) in RANGES.items()}


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
        return _json(sim.all_values())

    async def parameters(request: Request) -> Response:
        await pause()
        return _json(sim.parameters())

    async def attribute(request: Request) -> Response:
        await pause()
        name = request.path_params["name"]
        if request.method == "GET":
            try:
                return _json({"value": sim.read(name)})
            except KeyError:
                return _json({"error": f"no attribute {name}"}, 404)
        if name not in RANGES:
            return _json({"error": f"{name} cannot be written"}, 404 if name not in READ_ONLY else 405)
        try:
            value = orjson.loads(await request.body())["value"]
            return _json({"value": sim.write(name, value)})
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _json({"error": 'body must be {"value": ...}'}, 400)
        except ValueError as exc:
            return _json({"error": str(exc)}, 422)

    return Starlette(routes=[
        Route("/attributes", attributes),
        Route("/parameters", parameters),
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
