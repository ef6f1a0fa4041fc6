"""Headers for what a browser renders: the dashboard, `/docs`, `/redoc` and the static files.

A page on another site could otherwise load the dashboard in an invisible frame
and have the scientist click its buttons (clickjacking: one click on a decoy
starts an action).  So these answers tell the browser never to frame them
(`X-Frame-Options: DENY`, and `Content-Security-Policy: frame-ancestors 'none'`,
which newer browsers follow instead), and never to guess a file's type from its
content (`X-Content-Type-Options: nosniff`).  JSON answers carry no such
headers: a browser does not render them, and they are the hot path.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def page(path: Path, policy: str = "") -> FileResponse:
    """An HTML file of the frontend, with the headers that keep it out of other sites' frames.

    `policy` is more of a Content-Security-Policy (what the page may load), joined to `frame-ancestors`."""
    headers = PAGE_HEADERS if not policy else {
        **PAGE_HEADERS, "Content-Security-Policy": f"{policy}; {PAGE_HEADERS['Content-Security-Policy']}"}
    return FileResponse(path, media_type="text/html", headers=headers)


class PageFiles(StaticFiles):
    """Static files (the dashboard's scripts and styles, Swagger UI's and ReDoc's) with PAGE_HEADERS."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(PAGE_HEADERS)
        return response
