"""The floor for an array: a bare Starlette endpoint serving a camera frame's .npy file from memory.

The same 2048 x 2048 uint16 array (8 MB) as the camera's frame, encoded once
at start, served by the same uvicorn as the bridge: what a frame read through
the bridge cannot be faster than.
"""

from __future__ import annotations

import io

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def _npy(array: np.ndarray) -> bytes:  # type: ignore[type-arg]
    body = io.BytesIO()
    np.save(body, array)
    return body.getvalue()


FRAME = _npy(np.random.default_rng(0).integers(0, 4096, (2048, 2048), dtype=np.uint16))


async def frame(request: Request) -> Response:
    return Response(FRAME, media_type="application/x-npy")


app = Starlette(routes=[Route("/camera/frame", frame)])
