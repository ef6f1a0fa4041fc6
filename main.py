"""The web frontend: FastAPI forwarding HTTP requests to the experiment process.

    uvicorn main:app --reload

`GET /<module>/<attribute>` reads a value and `PUT /<module>/<attribute>` with
`{"value": ...}` sets one; `instrument_command` forwards both over ZeroMQ
(backend_client.py) and returns the backend's JSON as it came.  The frontend
owns no instrument and needs no module code: it starts fine while the backend
is down (requests get 503 until it is up).  Every error, its own or the
backend's, is rendered by one handler as `{"error": code, "message": text}`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend_client import BackendClient
from config import Config, ConfigError, load_config
from errors import BridgeError, MalformedRequest, PayloadTooLarge

log = logging.getLogger("uvicorn.error")

PUT_BODY = {
    "required": True,
    "content": {"application/json": {
        "schema": {"type": "object", "properties": {"value": {"description": "the new value"}}, "required": ["value"]},
        "example": {"value": 42.0},
    }},
}


def create_app(config: Config) -> FastAPI:
    """The frontend app, talking to the backend named in `config`."""
    settings = config.frontend
    backend = BackendClient(config.experiment_socket.connect_endpoint,
                            timeout=settings.request_timeout, connect_timeout=settings.connect_timeout)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        backend.close()

    app = FastAPI(title="Instrument bridge", lifespan=lifespan,
                  description="Read and set lab instruments over HTTP. `GET /<module>/<attribute>` reads, "
                              '`PUT /<module>/<attribute>` with `{"value": ...}` writes.')
    app.state.backend = backend

    @app.get("/", summary="List the modules and their attributes")
    async def index(request: Request) -> Response:
        described = orjson.loads(await backend.request("describe"))
        base = str(request.base_url).rstrip("/")
        for name, module in described["modules"].items():
            module["links"] = {
                "attributes": f"{base}/{name}/attributes",
                "parameters": f"{base}/{name}/parameters",
            }
            for attr, info in module["attributes"].items():
                info["url"] = f"{base}/{name}/{attr}"
        return _json(described)

    async def instrument_command(module: str, attribute: str, request: Request) -> Response:
        """Read (GET) or set (PUT) one attribute of one module, via the experiment process."""
        if request.method == "PUT":
            value = await _read_value(request, settings.max_body_bytes)
            return _json_bytes(await backend.request("put", module, attribute, value))
        return _json_bytes(await backend.request("get", module, attribute))

    app.add_api_route("/{module}/{attribute}", instrument_command, methods=["GET"],
                      summary="Read an attribute")
    app.add_api_route("/{module}/{attribute}", instrument_command, methods=["PUT"],
                      summary="Set an attribute", openapi_extra={"requestBody": PUT_BODY})

    _add_error_handlers(app)
    return app


async def _read_value(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f'body must be JSON like {{"value": 42.0}}: {exc}') from None
    if not isinstance(data, dict) or "value" not in data:
        raise MalformedRequest('body must be a JSON object with a "value" key, like {"value": 42.0}')
    if len(data) > 1:
        extra = ", ".join(sorted(k for k in data if k != "value"))
        raise MalformedRequest(f'body has unknown keys: {extra}; only "value" is accepted')
    return data["value"]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return _json_bytes(orjson.dumps(data), status, headers)


def _json_bytes(body: bytes | memoryview, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": code, "message": message}, status, headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BridgeError)
    async def bridge_error(request: Request, exc: BridgeError) -> Response:
        return _error(exc.status, exc.code, exc.detail, exc.headers())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _error(422, MalformedRequest.code, problems)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, BridgeError.code, "internal error in the frontend; see its log")


def _load_or_exit() -> Config:
    try:
        return load_config()
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        raise SystemExit(2) from None


app = create_app(_load_or_exit())
