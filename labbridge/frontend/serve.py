"""`python main.py`: run the frontend on uvicorn where config.yml's `frontend:` says.

It refuses to listen on a non-loopback address while no token is configured
(unless `allow_open_network: true` says that is intended), and gives requests
in flight time to finish when it is stopped.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from labbridge.core.config import FrontendSettings
from labbridge.frontend.auth import may_serve
from labbridge.frontend.proxies import uvicorn_options
from labbridge.frontend.state import FrontendState

log = logging.getLogger("uvicorn.error")


def serve(app: FastAPI) -> int:
    """Run `app` on uvicorn with the settings it was made from; the exit code."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bridge: FrontendState = app.state.bridge
    settings: FrontendSettings = bridge.settings
    if not may_serve(settings.host, bridge.auth, settings.allow_open_network):
        log.error("refusing to listen on %s without a token: configure frontend.token_file (or $BRIDGE_TOKEN), "
                  "or set frontend.allow_open_network: true", settings.host)
        return 2
    # Live-value connections are closed by uvicorn at shutdown; plain requests get 10 s to finish.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10,
                **uvicorn_options(settings.trusted_proxies))  # X-Forwarded-For only from configured proxies
    return 0
