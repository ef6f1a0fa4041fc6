"""`python main.py`: run the frontend on uvicorn where config.yml's `frontend:` says.

    python main.py [--host HOST] [--port PORT]    # both default to config.yml's frontend: host/port
                   [--log-level LEVEL] [--no-access-log]   # as uvicorn's options of those names

It refuses to listen on a non-loopback address while no token is configured
(unless `allow_open_network: true` says that is intended), raises the limit of
open files, bounds connections (server_limits.py: idle and half-sent ones are
closed, a cap with a clear 503, small WebSocket messages), believes
X-Forwarded-For only from configured proxies (proxies.py), and gives requests
in flight time to finish when it is stopped.  Under `uvicorn main:app`,
`configure_importing_uvicorn` applies the same limits to the uvicorn that
imports main.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import FrameType
from typing import Any

from fastapi import FastAPI

from labbridge.core.config import FrontendSettings
from labbridge.core.file_limit import raise_open_file_limit
from labbridge.frontend.auth import may_serve
from labbridge.frontend.proxies import proxy_options
from labbridge.frontend.server_limits import ConnectionGuard, uvicorn_options
from labbridge.frontend.state import FrontendState

log = logging.getLogger("uvicorn.error")


def serve(app: FastAPI, argv: list[str] | None = None) -> int:
    """Run `app` on uvicorn with the settings it was made from; the exit code."""
    import uvicorn

    bridge: FrontendState = app.state.bridge
    settings: FrontendSettings = bridge.settings
    args = serve_parser(settings).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not may_serve(args.host, bridge.auth, settings.allow_open_network):
        log.error("refusing to listen on %s without a token: configure frontend.token_file (or $BRIDGE_TOKEN), "
                  "or set frontend.allow_open_network: true", args.host)
        return 2
    # Live-value connections are closed by uvicorn at shutdown; plain requests get 10 s to finish.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=not args.no_access_log,
                timeout_graceful_shutdown=10, **uvicorn_settings(settings))
    return 0


def serve_parser(settings: FrontendSettings | None, prog: str = "python main.py") -> argparse.ArgumentParser:
    """main.py's options, their defaults from config.yml's `settings`; without them (`labbridge serve --help`
    before any config is read) the defaults are only named."""
    parser = argparse.ArgumentParser(prog=prog, description="Run the web frontend of the bridge.")
    host = f"config.yml: {settings.host}" if settings else "default: config.yml's frontend: host"
    port = f"config.yml: {settings.port}" if settings else "default: config.yml's frontend: port"
    parser.add_argument("--host", default=settings.host if settings else None, help=f"address to listen on ({host})")
    parser.add_argument("--port", type=int, default=settings.port if settings else None, help=f"port ({port})")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--no-access-log", action="store_true", help="do not log each request")
    return parser


def uvicorn_settings(settings: FrontendSettings) -> dict[str, Any]:
    """What uvicorn needs to serve the frontend: the connection limits (server_limits.py), and
    X-Forwarded-For believed only from configured proxies (proxies.py)."""
    guard = ConnectionGuard.from_settings(settings, raise_open_file_limit())
    return {**uvicorn_options(guard), **proxy_options(settings.trusted_proxies)}


def configure_importing_uvicorn(settings: FrontendSettings) -> bool:
    """Under `uvicorn main:app`, give the uvicorn that is importing main.py the same settings; True if found.

    Its Config is the `self` of a frame up the stack (`Config.load`).  It has
    chosen its HTTP protocol class already, but connections are made with it
    only once serving starts, and it wraps the app for forwarded headers only
    after the import returns: both take the values set here.  So the
    development command gets the protections of `python main.py` too."""
    import uvicorn

    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        config = frame.f_locals.get("self")
        if isinstance(config, uvicorn.Config):
            for name, value in uvicorn_settings(settings).items():
                setattr(config, name, value)
            config.http_protocol_class = config.http  # type: ignore[assignment]  # already resolved from "auto"
            trusted = settings.trusted_proxies
            log.info("connection limits on; X-Forwarded-For is %s",
                     f"trusted from {', '.join(trusted)}" if trusted else "ignored")
            return True
        frame = frame.f_back
    return False
