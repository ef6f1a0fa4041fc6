"""HotPath takes exactly the requests that FastAPI's router would give `instrument_command`, and routes them as it
would (the behaviour of those requests is tested through the real processes everywhere else)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.routing import Match, Route

from labbridge.core.config import load_config
from labbridge.frontend.app import create_app
from labbridge.frontend.hot_path import HotPath
from labbridge.frontend.routes.instruments import flat_routes, instrument_command
from tests.processes import write_config

METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD", "PATCH")
TRICKY = ["/module_a/position", "/module_a/attributes", "/invocations/abc", "/static/style.css", "/static/vendor/x",
          "/docs-static/swagger-ui.css", "/modules/x", "/health/x", "/metrics/x", "/docs/x", "/ws/x", "/openapi.json/x",
          "/a/b/c", "/a/b/", "/a/", "//b", "/a//b", "/", "/a", "/module_a/history", "/module_a/position/history",
          "/invocations", "/%41/b", "/a b/c d"]


def app_of(tmp_path: Path) -> FastAPI:
    config = write_config(tmp_path / "config.yml", {"setpoint": {"class": "setpoint.Setpoint"}})
    return create_app(load_config(config), config)


def router_choice(app: FastAPI, scope: dict[str, Any]) -> Any:
    """The route FastAPI's router would run: the first that matches fully, in the order routes were added."""
    return next((route for route in flat_routes(app.router.routes) if route.matches(scope)[0] == Match.FULL), None)


def paths_of_every_route(app: FastAPI) -> list[str]:
    """A path for every route, its parameters filled in, plus the tricky ones."""
    paths = list(TRICKY)
    for route in flat_routes(app.router.routes):
        template = getattr(route, "path", "")
        paths.append("/".join("x" if part.startswith("{") else part for part in template.split("/")) or "/")
        paths.append(template.replace("{", "").replace("}", ""))
    return paths


def test_the_hot_path_takes_exactly_what_the_router_gives_instrument_command(tmp_path: Path) -> None:
    app = app_of(tmp_path)
    hot = HotPath(app, app.router)
    claimed = 0
    for path in paths_of_every_route(app):
        for method in METHODS:
            scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
            expected = router_choice(app, dict(scope))
            takes = hot._claims(scope)
            assert takes == (getattr(expected, "endpoint", None) is instrument_command), (method, path)
            if takes:
                claimed += 1
                # As the router leaves the scope: RequestMetrics reads the route template and the module from it.
                assert scope["route"] is expected and scope["route"].path == "/{module}/{attribute}"
                assert scope["path_params"] == expected.matches(dict(scope))[1]["path_params"]
    assert claimed >= 4  # GET and PUT of several attribute paths: the comparison did compare something


def test_a_route_that_spells_out_a_segment_is_left_to_the_router(tmp_path: Path) -> None:
    app = app_of(tmp_path)

    async def extra(request: Any) -> None: ...

    app.router.routes.insert(0, Route("/extra/{thing}", extra, methods=["GET"]))  # found before the attribute route
    for method, path, left in (("GET", "/extra/x", True), ("PUT", "/extra/x", False), ("GET", "/extras/x", False)):
        scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        assert HotPath(app, app.router)._claims(dict(scope)) is not left
        assert (router_choice(app, scope).endpoint is extra) is left


@pytest.mark.parametrize("scope", [
    {"type": "http", "method": "GET", "path": "/proxied/module_a/position", "root_path": "/proxied"},
    {"type": "websocket", "path": "/module_a/position"},
    {"type": "lifespan"},
])
def test_what_the_hot_path_does_not_take_goes_on_to_fastapi(tmp_path: Path, scope: dict[str, Any]) -> None:
    import asyncio

    app = app_of(tmp_path)
    seen: list[dict[str, Any]] = []

    async def fastapi_stack(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    asyncio.run(HotPath(fastapi_stack, app.router)(scope, None, None))  # type: ignore[arg-type]
    assert seen == [scope]
