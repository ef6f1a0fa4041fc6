"""Http: the client's connection to the bridge's frontend, with its token, retries and errors.

Every request of a client goes through one keep-alive `httpx.AsyncClient`.
A read (GET) that gets `503` with `Retry-After` (the experiment process is
restarting, or the module's queue is full), or whose connection failed before
any answer, is tried again after that wait, up to `retries` times.  A write
(PUT, POST starting an action, DELETE cancelling one) is sent exactly once: if
it fails on the way, the error says whether it may have been applied
(`outcome_unknown`).  A long poll (`GET /invocations/<id>?wait=<s>`) is a read
whose own timeout is stretched by the time it may wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx

from bridge_client.errors import BridgeError, BridgeUnreachable, InvalidValue, MalformedRequest, error_from_response

log = logging.getLogger("bridge_client")

# Longest wait between two tries of a read, whatever Retry-After asks for.
MAX_RETRY_WAIT = 5.0
# Transport failures a read may be retried after: the request got no answer, and a read changes nothing.
_RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# `write`'s data when the request has no body (a DELETE).
NO_BODY: Any = object()


class Http:
    """Sends requests to one bridge and returns their JSON, or raises the bridge's error."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 10.0, retries: int = 3,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self.token = token
        self.retries = retries
        self._client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    async def read(self, path: str, *, params: dict[str, Any] | None = None, waits: float = 0.0) -> Any:
        """GET `path`; 503 with Retry-After and failed connections are tried again, `retries` times.
        `waits`: seconds the bridge may take on purpose before answering (a long poll), on top of the timeout."""
        timeout = httpx.USE_CLIENT_DEFAULT if not waits else _stretched(self._client.timeout, waits)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await self._client.get(path, params=params, timeout=timeout)
            except _RETRYABLE as exc:
                if last:
                    raise _transport_error(exc, path, write=False) from None
                wait = min(0.1 * 2 ** attempt, MAX_RETRY_WAIT)
            except httpx.HTTPError as exc:
                raise _transport_error(exc, path, write=False) from None
            else:
                retry_after = _retry_after(response)
                if response.status_code != 503 or retry_after is None or last:
                    return _json_or_raise(response, write=False)
                wait = min(retry_after, MAX_RETRY_WAIT)
            log.debug("GET %s: trying again in %.2f s (%d of %d)", path, wait, attempt + 1, self.retries)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def write(self, method: str, path: str, data: Any = NO_BODY) -> Any:
        """Send a request that changes something, exactly once (with no body when `data` is NO_BODY)."""
        content, headers = None, {}
        if data is not NO_BODY:
            try:
                content = json.dumps(data, allow_nan=False, default=_plain).encode()
            except ValueError:
                raise InvalidValue(f"{method} {path}: NaN and infinity cannot be sent (JSON has no such numbers)") from None
            except TypeError as exc:
                raise MalformedRequest(f"{method} {path}: the value cannot be sent as JSON ({exc})") from None
            headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, path, write=True) from None
        return _json_or_raise(response, write=True)

    async def aclose(self) -> None:
        await self._client.aclose()


def _json_or_raise(response: httpx.Response, *, write: bool) -> Any:
    if response.is_success:
        return json.loads(response.content)
    raise error_from_response(response.status_code, response.content, write=write)


def _stretched(timeout: httpx.Timeout, extra: float) -> httpx.Timeout:
    """The client's timeout with `extra` seconds more to read the answer."""
    read = None if timeout.read is None else timeout.read + extra
    return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: not worth waiting for blindly


def _transport_error(exc: httpx.HTTPError, path: str, *, write: bool) -> BridgeError:
    """No HTTP answer: whether a write happened is unknown unless the connection was never made."""
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    message = f"no answer from the bridge for {path} ({what})"
    if write and not never_sent:
        message += "; the write's outcome is unknown, read the value back"
    return BridgeUnreachable(message, outcome_unknown=write and not never_sent)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values (json cannot encode them itself)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not a JSON value")
