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

from labbridge.core.config import FrontendSettings
from labbridge.core.errors import Forbidden
from labbridge.frontend.auth import Caller, TokenAuth, read_token_file
from tests.browser import chromium
from tests.processes import Process, free_port, running_stack, shipped_history, wait_until, write_config

ALICE = secrets.token_hex(16)
ROBOT = secrets.token_urlsafe(16)
VIEWER = secrets.token_hex(16)
MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True}, "setpoint": {"class": "setpoint.Setpoint"}}
WEAK = secrets.token_hex(8)  # 16 characters, as the old rule asked, but only 8 random bytes
TWICE = secrets.token_hex(16)


@pytest.mark.parametrize(("tokens_yml", "env", "message"), [
    ("{}\n", None, "holds no tokens"),
    ("", None, "holds no tokens"),
    ("# alice: nobody yet\n", None, "holds no tokens"),
    ("- alice\n- bob\n", None, "holds no tokens"),
    (f"alice: 12345\n", None, "the token of 'alice' must be text"),
    ("alice:\n  role: read\n", None, "'alice' has no token"),
    (f"alice: {{token: {ALICE}, role: reader}}\n", None, "the role of 'alice' is 'reader'; a role is one of read, "
                                                        "operate, admin"),
    (f"alice: {{token: {ALICE}, role: {ROBOT}}}\n", None, "the role of 'alice' is a value that looks like a token"),
    (f"alice: {{token: {ALICE}, rol: read}}\n", None, "'alice' has the key 'rol'; an entry's keys are `token` and "
                                                     "`role`"),
    (f"alice: {{token: {WEAK}, role: read}}\n", None, "the token of 'alice' is too easy to guess"),
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
], ids=["empty-mapping", "empty-file", "only-comments", "a-list", "a-number", "no-token", "unknown-role",
        "token-as-role", "unknown-key", "weak-with-role", "same-token", "same-identity",
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


def test_each_identity_has_a_role_and_a_bare_token_means_operate(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    carol, env = secrets.token_hex(16), secrets.token_hex(16)
    (tmp_path / "tokens.yml").write_text(f"alice: {ALICE}\nviewer: {{token: {ROBOT}, role: read}}\n"
                                         f"bob:\n  token: {TWICE}\n  role: admin\ncarol: {{token: {carol}}}\n")
    monkeypatch.setenv("BRIDGE_TOKEN", env)
    auth = TokenAuth.from_settings(FrontendSettings(token_file="tokens.yml"), tmp_path / "config.yml")
    assert auth.identify(f"Bearer {ROBOT}", "read") is None  # without auth_reads, reads ask for no token
    assert [auth.identify(f"Bearer {token}", "operate") for token in (ALICE, TWICE, carol, env)] == [
        Caller("alice", "operate"), Caller("bob", "admin"), Caller("carol", "operate"), Caller("env", "operate")]
    assert auth.identify(f"Bearer {TWICE}", "admin") == Caller("bob", "admin")
    with pytest.raises(Forbidden, match="^this needs the operate role; viewer has read$"):
        auth.identify(f"Bearer {ROBOT}", "operate")
    with pytest.raises(Forbidden, match="^this needs the admin role; alice has operate$"):
        auth.identify(f"Bearer {ALICE}", "admin")


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
    (tmp / "tokens.yml").write_text(yaml.safe_dump({"alice": ALICE, "robot": ROBOT,
                                                    "viewer": {"token": VIEWER, "role": "read"}}))
    config = write_config(tmp / "config.yml", MODULES, frontend={"token_file": "tokens.yml", "auth_reads": True},
                          history=shipped_history())
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


def test_with_auth_reads_a_read_token_reads_everything_and_writes_nothing(guarded: Guarded) -> None:
    url, viewer = guarded.url, bearer(VIEWER)
    assert httpx.put(f"{url}/setpoint/value", json={"value": 6}, headers=bearer(ALICE)).status_code == 200
    for path in ("/modules", "/setpoint/value", "/setpoint/value/history", "/metrics", "/invocations",
                 "/openapi.json"):
        assert httpx.get(url + path).status_code == 401, path
        assert httpx.get(url + path, headers=viewer).status_code == 200, path
    _, event = asyncio.run(first_event(url.replace("http://", "ws://") + "/ws", ["labbridge", subprotocol_for(VIEWER)]))
    assert "module" in event
    refused = httpx.put(f"{url}/setpoint/value", json={"value": 7}, headers=viewer)
    assert refused.status_code == 403
    assert refused.json() == {"error": "forbidden", "message": "this needs the operate role; viewer has read"}
    assert httpx.get(f"{url}/setpoint/value", headers=viewer).json()["value"] == 6


def test_the_token_file_the_manual_shows_gives_each_identity_its_role(tmp_path: Path) -> None:
    from tests.processes import ROOT

    section = (ROOT / "docs/how-to/tokens.md").read_text(encoding="utf-8").split("**Tokens.**", 1)[1]
    shown = section.split("```yaml\n# tokens.yml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "tokens.yml").write_text(shown)
    roles = {identity: holder.role for identity, holder in read_token_file(tmp_path / "tokens.yml").items()}
    assert roles == {"alice": "operate", "pump-script": "operate", "viewer": "read", "bob": "admin"}
