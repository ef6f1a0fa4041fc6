"""OpenAPI that documents the lab, and /docs and /redoc that work offline.

`/openapi.json` is built when it is requested: FastAPI's schema of the routes,
plus one path per module attribute (`/module_a/position`, ...) with its value
type, unit, limits and doc line, taken from the backend's description of its
modules.  A module configured since the frontend started shows up without a
restart; while the backend is down the schema is still valid, only without
the module paths.  Swagger UI and ReDoc load their JavaScript and CSS from the
app itself (the files ship in the fastapi-offline package), never from a CDN.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import fastapi_offline
import orjson
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from attribute import limits_text
from backend_client import BackendClient
from errors import BridgeError

ASSETS = Path(fastapi_offline.__file__).parent / "static"
_JSON_TYPES = {"float": "number", "int": "integer", "str": "string", "bool": "boolean"}
# How long the schema waits for the backend's description before leaving the module paths out.
DESCRIBE_WAIT = 0.5


def add_api_docs(app: FastAPI, backend: BackendClient) -> None:
    """Serve /openapi.json (with the modules' attributes), /docs and /redoc, all offline."""
    app.mount("/docs-static", StaticFiles(directory=ASSETS), name="docs-static")
    base: dict[str, Any] = {}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        if not base:
            base.update(get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes))
        schema = copy.deepcopy(base)
        try:
            async with asyncio.timeout(DESCRIBE_WAIT):
                described = orjson.loads(await backend.request("describe"))
        except (BridgeError, TimeoutError):
            schema["info"]["description"] += "\n\nThe experiment process is not reachable: module paths are not listed."
        else:
            schema["paths"].update(module_paths(described["modules"]))
        return Response(orjson.dumps(schema), media_type="application/json")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title}: API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title}: API",
                              redoc_js_url="/docs-static/redoc.standalone.js",
                              redoc_favicon_url="/docs-static/favicon.png", with_google_fonts=False)


def value_schema(info: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of an attribute's value, from its description."""
    kind = info["type"]
    schema: dict[str, Any] = {"type": _JSON_TYPES.get(kind, "array" if kind.startswith("list[") else "string")}
    if kind.startswith("list["):
        schema["items"] = {"type": _JSON_TYPES.get(kind[5:-1], "string")}
    if "min" in info:
        schema["minimum"] = info["min"]
    if "max" in info:
        schema["maximum"] = info["max"]
    if "choices" in info:
        schema["enum"] = info["choices"]
    return schema


def module_paths(modules: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI path per module attribute, GET always and PUT when writable."""
    paths: dict[str, Any] = {}
    for module, description in modules.items():
        for name, info in description["attributes"].items():
            unit = f" [{info['unit']}]" if info.get("unit") else ""
            limits = f" Limits: {limits_text(info.get('min'), info.get('max'), unit)}." if "min" in info or "max" in info else ""
            text = f"{info['doc']} Type: {info['type']}{unit}.{limits}"
            reply = {"type": "object", "properties": {
                "module": {"type": "string"}, "attribute": {"type": "string"},
                "value": value_schema(info), "unit": {"type": ["string", "null"]}}}
            operations: dict[str, Any] = {"get": {
                "tags": [module], "summary": f"Read {module}.{name}{unit}", "description": text,
                "operationId": f"read_{module}_{name}",
                "responses": {"200": {"description": "the value", "content": {"application/json": {"schema": reply}}}},
            }}
            if info["writable"]:
                body = {"type": "object", "required": ["value"], "additionalProperties": False,
                        "properties": {"value": value_schema(info)}}
                operations["put"] = {
                    "tags": [module], "summary": f"Set {module}.{name}{unit}", "description": text,
                    "operationId": f"set_{module}_{name}", "security": [{"HTTPBearer": []}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                    "responses": {"200": {"description": "the value the instrument reports after the write",
                                          "content": {"application/json": {"schema": reply}}}},
                }
            paths[f"/{module}/{name}"] = operations
    return paths
