"""`GET` and `PUT /<module>/<attribute>`: `instrument_command`, the proxy at the heart of the bridge.

A read is forwarded to the experiment process and its JSON reply returned as
it came, without re-encoding; an array asked for with `Accept:
application/x-npy` comes back as a .npy file (npy.py).  A write's body must be exactly `{"value": ...}`
and is read with a size limit; the backend validates the value against the
attribute's declaration before anything reaches the instrument.  A bad body
sent to a read-only or unknown attribute gets the 405 or 404 that the target
deserves, and any other method a 405 naming the attribute's own `Allow`.  With
an audit log configured, a write the frontend refuses itself (token, body, a
client gone mid-body) is recorded here; the experiment process records the rest.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from fastapi.responses import Response
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match

from labbridge.core.attribute import RESERVED_NAMES
from labbridge.core.config import RESERVED_MODULE_NAMES
from labbridge.core.errors import (
    BridgeError,
    ClientDisconnected,
    MalformedRequest,
    PayloadTooLarge,
    ReadOnlyAttribute,
    UnknownAttribute,
    UnknownModule,
)
from labbridge.core.protocol import Format
from labbridge.core.values import shown
from labbridge.frontend.access import allow
from labbridge.frontend.auth import Caller
from labbridge.frontend.large_answers import PartsResponse, counted
from labbridge.frontend.npy import NPY_MEDIA_TYPE, formats_accepted
from labbridge.frontend.responses import bridge_error, error_response, http_error, json_bytes
from labbridge.frontend.state import FrontendState, bridge_of
from labbridge.frontend.writes import forward_write

router = APIRouter()
JSON = "application/json"

PUT_BODY = {
    "required": True,
    "content": {"application/json": {
        "schema": {"type": "object", "properties": {"value": {"description": "the new value"}}, "required": ["value"]},
        "example": {"value": 42.0},
    }},
}


async def instrument_command(module: str, attribute: str, request: Request) -> Response:
    """Read (GET) or set (PUT) one attribute of one module, via the experiment process."""
    bridge = bridge_of(request)
    if request.method == "GET":
        caller = allow(request, "read")
        return await _get(bridge, module, attribute, formats_accepted(request.headers.get("accept")),
                          answer_client(request, caller))
    return await _put(bridge, request, module, attribute)


async def _get(bridge: FrontendState, module: str, attribute: str, accept: tuple[Format, ...],
               client: str) -> Response:
    """The attribute's value; a large one counted in the frontend's budget of answers held (large_answers.py)."""
    reply, held = await counted(bridge.answers, client, (module, attribute, accept),
                                partial(bridge.backend.read, module, attribute, accept))
    if reply.format == "npy":
        return PartsResponse(reply.parts, NPY_MEDIA_TYPE, held)
    return PartsResponse(reply.parts, JSON, held) if held else json_bytes(reply.result())


def answer_client(request: Request, caller: Caller | None) -> str:
    """Who a read's large answers count against: the token's identity, else the address it comes from."""
    if caller is not None:
        return f"token {caller.identity}"
    return request.client.host if request.client is not None else ""


async def _put(bridge: FrontendState, request: Request, module: str, attribute: str) -> Response:
    refused = not_a_module(request, module)
    if refused is not None:
        return refused
    value = partial(_put_value, bridge, request, module, attribute)
    return json_bytes(await forward_write(bridge, request, "put", module, attribute, value))


async def _put_value(bridge: FrontendState, request: Request, module: str, attribute: str) -> Any:
    try:
        return await read_value(request, bridge.settings.max_body_bytes)
    except MalformedRequest:
        await _check_writable(bridge, module, attribute)  # a missing or read-only target is the error to report
        raise


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 with the Allow header of the attribute asked for: `GET, PUT` when it is writable, `GET` when not.

    Registered for status 405 by the app: the router's own answer would name the
    methods of the first route that matched the path (only GET)."""
    # The first route whose path matched named the parameters: actions.py's POST route, or the attribute's.
    params = request.path_params
    module, attribute = params.get("module"), params.get("attribute", params.get("action"))
    if module is None or attribute is None or request.url.path.count("/") != 2:  # not /<module>/<attribute>
        allowed = methods_of_path(request)  # every route of this path, not only the first that matched
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}; "
                              f"use {' or '.join(allowed)}", {"Allow": ", ".join(allowed)})
    bridge = bridge_of(request)
    try:
        allow(request, "read")  # writability is a detail of the lab
        allowed = await allowed_methods(bridge, module, attribute)
    except BridgeError as error:
        return await bridge_error(request, error)
    return error_response(405, "method_not_allowed", f"{request.method} is not allowed on /{module}/{attribute}; "
                          f"use {' or '.join(allowed)}", {"Allow": ", ".join(allowed)})


