"""`/openapi.json` that documents the lab, and `/docs` and `/redoc` that work offline.

`/openapi.json` is built when it is requested: FastAPI's schema of the routes,
with one path per module attribute (`/module_a/position`, ...) with its value
type, unit, limits and doc line, taken from the backend's description of its
modules, and every status each operation can answer (openapi.py).  A module
configured since the frontend started shows up without a restart; while the
backend is down the schema is still valid, with the templated paths instead.
Swagger UI and ReDoc load their JavaScript and CSS from the app itself (the
files ship in the fastapi-offline package), never from a CDN, and a Content-Security-Policy keeps them
from fetching anything from elsewhere.  With `auth_reads`, `/openapi.json` needs the token like any read;
the `/docs` and `/redoc` pages hold nothing about the lab and fetch it with the
token the dashboard keeps (static/api-docs.js).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import fastapi_offline
import orjson
from fastapi import APIRouter, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, Response

from labbridge.core.errors import BridgeError
from labbridge.frontend.openapi import lab_schema
from labbridge.frontend.page_headers import page
from labbridge.frontend.routes.head import answer_head
from labbridge.frontend.routes.dashboard import STATIC
from labbridge.frontend.access import allow
from labbridge.frontend.state import bridge_of

# Swagger UI's and ReDoc's files, served at /docs-static by the app.
ASSETS = Path(fastapi_offline.__file__).parent / "static"
# How long the schema waits for the backend's description before leaving the module paths out.
DESCRIBE_WAIT = 0.5
# Nothing on the docs pages may come from elsewhere: "offline" holds, and no page tells a CDN (ReDoc's logo on
# cdn.redoc.ly, Swagger UI's validator badge) that the lab exists.  What the two pages need besides their own
# files: inline styles (both), images and workers from data: and blob: URLs (ReDoc's search runs in a worker).
DOCS_POLICY = ("default-src 'self'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; object-src 'none'")

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request) -> Response:
    bridge = bridge_of(request)
    allow(request, "read")  # the lab's description is a read
    app = request.app
    if getattr(app.state, "openapi_base", None) is None:  # the routes never change: build their part once
        app.state.openapi_base = get_openapi(title=app.title, version=app.version, description=app.description,
                                             routes=app.routes)
    modules: dict[str, Any] | None = None
    procedures: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(DESCRIBE_WAIT):
            modules = orjson.loads(await bridge.backend.request("describe"))["modules"]
            procedures = orjson.loads(await bridge.backend.request("procedures", value={}))["procedures"]
    except (BridgeError, TimeoutError):
        pass
    schema = lab_schema(app.state.openapi_base, modules, tokens=bridge.auth.enabled,
                        protect_reads=bridge.auth.protect_reads, procedures=procedures)
    if modules is None:
        schema["info"]["description"] += "\n\nThe experiment process is not reachable: module paths are not listed."
    return Response(orjson.dumps(schema), media_type="application/json")


@router.get("/docs")
async def swagger() -> FileResponse:
    return page(STATIC / "api-docs.html", DOCS_POLICY)


@router.get("/redoc")
async def redoc() -> FileResponse:
    return page(STATIC / "redoc.html", DOCS_POLICY)


answer_head(router)
