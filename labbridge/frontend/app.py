"""create_app: the web frontend, wired from config.yml.

The app owns no instrument and needs no module code: it starts fine while the
experiment process is down (requests get 503 until it is up).  This file only
assembles the parts: the shared state (state.py), the routes (routes/), static
files and the error handlers (responses.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from labbridge.core.config import Config
from labbridge.core.hosts import AllowedHosts
from labbridge.frontend import guide
from labbridge.frontend.hot_path import BridgeApp
from labbridge.frontend.log_filter import redact_tokens_in_logs
from labbridge.frontend.page_headers import PageFiles
from labbridge.frontend.responses import add_error_handlers
from labbridge.frontend.routes import (actions, alarms, dashboard, docs, health, history, instruments, interlocks,
                                       invocations, metrics, modules, runs)
from labbridge.frontend.state import FrontendState

DESCRIPTION = ('Read and set lab instruments over HTTP. `GET /<module>/<attribute>` reads, '
               '`PUT /<module>/<attribute>` with `{"value": ...}` writes.')


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    bridge: FrontendState = app.state.bridge
    bridge.feed.start()  # from the start, so the latest values are there for the first browser
    bridge.backend.start()  # the heartbeat of each experiment process of a lab
    yield
    bridge.close()


def create_app(config: Config, config_file: Path) -> FastAPI:
    """The frontend app, talking to the experiment process named in `config`."""
    # BridgeApp times every request, checks its Host and answers GET/PUT /<module>/<attribute> (hot_path.py),
    # all before FastAPI's own middleware and router.
    app = BridgeApp(title="Instrument bridge", description=DESCRIPTION, lifespan=lifespan,
                    openapi_url=None, docs_url=None, redoc_url=None)
    app.state.bridge = FrontendState.from_config(config, config_file)
    app.allowed_hosts = AllowedHosts(config.frontend.allowed_hosts, config.frontend.host)
    redact_tokens_in_logs()
    app.mount("/docs-static", PageFiles(directory=docs.ASSETS), name="docs-static")
    app.mount("/static", PageFiles(directory=dashboard.STATIC), name="static")
    app.mount(guide.PREFIX, guide.guide_files(), name="guide")  # the manual, once built into site/ (guide.py)
    # Fixed paths first: `/{module}` and `/{module}/{attribute}` would match them too.
    for router in (guide.router, docs.router, dashboard.router, modules.router, health.router, metrics.router, invocations.router,
                   runs.router, interlocks.router, alarms.router, modules.module_router, actions.router, instruments.router,
                   history.router):
        app.include_router(router)
    add_error_handlers(app)
    app.add_exception_handler(405, instruments.method_not_allowed)  # Allow: as the attribute allows
    return app
