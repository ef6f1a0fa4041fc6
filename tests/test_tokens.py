"""Tokens fail closed and stay secret: a token file that protects nothing stops the frontend, tokens never
travel in URLs nor reach its log, and with auth_reads nothing about the lab is served without one."""

from __future__ import annotations

import asyncio
import base64
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
import yaml

from tests.browser import chromium
from tests.processes import Process, free_port, running_stack, wait_until, write_config

ALICE = secrets.token_hex(16)
ROBOT = secrets.token_urlsafe(16)
MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True}, "setpoint": {"class": "setpoint.Setpoint"}}
WEAK = secrets.token_hex(8)  # 16 characters, as the old rule asked, but only 8 random bytes
TWICE = secrets.token_hex(16)


@pytest.mark.parametrize(("tokens_yml", "env", "message"), [
    ("{}\n", None, "holds no tokens"),
    ("", None, "holds no tokens"),
    ("# alice: nobody yet\n", None, "holds no tokens"),
    ("- alice\n- bob\n", None, "holds no tokens"),
    (f"alice:\n  token: {ALICE}\n", None, "the token of 'alice' must be text"),
    (f"alice: {TWICE}\nbob: {TWICE}\n", None, "'alice' and 'bob' have the same token"),
    (f"alice: {ALICE}\nbob: {ROBOT}\nalice: {TWICE}\n", None, "the identity 'alice' appears twice"),
    (f"alice: {WEAK}\n", None, "the token of 'alice' is too easy to guess (16 characters can hold at most "
                                "about 64 random bits, and a token needs 128)"),
    ("alice: " + "ab" * 20 + "\n", None, "the token of 'alice' is too easy to guess (long enough, but its 40 "
                                         "characters are only 2 different ones: not random)"),
    (f"alice: {ALICE}\n", WEAK, "BRIDGE_TOKEN is too easy to guess (16 characters"),
    (f"alice: {ALICE}\nenv: {ROBOT}\n", TWICE, "the identity 'env'"),
    (f"alice: {ALICE}\nbob: [{ROBOT}\n", None, "not valid YAML"),
    (f"{ROBOT}: robot\n", None, "the token of an identity that looks like a token (the name goes first"),
], ids=["empty-mapping", "empty-file", "only-comments", "a-list", "nested", "same-token", "same-identity",
        "8-random-bytes", "repetitive", "weak-env", "env-identity-taken", "broken-yaml", "written-backwards"])
def test_a_token_file_that_does_not_protect_is_a_config_error(tmp_path: Path, tokens_yml: str, env: str | None,
                                                              message: str) -> None:
    (tmp_path / "tokens.yml").write_text(tokens_yml)
    config = write_config(tmp_path / "config.yml", MODULES, frontend={"token_file": "tokens.yml", "port": free_port()})
    frontend = Process([sys.executable, "main.py"], tmp_path / "frontend.log",
                       env={"EXPERIMENT_CONFIG": str(config), "BRIDGE_TOKEN": env or ""})
    try:
        code = frontend.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the frontend started with {tokens_yml!r} as its token file:\n{frontend.output}")
    finally:
        frontend.stop()
    lines = frontend.output.strip().splitlines()
    assert code == 2 and len(lines) == 1, frontend.output
    assert message in lines[0] and "Traceback" not in lines[0]
    for token in (ALICE, ROBOT, WEAK, TWICE):
        assert token not in lines[0]  # a configuration error never quotes a token


def test_auth_reads_without_any_token_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, frontend={"auth_reads": True, "port": free_port()})
    frontend = Process([sys.executable, "main.py"], tmp_path / "frontend.log", env={"EXPERIMENT_CONFIG": str(config)})
    try:
        assert frontend.wait(30) == 2
    finally:
        frontend.stop()
    assert "frontend.auth_reads: true needs tokens" in frontend.output


