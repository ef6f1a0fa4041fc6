"""`/invocations`: follow and cancel runs of actions, kept by the experiment process.

`GET /invocations?module=&status=` lists them newest first; `GET /invocations/<id>`
answers one, and with `?wait=<s>` waits until its status changes (a long poll,
for clients without WebSockets; the request's own timeout is stretched by the
wait; past `frontend.max_long_polls` at once it is answered at once, see
stream_caps.py); `DELETE /invocations/<id>` cancels a pending or running one (202, 409
when it has already finished), needing a token exactly as a PUT does.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from labbridge.core.action import MAX_WAIT, Status
from labbridge.frontend.responses import json_bytes
from labbridge.frontend.routes.head import answer_head
from labbridge.frontend.access import allow
from labbridge.frontend.state import bridge_of
from labbridge.frontend.writes import forward_write

router = APIRouter(tags=["invocations"])

InvocationId = Annotated[str, Path(max_length=64, description="The invocation's id, from its `href`.")]


@router.get("/invocations", operation_id="list_invocations",
            summary="Invocations of actions, newest first (finished ones: the last few per module)")
async def list_invocations(request: Request, module: Annotated[str | None, Query(max_length=100)] = None,
                           status: Status | None = None) -> Response:
    bridge = bridge_of(request)
    allow(request, "read")
    return json_bytes(await bridge.backend.request("invocations", value={"module": module, "status": status}))


@router.get("/invocations/{invocation}", operation_id="get_invocation",
            summary="One invocation; with ?wait=, answered when its status changes")
async def get_invocation(invocation: InvocationId, request: Request,
                         wait: Annotated[float, Query(ge=0, le=MAX_WAIT,
                                                      description="Seconds to wait for the status to change.")] = 0,
                         ) -> Response:
    bridge = bridge_of(request)
    allow(request, "read")
    waiting = wait > 0 and bridge.long_polls.take()  # over the cap: answered at once (stream_caps.py)
    value = {"id": invocation, "wait": wait if waiting else 0}
    try:
        return json_bytes(await bridge.backend.request("invocation", value=value,
                                                       timeout=bridge.settings.request_timeout + wait))
    finally:
        if waiting:
            bridge.long_polls.release()


@router.delete("/invocations/{invocation}", status_code=202, operation_id="cancel_invocation",
               summary="Cancel a pending or running invocation",
               openapi_extra={"security": [{"HTTPBearer": []}]})
async def cancel_invocation(invocation: InvocationId, request: Request) -> Response:
    named = {"invocation": invocation}  # in the audit log, as the experiment process records a cancel
    body = await forward_write(bridge_of(request), request, "cancel", None, None, partial(_no_body, named),
                               wrap=lambda _: {"id": invocation}, requested=named)
    return json_bytes(body, 202)


async def _no_body(named: dict[str, str]) -> dict[str, str]:
    """A cancel has no body to read: what it asks for is in its URL."""
    return named


answer_head(router)
