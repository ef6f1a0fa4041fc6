"""AsyncBridge: the client for asyncio code, and the one implementation the blocking client runs.

    async with bridge_client.AsyncBridge("http://localhost:8000") as lab:
        await lab.module_a.set("position", 10)
        print(await lab.module_a.get("position"))
        move = await lab.module_a.move(to=80)    # started: an AsyncInvocation
        print(await move.wait())                 # its result, once it has finished

Connecting reads `/modules` once: every module becomes an attribute of the
bridge object (`lab.module_a`, also `lab["module_a"]`), an `AsyncModule` whose
class is built from the module's description (members.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from bridge_client.description import ActionInfo, AttributeInfo, ModuleInfo, modules_from_json
from bridge_client.errors import BridgeError, unknown_action, unknown_attribute, unknown_module
from bridge_client.http import Http
from bridge_client.invocation import AsyncInvocation
from bridge_client.members import members_of, proxy_class
from bridge_client.runs import AsyncRuns
from bridge_client.values import decode
from bridge_client.watch import Event, check_names, require_websockets, watch_events

DEFAULT_URL = "http://localhost:8000"


class AsyncModule:
    """One module of the bridge, for asyncio code: `await module.get(name)`, `await module.set(name, value)`,
    `await module.move(to=80)` (an action: `invoke("move", to=80)`) gives the started AsyncInvocation."""

    __slots__ = ("info", "_http")

    def __init__(self, info: ModuleInfo, http: Http) -> None:
        self.info = info
        self._http = http

    async def get(self, name: str) -> Any:
        """Read an attribute from the instrument; arrays come as numpy arrays when numpy is installed."""
        attribute = self._attribute(name)
        reply = await self._http.read(f"/{self.info.name}/{quote(name, safe='')}")
        return decode(_value_of(reply), attribute)

    async def set(self, name: str, value: Any) -> Any:
        """Write an attribute; returns the value the instrument reports after the write.  Never retried."""
        attribute = self._attribute(name)
        reply = await self._http.write("PUT", f"/{self.info.name}/{quote(name, safe='')}", {"value": value})
        return decode(_value_of(reply), attribute)

    async def invoke(self, name: str, /, **arguments: Any) -> AsyncInvocation:
        """Start an action once its arguments are checked against its description (InvalidValue, nothing sent,
        when the bridge would refuse them); returns the invocation at once.  Never retried."""
        action = self._action(name)
        action.check_arguments(arguments)
        reply = await self._http.write("POST", f"/{self.info.name}/{quote(name, safe='')}", arguments)
        return AsyncInvocation(reply, self._http)

    def _action(self, name: str) -> ActionInfo:
        found = self.info.actions.get(name)
        if found is None:
            raise unknown_action(self.info.name, name, self.info.actions)
        return found

    def _attribute(self, name: str) -> AttributeInfo:
        found = self.info.attributes.get(name)
        if found is None:
            raise unknown_attribute(self.info.name, name, self.info.attributes)
        return found

    def __repr__(self) -> str:
        return f"<{self.info.name}: {self.info.class_path} at {self._http.url}>"


class AsyncBridge:
    """A connection to one bridge; its modules are attributes once connected."""

    def __init__(self, url: str | None = None, *, token: str | None = None, timeout: float = 10.0,
                 retries: int = 3, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """`url` defaults to $BRIDGE_URL, else http://localhost:8000; `token` to $BRIDGE_TOKEN.
        `retries`: how often a read is tried again after 503 with Retry-After (writes never are)."""
        token = token if token is not None else os.environ.get("BRIDGE_TOKEN") or None
        self._http = Http(url or os.environ.get("BRIDGE_URL") or DEFAULT_URL, token=token, timeout=timeout,
                          retries=retries, transport=transport)
        self._modules: dict[str, AsyncModule] = {}
        self._runs = AsyncRuns(self._http)

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def runs(self) -> AsyncRuns:
        """The run queue: `await lab.runs.submit("voltage_sweep", stop=5, metadata={...})`, `list()`, `get(id)`;
        `await lab.runs.procedures()` describes the procedures."""
        return self._runs

    @property
    def modules(self) -> tuple[str, ...]:
        """The names of the bridge's modules, as described when connecting."""
        return tuple(self._modules)

    async def connect(self) -> AsyncBridge:
        """Read the modules' descriptions and make each module an attribute of this object."""
        described = modules_from_json(await self._http.read("/modules"))
        for old in self._modules:
            self.__dict__.pop(old, None)
        self._modules = {name: proxy_class(AsyncModule, info, members_of(info, "async"))(info, self._http)
                         for name, info in described.items()}
        for name, module in self._modules.items():
            if not hasattr(type(self), name):  # never shadow the client's own API; lab[name] still works
                self.__dict__[name] = module
        return self

    def __getitem__(self, name: str) -> AsyncModule:
        try:
            return self._modules[name]
        except KeyError:
            raise unknown_module(name, self._modules) from None

    async def invocation(self, ident: str) -> AsyncInvocation:
        """An invocation by its id (or href), whoever started it (this client, another, the dashboard)."""
        ident = ident.removeprefix("/invocations/")
        return AsyncInvocation(await self._http.read(f"/invocations/{quote(ident, safe='')}"), self._http)

    async def alarms(self) -> list[dict[str, Any]]:
        """Every attribute with alarm limits and its severity now (GET /alarms): dicts with module, attribute,
        severity ("ok", "minor", "major", "invalid"), limit (the one crossed, e.g. "high"), value, since, unit
        and limits."""
        answer = await self._http.read("/alarms")
        return list(answer["alarms"])

    def watch(self, *names: str, reconnect: bool = True) -> AsyncGenerator[Event, None]:
        """Live values of `names` ("module_a.force", or "module_a" for all of a module; none: everything)."""
        wanted = check_names(names, {n: set(m.info.attributes) for n, m in self._modules.items()})
        require_websockets()  # fail here, not at the first event
        return watch_events(self._http.url, self._http.token, wanted, reconnect=reconnect)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncBridge:
        return await self.connect()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncBridge {self.url}: {', '.join(self._modules) or 'not connected'}>"


def _value_of(reply: Any) -> Any:
    if not isinstance(reply, dict) or "value" not in reply:
        raise BridgeError(f"the bridge answered without a value: {str(reply)[:200]}")
    return reply["value"]
