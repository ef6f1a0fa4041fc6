"""Module classes used only by the tests, to make instruments misbehave on purpose."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from base_module import Attribute, BaseModule, ScpiModule, Target, action
from labthings_stage import LabThingsStage
from module_a import ModuleA
from psu import PowerSupply


class WideActuator(ModuleA):
    """ModuleA declaring a wider position range than the instrument accepts."""

    position: float = Attribute(unit="mm", minimum=-1000, maximum=1000, writable=True, doc="Too wide on purpose.")


class ConfusedActuator(ModuleA):
    """ModuleA expecting a number where the instrument sends text."""

    serial_number: float = Attribute(doc="Wrongly declared as a number.")


class Recorder(BaseModule):
    """An in-memory module that records what it executed and can be made slow or faulty."""

    value: float = Attribute(unit="V", minimum=-10, maximum=10, writable=True, doc="A setpoint.")
    delay: float = Attribute(unit="s", minimum=0, maximum=10, writable=True, doc="Seconds each call takes.")
    count: int = Attribute(doc="How many reads and writes ran.")
    mode: str = Attribute(choices=("ok", "raise", "hang"), writable=True, doc="How the next calls behave.")
    writes: list[float] = Attribute(doc="Values of the writes to `value` that started, in order.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.state: dict[str, Any] = {"value": 0.0, "delay": 0.0, "count": 0, "mode": "ok", "writes": []}
        self.executed: list[tuple[str, str, Any, float]] = []

    async def start(self) -> None:
        pass

    async def _act(self, op: str, name: str, value: Any = None) -> None:
        self.executed.append((op, name, value, time.time()))
        self.state["count"] += 1
        if op == "write" and name == "value":
            self.state["writes"].append(value)
        if self.state["mode"] == "raise" and name != "mode":
            raise RuntimeError("driver exploded")
        if self.state["mode"] == "hang" and name != "mode":
            await asyncio.sleep(3600)
        if self.state["delay"] and name not in ("delay", "mode"):
            await asyncio.sleep(self.state["delay"])

    async def read(self, name: str) -> Any:
        await self._act("read", name)
        return self.state[name]

    async def write(self, name: str, value: Any) -> Any:
        await self._act("write", name, value)
        self.state[name] = value
        return value

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {n: self.state[n] for n in names}


class Journal(BaseModule):
    """An in-memory setpoint that appends every write it performs to a file, before answering."""

    value: float = Attribute(minimum=-1e9, maximum=1e9, writable=True, doc="A setpoint.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.current = 0.0
        self.journal = open(self.settings.simulator["journal"], "a", encoding="utf-8")  # noqa: SIM115

    async def read(self, name: str) -> Any:
        return self.current

    async def write(self, name: str, value: Any) -> Any:
        await asyncio.sleep(0.01)  # keep writes in flight long enough to be caught by a signal
        self.current = value
        self.journal.write(f"{value!r}\n")
        self.journal.flush()
        return value

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {"value": self.current}


class BlockingRecorder(BaseModule):
    """A module whose driver blocks (plain `def` hooks, time.sleep standing in for a vendor call).

    It records which thread ran each call, how many calls ever ran at once, and the writes it performed.
    """

    value: float = Attribute(minimum=-10, maximum=10, writable=True, doc="A setpoint.")
    delay: float = Attribute(unit="s", minimum=0, maximum=10, writable=True, doc="Seconds each value call blocks.")
    thread: str = Attribute(doc="The thread that ran this read.")
    most_at_once: int = Attribute(doc="The most calls that ever ran at the same time.")
    writes: list[float] = Attribute(doc="Values written to `value`, in the order the driver performed them.")

    def start(self) -> None:
        self.state: dict[str, Any] = {"value": 0.0, "delay": 0.0, "writes": []}
        self.running = 0
        self.peak = 0

    def _call(self, name: str) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if name == "value":
                time.sleep(self.state["delay"])
        finally:
            self.running -= 1

    def read(self, name: str) -> Any:
        self._call(name)
        if name == "thread":
            return threading.current_thread().name
        if name == "most_at_once":
            return self.peak
        return self.state[name]

    def write(self, name: str, value: Any) -> Any:
        self._call(name)
        if name == "value":
            self.state["writes"].append(value)
        self.state[name] = value
        return value


class WidePowerSupply(PowerSupply):
    """PowerSupply letting through voltages the (simulated) instrument refuses itself."""

    voltage: float = Attribute(unit="V", minimum=0, maximum=100, writable=True, scpi="SOUR:VOLT", doc="Too wide.")


class MutePowerSupply(PowerSupply):
    """PowerSupply with an attribute whose query the instrument never answers."""

    silent: float = Attribute(unit="V", scpi="SYST:NOPE", doc="A query the instrument does not know.")


class SlowPowerSupply(PowerSupply):
    """PowerSupply whose every setting takes a second, as over a slow GPIB or serial line (its hooks block)."""

    def write(self, name: str, value: Any) -> Any:
        time.sleep(1.0)
        return super().write(name, value)


class WideLabThingsStage(LabThingsStage):
    """LabThingsStage letting through positions the Thing refuses itself."""

    position: float = Attribute(unit="mm", minimum=0, maximum=100, writable=True, doc="Too wide on purpose.")


class SlowWriter(BaseModule):
    """An in-memory setpoint whose writes take `seconds` (1 by default), noting in a file when each starts and ends.

    A slow instrument whose progress a test can watch, to kill a process at the worst moment."""

    value: float = Attribute(minimum=-1e9, maximum=1e9, writable=True, doc="A setpoint.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.current = 0.0
        self.journal = self.settings.simulator["journal"]
        self.seconds = float(self.settings.simulator.get("seconds", 1.0))

    def _note(self, line: str) -> None:
        with open(self.journal, "a", encoding="utf-8") as journal:
            journal.write(line + "\n")

    async def read(self, name: str) -> Any:
        return self.current

    async def write(self, name: str, value: Any) -> Any:
        self._note(f"start {value!r}")
        await asyncio.sleep(self.seconds)
        self.current = value
        self._note(f"done {value!r}")
        return value

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {"value": self.current}


SPECTRUM = np.linspace(0, 4000, 1000, dtype=np.float32)


def npy_file(array: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def array_instrument_app(options: dict[str, Any]) -> Starlette:
    """An instrument's HTTP API answering arrays the ways instruments do, right and wrong."""
    wants_npy = lambda request: "application/x-npy" in request.headers.get("accept", "")  # noqa: E731
    npy = {
        "spectrum": npy_file(SPECTRUM),
        "wrong_dtype": npy_file(np.linspace(0, 1, 4)),  # fractions, where uint16 is declared
        "wrong_shape": npy_file(np.zeros((3, 3), dtype=np.uint16)),  # 2x2 is declared
        "broken": npy_file(np.zeros(100, dtype=np.uint16))[:-10],  # cut off
        "big": npy_file(np.zeros(2 * 1024 * 1024, dtype=np.uint8)),  # over a max_reply_bytes of 1 MiB
    }

    async def attribute(request: Request) -> Response:
        name = request.path_params["name"]
        if name in npy and (wants_npy(request) or name != "spectrum"):
            return Response(npy[name], media_type="application/x-npy")
        if name == "spectrum":
            return Response(orjson.dumps({"value": SPECTRUM}, option=orjson.OPT_SERIALIZE_NUMPY),
                            media_type="application/json")
        if name == "json_only":
            return JSONResponse({"value": [1, 2, 3]})
        return JSONResponse({"error": f"no attribute {name}"}, 404)

    return Starlette(routes=[Route("/{name}", attribute)])


