"""`GET` and `PUT /<module>/<attribute>`: `instrument_command`, the proxy at the heart of the bridge.

A read is forwarded to the experiment process and its JSON reply returned as
it came, without re-encoding.  A write's body must be exactly `{"value": ...}`
and is read with a size limit; the backend validates the value against the
attribute's declaration before anything reaches the instrument.  With an audit
log configured, every write, accepted or refused, is recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from labbridge.core.errors import BridgeError, MalformedRequest, PayloadTooLarge
from labbridge.frontend.responses import json_bytes, json_response
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
        value = await read_value(request, bridge.settings.max_body_bytes)
        return json_bytes(await bridge.backend.request("put", module, attribute, value))
    return await _audited_put(bridge, request, module, attribute)


async def _audited_put(bridge: FrontendState, request: Request, module: str, attribute: str) -> Response:
    assert bridge.audit is not None
    identity, requested, before, after, outcome = None, None, None, None, "ok"
    try:
        identity = bridge.auth.identify(request.headers.get("authorization"), write=True)
        requested = await read_value(request, bridge.settings.max_body_bytes)
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


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it is over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
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
        extra = ", ".join(sorted(k for k in data if k != "value"))
        raise MalformedRequest(f'body has unknown keys: {extra}; only "value" is accepted')
    return data["value"]


router.add_api_route("/{module}/{attribute}", instrument_command, methods=["GET"], summary="Read an attribute")
# The bearer scheme is declared in the schema rather than as a dependency: this is the hot path.
router.add_api_route("/{module}/{attribute}", instrument_command, methods=["PUT"], summary="Set an attribute",
                     openapi_extra={"requestBody": PUT_BODY, "security": [{"HTTPBearer": []}]})
