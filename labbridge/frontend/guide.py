"""`/guide`: the project's manual (docs/, built by `mkdocs build` into site/), served by the frontend itself.

A lab PC is often offline, so the bridge serves its own manual when it has been
built: the files of `site/` at the repository's top, as they are.  The manual's
pages run scripts of their own (Material's search, tabs, the copy button), so
its HTML gets a Content-Security-Policy of its own: scripts from the bridge
itself, and the page's few inline scripts by their SHA-256 hash (computed from
the file, so a changed build needs no change here), nothing from elsewhere.
Without site/, `/guide` answers 404 saying how to build it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from labbridge.frontend.page_headers import PageFiles

# The built manual: site/ beside main.py (labbridge/frontend/guide.py -> the repository's top).
SITE = Path(__file__).resolve().parents[2] / "site"
PREFIX = "/guide"
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>(.*?)</script>", re.S)
# What the manual's pages need besides their inline scripts: its own files, inline styles (Material sets a
# few style attributes), images and fonts from data: URLs, and the search's worker.
_POLICY = ("default-src 'self'; script-src 'self'{hashes}; connect-src 'self'; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; object-src 'none'; "
           "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


@lru_cache(maxsize=256)
def page_policy(path: str, mtime_ns: int) -> str:
    """The Content-Security-Policy of one HTML page: its inline scripts allowed by hash, nothing else inline."""
    scripts = _INLINE_SCRIPT.findall(Path(path).read_bytes())
    hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'" for body in scripts)
    return _POLICY.format(hashes=hashes)


class GuideFiles(PageFiles):
    """The built manual's files, with PAGE_HEADERS and, for its HTML pages, their own script policy."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if str(full_path).endswith(".html"):
            response.headers["Content-Security-Policy"] = page_policy(str(full_path), stat_result.st_mtime_ns)
        return response

    async def check_config(self) -> None:
        """Nothing to check at the first request: without site/ yet, get_response answers 404 saying how to build it
        (Starlette's own check would raise, and the user would get a 500)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not (Path(str(self.directory)) / "index.html").is_file():
            raise HTTPException(404, "the manual is not built here: in a clone of the repository, run "
                                     "`.venv/bin/python -m pip install -r requirements-dev.txt`, then "
                                     "`.venv/bin/python -m mkdocs build` (site/ is then served at /guide/); "
                                     "its pages are also in docs/")
        try:
            response = await super().get_response(path, scope)
        except HTTPException as error:
            if error.status_code != 404:
                raise
            response = Response(status_code=404)
        if response.status_code == 404:  # not the site's own 404.html: its links assume the site at /
            raise HTTPException(404, f"the manual has no page {PREFIX}/{path}")
        return response


def guide_files() -> GuideFiles:
    """The files of site/, served whether or not they exist yet (a manual built later is served at once)."""
    return GuideFiles(directory=SITE, html=True, check_dir=False)


router = APIRouter(include_in_schema=False)


@router.get(PREFIX)
async def guide_index() -> RedirectResponse:
    """`/guide` without its slash: the manual's pages link relative to `/guide/`."""
    return RedirectResponse(PREFIX + "/", status_code=308)
