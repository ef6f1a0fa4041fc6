"""StreamCap: WebSockets and long polls each get a share of the connections, so plain requests keep room.

A dashboard's WebSocket holds its connection for as long as the page is open,
and a long poll (`GET /invocations/<id>?wait=`) for up to a minute.  The
connection cap (server_limits.py) closes idle connections to make room, never
busy ones: so 45 WebSockets, or 40 long polls, on a frontend with
`max_connections: 40` took every connection, and every other request got 503
until they ended.  Each kind now has a cap of its own, below the connection
cap: `frontend.max_websockets` and `frontend.max_long_polls`, by default a
quarter of it each.  Over its cap, a WebSocket is accepted and closed at once
with code 1013 ("try again later", which the dashboard and bridge_client retry
after a pause), and a long poll is answered at once, as if `wait=0`: its
client polls again, and its connection can be reused in between.
"""

from __future__ import annotations

from functools import cached_property

from labbridge.core.config import FrontendSettings
from labbridge.core.file_limit import open_file_limit

SHARE = 4  # by default each kind may hold a quarter of the connections
TRY_AGAIN_LATER = 1013  # the WebSocket close code for "try again later" (RFC 6455 registry)


def connection_cap(settings: FrontendSettings, open_files: int) -> int:
    """The connections the frontend keeps open at most: max_connections, never more than half the open files."""
    return max(1, min(settings.max_connections, open_files // 2))


class StreamCap:
    """How many requests of one long-lived kind may be open at once (counted on the event loop)."""

    def __init__(self, configured: int | None, settings: FrontendSettings) -> None:
        self.configured = configured
        self.settings = settings
        self.open = 0

    @cached_property
    def limit(self) -> int:
        """The cap; worked out at first use, once the frontend has raised its open-file limit (serve.py)."""
        if self.configured is not None:
            return self.configured
        return max(1, connection_cap(self.settings, open_file_limit()) // SHARE)

    def take(self) -> bool:
        """Count one more open request of this kind; False (and nothing counted) at the cap."""
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1
