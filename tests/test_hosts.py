"""DNS rebinding and cross-site requests: only the hosts the frontend serves, and only its own pages, may act.

A web page can rebind its own domain to 127.0.0.1: the browser then sends the
page's requests to the frontend with `Host: <the page's domain>`.  And any page
can send a cross-site form POST, which needs no CORS preflight.  The frontend
refuses unknown Host headers (loopback names and addresses, `frontend.host`
and `frontend.allowed_hosts` are known) and refuses writes and WebSocket
handshakes whose Origin is not the frontend's own.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import websockets

from tests.processes import free_port, running_stack, write_config


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("hosts")
    config = write_config(tmp / "config.yml", {"setpoint": {"class": "setpoint.Setpoint", "port": None}},
                          frontend={"allowed_hosts": ["lab.example.org", ".instruments.example.org"]})
    with running_stack(config, tmp) as (_, _, url):
        yield url


def port_of(url: str) -> str:
    return url.rsplit(":", 1)[1]


def test_a_write_with_a_foreign_host_is_refused_and_changes_nothing(url: str) -> None:
    before = httpx.get(f"{url}/setpoint/value").json()["value"]
    refused = httpx.put(f"{url}/setpoint/value", json={"value": before + 7},
                        headers={"Host": f"evil.example.com:{port_of(url)}"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "host_not_allowed"
    assert "evil.example.com" in refused.json()["message"] and "frontend.allowed_hosts" in refused.json()["message"]
    assert httpx.get(f"{url}/setpoint/value").json()["value"] == before


@pytest.mark.parametrize("path", ["/setpoint/value", "/modules", "/", "/health", "/openapi.json", "/docs",
                                  "/static/app.js"])
def test_every_path_refuses_a_foreign_host(url: str, path: str) -> None:
    refused = httpx.get(url + path, headers={"Host": "rebound.attacker.net"})
    assert refused.status_code == 400 and refused.json()["error"] == "host_not_allowed"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.0.0.2", "[::1]", "lab.example.org",
                                  "scope.instruments.example.org"])
def test_loopback_names_and_configured_hosts_are_served(url: str, host: str) -> None:
    answer = httpx.get(f"{url}/setpoint/value", headers={"Host": f"{host}:{port_of(url)}"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("host", ["", "instruments.example.org.evil.com", "localhost.evil.com", "127.0.0.1.nip.io",
                                  "lab.example.org@evil.com", "exampleXorg"])
def test_look_alike_and_empty_hosts_are_refused(url: str, host: str) -> None:
    assert httpx.get(f"{url}/setpoint/value", headers={"Host": host}).status_code == 400


def test_links_in_modules_use_the_allowed_host_of_the_request(url: str) -> None:
    modules = httpx.get(f"{url}/modules", headers={"Host": f"lab.example.org:{port_of(url)}"}).json()["modules"]
    assert modules["setpoint"]["links"]["self"] == f"http://lab.example.org:{port_of(url)}/setpoint"


@pytest.mark.parametrize("origin", ["http://evil.example.com", "null", "http://localhost:1", "https://127.0.0.1.nip.io"])
def test_a_write_from_a_foreign_page_is_refused(url: str, origin: str) -> None:
    before = httpx.get(f"{url}/setpoint/value").json()["value"]
    refused = httpx.put(f"{url}/setpoint/value", json={"value": before + 3}, headers={"Origin": origin})
    assert refused.status_code == 403 and refused.json()["error"] == "origin_not_allowed"
    assert httpx.get(f"{url}/setpoint/value").json()["value"] == before


def test_a_cross_site_form_post_is_refused_before_routing(url: str) -> None:
    # A "simple" request (no preflight): what any page can send with a form.
    refused = httpx.post(f"{url}/setpoint/value", content=b'{"value": 1}',
                         headers={"Origin": "http://evil.example.com", "Content-Type": "text/plain"})
    assert refused.status_code == 403 and refused.json()["error"] == "origin_not_allowed"


def test_the_frontend_s_own_pages_and_clients_without_origin_may_write(url: str) -> None:
    own = httpx.put(f"{url}/setpoint/value", json={"value": 11}, headers={"Origin": url})
    assert own.status_code == 200, own.text
    assert httpx.put(f"{url}/setpoint/value", json={"value": 12}).status_code == 200
    # Reads carry an Origin too when a page fetches cross-site; the browser keeps the answer from it (no CORS).
    assert httpx.get(f"{url}/setpoint/value", headers={"Origin": "http://evil.example.com"}).status_code == 200


async def _handshake(url: str, **headers: str) -> str:
    ws_url = url.replace("http://", "ws://") + "/ws"
    try:
        async with websockets.connect(ws_url, additional_headers=headers, open_timeout=5) as socket:
            await socket.send("hello")  # anything; the server never acts on it
            return "open"
    except websockets.InvalidStatus as exc:
        return f"refused {exc.response.status_code}"


def test_a_websocket_from_a_foreign_page_or_host_is_refused(url: str) -> None:
    assert asyncio.run(_handshake(url, Origin="http://evil.example.com")) == "refused 403"
    assert asyncio.run(_handshake(url, Host="evil.example.com")) == "refused 403"
    assert asyncio.run(_handshake(url, Origin=url)) == "open"
    assert asyncio.run(_handshake(url)) == "open"  # not a browser: no Origin


def _raw(url: str, head: bytes) -> bytes:
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):  # Connection: close: the whole answer, then the end
            answer += chunk
        return answer


@pytest.mark.parametrize(("headers", "status"), [
    (b"Host: evil.example.com\r\nHost: 127.0.0.1\r\n", b"400"),  # which one a proxy checked is anyone's guess
    (b"Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n", b"400"),
    (b"Host: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\nOrigin: http://evil.example.com\r\n", b"403"),
    # The app reads the first token, a proxy in front may check the last.
    (b"Host: 127.0.0.1\r\nAuthorization: Bearer one\r\nAuthorization: Bearer two\r\n", b"401"),
])
def test_a_request_with_two_host_or_two_origin_headers_is_refused(url: str, headers: bytes, status: bytes) -> None:
    before = httpx.get(f"{url}/setpoint/value").json()["value"]
    body = b'{"value": 99}'
    answer = _raw(url, b"PUT /setpoint/value HTTP/1.1\r\n" + headers +
                  b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:300]
    assert b"headers; it may have only one" in answer, answer[:300]
    assert httpx.get(f"{url}/setpoint/value").json()["value"] == before


def test_a_simulated_instrument_refuses_a_foreign_host_and_origin(tmp_path: Path) -> None:
    """A page that rebinds its domain to 127.0.0.1 could write to the simulator itself, past the frontend's
    tokens and audit log: the experiment process guards it as the frontend is guarded."""
    sim_port = free_port()
    config = write_config(tmp_path / "config.yml",
                          {"module_a": {"class": "module_a.ModuleA", "simulate": True, "port": sim_port}})
    with running_stack(config, tmp_path) as (_, _, url):
        simulator = f"http://127.0.0.1:{sim_port}/speed"
        rebound = httpx.put(simulator, json={"value": 7}, headers={"Host": "evil.example.com"})
        assert rebound.status_code == 400 and rebound.json()["error"] == "host_not_allowed"
        foreign = httpx.put(simulator, json={"value": 7}, headers={"Origin": "http://evil.example.com"})
        assert foreign.status_code == 403 and foreign.json()["error"] == "origin_not_allowed"
        assert httpx.get(f"{url}/module_a/speed").json()["value"] != 7  # nothing reached it
        assert httpx.put(simulator, json={"value": 7}).json() == {"value": 7.0}  # the bridge's own way in works
        assert httpx.get(f"{url}/module_a/speed").json()["value"] == 7.0
