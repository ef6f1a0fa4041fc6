"""BaseModule: what every instrument module is, and the default HTTP driver cycle.

A subclass declares its attributes at class level (see attribute.py) and
BaseModule collects them into `attributes`, the one table requests are routed
through: a name that is not declared there (`ip`, `__class__`, `get`, ...) is an
unknown attribute, never a `getattr` on a request string.

The bridge calls `get`, `put`, `read_attributes` and `read_parameters`; they
validate and then call the driver hooks `read`, `write` and `read_many`.  Those
default to the instrument's own HTTP API (`GET/PUT http://ip:port/<name>` with
`{"value": ...}`, `GET /attributes`), over one keep-alive client per module.  A
module that talks to its hardware another way overrides the three hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar, get_type_hints

import httpx
import orjson

from attribute import AttributeSpec
from config import ModuleSettings
from errors import UNKNOWN_OUTCOME, InstrumentError, InstrumentTimeout, InstrumentUnreachable, ReadOnlyAttribute, UnknownAttribute

log = logging.getLogger(__name__)


class BaseModule:
    """An instrument, seen through its declared attributes."""

    attributes: ClassVar[dict[str, AttributeSpec[Any]]] = {}
    # Builds an ASGI app that imitates the instrument; `simulate: true` serves it.
    simulator: ClassVar[Callable[[dict[str, Any]], Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = {name: value for name, value in vars(cls).items() if isinstance(value, AttributeSpec)}
        hints = get_type_hints(cls) if declared else {}
        table = dict(getattr(super(cls, cls), "attributes", {}))  # inherited declarations, redeclarable
        for name, attribute in declared.items():
            if name not in hints:
                raise TypeError(f"{cls.__name__}.{name} needs a type annotation, e.g. `{name}: float = Attribute(...)`")
            table[name] = attribute.bind(hints[name])
            setattr(cls, name, table[name])
        cls.attributes = table

    def __init__(self, name: str, settings: ModuleSettings) -> None:
        self.name = name
        self.settings = settings
        self.last_values: dict[str, Any] = {}
        # The class's table, with any narrower limits from config.yml applied.
        self.specs: dict[str, AttributeSpec[Any]] = {
            attr: (spec.narrowed(lim.min, lim.max) if (lim := settings.limits.get(attr)) else spec)
            for attr, spec in self.attributes.items()
        }
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def speaks_http(cls) -> bool:
        """True while any driver hook is still the default HTTP one (then ip:port are needed)."""
        return any(getattr(cls, hook) is getattr(BaseModule, hook) for hook in ("read", "write", "read_many"))

    @property
    def address(self) -> str:
        """Where the instrument is, for messages: its HTTP base URL, or "in process"."""
        return f"http://{self.settings.ip}:{self.settings.port}" if self.speaks_http() else "in process"

    async def start(self) -> None:
        """Open the keep-alive HTTP client; a module with its own driver overrides this if it must connect."""
        if self.speaks_http():
            timeout = httpx.Timeout(self.settings.timeout, connect=self.settings.connect_timeout)
            self._client = httpx.AsyncClient(base_url=self.address, timeout=timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- what the bridge calls -------------------------------------------------

    def spec(self, name: str) -> AttributeSpec[Any]:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(self.specs) or "none"
            raise UnknownAttribute(f"module {self.name!r} has no attribute {name!r}; known: {known}") from None

    async def get(self, name: str) -> dict[str, Any]:
        spec = self.spec(name)
        value = spec.coerce_reading(await self.read(name), self.name)
        self.last_values[name] = value
        return {"module": self.name, "attribute": name, "value": value, "unit": spec.unit}

    async def put(self, name: str, value: Any) -> dict[str, Any]:
        spec = self.spec(name)
        if not spec.writable:
            raise ReadOnlyAttribute(f"{self.name}.{name} is read-only")
        checked = spec.validate(value)
        reported = spec.coerce_reading(await self.write(name, checked), self.name)
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
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "doc": (cls.__doc__ or "").strip().split("\n\n")[0],
            "attributes": {n: s.describe() for n, s in self.specs.items()},
        }

    async def _read_declared(self, names: list[str]) -> dict[str, Any]:
        raw = await self.read_many(names)
        values = {}
        for n in names:
            if n not in raw:
                raise InstrumentError(f"instrument of {self.name} did not report {n}")
            values[n] = self.specs[n].coerce_reading(raw[n], self.name)
        self.last_values.update(values)
        return values

    # -- driver hooks: the instrument's HTTP API by default ----------------------

    async def read(self, name: str) -> Any:
        return (await self._request("GET", f"/{name}"))["value"]

    async def write(self, name: str, value: Any) -> Any:
        return (await self._request("PUT", f"/{name}", {"value": value}))["value"]

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return await self._request("GET", "/attributes")

    async def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        if self._client is None:
            raise InstrumentError(f"module {self.name} is not started")
        content = None if body is None else orjson.dumps(body)
        headers = {"content-type": "application/json"} if content else None
        try:
            response = await self._client.request(method, path, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise InstrumentUnreachable(f"instrument of {self.name} at {self.address} is unreachable ({exc or type(exc).__name__})") from None
        except httpx.TimeoutException:
            raise InstrumentTimeout(
                f"instrument of {self.name} did not answer {method} {path} within {self.settings.timeout:g} s"
                + (UNKNOWN_OUTCOME if method == "PUT" else "")
            ) from None
        except httpx.HTTPError as exc:
            raise InstrumentError(f"instrument of {self.name} failed on {method} {path}: {exc or type(exc).__name__}") from None
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        if response.status_code >= 400:
            reason = data.get("error") if isinstance(data, dict) else None
            raise InstrumentError(
                f"instrument of {self.name} refused {method} {path} with HTTP {response.status_code}"
                + (f": {reason}" if reason else "")
            )
        if not isinstance(data, dict) or (path != "/attributes" and "value" not in data):
            raise InstrumentError(f"instrument of {self.name} sent a reply that is not the expected JSON to {method} {path}")
        return data