def not_a_module(request: Request, module: str) -> Response | None:
    """The 405 of a write to a path of the bridge's own (`/runs/queue`, `/invocations/<id>`) that only the
    templated `/<module>/<attribute>` route took; None for a module's path."""
    if module not in RESERVED_MODULE_NAMES:
        return None
    allowed = methods_of_path(request)
    return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}; "
                          f"use {' or '.join(allowed)}", {"Allow": ", ".join(allowed)})


def methods_of_path(request: Request) -> list[str]:
    """The methods of every route whose path matches the request's (Starlette names only the first's)."""
    matching = [route for route in flat_routes(request.app.router.routes)
                if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE]
    # `/invocations/{invocation}` rather than `/{module}/{attribute}`: the path with the fewest parameters.
    fewest = min((route.path.count("{") for route in matching), default=0)
    methods = {method for route in matching if route.path.count("{") == fewest for method in route.methods or ()}
    return sorted(methods - {"HEAD"})


def flat_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes of the app's routers, flattened (FastAPI wraps each included router in one entry)."""
    flat: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat.extend(flat_routes(included.routes) if included is not None else [route])
    return flat


async def _check_writable(bridge: FrontendState, module: str, attribute: str) -> None:
    """Raise UnknownModule, UnknownAttribute or ReadOnlyAttribute as a write of this attribute would."""
    if "PUT" not in await allowed_methods(bridge, module, attribute):
        raise ReadOnlyAttribute(f"{module}.{attribute} is read-only")


async def allowed_methods(bridge: FrontendState, module: str, attribute: str) -> list[str]:
    """The methods `/<module>/<attribute>` takes: GET, and PUT when the attribute is writable."""
    try:
        modules = orjson.loads(await bridge.backend.request("describe"))["modules"]
    except BridgeError:
        return ["GET", "PUT"]  # the experiment process cannot say: the methods this path has at all
    if module not in modules:
        raise UnknownModule(f"no module named {module!r}")
    if attribute in RESERVED_NAMES:
        return ["GET"]
    if attribute in modules[module].get("actions", {}):
        return ["GET", "POST"]
    found = modules[module]["attributes"].get(attribute)
    if found is None:
        raise UnknownAttribute(f"module {module!r} has no attribute {attribute!r}")
    return ["GET", "PUT"] if found["writable"] else ["GET"]


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it is over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
    except ClientDisconnect:  # gone, or closed by the frontend for taking too long (server_limits.py)
        raise ClientDisconnected(f"the client went away after {len(body)} bytes of its body; nothing was sent") from None
    return bytes(body)


async def read_value(request: Request, limit: int) -> Any:
    """The `value` of a `{"value": ...}` body, read with a size limit."""
    body = await read_body(request, limit)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f'body must be JSON like {{"value": 42.0}}: {exc}') from None
    if not isinstance(data, dict) or "value" not in data:
        raise MalformedRequest('body must be a JSON object with a "value" key, like {"value": 42.0}')
    if len(data) > 1:
        # Named as a refused action parameter is, cut short: a body of a megabyte of keys is not echoed back.
        extra = next(k for k in data if k != "value")
        more = f" (and {len(data) - 2} more)" if len(data) > 2 else ""
        raise MalformedRequest(f'body has unknown key {shown(extra)}{more}; only "value" is accepted')
    return data["value"]


router.add_api_route("/{module}/{attribute}", instrument_command, methods=["GET"], summary="Read an attribute")
# The bearer scheme is declared in the schema (openapi.py, when tokens are configured) rather than
# as a dependency: this is the hot path.
router.add_api_route("/{module}/{attribute}", instrument_command, methods=["PUT"], summary="Set an attribute",
                     openapi_extra={"requestBody": PUT_BODY})
