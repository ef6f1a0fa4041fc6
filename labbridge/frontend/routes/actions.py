"""`POST /<module>/<action>`: start an action; the answer is its invocation (201, `Location: /invocations/<id>`).

The body is a JSON object of arguments (`{}` or no body when there are none),
read with the same size limit as a PUT's.  A token is needed exactly as for a
PUT, and as for a PUT (writes.py) what the frontend refuses itself is
recorded here, while the experiment process validates the arguments, runs the
action and records the rest.  `GET /<module>/<action>` (the action's description)
is answered by instruments.py's route like any read.  Each action is
documented in OpenAPI by its own operation (openapi.py), so this generic
route is left out of the schema.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from labbridge.core.errors import MalformedRequest, NotAnAction
from labbridge.frontend.responses import json_bytes
from labbridge.frontend.routes.instruments import allowed_methods, not_a_module, read_body
from labbridge.frontend.state import bridge_of
from labbridge.frontend.writes import forward_write

router = APIRouter(include_in_schema=False)


@router.post("/{module}/{action}")
async def invoke_action(module: str, action: str, request: Request) -> Response:
    refused = not_a_module(request, module)
    if refused is not None:
        return refused
    bridge = bridge_of(request)
    try:
        body = await forward_write(bridge, request, "invoke", module, action,
                                   lambda: read_arguments(request, bridge.settings.max_body_bytes),
                                   wrap=lambda arguments: {"arguments": arguments})
    except NotAnAction as exc:  # an attribute: its 405 names the methods it does take
        raise NotAnAction(exc.detail, ", ".join(await allowed_methods(bridge, module, action))) from None
    href = orjson.loads(body)["href"]
    return json_bytes(body, 201, {"Location": href})


async def read_arguments(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object of an action's arguments; an empty body is no arguments."""
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    try:
        arguments = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f'body must be a JSON object of arguments, like {{"to": 80}}: {exc}') from None
    if not isinstance(arguments, dict):
        raise MalformedRequest('body must be a JSON object of arguments, like {"to": 80}')
    return arguments
