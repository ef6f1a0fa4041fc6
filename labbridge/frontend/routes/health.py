"""`GET /health`: frontend up, backend reachable (with its round trip), each module's last contact and queue,
and whether history is being recorded (degraded when it should be and is not)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from labbridge.core.errors import BridgeError
from labbridge.frontend.responses import json_response
from labbridge.frontend.state import bridge_of

router = APIRouter()


@router.get("/health", summary="Frontend up, backend reachable, each module's last instrument contact and queue")
async def health(request: Request) -> Response:
    try:
        rtt = await bridge_of(request).backend.ping_modules()
    except BridgeError as exc:
        return json_response({"status": "down", "frontend": "up",
                              "backend": {"reachable": False, "error": exc.code, "message": exc.detail}}, 503)
    modules, history = rtt.pop("modules"), rtt.pop("history")
    status = "ok" if all(m["last_error"] is None for m in modules.values()) else "degraded"
    if history and history["enabled"] and not history["recording"]:
        status = "degraded"
    return json_response({"status": status, "frontend": "up", "backend": {"reachable": True, **rtt}, "modules": modules,
                          "history": history})
