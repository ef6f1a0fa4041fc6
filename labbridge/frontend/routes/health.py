"""`GET /health`: frontend up, backend reachable (with its round trip), each module's last contact and queue,
and whether history is being recorded (degraded when it should be and is not); in a lab (`experiments:`), each
experiment process up or down, since when (degraded while one is down).

Anyone gets the status (200 "ok"/"degraded", 503 "down"), so supervisors and
probes need no token; with `auth_reads` the details need one, like any read.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from labbridge.core.errors import BridgeError
from labbridge.frontend.responses import json_response
from labbridge.frontend.routes.head import answer_head
from labbridge.frontend.access import allow
from labbridge.frontend.state import bridge_of

router = APIRouter()


@router.get("/health", summary="Frontend up, backend reachable, each module's last instrument contact and queue")
async def health(request: Request) -> Response:
    bridge = bridge_of(request)
    try:
        allow(request, "read")
        details = True
    except BridgeError:  # reads need a token: a probe still gets the status, nothing about the lab
        details = False
    lab = {"experiments": bridge.backend.experiments()} if bridge.backend.is_lab else {}  # each PC up or down
    try:
        rtt = await bridge.backend.ping_modules()
    except BridgeError as exc:
        down = {"frontend": "up", "backend": {"reachable": False, "error": exc.code, "message": exc.detail}, **lab}
        return json_response({"status": "down", **(down if details else {})}, 503)
    modules, history = rtt.pop("modules"), rtt.pop("history")
    rtt.pop("experiments", None)
    status = "ok" if all(m["last_error"] is None for m in modules.values()) else "degraded"
    if history and history["enabled"] and not history["recording"]:
        status = "degraded"
    if not all(state["up"] for state in lab.get("experiments", {}).values()):
        status = "degraded"  # one PC of the lab down: the others still serve
    if not details:
        return json_response({"status": status})
    return json_response({"status": status, "frontend": "up", "backend": {"reachable": True, **rtt}, "modules": modules,
                          "history": history, **lab})


answer_head(router)
