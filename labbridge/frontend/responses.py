"""JSON responses, and the one place where every error becomes `{"error": code, "message": text}`.

Each BridgeError carries its HTTP status and code (core/errors.py); the
handlers here render those, FastAPI's own 404/405/422, and anything unexpected
(a 500 whose details stay in the log, never in the answer).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from labbridge.core.errors import BridgeError, MalformedRequest

log = logging.getLogger("uvicorn.error")
# Codes of the errors that routing itself raises (any other HTTP error is `http_error`).
HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json_bytes(orjson.dumps(data), status, headers)


def json_bytes(body: bytes | memoryview, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response from bytes that already are JSON (a backend reply, passed on without re-encoding)."""
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": code, "message": message}, status, headers)


async def bridge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BridgeError)
    return error_response(exc.status, exc.code, exc.detail, exc.headers())


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_ERROR_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":  # routing's own words: say which path, and what is there
        path = request.url.path if len(request.url.path) <= 200 else request.url.path[:200] + "..."
        message = (f"no such path: {path} (the bridge serves /<module>/<attribute>, /<module>/<action> and "
                   "/invocations/<id>; GET /modules lists the modules)")
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return error_response(422, MalformedRequest.code, problems)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, BridgeError.code, "internal error in the frontend; see its log")


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BridgeError, bridge_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
