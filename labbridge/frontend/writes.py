"""forward_write: one request that changes an instrument, sent once, with what the frontend refuses on record.

PUT of a value, POST of an action and DELETE of an invocation all go the same
way: the network and the token are checked (a write needs the `operate` role
unless its route asks for more), the body is read with its size limit, and the
request is handed to the experiment process exactly once.  That process
records every write that reaches it (core/audit.py); what the frontend turns
down itself (no or a wrong token, a role that is not enough, a malformed or
oversized body, a client gone mid-body, an experiment process it could not
hand the request to) only the frontend knows of, so it records each of those
here as one `refused` line; a write sent to an experiment process that then
went away without answering is one `unanswered` line, with the request's id.
Each carries the client's connection ("address:port"), whom an invocation
counts against when no token names the client (experiment/action_quota.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from labbridge.core.audit import WriteAttempt
from labbridge.core.errors import BackendNotReached, BackendWentAway, BridgeError
from labbridge.core.protocol import Chunk, Op
from labbridge.frontend.auth import Role, require
from labbridge.frontend.state import FrontendState


async def forward_write(bridge: FrontendState, request: Request, op: Op, module: str | None, name: str | None,
                        read_payload: Callable[[], Awaitable[Any]], *,
                        wrap: Callable[[Any], Any] = lambda payload: payload,
                        timeout: float | None = None, requested: Any = None, needs: Role = "operate") -> Chunk:
    """Check, read and send a write; the experiment process's JSON answer, or the error, raised.

    `requested` is what the audit log records if it is refused before its payload is read (the
    invocation a cancel names, which comes from the URL); `needs` is the role the write needs."""
    attempt = WriteAttempt(op, module, name, requested, client=request.client.host if request.client else None)
    try:
        bridge.check_network(request)
        caller = bridge.auth.authenticate(request.headers.get("authorization"), needs)
        if caller is not None:  # on record even when its role does not allow this write
            attempt.identity, attempt.role = caller.identity, caller.role
        require(caller, needs)
        attempt.requested = await read_payload()
        outgoing = bridge.backend.prepare(op, module, name, wrap(attempt.requested), client=attempt.client,
                                          identity=attempt.identity, role=attempt.role, timeout=timeout,
                                          connection=_connection(request))
    except BridgeError as exc:
        await _record_refusal(bridge, attempt, exc)
        raise
    try:
        return await bridge.backend.send(outgoing)
    except BackendNotReached as exc:  # never sent, so the experiment process cannot record it
        await _record_refusal(bridge, attempt, exc)
        raise
    except BackendWentAway as exc:  # sent; only its own lines can tell whether the experiment process took it
        if bridge.audit is not None:
            attempt.id = outgoing.request.id
            await bridge.audit.record_unanswered(attempt, exc.code)
        raise


def _connection(request: Request) -> str | None:
    """The client's TCP connection as "address:port" (behind a trusted proxy: the forwarded address)."""
    return None if request.client is None else f"{request.client.host}:{request.client.port}"


async def _record_refusal(bridge: FrontendState, attempt: WriteAttempt, exc: BridgeError) -> None:
    if bridge.audit is not None:
        await bridge.audit.record_refusal(attempt, exc.code)
