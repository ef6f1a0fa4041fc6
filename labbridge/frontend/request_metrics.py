"""RequestMetrics: a pure ASGI middleware timing every HTTP request for `/metrics`.

It only wraps `send` to see the status, and after the response reads the
route the router matched (FastAPI leaves it in the scope) and the module path
parameter; BridgeMetrics.observe does the rest.  No request body is read and
nothing is allocated beyond the wrapper, so the hot path pays a few microseconds
(see docs/reference/metrics.md).
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labbridge.frontend.metrics import BridgeMetrics

OTHER_ROUTE = "(other)"  # static files, and paths no route matched


class RequestMetrics:
    """Observes method, route template, module, status and duration of each HTTP request."""

    def __init__(self, app: ASGIApp, metrics: BridgeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts: an exception that escapes becomes a 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")
            module = scope.get("path_params", {}).get("module", "")
            self.metrics.observe(scope["method"], getattr(route, "path", OTHER_ROUTE), module, status,
                                 time.perf_counter() - start)
