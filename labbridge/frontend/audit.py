"""AuditLog: one JSON line per PUT, accepted or refused, on disk before the reply.

Each line holds the time, the client's address, the token identity (if any),
module, attribute, the requested value, the value before and after, and the
outcome (`ok` or the error code).  The line is written, flushed and fsynced
before the client gets its answer, so a crash cannot lose the record of a write
that was acknowledged.  Lines are appended with one write each (O_APPEND), so
several frontend workers can share one file.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)


class AuditLog:
    """Appends audit records to a JSON Lines file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def record(self, *, client: str | None, identity: str | None, module: str, attribute: str,
               requested: Any, before: Any, after: Any, outcome: str) -> None:
        line = orjson.dumps({
            "time": time.time(), "client": client, "identity": identity, "module": module,
            "attribute": attribute, "requested": requested, "before": before, "after": after, "outcome": outcome,
        }, option=orjson.OPT_APPEND_NEWLINE)
        os.write(self._fd, line)
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)
