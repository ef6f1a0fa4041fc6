"""`GET /alarms`: every attribute with alarm limits (config.yml `alarms:`) and its severity now.

Answered by the experiment process, which judges every value it reads
(labbridge/experiment/safety/alarms.py); a read like any other (with
`auth_reads`, it needs a token).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from labbridge.frontend.access import allow
from labbridge.frontend.responses import json_bytes
from labbridge.frontend.routes.head import answer_head
from labbridge.frontend.state import bridge_of

router = APIRouter()

_RESPONSES: dict[int | str, dict[str, object]] = {200: {
    "description": "Each attribute with limits: its severity (ok, minor, major, invalid), the limit crossed, "
                   "the last value judged and since when (Unix time).",
    "content": {"application/json": {"example": {"alarms": [
        {"module": "module_a", "attribute": "temperature", "severity": "minor", "limit": "high", "value": 36.2,
         "since": 1764151234.5}]}}}}}


@router.get("/alarms", operation_id="list_alarms", summary="Alarm severity of every attribute with limits",
            responses=_RESPONSES)
async def alarms(request: Request) -> Response:
    allow(request, "read")
    return json_bytes(await bridge_of(request).backend.request("alarms", value={}))


answer_head(router)