class ArrayInstrument(BaseModule):
    """An HTTP instrument with array attributes (array_instrument_app plays it)."""

    simulator = staticmethod(array_instrument_app)

    spectrum: NDArray[np.float32] = Attribute(shape=(None,), unit="counts", doc="As .npy when asked, else JSON.")
    json_only: NDArray[np.int32] = Attribute(shape=(3,), doc="Always JSON: an instrument that knows no .npy.")
    wrong_dtype: NDArray[np.uint16] = Attribute(shape=(None,), doc="Comes as float64.")
    wrong_shape: NDArray[np.uint16] = Attribute(shape=(2, 2), doc="Comes as 3x3.")
    broken: NDArray[np.uint16] = Attribute(doc="Comes as a cut-off .npy file.")
    big: NDArray[np.uint8] = Attribute(doc="2 MiB.")


class DisplayPanel(ScpiModule):
    """A SCPI instrument with a line of text to set (pyvisa-sim plays it from tests/display_panel.yaml)."""

    sim_file = Path(__file__).with_name("display_panel.yaml")
    text: str = Attribute(writable=True, scpi="DISP:TEXT", doc="What the display shows.")


class PluggedLater(BaseModule):
    """An instrument on a serial port that is not there until a test plugs it in (creates the file `device`).

    Its blocking `start` raises OSError while the file is missing, as opening an absent COM port does."""

    value: float = Attribute(minimum=-10, maximum=10, writable=True, doc="A setpoint.")

    def start(self) -> None:
        device = Path(self.settings.simulator["device"])
        if not device.exists():
            raise OSError(f"{device.name}: no such port")
        self.current = float(device.read_text() or 0)

    def read(self, name: str) -> Any:
        return self.current

    def write(self, name: str, value: Any) -> Any:
        self.current = value
        return value


