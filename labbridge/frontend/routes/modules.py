"""`GET /`, `/modules` and `/<module>`: what the lab holds, from the modules' own declarations.

The experiment process describes its modules (class, doc, attributes with type,
unit, limits); these routes add links for browsers and clients to follow.
A browser asking for `/` gets the dashboard instead.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from labbridge.core.errors import UnknownModule
from labbridge.frontend.routes.dashboard import dashboard_page, wants_html
from labbridge.frontend.responses import json_response
from labbridge.frontend.routes.head import answer_head
from labbridge.frontend.access import allow
from labbridge.frontend.state import bridge_of

router = APIRouter()


async def described(request: Request) -> dict[str, Any]:
    """Every module's description from the backend, with links built from this request's base URL."""
    bridge = bridge_of(request)
    allow(request, "read")
    modules: dict[str, Any] = orjson.loads(await bridge.backend.request("describe"))["modules"]
    base = str(request.base_url).rstrip("/")
    for name, module in modules.items():
        module["links"] = {"self": f"{base}/{name}", "attributes": f"{base}/{name}/attributes",
                           "parameters": f"{base}/{name}/parameters"}
        for attr, info in module["attributes"].items():
            info["url"] = f"{base}/{name}/{attr}"
        for action, info in module.get("actions", {}).items():
            info["url"] = f"{base}/{name}/{action}"
    return modules


@router.get("/", summary="The dashboard for browsers; the modules and their attributes as JSON otherwise")
async def index(request: Request) -> Response:
    if wants_html(request):
        return dashboard_page()
    return json_response({"modules": await described(request)})


@router.get("/modules", summary="Every module with its description")
async def modules(request: Request) -> Response:
    return json_response({"modules": await described(request)})


async def module_description(module: str, request: Request) -> Response:
    """Registered last by the app: `/{module}` would otherwise shadow `/health` and `/openapi.json`."""
    found = (await described(request)).get(module)
    if found is None:
        raise UnknownModule(f"no module named {module!r}")
    return json_response({"module": module, **found})


module_router = APIRouter()
module_router.add_api_route("/{module}", module_description, methods=["GET"],
                            summary="A module's description: class, doc, attributes with type, unit, limits")


answer_head(router)
