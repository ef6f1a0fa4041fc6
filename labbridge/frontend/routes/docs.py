"""`/openapi.json` that documents the lab, and `/docs` and `/redoc` that work offline.

`/openapi.json` is built when it is requested: FastAPI's schema of the routes,
plus one path per module attribute (`/module_a/position`, ...) with its value
type, unit, limits and doc line, taken from the backend's description of its
modules (openapi.py).  A module configured since the frontend started shows up
without a restart; while the backend is down the schema is still valid, only
without the module paths.  Swagger UI and ReDoc load their JavaScript and CSS
from the app itself (the files ship in the fastapi-offline package), never
from a CDN.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import fastapi_offline
import orjson
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response

from labbridge.core.errors import BridgeError
from labbridge.frontend.openapi import action_paths, module_paths
from labbridge.frontend.state import bridge_of

# Swagger UI's and ReDoc's files, served at /docs-static by the app.
ASSETS = Path(fastapi_offline.__file__).parent / "static"
# How long the schema waits for the backend's description before leaving the module paths out.
DESCRIBE_WAIT = 0.5
TITLE = "Instrument bridge: API"

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request) -> Response:
    app = request.app
    if getattr(app.state, "openapi_base", None) is None:  # the routes never change: build their part once
        app.state.openapi_base = get_openapi(title=app.title, version=app.version, description=app.description,
                                             routes=app.routes)
    schema: dict[str, Any] = copy.deepcopy(app.state.openapi_base)
    try:
        async with asyncio.timeout(DESCRIBE_WAIT):
            described = orjson.loads(await bridge_of(request).backend.request("describe"))
    except (BridgeError, TimeoutError):
        schema["info"]["description"] += "\n\nThe experiment process is not reachable: module paths are not listed."
    else:
        schema["paths"].update(module_paths(described["modules"]))
        schema["paths"].update(action_paths(described["modules"]))
    return Response(orjson.dumps(schema), media_type="application/json")


@router.get("/docs")
async def swagger() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=TITLE,
                               swagger_js_url="/docs-static/swagger-ui-bundle.js",
                               swagger_css_url="/docs-static/swagger-ui.css",
                               swagger_favicon_url="/docs-static/favicon.png")


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title=TITLE,
                          redoc_js_url="/docs-static/redoc.standalone.js",
                          redoc_favicon_url="/docs-static/favicon.png", with_google_fonts=False)
