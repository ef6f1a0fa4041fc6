"""The web frontend: FastAPI forwarding HTTP requests to the experiment process.

    uvicorn main:app --reload       # development
    python main.py                  # listens where config.yml's `frontend:` says

`GET /<module>/<attribute>` reads a value and `PUT /<module>/<attribute>` with
`{"value": ...}` sets one; `instrument_command` forwards both over ZeroMQ
(backend_client.py) and returns the backend's JSON as it came.  The frontend
owns no instrument and needs no module code: it starts fine while the backend
is down (requests get 503 until it is up).  Writes need a bearer token when
tokens are configured (auth.py) and are recorded in the audit log (audit.py).
Every error is rendered by one handler as `{"error": code, "message": text}`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from audit import AuditLog
from auth import TokenAuth, may_serve
from backend_client import BackendClient
from config import Config, ConfigError, FrontendSettings, config_path, load_config, resolve
from api_docs import add_api_docs
from dashboard import add_dashboard, dashboard_page, wants_html
from errors import BridgeError, MalformedRequest, OpenNetworkRefused, PayloadTooLarge, UnknownModule
from live import LiveFeed

log = logging.getLogger("uvicorn.error")

PUT_BODY = {
    "required": True,
    "content": {"application/json": {
        "schema": {"type": "object", "properties": {"value": {"description": "the new value"}}, "required": ["value"]},
        "example": {"value": 42.0},
    }},
}
# Documents the scheme in OpenAPI; the check itself is TokenAuth's, so it also covers reads when configured.
bearer = HTTPBearer(auto_error=False, description="Needed for PUT when tokens are configured (and for GET with auth_reads).")


def create_app(config: Config, config_file: Path) -> FastAPI:
    """The frontend app, talking to the backend named in `config`."""
    settings = config.frontend
    backend = BackendClient.from_config(config, config_file)
    auth = TokenAuth.from_settings(settings, config_file)
    audit = AuditLog(resolve(config_file, settings.audit_log)) if settings.audit_log else None
    feed = LiveFeed(config.experiment_socket.events_connect_endpoint, backend.curve)
    network_ok: dict[str, bool] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        feed.start()  # from the start, so the latest values are there for the first browser
        yield
        feed.close()
        backend.close()
        if audit is not None:
            audit.close()

    app = FastAPI(title="Instrument bridge", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None,
                  description="Read and set lab instruments over HTTP. `GET /<module>/<attribute>` reads, "
                              '`PUT /<module>/<attribute>` with `{"value": ...}` writes.')
    app.state.backend, app.state.auth, app.state.settings = backend, auth, settings
    add_api_docs(app, backend)
    add_dashboard(app, feed, auth)

    def check_network(request: Request) -> None:
        # Requests that reached us on a non-loopback address, with no token configured,
        # are refused unless config.yml says the open network is fine.
        host = (request.scope.get("server") or ("127.0.0.1", 0))[0]
        if host not in network_ok:
            network_ok[host] = may_serve(host, auth, settings.allow_open_network)
        if not network_ok[host]:
            raise OpenNetworkRefused(f"no token is configured, so only loopback clients are served (this came in on {host}); "
                                     "configure frontend.token_file or set frontend.allow_open_network")

    async def described(request: Request) -> dict[str, Any]:
        check_network(request)
        auth.identify(request.headers.get("authorization"), write=False)
        modules: dict[str, Any] = orjson.loads(await backend.request("describe"))["modules"]
        base = str(request.base_url).rstrip("/")
        for name, module in modules.items():
            module["links"] = {"self": f"{base}/{name}", "attributes": f"{base}/{name}/attributes",
                               "parameters": f"{base}/{name}/parameters"}
            for attr, info in module["attributes"].items():
                info["url"] = f"{base}/{name}/{attr}"
        return modules

    @app.get("/", summary="The dashboard for browsers; the modules and their attributes as JSON otherwise")
    async def index(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Response:
        if wants_html(request):
            return dashboard_page()
        return _json({"modules": await described(request)})

    @app.get("/modules", summary="Every module with its description")
    async def modules(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Response:
        return _json({"modules": await described(request)})

    @app.get("/health", summary="Frontend up, backend reachable, each module's last instrument contact and queue")
    async def health() -> Response:
        try:
            rtt = await backend.ping_modules()
        except BridgeError as exc:
            return _json({"status": "down", "frontend": "up",
                          "backend": {"reachable": False, "error": exc.code, "message": exc.detail}}, 503)
        modules = rtt.pop("modules")
        status = "ok" if all(m["last_error"] is None for m in modules.values()) else "degraded"
        return _json({"status": status, "frontend": "up", "backend": {"reachable": True, **rtt}, "modules": modules})

    async def instrument_command(module: str, attribute: str, request: Request) -> Response:
        """Read (GET) or set (PUT) one attribute of one module, via the experiment process."""
        check_network(request)
        if request.method == "GET":
            auth.identify(request.headers.get("authorization"), write=False)
            return _json_bytes(await backend.request("get", module, attribute))
        if audit is None:
            auth.identify(request.headers.get("authorization"), write=True)
            return _json_bytes(await backend.request("put", module, attribute, await _read_value(request, settings.max_body_bytes)))
        return await _audited_put(request, module, attribute)

    async def _audited_put(request: Request, module: str, attribute: str) -> Response:
        assert audit is not None
        identity, requested, before, after, outcome = None, None, None, None, "ok"
        try:
            identity = auth.identify(request.headers.get("authorization"), write=True)
            requested = await _read_value(request, settings.max_body_bytes)
            reply = orjson.loads(await backend.request("put", module, attribute, requested, audit=True))
            before, after = reply.pop("before", None), reply["value"]
            return _json(reply)
        except BridgeError as exc:
            outcome = exc.code
            raise
        finally:
            # fsync can take a while on an SD card: wait for it without holding up other requests.
            client = request.client.host if request.client else None
            await asyncio.to_thread(audit.record, client=client, identity=identity, module=module, attribute=attribute,
                                    requested=requested, before=before, after=after, outcome=outcome)

    @app.get("/{module}", summary="A module's description: class, doc, attributes with type, unit, limits")
    async def module_description(module: str, request: Request,
                                 credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Response:
        found = (await described(request)).get(module)
        if found is None:
            raise UnknownModule(f"no module named {module!r}")
        return _json({"module": module, **found})

    app.add_api_route("/{module}/{attribute}", instrument_command, methods=["GET"], summary="Read an attribute")
    # The bearer scheme is declared in the schema rather than as a dependency: this is the hot path.
    app.add_api_route("/{module}/{attribute}", instrument_command, methods=["PUT"], summary="Set an attribute",
                      openapi_extra={"requestBody": PUT_BODY, "security": [{"HTTPBearer": []}]})
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


def _app_or_exit() -> FastAPI:
    try:
        return create_app(load_config(), config_path())
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        raise SystemExit(2) from None


app = _app_or_exit()


def serve() -> int:
    """`python main.py`: run uvicorn where config.yml says, refusing an unprotected open network."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings: FrontendSettings = app.state.settings  # the config `app` was made from
    if not may_serve(settings.host, app.state.auth, settings.allow_open_network):
        log.error("refusing to listen on %s without a token: configure frontend.token_file (or $BRIDGE_TOKEN), "
                  "or set frontend.allow_open_network: true", settings.host)
        return 2
    # Live-value connections are closed by uvicorn at shutdown; plain requests get 10 s to finish.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    sys.exit(serve())
