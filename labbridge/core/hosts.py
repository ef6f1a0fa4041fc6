"""HostGuard: only the hosts a server serves, and only its own pages, may act through it.

The frontend puts it in front of everything; the experiment process puts it in
front of each simulated instrument it serves (`simulate: true`), which would
otherwise take writes from any page that rebinds its domain to 127.0.0.1.

Two attacks reach a frontend on loopback from a web page the scientist opens.
DNS rebinding: a page points its own domain at 127.0.0.1, and the browser then
sends the page's requests here with `Host: <the page's domain>`, as if they
were same-origin.  And cross-site requests: any page can send a form POST (no
CORS preflight), or open a WebSocket, to http://127.0.0.1:8000.

So, as Django's ALLOWED_HOSTS and Jupyter do, every request and WebSocket
handshake whose Host is not one the frontend serves is refused (400
`host_not_allowed`): loopback names and addresses, `frontend.host` when it is
a specific address, and `frontend.allowed_hosts` (a leading dot allows the
domain's subdomains, `*` allows any host).  And a write (any method but GET,
HEAD, OPTIONS) or WebSocket handshake that carries an Origin other than the
frontend's own is refused (403 `origin_not_allowed`); clients that are not
browsers send no Origin and are unaffected.  Reads keep working from other
origins, whose pages the browser keeps from reading the answer (no CORS).
A request with two Host headers (400), two Origin headers (403) or two
Authorization headers (401) is refused:
which of the two a proxy checked and which one the app sees is anyone's guess.

A plain ASGI middleware: it runs before routing, on every request, so it
looks at raw headers and remembers its verdict on each Host value it has seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from labbridge.core.errors import BridgeError, HostNotAllowed, NotAuthenticated, OriginNotAllowed
from labbridge.core.transport import is_loopback

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Verdicts on Host values are remembered; a flood of made-up hosts cannot grow the memory past this.
_VERDICTS_KEPT = 256
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class AllowedHosts:
    """The host names and addresses the frontend answers to."""

    def __init__(self, configured: Iterable[str] = (), listening_on: str | None = None) -> None:
        names = {name.strip().lower().rstrip(".") for name in configured if name.strip()}
        self.any = "*" in names
        self.domains = tuple(name for name in names if name.startswith("."))
        self.names = {name for name in names if not name.startswith(".")} | {"localhost"}
        if listening_on and listening_on not in ("0.0.0.0", "::", "*"):
            self.names.add(listening_on.strip("[]").lower())

    def allows(self, host: str) -> bool:
        """Whether `host` (a Host header's host part, without port) is one of ours."""
        host = host.lower().rstrip(".")
        if not host:
            return False
        if self.any or host in self.names or any(host.endswith(domain) for domain in self.domains):
            return True
        return is_loopback(host.strip("[]"))


def split_host(value: str) -> tuple[str, int | None]:
    """`example.org:8000` -> ("example.org", 8000); `[::1]:80` -> ("[::1]", 80); a malformed port -> ("", None)."""
    host, _, port = value.rpartition(":") if value.rfind(":") > value.rfind("]") else (value, "", "")
    if port and not port.isdigit():
        return "", None
    if any(c in host for c in "@/\\ ?#"):
        return "", None
    return host, int(port) if port else None


class HostGuard:
    """ASGI middleware refusing foreign Host headers, and foreign Origins on writes and WebSockets."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed
        self._verdicts: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = origin = b""
        hosts = origins = authorizations = 0  # a proxy and the app may each read another of two
        for name, value in scope["headers"]:
            if name == b"host":
                host, hosts = value, hosts + 1
            elif name == b"origin":
                origin, origins = value, origins + 1
            elif name == b"authorization":
                authorizations += 1
        try:
            if hosts > 1 or origins > 1 or authorizations > 1:
                _refuse_repeated(hosts, origins, authorizations)
            self._check(scope, host, origin)
        except BridgeError as exc:
            await _refuse(scope, send, exc)
            return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, host: bytes, origin: bytes) -> None:
        verdict = self._verdicts.get(host)
        if verdict is None:
            verdict = self.allowed.allows(split_host(host.decode("latin-1"))[0])
            if len(self._verdicts) >= _VERDICTS_KEPT:
                self._verdicts.clear()
            self._verdicts[host] = verdict
        if not verdict:
            shown = host.decode("latin-1")[:100]
            raise HostNotAllowed(f"this frontend does not serve the host {shown!r}; if that is its name on your "
                                 "network, add it to frontend.allowed_hosts in config.yml")
        if origin and (scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS):
            if not same_origin(origin.decode("latin-1"), host.decode("latin-1")):
                raise OriginNotAllowed(f"a page from {origin.decode('latin-1')[:100]!r} may not act through this "
                                       "frontend; only its own pages (and clients that are not browsers) may")


def _refuse_repeated(hosts: int, origins: int, authorizations: int) -> None:
    """A request may carry one Host, one Origin and one Authorization: with two, which one is checked and which
    one acted on depends on who reads them (a proxy, the app), so such a request is refused whole."""
    if hosts > 1:
        raise HostNotAllowed(f"the request has {hosts} Host headers; it may have only one")
    if origins > 1:
        raise OriginNotAllowed(f"the request has {origins} Origin headers; it may have only one")
    raise NotAuthenticated(f"the request has {authorizations} Authorization headers; it may have only one")


def same_origin(origin: str, host: str) -> bool:
    """Whether a browser's Origin header names the same host and port as the request's Host header."""
    parts = urlsplit(origin)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return False  # includes "null", sent by sandboxed frames and local files
    try:
        origin_port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return False
    name, port = split_host(host)
    same_name = name.strip("[]").lower() == parts.hostname.lower()
    # Behind a TLS proxy the Host may carry no port while the page is https on 443.
    return same_name and (port == origin_port or port is None and origin_port in (80, 443))


async def _refuse(scope: Scope, send: Send, exc: BridgeError) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting makes the server answer the handshake with 403.
        await send({"type": "websocket.close", "code": 1008, "reason": exc.code})
        return
    body = orjson.dumps({"error": exc.code, "message": exc.detail})
    await send({"type": "http.response.start", "status": exc.status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
