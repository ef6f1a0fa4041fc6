"""`GET /metrics`: the lab for Prometheus (and through it Grafana), in the Prometheus text format.

What is exported is described in labbridge/frontend/metrics.py.  The backend is
pinged at each scrape, so per-module figures are current; while it is down the
answer is still 200, with `bridge_backend_up 0`, which is what an alert wants.
With `auth_reads`, a scrape needs a token like any read.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from labbridge.core.errors import BridgeError
from labbridge.frontend.routes.head import answer_head
from labbridge.frontend.access import allow
from labbridge.frontend.state import bridge_of

# Not in the OpenAPI schema: it is for Prometheus, not for API clients.
router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    bridge = bridge_of(request)
    allow(request, "read")
    ping: dict[str, Any] | None
    alarms: dict[str, Any] | None
    try:
        ping = await bridge.backend.ping_modules()
        alarms = orjson.loads(await bridge.backend.request("alarms", value={}))
    except BridgeError:
        ping = alarms = None
    return Response(bridge.metrics.render(ping, alarms), media_type=CONTENT_TYPE_LATEST)


answer_head(router)
