"""HEAD on the frontend's fixed GET paths (`/health`, `/`, `/modules`, `/docs`, ...), answered as GET is.

Probes and link checkers send HEAD, and HTTP says every GET resource takes it;
FastAPI routes only the methods they are given, so HEAD was a 405.  Each
router calls `answer_head` once, at import, for its paths without parameters:
the handler runs as for GET, and uvicorn sends the status and headers without
the body.  The hot path (`/<module>/<attribute>`) is left alone, and the HEAD
routes stay out of the OpenAPI schema.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute


def answer_head(router: APIRouter) -> None:
    """Route HEAD to the handler of each fixed GET path of `router`."""
    for route in list(router.routes):
        if isinstance(route, APIRoute) and route.methods == {"GET"} and "{" not in route.path:
            router.add_api_route(route.path, route.endpoint, methods=["HEAD"], include_in_schema=False)