@dataclass
class Guarded:
    url: str
    log: Path


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    tmp = tmp_path_factory.mktemp("guarded")
    (tmp / "tokens.yml").write_text(yaml.safe_dump({"alice": ALICE, "robot": ROBOT}))
    config = write_config(tmp / "config.yml", MODULES, frontend={"token_file": "tokens.yml", "auth_reads": True})
    with running_stack(config, tmp) as (_, _, url):
        yield Guarded(url, tmp / "frontend.log")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_with_auth_reads_the_api_description_and_health_details_need_a_token(guarded: Guarded) -> None:
    url = guarded.url
    for path in ("/openapi.json", "/modules", "/module_a", "/module_a/position"):
        assert httpx.get(url + path).status_code == 401, path
    schema = httpx.get(url + "/openapi.json", headers=bearer(ALICE)).json()
    assert "/module_a/position" in schema["paths"]
    # The docs pages are bare shells: they fetch /openapi.json with the token the dashboard keeps.
    for page in ("/docs", "/redoc"):
        html = httpx.get(url + page).text
        assert "module_a" not in html and "position" not in html and "/static/api-docs.js" in html
    # A probe still learns whether the bridge is up; the details are a read like any other.
    anonymous = httpx.get(url + "/health")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    detailed = httpx.get(url + "/health", headers=bearer(ROBOT)).json()
    assert detailed["backend"]["reachable"] is True and "module_a" in detailed["modules"]


def subprotocol_for(token: str) -> str:
    return "bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


async def first_event(url: str, subprotocols: list[str] | None = None) -> tuple[str | None, dict[str, object]]:
    async with websockets.connect(url, subprotocols=subprotocols) as ws:
        return ws.subprotocol, orjson.loads(await asyncio.wait_for(ws.recv(), 5))


def test_the_websocket_takes_the_token_as_a_subprotocol_never_from_the_url(guarded: Guarded) -> None:
    httpx.put(f"{guarded.url}/setpoint/value", json={"value": 4}, headers=bearer(ALICE))
    ws_url = guarded.url.replace("http://", "ws://") + "/ws"
    chosen, event = asyncio.run(first_event(ws_url, ["labbridge", subprotocol_for(ROBOT)]))
    assert chosen == "labbridge" and "module" in event  # the token's subprotocol is never echoed back
    for refused in ([ws_url, None], [ws_url, ["labbridge", subprotocol_for("x" * 32)]], [f"{ws_url}?token={ROBOT}", None]):
        with pytest.raises(websockets.exceptions.WebSocketException):
            asyncio.run(first_event(*refused))


def test_no_token_reaches_the_frontend_log(guarded: Guarded) -> None:
    url = guarded.url
    httpx.put(f"{url}/setpoint/value", json={"value": 5}, headers=bearer(ALICE))
    httpx.get(f"{url}/setpoint/value", headers=bearer(ROBOT))
    asyncio.run(first_event(url.replace("http://", "ws://") + "/ws", ["labbridge", subprotocol_for(ALICE)]))
    # Clients that put a token in a URL anyway (a dashboard cached from before, a script).
    with pytest.raises(websockets.exceptions.WebSocketException):
        asyncio.run(first_event(url.replace("http://", "ws://") + f"/ws?token={ALICE}"))
    httpx.get(f"{url}/modules?access_token={ROBOT}&page=2")
    wait_until(lambda: "page=2" in guarded.log.read_text(), 5, "the access log line")
    log = guarded.log.read_text()
    assert ALICE not in log and ROBOT not in log
    assert "/ws?token=[redacted]" in log and "access_token=[redacted]&page=2" in log


def test_the_dashboard_asks_for_the_token_and_keeps_it_out_of_urls(guarded: Guarded) -> None:
    url = guarded.url
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#token-box:not([hidden])")  # reads need a token: the page asks for it
        page.fill("#token", ALICE)
        page.dispatch_event("#token", "change")
        page.wait_for_selector("#value-setpoint-value:not(.stale)")
        httpx.put(f"{url}/setpoint/value", json={"value": 321}, headers=bearer(ROBOT))  # arrives over the WebSocket
        page.wait_for_function("document.querySelector('#value-setpoint-value').textContent === '321'", timeout=5000)
        page.goto(url + "/docs")  # the docs page fetches the description with the same stored token
        page.wait_for_selector("[data-path='/module_a/position']", timeout=15_000)
    assert ALICE not in guarded.log.read_text()
