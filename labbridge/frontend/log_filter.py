"""Keep tokens out of the frontend's logs.

Tokens travel in the Authorization header, and for the dashboard's WebSocket in
the Sec-WebSocket-Protocol header; uvicorn logs neither.  It does log every URL
with its query string (the access log, and its "WebSocket /ws?..." lines), so
a client that puts a token in a URL (a dashboard page cached from before
tokens left the URL sent `/ws?token=...`) would write it to logs/frontend.log.
`RedactTokens` replaces the value of every query parameter whose name contains
"token" with `[redacted]` in uvicorn's log records.
"""

from __future__ import annotations

import logging
import re

TOKEN_IN_QUERY = re.compile(r"([?&][^=&#\s]*token[^=&#\s]*=)[^&#\s\"]*", re.IGNORECASE)
LOGGERS = ("uvicorn.access", "uvicorn.error")


class RedactTokens(logging.Filter):
    """Rewrites `?token=...` (and `access_token=`, ...) in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token" in record.msg.lower():
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "token" in a.lower() for a in record.args):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact(text: str) -> str:
    return TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


def redact_tokens_in_logs() -> None:
    """Install RedactTokens on uvicorn's loggers (once; logging's dictConfig keeps a logger's filters)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
