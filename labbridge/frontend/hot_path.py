"""HotPath: `GET` and `PUT /<module>/<attribute>` answered in plain ASGI, in front of FastAPI's machinery.

These two requests are nearly all of the bridge's traffic, and FastAPI's
machinery around an endpoint (its own middleware, route matching, dependency
solving) cost more CPU than everything else on the way (docs/explanation/performance.md).
So `BridgeApp`, the frontend's FastAPI app, puts the bridge's own pure-ASGI
layers first: RequestMetrics (every request is timed), HostGuard (every
request's Host and Origin are checked), then HotPath, and only then FastAPI's
middleware stack and router, which serve every other request.

HotPath recognises the two requests and calls the very endpoint FastAPI would,
`instrument_command`, with the app's own handlers for its errors: the answer,
its headers and its errors are the same by construction.  It also leaves in
the scope what the router would (`route`, `path_params`), so RequestMetrics
labels the request with the same route template and module.  What it takes is
exactly what FastAPI's router would hand to `instrument_command`: a path that
a route with a literal segment could match (`/static/...`, `/invocations/<id>`)
goes on to the router (tests/test_hot_path.py checks this against the router
for every route).  The routes stay declared on FastAPI too, so `/openapi.json`
is unchanged.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Mount, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from labbridge.core.errors import BridgeError
from labbridge.core.hosts import AllowedHosts, HostGuard
from labbridge.frontend.request_metrics import RequestMetrics
from labbridge.frontend.responses import bridge_error, unexpected_error
from labbridge.frontend.routes.instruments import flat_routes, instrument_command
from labbridge.frontend.state import FrontendState

METHODS = ("GET", "PUT")
# A path no literal route segment can be: any route that matches it is a templated one.
_PROBE = "/\x00module/\x00attribute"


class BridgeApp(FastAPI):
    """The frontend's FastAPI app, with the bridge's own ASGI layers in front of FastAPI's middleware stack."""

    allowed_hosts = AllowedHosts()  # create_app sets the configured ones

    def build_middleware_stack(self) -> ASGIApp:
        bridge: FrontendState = self.state.bridge
        fastapi_stack = super().build_middleware_stack()
        return RequestMetrics(HostGuard(HotPath(fastapi_stack, self.router), self.allowed_hosts), bridge.metrics)


class HotPath:
    """ASGI middleware that answers `GET`/`PUT /<module>/<attribute>` with `instrument_command` directly."""

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self._router = router
        self._routes: dict[str, BaseRoute] | None = None  # method -> its route; found on the first request
        # method -> first and second path segments that routes taking that method spell out literally
        self._literal: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path") and self._claims(scope):
            await self._answer(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _claims(self, scope: Scope) -> bool:
        """Whether FastAPI's router would give this request to `instrument_command`; if so, route it as it would."""
        routes = self._routes if self._routes is not None else self._find_routes()
        route = routes.get(scope["method"])
        if route is None:
            return False
        path: str = scope["path"]
        slash = path.find("/", 1)
        if path[:1] != "/" or slash < 2 or slash == len(path) - 1 or path.find("/", slash + 1) != -1:
            return False  # not exactly two non-empty segments
        module, attribute = path[1:slash], path[slash + 1:]
        first, second = self._literal[scope["method"]]
        if module in first or attribute in second:  # a route that spells it out may come first: the router decides
            return False
        scope["path_params"] = {"module": module, "attribute": attribute}
        scope["route"] = route  # as the router leaves it: RequestMetrics reads the route template
        return True

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope["path_params"]
        request = Request(scope, receive)
        try:
            response = await instrument_command(params["module"], params["attribute"], request)
        except BridgeError as exc:
            response = await bridge_error(request, exc)
        except Exception as exc:  # as FastAPI's ServerErrorMiddleware does: the JSON 500, then on to uvicorn
            await (await unexpected_error(request, exc))(scope, receive, send)
            raise
        await response(scope, receive, send)

    def _find_routes(self) -> dict[str, BaseRoute]:
        routes = flat_routes(self._router.routes)
        found: dict[str, BaseRoute] = {}
        for method in METHODS:
            literal = _spelled_out(routes, method)
            probe: Scope = {"type": "http", "method": method, "path": _PROBE, "root_path": ""}
            winner = next((route for route in routes if route.matches(probe)[0] == Match.FULL), None)
            if literal is not None and winner is not None and getattr(winner, "endpoint", None) is instrument_command:
                self._literal[method] = literal
                found[method] = winner
        self._routes = found
        return found


def _spelled_out(routes: list[BaseRoute], method: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """The first and second segments that routes taking `method` spell out, where they could match a path of two
    segments; None if one could match any two-segment path (a mount or `{...:path}` at the start)."""
    first, second = set(), set()
    for route in routes:
        mount = isinstance(route, Mount)  # takes every method, and paths below it of any length
        if not mount and method not in (getattr(route, "methods", None) or ()):  # WebSocket routes take none
            continue
        segments = getattr(route, "path", "").strip("/").split("/")
        if mount or any(":path}" in part for part in segments):  # may take a path of any length
            if segments[0].startswith("{"):
                return None
            first.add(segments[0])
        elif len(segments) == 2 and not segments[0].startswith("{"):
            first.add(segments[0])
        elif len(segments) == 2 and not segments[1].startswith("{"):
            second.add(segments[1])
    return frozenset(first), frozenset(second)
