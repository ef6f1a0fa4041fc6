"""allow: the check every route makes before it serves a request, by the role the request needs.

A read needs `read` (and a token only with `frontend.auth_reads`), a write
`operate`, and what is reserved to administrators `admin` (auth.py's ROLES).
Writes that reach an instrument go through writes.forward_write, which makes
this check and records a refusal in the audit log; an endpoint that only an
administrator may use takes `Depends(needs_admin)`:

    @router.post("/queue/start", dependencies=[Depends(needs_admin)])

(or `forward_write(..., needs="admin")` when it sends a write on to the
experiment process, so that a refusal is on record).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from labbridge.frontend.auth import Caller, Role
from labbridge.frontend.state import bridge_of


def allow(connection: HTTPConnection, needs: Role) -> Caller | None:
    """Who sent the request (None when no token is needed for it), or the error that refuses it: a
    non-loopback client with no token configured, no token, a wrong one, or one whose role is not enough."""
    bridge = bridge_of(connection)
    bridge.check_network(connection)
    return bridge.auth.identify(connection.headers.get("authorization"), needs)


def needs_admin(connection: HTTPConnection) -> Caller | None:
    """FastAPI dependency of an endpoint reserved to the `admin` role."""
    return allow(connection, "admin")
