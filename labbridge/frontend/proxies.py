"""Whose X-Forwarded-For the frontend believes: only the addresses in config.yml's `frontend.trusted_proxies`.

uvicorn replaces a request's client address with the one in X-Forwarded-For
before the app sees the request, for every peer in its `forwarded_allow_ips`
(127.0.0.1 and ::1 unless told otherwise).  By default any local process could
therefore pose as any address in the audit log, and the app cannot undo it
afterwards: the peer's own address is gone.  So the frontend sets uvicorn up
itself, whichever way it is started:

- `python main.py` (and the service units): serve.py passes `proxy_options`
  to `uvicorn.run`;
- `uvicorn main:app`: uvicorn's Config is importing main.py at that moment and
  wraps the app only once the import returns; serve.py's
  `configure_importing_uvicorn` gives it the same options first.

With no trusted proxy (the default) forwarding headers are ignored altogether.
"""

from __future__ import annotations

from typing import Any


def proxy_options(trusted: list[str]) -> dict[str, Any]:
    """uvicorn's settings that apply X-Forwarded-For from `trusted` peers only."""
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": list(trusted)}
