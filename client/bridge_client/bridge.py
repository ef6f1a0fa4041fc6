"""Bridge: the blocking client, for notebooks and scripts; it runs the async client on a Portal.

    lab = bridge_client.connect("http://localhost:8000")
    lab.module_a.position = 10          # a write: returns once the instrument confirmed it
    lab.module_a.position               # a read -> 10.0
    lab.module_a.move(to=80).wait()     # an action: started at once, then waited for -> 80.0

Every call is handed to the AsyncBridge underneath (async_bridge.py), so both
clients behave the same by construction.  Each module is a `Module`, whose
class is built from the module's description (members.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from bridge_client.async_bridge import AsyncBridge, AsyncModule
from bridge_client.description import ModuleInfo
from bridge_client.errors import unknown_attribute, unknown_module
from bridge_client.invocation import Invocation
from bridge_client.members import members_of, proxy_class
from bridge_client.portal import Portal
from bridge_client.procedure_info import ProcedureInfo
from bridge_client.runs import Runs
from bridge_client.watch import Event


class Module:
    """One module of the bridge: its attributes read and write like Python attributes, its actions are methods."""

    __slots__ = ("_module", "_portal")
    _module: AsyncModule
    _portal: Portal

    def __init__(self, module: AsyncModule, portal: Portal) -> None:
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_portal", portal)

    @property
    def info(self) -> ModuleInfo:
        """The module's description: class, doc and every attribute's type, unit, limits and doc."""
        return self._module.info

    def get(self, name: str) -> Any:
        """Read an attribute (the same as `module.<name>`)."""
        return self._portal.call(self._module.get(name))

    def set(self, name: str, value: Any) -> Any:
        """Write an attribute and return the value the instrument reports after the write."""
        return self._portal.call(self._module.set(name, value))

    def invoke(self, name: str, /, **arguments: Any) -> Invocation:
        """Start an action (the same as `module.<name>(**arguments)`) once its arguments are checked; returns
        its Invocation at once."""
        return Invocation(self._portal.call(self._module.invoke(name, **arguments)), self._portal)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.info.actions:
            raise AttributeError(f"{self.info.name}.{name} is an action: start it with "
                                 f"{self.info.name}.{name}(...), it cannot be assigned")
        if hasattr(type(self), name):
            object.__setattr__(self, name, value)  # an attribute's property writes to the instrument
        else:  # a typo must not become a local attribute while the instrument stays unchanged
            raise unknown_attribute(self.info.name, name, self.info.attributes)

    def __repr__(self) -> str:
        return repr(self._module)


class Bridge:
    """A connection to one bridge for blocking code; its modules are attributes (`lab.module_a`)."""

    def __init__(self, url: str | None = None, *, token: str | None = None, timeout: float = 10.0,
                 retries: int = 3) -> None:
        """`url` defaults to $BRIDGE_URL, else http://localhost:8000; `token` to $BRIDGE_TOKEN.
        `retries`: how often a read is tried again after 503 with Retry-After (writes never are)."""
        self._portal = Portal()
        try:
            self._async = self._portal.call(_connected(url, token=token, timeout=timeout, retries=retries))
        except BaseException:
            self._portal.close()
            raise
        self._closer = weakref.finalize(self, _close, self._portal, self._async)
        self._runs = Runs(self._async.runs, self._portal)
        self._modules: dict[str, Module] = {}
        for name in self._async.modules:
            module = self._async[name]
            self._modules[name] = proxy_class(Module, module.info, members_of(module.info, "blocking"))(
                module, self._portal)
            if not hasattr(type(self), name):  # never shadow the client's own API; lab[name] still works
                self.__dict__[name] = self._modules[name]

    @property
    def url(self) -> str:
        return self._async.url

    @property
    def modules(self) -> tuple[str, ...]:
        """The names of the bridge's modules, as described when connecting."""
        return self._async.modules

    @property
    def runs(self) -> Runs:
        """The run queue: `lab.runs.submit("voltage_sweep", stop=5, metadata={...})`, `list()`, `lab.runs[id]`."""
        return self._runs

    @property
    def procedures(self) -> dict[str, ProcedureInfo]:
        """The procedures runs can be queued of, with their parameters
        (`print(lab.procedures["voltage_sweep"].help_text())` documents each)."""
        return self._runs.procedures

    def __getitem__(self, name: str) -> Module:
        try:
            return self._modules[name]
        except KeyError:
            raise unknown_module(name, self._modules) from None

    def invocation(self, ident: str) -> Invocation:
        """An invocation by its id (or href), whoever started it (this client, another, the dashboard)."""
        return Invocation(self._portal.call(self._async.invocation(ident)), self._portal)

    def alarms(self) -> list[dict[str, Any]]:
        """Every attribute with alarm limits and its severity now (GET /alarms): dicts with module, attribute,
        severity ("ok", "minor", "major", "invalid"), limit (the one crossed, e.g. "high"), value, since, unit
        and limits.  `[a for a in lab.alarms() if a["severity"] != "ok"]`: what is in alarm."""
        return self._portal.call(self._async.alarms())

    def watch(self, *names: str, reconnect: bool = True) -> Iterator[Event]:
        """Live values of `names` ("module_a.force", or "module_a" for all of a module; none: everything),
        forever, reconnecting by itself; leave the loop to stop.  Needs `bridge-client[watch]`."""
        return self._portal.iterate(self._async.watch(*names, reconnect=reconnect))

    def close(self) -> None:
        self._closer()

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Bridge {self.url}: {', '.join(self.modules)}>"


def connect(url: str | None = None, *, token: str | None = None, timeout: float = 10.0, retries: int = 3) -> Bridge:
    """Connect to a bridge (default $BRIDGE_URL, else http://localhost:8000) and learn its modules."""
    return Bridge(url, token=token, timeout=timeout, retries=retries)


async def _connected(url: str | None, **options: Any) -> AsyncBridge:
    bridge = AsyncBridge(url, **options)  # made on the portal's loop, which will run all its requests
    try:
        return await bridge.connect()
    except BaseException:
        await bridge.aclose()
        raise


def _close(portal: Portal, bridge: AsyncBridge) -> None:
    try:
        portal.call(bridge.aclose())
    finally:
        portal.close()
