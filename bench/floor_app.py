"""The floor for the benchmark: a bare FastAPI app answering the bridge's JSON itself.

Same routes and same JSON as the bridge, no ZeroMQ hop and no backend, served by
the same uvicorn: what a request through the bridge cannot be faster than.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
values: dict[tuple[str, str], object] = {}


@app.get("/{module}/{attribute}")
async def read(module: str, attribute: str) -> Response:
    body = {"module": module, "attribute": attribute, "value": values.get((module, attribute), 0.0), "unit": None}
    return Response(orjson.dumps(body), media_type="application/json")


@app.put("/{module}/{attribute}")
async def write(module: str, attribute: str, request: Request) -> Response:
    values[(module, attribute)] = orjson.loads(await request.body())["value"]
    body = {"module": module, "attribute": attribute, "value": values[(module, attribute)], "unit": None}
    return Response(orjson.dumps(body), media_type="application/json")