class Thermometer(BaseModule):
    """A read-only instrument with a driver of its own: it overrides `read` only (nothing is writable)."""

    temperature: float = Attribute(unit="degC", doc="Always 21.5.")

    def read(self, name: str) -> Any:
        return 21.5


class HalfDriven(BaseModule):
    """Overrides `read` but not `write`, though it has a writable attribute: its writes still go over HTTP."""

    value: float = Attribute(writable=True, doc="A setpoint.")

    def read(self, name: str) -> Any:
        return 0.0


class SlowToLoad(BaseModule):
    """A module that takes `seconds` (3 by default) to set up, as a vendor SDK loading: its process is slow to be
    ready, or to fail."""

    value: float = Attribute(doc="Always 1.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        time.sleep(float(self.settings.simulator.get("seconds", 3.0)))

    def read(self, name: str) -> Any:
        return 1.0


class Relay(BaseModule):
    """An in-memory relay, switched by an action whose one parameter is a required bool."""

    closed: bool = Attribute(doc="True while the relay is closed.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.state = False

    async def read(self, name: str) -> Any:
        return self.state

    @action
    async def switch(self, closed: bool) -> bool:
        """Close or open the relay."""
        self.state = closed
        return closed


class CountingActuator(ModuleA):
    """ModuleA that keeps the name of every command its driver sent to the instrument, readable as `commands`."""

    commands: list[str] = Attribute(doc="The commands that reached the instrument, in order.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sent: list[str] = []

    async def command(self, name: str, arguments: dict[str, Any]) -> Any:
        self.sent.append(name)
        return await super().command(name, arguments)

    async def read(self, name: str) -> Any:
        if name == "commands":
            return list(self.sent)
        return await super().read(name)


class Commanded(BaseModule):
    """An in-memory stage moved by commands, with an action that computes where it sends the stage."""

    position: float = Attribute(unit="mm", minimum=0, maximum=100, writable=True, doc="Where the stage is.")
    commands: list[str] = Attribute(doc="The commands that reached the driver, in order.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.state: dict[str, Any] = {"position": 0.0}
        self.sent: list[str] = []

    async def read(self, name: str) -> Any:
        return list(self.sent) if name == "commands" else self.state[name]

    async def write(self, name: str, value: Any) -> Any:
        self.state[name] = value
        return value

    async def command(self, name: str, arguments: dict[str, Any]) -> Any:
        self.sent.append(name)
        self.state["position"] = arguments["to"]
        return arguments["to"]

    @action(owns=("position",))
    async def step(self, by: float) -> float:
        """Move `by` mm from where the stage is (a plain parameter: the target is computed, checked where it is sent)."""
        here = await self.read_value("position")
        reached: float = await self.send_command("move", to=Target("position", here + by))
        return reached
