"""`/interlocks`: the interlocks of config.yml as they stand, and acknowledging a latched trip.

    GET  /interlocks              {"interlocks": {name: {"kind", "condition", "state", "since", "values", ...}}}
    POST /interlocks/<name>/ack   a latched trip is ok again (409 interlocked while its condition holds)

The experiment process keeps them (experiment/safety/interlocks.py); these
routes forward.  Reading needs `read`; acknowledging needs `operate`, as a
write does, and goes through forward_write, so a refusal is on record and
the experiment process records the acknowledgement with the identity.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from labbridge.frontend.access import allow
from labbridge.frontend.openapi_responses import BACKEND
from labbridge.frontend.responses import json_bytes
from labbridge.frontend.routes.head import answer_head
from labbridge.frontend.state import bridge_of
from labbridge.frontend.writes import forward_write

router = APIRouter(tags=["interlocks"])

InterlockName = Annotated[str, Path(max_length=100, description="The interlock's name in config.yml.")]


@router.get("/interlocks", operation_id="list_interlocks", summary="The interlocks, their conditions and states")
async def list_interlocks(request: Request) -> Response:
    allow(request, "read")
    return json_bytes(await bridge_of(request).backend.request("interlocks", value={}))


@router.post("/interlocks/{name}/ack", operation_id="acknowledge_interlock",
             summary="Acknowledge a latched trip once its condition is clear",
             openapi_extra={"security": [{"HTTPBearer": []}],
                            # no such interlock; its condition still holds; a guard (nothing to acknowledge)
                            "x-statuses": (404, 409, 422, *BACKEND)})
async def acknowledge_interlock(name: InterlockName, request: Request) -> Response:
    body = await forward_write(bridge_of(request), request, "interlock_ack", None, name, _nothing)
    return json_bytes(body)


async def _nothing() -> None:
    """An acknowledgement has no body: what it names is in its URL."""


answer_head(router)
