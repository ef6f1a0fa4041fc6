"""Audit records of actions, written by the experiment process: `audit_invocation_event`.

Every request to start or cancel an invocation, accepted or refused, and every
invocation's end is recorded with who asked (the token's identity) and from
where (the client's address), which the frontend sends along with the request.
`audit_invocation_event` is the one function the invocation code calls; for
now it writes through `ActionAuditLog`, a minimal JSON Lines writer on the file
of `frontend.audit_log` (lines appended with one write each and fsynced, so it
can share the file with the frontend's records of PUTs).  When the audit log
moves into the experiment process, this function is pointed at it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson


class ActionAuditLog:
    """Appends one JSON line per record to a file, fsynced before returning."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def audit_invocation_event(log: ActionAuditLog | None, event: str, *, invocation: str | None, module: str,
                           action: str, identity: str | None, client: str | None, outcome: str,
                           arguments: Any = None, result: Any = None) -> None:
    """Record one event of an invocation: `invoke` (outcome "ok" or the refusal's error code),
    `cancel` (likewise) or `end` (outcome = the final status).  Blocks for the fsync: call it in a thread."""
    if log is None:
        return
    log.write({"time": time.time(), "client": client, "identity": identity, "module": module, "action": action,
               "invocation": invocation, "event": event, "arguments": arguments, "outcome": outcome,
               "result": result})
