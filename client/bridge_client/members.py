"""Proxy classes: one Python class per module, whose members are the module's members.

At connect time each module's description becomes a class named after the
module (`module_a`), deriving from `Module` (blocking) or `AsyncModule`.
Its docstring is the module's doc with every attribute listed, so
`help(lab.module_a)` documents the module; each attribute is an
`AttributeProperty`, so reading `lab.module_a.position` reads the instrument,
assigning it writes, `dir()` and Jupyter's tab completion list it, and
`lab.module_a.position?` shows its doc, type, unit, limits and access without
reading it (IPython does not evaluate properties to document them).

Each action is an `ActionMethod`, on both proxies: a method whose signature
(keyword-only parameters with their types and defaults) and docstring come
from the action's description, so `help()`, `lab.module_a.move?` and tab
completion (`lab.module_a.move(t` offers `to=`) work as for any method.
Calling it calls the proxy's `invoke(name, **arguments)`: the blocking proxy
returns an `Invocation`, the async one a coroutine giving an `AsyncInvocation`.

This is the one place where members of other kinds plug in: `members_of`
maps a module's description to class members, one kind after the other.
A name that the proxy's own API already uses (`get`, `set`, `info`, `invoke`)
stays reachable through `get(name)` / `set(name, value)` / `invoke(name, ...)`.
"""

from __future__ import annotations

import logging
import types
from typing import Any, Literal, Protocol, TypeVar

from bridge_client.description import ActionInfo, AttributeInfo, ModuleInfo

log = logging.getLogger("bridge_client")


class _Proxy(Protocol):
    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: Any) -> Any: ...

    def invoke(self, name: str, /, **arguments: Any) -> Any: ...


P = TypeVar("P")


class AttributeProperty(property):
    """A module attribute on a blocking proxy: reading it reads the instrument, assigning it writes."""

    def __init__(self, info: AttributeInfo) -> None:
        super().__init__(_Read(info.name), _Write(info.name))
        self.__doc__ = info.help_text()  # property's own `doc=` is lost on subclasses before Python 3.12
        self.info = info


class _Read:
    """The getter of one attribute's property (a named callable, not a closure)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, proxy: _Proxy) -> Any:
        return proxy.get(self.name)


class _Write:
    """The setter of one attribute's property."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, proxy: _Proxy, value: Any) -> None:
        proxy.set(self.name, value)


class ActionMethod:
    """An action as a method of a proxy class: `proxy.move(to=80)` calls `proxy.invoke("move", to=80)`.

    Like a function, it binds to the proxy it is read from (a bound method), and
    `inspect.signature`, `help()` and IPython read its `__signature__` and `__doc__`.
    """

    def __init__(self, info: ActionInfo, module_class: str) -> None:
        self.info = info
        self.__name__ = info.name
        self.__qualname__ = f"{module_class}.{info.name}"
        self.__module__ = "bridge_client"
        self.__doc__ = info.help_text()
        self.__signature__ = info.signature()

    def __call__(self, proxy: _Proxy, /, *args: Any, **arguments: Any) -> Any:
        if args:
            example = ", ".join(f"{name}=..." for name in self.info.parameters)
            raise TypeError(f"{self.info.name}() takes its arguments by name: {self.info.name}({example})")
        return proxy.invoke(self.info.name, **arguments)

    def __get__(self, proxy: object, owner: type | None = None) -> Any:
        return self if proxy is None else types.MethodType(self, proxy)

    def __repr__(self) -> str:
        return f"<action {self.__qualname__}{self.__signature__}>"


def members_of(info: ModuleInfo, flavour: Literal["blocking", "async"]) -> dict[str, Any]:
    """The class members that a module's description gives its proxy class."""
    members: dict[str, Any] = {}
    if flavour == "blocking":  # async code reads and writes with `await module.get(name)` / `set(name, value)`
        members.update({name: AttributeProperty(attr) for name, attr in info.attributes.items()})
    members.update({name: ActionMethod(act, info.name) for name, act in info.actions.items()})
    return members


def proxy_class(base: type[P], info: ModuleInfo, members: dict[str, Any]) -> type[P]:
    """A subclass of `base` named after the module, holding its documented members."""
    taken = sorted(name for name in members if hasattr(base, name))
    if taken:
        log.warning("module %s: %s also named in the client's own API; use get()/set()/invoke() for them",
                    info.name, ", ".join(taken))
    namespace: dict[str, Any] = {name: member for name, member in members.items() if name not in taken}
    namespace.update({"__doc__": info.help_text(), "__slots__": (), "__module__": "bridge_client"})
    return type(info.name, (base,), namespace)
