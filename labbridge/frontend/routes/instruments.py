"""`GET` and `PUT /<module>/<attribute>`: `instrument_command`, the proxy at the heart of the bridge.

A read is forwarded to the experiment process and its JSON reply returned as
it came, without re-encoding.  A write's body must be exactly `{"value": ...}`
and is read with a size limit; the backend validates the value against the
attribute's declaration before anything reaches the instrument.  A bad body
sent to a read-only or unknown attribute gets the 405 or 404 that the target
deserves, and OPTIONS answers 405 with the attribute's own `Allow`.  With an
audit log configured, every write, accepted or refused, is recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from labbridge.core.errors import BridgeError, MalformedRequest, PayloadTooLarge, ReadOnlyAttribute
from labbridge.frontend.responses import error_response, json_bytes, json_response
from labbridge.frontend.state import FrontendState, bridge_of

router = APIRouter()

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
    bridge.check_network(request)
    authorization = request.headers.get("authorization")
    if request.method == "GET":
        bridge.auth.identify(authorization, write=False)
        return json_bytes(await bridge.backend.request("get", module, attribute))
    if bridge.audit is None:
        bridge.auth.identify(authorization, write=True)
        value = await _put_value(bridge, request, module, attribute)
        return json_bytes(await bridge.backend.request("put", module, attribute, value))
    return await _audited_put(bridge, request, module, attribute)


async def attribute_options(module: str, attribute: str, request: Request) -> Response:
    """OPTIONS is not served; its 405 names the methods the attribute has: GET, and PUT when writable."""
    bridge = bridge_of(request)
    bridge.check_network(request)
    bridge.auth.identify(request.headers.get("authorization"), write=False)
    try:
        await _check_writable(bridge, module, attribute)
        allow = "GET, PUT"
    except ReadOnlyAttribute:
        allow = "GET"
    return error_response(405, "method_not_allowed", "Method Not Allowed", {"Allow": allow})


async def _put_value(bridge: FrontendState, request: Request, module: str, attribute: str) -> Any:
    """The value of a PUT; when the body is bad, a missing or read-only target is the error to report."""
    try:
        return await read_value(request, bridge.settings.max_body_bytes)
    except MalformedRequest:
        await _check_writable(bridge, module, attribute)
        raise


async def _check_writable(bridge: FrontendState, module: str, attribute: str) -> None:
    """Raise UnknownModule, UnknownAttribute or ReadOnlyAttribute as a write of this attribute would.
    Nothing runs: the backend refuses a put without a value, after checking its target."""
    try:
        await bridge.backend.request("put", module, attribute)
    except MalformedRequest:
        return
    raise BridgeError(f"the experiment process accepted a put of {module}.{attribute} without a value")


async def _audited_put(bridge: FrontendState, request: Request, module: str, attribute: str) -> Response:
    assert bridge.audit is not None
    identity, requested, before, after, outcome = None, None, None, None, "ok"
    try:
        identity = bridge.auth.identify(request.headers.get("authorization"), write=True)
        requested = await _put_value(bridge, request, module, attribute)
        reply = orjson.loads(await bridge.backend.request("put", module, attribute, requested, audit=True))
        before, after = reply.pop("before", None), reply["value"]
        return json_response(reply)
    except BridgeError as exc:
        outcome = exc.code
        raise
    finally:
        # fsync can take a while on an SD card: wait for it without holding up other requests.
        client = request.client.host if request.client else None
        await asyncio.to_thread(bridge.audit.record, client=client, identity=identity, module=module,
                                attribute=attribute, requested=requested, before=before, after=after, outcome=outcome)


async def read_value(request: Request, limit: int) -> Any:
    """The `value` of a `{"value": ...}` body, read with a size limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f'body must be JSON like {{"value": 42.0}}: {exc}') from None
    if not isinstance(data, dict) or "value" not in data:
        raise MalformedRequest('body must be a JSON object with a "value" key, like {"value": 42.0}')
    if len(data) > 1:
        extra = ", ".join(sorted(k for k in data if k != "value"))
        raise MalformedRequest(f'body has unknown keys: {extra}; only "value" is accepted')
    return data["value"]


router.add_api_route("/{module}/{attribute}", instrument_command, methods=["GET"], summary="Read an attribute")
# The bearer scheme is declared in the schema (openapi.py, when tokens are configured) rather than
# as a dependency: this is the hot path.
router.add_api_route("/{module}/{attribute}", instrument_command, methods=["PUT"], summary="Set an attribute",
                     openapi_extra={"requestBody": PUT_BODY})
router.add_api_route("/{module}/{attribute}", attribute_options, methods=["OPTIONS"], include_in_schema=False)
