"""BaseModule: what every instrument module is, and the default HTTP driver cycle.

A subclass declares its attributes at class level (see attribute.py) and
BaseModule collects them into `attributes`, the one table requests are routed
through: a name that is not declared there (`ip`, `__class__`, `get`, ...) is an
unknown attribute, never a `getattr` on a request string.

The bridge calls `get`, `put`, `read_attributes` and `read_parameters`; they
validate and then call the driver hooks `read`, `write` and `read_many`.  Those
default to the instrument's own HTTP API, spoken in the class's `http` dialect
(drivers/http_dialect.py; the bridge's own `GET/PUT http://ip:port/<name>` with
`{"value": ...}` unless the class declares another).  A module that talks to
its hardware another way overrides `read` and `write` (and `read_many` if the
instrument can report several values at once; by default it reads them one at
a time).  Hooks written with plain `def` block, and run on the module's own
worker thread (worker.py); `async def` hooks run on the event loop.

Actions (`@action` methods, see core/action.py) are collected into `actions`
the same way.  An action runs for a while without holding its module: it
reaches the instrument through `read_value`, `write_value` and `send_command`
(the fourth hook, `command`: `POST` to the attribute's path by default), each
of which takes the module's turn (`turn()`) among client requests; it tells
its progress with `report` and checks `cancelled` where it loops or blocks.
No value an action sends skips the limits (the class's, narrowed by
config.yml): `write_value` is checked like a PUT, and a command argument
declared `Target("position", to)` is checked as a `position` before the
command is sent (`check_target`).

A `start` hook that raises (a serial port not plugged in) does not stop the
experiment: `run_start` remembers why, and every later driver call first tries
`start` again in the module's turn (`retry_start`), answering 502
instrument_unreachable naming the failure until it succeeds.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, ClassVar, NamedTuple, ParamSpec, get_type_hints

import orjson

from labbridge.core.action import ActionSpec, collect_actions
from labbridge.core.attribute import RESERVED_NAMES, AttributeSpec
from labbridge.core.config import ModuleSettings
from labbridge.core.errors import (
    BridgeError,
    InstrumentError,
    InstrumentUnreachable,
    InvalidValue,
    ReadOnlyAttribute,
    UnknownAttribute,
)
from labbridge.experiment.drivers.http_dialect import HOME, HttpDialect, HttpDriver
from labbridge.experiment.instrument_client import InstrumentClient
from labbridge.experiment.invocation import current_invocation
from labbridge.experiment.target import Target
from labbridge.experiment.turns import Turns
from labbridge.experiment.worker import ModuleWorker

log = logging.getLogger(__name__)
P = ParamSpec("P")
# What a module keeps on itself (ScpiModule its VISA `session`): an attribute of the same name would hide it.
_INSTANCE_NAMES = frozenset({"name", "settings", "last_values", "specs", "dialect", "worker", "session", "turns",
                             "announce", "guard"})


def driver_hook(hook: Callable[P, Any]) -> Callable[P, Any]:
    """Marks a driver hook a subclass may override with `async def` or, when its driver blocks, plain `def`.

    At run time it is the function itself; for type checkers its answer becomes
    Any, so either kind of override matches it.
    """
    return hook


class Reading(NamedTuple):
    """What a `read` hook may return instead of a bare value: the value plus its JSON as sent."""

    value: Any
    json: bytes | None = None


class BaseModule:
    """An instrument, seen through its declared attributes."""

    attributes: ClassVar[dict[str, AttributeSpec[Any]]] = {}
    actions: ClassVar[dict[str, ActionSpec]] = {}
    # Builds an ASGI app that imitates the instrument; `simulate: true` serves it.
    simulator: ClassVar[Callable[[dict[str, Any]], Any] | None] = None
    # How the instrument's HTTP API spells things, for the default hooks (config.yml `path` may override the path).
    http: ClassVar[HttpDialect] = HOME

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = {name: value for name, value in vars(cls).items() if isinstance(value, AttributeSpec)}
        hints = get_type_hints(cls) if declared else {}
        table = dict(getattr(super(cls, cls), "attributes", {}))  # inherited declarations, redeclarable
        for name, attribute in declared.items():
            if name not in hints:
                raise TypeError(f"{cls.__name__}.{name} needs a type annotation, e.g. `{name}: float = Attribute(...)`")
            bound = attribute.bind(hints[name])
            parent = cls.__mro__[1]
            inherited_action = name in getattr(parent, "actions", {})  # collect_actions says so more precisely
            if name not in table and not inherited_action and issubclass(parent, BaseModule) and parent.uses_name(name):
                raise TypeError(f"{cls.__name__}.{name}: the module itself uses the name {name!r}; "
                                "name the attribute otherwise")
            table[name] = bound
            setattr(cls, name, table[name])
        # Actions before the tables are set: an action named `attributes` must be seen to be refused.
        actions = collect_actions(cls, table, dict(getattr(super(cls, cls), "actions", {})))
        cls.attributes, cls.actions = table, actions
        hook = vars(cls).get("safe_state")
        if hook is not None and not inspect.iscoroutinefunction(hook):
            raise TypeError(f"{cls.__name__}.safe_state must be `async def` (it writes through write_value)")

    def __init__(self, name: str, settings: ModuleSettings) -> None:
        self.name = name
        self.settings = settings
        self.last_values: dict[str, Any] = {}
        # The class's table, with any narrower limits from config.yml applied.
        self.specs: dict[str, AttributeSpec[Any]] = {
            attr: (spec.narrowed(lim.min, lim.max) if (lim := settings.limits.get(attr)) else spec)
            for attr, spec in self.attributes.items()
        }
        self.dialect = replace(self.http, path=settings.path) if settings.path else self.http
        # Runs this module's driver hooks: blocking ones on its own thread, in order.
        self.worker = ModuleWorker(name)
        self._http: HttpDriver | None = None
        # The module's place in line among requests; the Experiment that runs it shares its own.
        self.turns = Turns()
        # Publishes values that actions read and write (set by the Experiment to its live feed).
        self.announce: Callable[[dict[str, Any]], None] = _drop
        # Asked before each write an action makes (write_value, a Target of send_command): the experiment's
        # interlocks, so a guard that starts to fail stops a ramp at its next step, not only at its start.
        self.guard: Callable[[str, Any], None] = _allow
        self._start_failure: str | None = None  # why `start` last failed; None once it succeeded

    @classmethod
    def uses_name(cls, name: str) -> bool:
        """True if modules of this class use `name` themselves (an attribute of that name would hide it)."""
        return name in _INSTANCE_NAMES or name in RESERVED_NAMES or hasattr(cls, name)

    @classmethod
    def speaks_http(cls) -> bool:
        """True while a driver hook the module needs is still the default HTTP one (then ip:port are needed)."""
        return bool(cls.http_hooks())

    @classmethod
    def http_hooks(cls) -> list[str]:
        """The hooks left to the instrument's HTTP API: `read` unless overridden, and `write` unless overridden
        or nothing is writable (a read-only module never calls it)."""
        needed = ["read"] + (["write"] if any(spec.writable for spec in cls.attributes.values()) else [])
        return [hook for hook in needed if getattr(cls, hook) is getattr(BaseModule, hook)]

    @classmethod
    def simulates_itself(cls) -> bool:
        """True if `simulate: true` is handled inside the module (no `simulator` app to serve on a port)."""
        return False

    @property
    def address(self) -> str:
        """Where the instrument is, for messages: its HTTP base URL, or "in process"."""
        return f"http://{self.settings.ip}:{self.settings.port}" if self.speaks_http() else "in process"

    @driver_hook
    async def start(self) -> None:
        """Open the keep-alive HTTP client; a module with its own driver overrides this if it must connect."""
        if self.speaks_http():
            client = InstrumentClient(self.name, self.address, timeout=self.settings.timeout,
                                      connect_timeout=self.settings.connect_timeout, error_key=self.dialect.error_key)
            await client.start()
            self._http = HttpDriver(self.name, self.dialect, client)

    @driver_hook
    async def close(self) -> None:
        if self._http is not None:
            await self._http.client.close()
            self._http = None

    # -- starting: a module whose instrument is missing stays in service --------

    @property
    def start_failure(self) -> str | None:
        """Why `start` failed ("OSError: COM7: no such port"), until it succeeds; else None."""
        return self._start_failure

    async def run_start(self) -> None:
        """Run the `start` hook; if it raises, remember why and raise InstrumentUnreachable naming it."""
        try:
            await self.worker.run(self.start)
        except Exception as exc:
            self._start_failure = exc.detail if isinstance(exc, BridgeError) else f"{type(exc).__name__}: {exc}"
            raise InstrumentUnreachable(f"module {self.name} could not start: {self._start_failure} "
                                        "(start is tried again on each request)") from None
        self._start_failure = None

    async def retry_start(self) -> None:
        """Before a driver call, in the module's turn: run `start` again if it failed, so that an instrument
        plugged in later is served without a restart; InstrumentUnreachable while it still fails."""
        if self._start_failure is None:
            return
        await self.run_start()
        log.info("module %s started (its start had failed; tried again on a request)", self.name)

    # -- what the bridge calls -------------------------------------------------

    def spec(self, name: str) -> AttributeSpec[Any]:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(self.specs) or "none"
            raise UnknownAttribute(f"module {self.name!r} has no attribute {name!r}; known: {known}") from None

    async def get(self, name: str, *, raw: bool = False) -> dict[str, Any]:
        """Read `name`; the answer's value is what the instrument sent, checked (`raw`: never its JSON text)."""
        spec = self.spec(name)
        result = await self.worker.run(self.read, name)
        reading = result if isinstance(result, Reading) else Reading(result)
        value = spec.coerce_reading(reading.value, self.name)
        if spec.is_array:
            # Freeing 100,000 floats takes longer than sending them: hand the parsed
            # reading and the previous value to the event loop, which drops them
            # after this reply is on its way.
            asyncio.get_running_loop().call_soon(_drop, (reading, self.last_values.get(name)))
        self.last_values[name] = value
        # An array the instrument sent as valid JSON goes on as those bytes: re-encoding
        # 100,000 floats would cost more than everything else on the way.
        passed = orjson.Fragment(reading.json) if spec.is_array and reading.json is not None and not raw else value
        return {"module": self.name, "attribute": name, "value": passed, "unit": spec.unit}

    def writable_spec(self, name: str) -> AttributeSpec[Any]:
        if name in RESERVED_NAMES:
            raise ReadOnlyAttribute(f"{self.name}.{name} is a read-only summary")
        spec = self.spec(name)
        if not spec.writable:
            raise ReadOnlyAttribute(f"{self.name}.{name} is read-only")
        return spec

    async def put(self, name: str, value: Any) -> dict[str, Any]:
        spec = self.writable_spec(name)
        checked = spec.validate(value)
        reported = spec.coerce_reading(await self.worker.run(self.write, name, checked), self.name)
        self.last_values[name] = reported
        return {"module": self.name, "attribute": name, "value": reported, "unit": spec.unit}

    async def read_attributes(self) -> dict[str, Any]:
        """Every declared scalar attribute with its current value and unit (arrays have their own URL)."""
        values = await self._read_declared([n for n, s in self.specs.items() if not s.is_array])
        return {
            "module": self.name,
            "attributes": {n: {"value": v, "unit": self.specs[n].unit} for n, v in values.items()},
        }

    async def read_parameters(self) -> dict[str, Any]:
        """The writable attributes with current value, unit and limits."""
        writable = [n for n, s in self.specs.items() if s.writable]
        values = await self._read_declared(writable)
        params = {}
        for n, v in values.items():
            spec = self.specs[n]
            params[n] = {"value": v, "unit": spec.unit, "min": spec.minimum, "max": spec.maximum}
            if spec.choices is not None:
                params[n]["choices"] = list(spec.choices)
        return {"module": self.name, "parameters": params}

    def describe(self) -> dict[str, Any]:
        cls = type(self)
        return {  # the class as config.yml names it (module_a.ModuleA re-exports labbridge.demo.module_a's)
            "class": getattr(self.settings, "class_path", None) or f"{cls.__module__}.{cls.__qualname__}",
            "doc": (cls.__doc__ or "").strip().split("\n\n")[0],
            "attributes": {n: s.describe() for n, s in self.specs.items()},
            "actions": {n: a.describe(self.specs) for n, a in self.actions.items()},
        }

    def describe_action(self, name: str) -> dict[str, Any]:
        """`GET /<module>/<action>`: one action's description."""
        return {"module": self.name, "action": name, **self.actions[name].describe(self.specs)}

    async def _read_declared(self, names: list[str]) -> dict[str, Any]:
        raw = await self.worker.run(self.read_many, names)
        values = {}
        for n in names:
            if n not in raw:
                raise InstrumentError(f"instrument of {self.name} did not report {n}")
            values[n] = self.specs[n].coerce_reading(raw[n], self.name)
        self.last_values.update(values)
        return values

    # -- what actions call: each driver call takes the module's turn ------------

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """`async with self.turn():` holds the module for the block, after every request already waiting."""
        async with self.turns.take():
            await self.retry_start()
            yield

    async def read_value(self, name: str) -> Any:
        """Read an attribute in the module's turn (checked like any read, published live); return its value."""
        async with self.turn():
            answer = await self.get(name, raw=True)
        self.announce(answer)
        return answer["value"]

    async def write_value(self, name: str, value: Any) -> Any:
        """Write an attribute in the module's turn (validated like a PUT, published live); return what it reports."""
        async with self.turn():
            self.guard(name, value)
            answer = await self.put(name, value)
        self.announce(answer)
        return answer["value"]

    async def send_command(self, name: str, **arguments: Any) -> Any:
        """Run an instrument command (the `command` hook) in the module's turn; return its answer.

        An argument given as `Target(attribute, value)` is checked as a value of that attribute first
        (`check_target`) and sent as the checked value; one that fails the check sends nothing."""
        why = f"command {name!r} refused before it was sent"
        sent = {key: self.check_target(arg.attribute, arg.value, why) if isinstance(arg, Target) else arg
                for key, arg in arguments.items()}
        async with self.turn():
            for key, arg in arguments.items():
                if isinstance(arg, Target):
                    self.guard(arg.attribute, sent[key])
            return await self.worker.run(self.command, name, sent)

    def check_target(self, name: str, value: Any, why: str = "") -> Any:
        """`value` checked as a value of attribute `name` (type, choices, limits as config.yml narrows them);
        InvalidValue names the module's attribute, the value and the limits, then `why` in parentheses."""
        spec = self.spec(name)
        try:
            return spec.validate(value)
        except InvalidValue as exc:
            raise InvalidValue(f"{self.name}.{exc.detail}" + (f" ({why})" if why else "")) from None

    def report(self, progress: float | None = None, message: str | None = None) -> None:
        """Tell the running action's progress (0..1) and/or a status line; clients see it live."""
        invocation = current_invocation.get()
        if invocation is not None:
            invocation.report(progress, message)

    @property
    def cancelled(self) -> bool:
        """True once the running action was asked to stop (for loops and blocking code between awaits)."""
        invocation = current_invocation.get()
        return invocation is not None and invocation.cancel_requested.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise CancelledError if the running action was asked to stop; its clean-up then runs."""
        if self.cancelled:
            raise asyncio.CancelledError

    # -- safety -------------------------------------------------------------------

    async def safe_state(self) -> None:
        """Put the instrument in a state it may be left in (output off, heater off, motion stopped).

        Override it (`async def`, writing through `write_value`, which checks limits) when the class knows its
        safe state; config.yml's `safe_state:` of the module, when given, is applied instead.  The bridge calls
        it on a clean stop, on a trip that names the module, and at start after an unclean stop
        (experiment/safety/safe_state.py).  By default it does nothing."""

    @classmethod
    def has_safe_state_hook(cls) -> bool:
        """True if the class overrides `safe_state`."""
        return cls.safe_state is not BaseModule.safe_state

    # -- driver hooks: the instrument's HTTP API by default ----------------------

    @driver_hook
    async def read(self, name: str) -> Any:
        # An array is asked for as a .npy file, which the instrument may send instead of JSON.
        return Reading(*await self._driver().read(name, binary=self.specs[name].array is not None))

    @driver_hook
    async def write(self, name: str, value: Any) -> Any:
        return await self._driver().write(name, value)

    @driver_hook
    async def read_many(self, names: list[str]) -> dict[str, Any]:
        if type(self).read is not BaseModule.read:  # a driver of its own: one `read` per attribute
            readings = {name: await self.worker.run(self.read, name) for name in names}
            return {name: r.value if isinstance(r, Reading) else r for name, r in readings.items()}
        return await self._driver().read_many(names)

    @driver_hook
    async def command(self, name: str, arguments: dict[str, Any]) -> Any:
        """An instrument command for actions: `POST` to the attribute path of `name` with the arguments as JSON
        (in the class's HTTP dialect); a module that drives other hardware overrides it."""
        if not self.speaks_http():
            raise InstrumentError(f"module {self.name} has no driver for the command {name!r} (override `command`)")
        return await self._driver().command(name, arguments)

    def _driver(self) -> HttpDriver:
        if self._http is None:
            raise InstrumentError(f"module {self.name} is not started")
        return self._http


def _allow(name: str, value: Any) -> None:
    """No interlock: every write an action makes is allowed (the experiment sets the module's guard)."""


def _drop(_: object) -> None:
    """Does nothing; calling it releases the last reference to its argument."""
