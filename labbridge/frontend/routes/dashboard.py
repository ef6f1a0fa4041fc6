"""The dashboard: static HTML, CSS and JavaScript, and the WebSocket of live values.

A browser asking for `/` (Accept: text/html) gets static/index.html; API
clients keep getting JSON.  The page reads `/modules`, shows every attribute
with value, unit and limits, lets writable ones be edited in place, and keeps
the values live over `/ws`, which streams LiveFeed's events (the latest value
of every attribute first, so a reconnecting page catches up), or, once the
client subscribes, those of the attributes it shows (ws_session.py).  With
`auth_reads`, the socket needs the token, offered as a subprotocol (never in
the URL, which access logs record).  No build step
and no CDN: the files in labbridge/frontend/static/ are all there is.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import FileResponse

from labbridge.core.errors import BridgeError
from labbridge.frontend.page_headers import page
from labbridge.frontend.state import bridge_of
from labbridge.frontend.stream_caps import TRY_AGAIN_LATER
from labbridge.frontend.ws_session import LiveSession

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter()

# Browsers cannot set headers on a WebSocket, and a token in its URL would end up in access logs, so the
# dashboard offers it as a subprotocol, as Kubernetes does: ["labbridge", "bearer.<token, base64url>"].
SUBPROTOCOL = "labbridge"
TOKEN_PREFIX = "bearer."


def token_in_subprotocols(offered: list[str]) -> str:
    """The token carried by a `bearer.<base64url>` subprotocol, or "" (a malformed one counts as none)."""
    for protocol in offered:
        if protocol.startswith(TOKEN_PREFIX):
            encoded = protocol[len(TOKEN_PREFIX):]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return ""
    return ""


def wants_html(request: Request) -> bool:
    """True for a browser: HTML is asked for and preferred to JSON."""
    accept = request.headers.get("accept", "")
    html, json = accept.find("text/html"), accept.find("application/json")
    return html >= 0 and (json < 0 or html < json)


def dashboard_page() -> FileResponse:
    return page(STATIC / "index.html")


@router.websocket("/ws")
async def live_values(websocket: WebSocket) -> None:
    """Stream live values: the latest of every attribute first, then each new one."""
    bridge = bridge_of(websocket)
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    try:
        bridge.check_network(websocket)  # as every read: no token configured, loopback only
        if bridge.auth.protect_reads:
            # Programs (bridge_client) send the Authorization header; browsers cannot set headers on a
            # WebSocket, so the dashboard offers its token as a subprotocol (never in the URL: it would be logged).
            authorization = websocket.headers.get("authorization") or f"Bearer {token_in_subprotocols(offered)}"
            bridge.auth.identify(authorization, "read")
    except BridgeError:
        await websocket.close(code=1008)
        return
    # A browser drops a socket whose server picks none of the subprotocols it offered; never echo the token's.
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    if not bridge.websockets.take():  # plain requests keep their room (stream_caps.py)
        await websocket.close(TRY_AGAIN_LATER, f"try again later: {bridge.websockets.limit} live-value connections "
                              "are open, the most this frontend serves")
        return
    try:
        async with bridge.feed.subscribe() as events:
            await LiveSession(websocket, bridge.feed, events).run()
    finally:
        bridge.websockets.release()
