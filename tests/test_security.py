"""Who may write: bearer tokens and their roles, the audit log, and refusing an unprotected open network."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.processes import ROOT, running_stack, write_config

ALICE = "alice-token-0123456789abcdef"
ROBOT = "robot-token-fedcba9876543210"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("secured")
    (tmp / "tokens.yml").write_text(yaml.safe_dump({"alice": ALICE, "robot": ROBOT}))
    config = write_config(tmp / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"token_file": "tokens.yml"}, audit_log="audit/puts.jsonl")
    with running_stack(config, tmp) as (_, _, url):
        yield url, tmp / "audit" / "puts.jsonl"


def audit_lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_put_without_token_is_401(secured: tuple[str, Path]) -> None:
    url, _ = secured
    response = httpx.put(f"{url}/module_a/position", json={"value": 5})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response.headers["www-authenticate"] == "Bearer"


def test_put_with_wrong_token_is_403(secured: tuple[str, Path]) -> None:
    url, _ = secured
    response = httpx.put(f"{url}/module_a/position", json={"value": 5}, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_put_with_a_known_token_works_and_reads_stay_open(secured: tuple[str, Path]) -> None:
    url, _ = secured
    ok = httpx.put(f"{url}/module_a/position", json={"value": 12.5}, headers={"Authorization": f"Bearer {ALICE}"})
    assert ok.status_code == 200 and ok.json() == {"module": "module_a", "attribute": "position", "value": 12.5, "unit": "mm"}
    assert httpx.get(f"{url}/module_a/position").json()["value"] == 12.5


def test_every_put_accepted_or_refused_is_in_the_audit_log(secured: tuple[str, Path]) -> None:
    url, log = secured
    robot = {"Authorization": f"Bearer {ROBOT}"}
    httpx.put(f"{url}/module_a/position", json={"value": 20}, headers=robot)
    before = len(audit_lines(log))
    httpx.put(f"{url}/module_a/position", json={"value": 30}, headers=robot)
    httpx.put(f"{url}/module_a/position", json={"value": 300}, headers=robot)
    httpx.put(f"{url}/module_a/position", json={"value": 40})
    started, accepted, refused, anonymous = audit_lines(log)[before:]
    assert (started["stage"], accepted["stage"], started["id"]) == ("started", "finished", accepted["id"])
    assert accepted["identity"] == "robot" and accepted["client"] == "127.0.0.1"
    assert (accepted["module"], accepted["attribute"]) == ("module_a", "position")
    assert (accepted["requested"], accepted["before"], accepted["after"], accepted["outcome"]) == (30, 20.0, 30.0, "ok")
    # Refused by the experiment process (the limits) and by the frontend (no token): never sent to the instrument.
    assert (refused["stage"], refused["requested"], refused["outcome"], refused["identity"]) == (
        "refused", 300, "invalid_value", "robot")
    assert (anonymous["stage"], anonymous["identity"], anonymous["outcome"]) == ("refused", None, "not_authenticated")
    assert isinstance(accepted["time"], float)


def test_openapi_declares_the_bearer_scheme_where_a_token_is_needed(secured: tuple[str, Path]) -> None:
    url, _ = secured
    schema = httpx.get(f"{url}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    put, get = schema["paths"]["/module_a/position"]["put"], schema["paths"]["/module_a/position"]["get"]
    assert put["security"] == [{"HTTPBearer": []}] and "401" in put["responses"]
    assert "security" not in get and "401" not in get["responses"]  # reads are open without auth_reads


def test_reads_can_be_protected_too(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"auth_reads": True})
    with running_stack(config, tmp_path, env={"BRIDGE_TOKEN": ALICE}) as (_, _, url):
        assert httpx.get(f"{url}/module_a/position").status_code == 401
        assert httpx.get(f"{url}/").status_code == 401
        assert httpx.get(f"{url}/module_a/position", headers={"Authorization": f"Bearer {ALICE}"}).status_code == 200


def test_frontend_refuses_an_open_address_without_a_token(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"host": "0.0.0.0"})
    result = subprocess.run([sys.executable, "main.py"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={**__import__("os").environ, "EXPERIMENT_CONFIG": str(config)})
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in result.stderr
    assert "Traceback" not in result.stderr



async def _handshake_on(app: Any, address: str, path: str = "/ws") -> list[dict[str, Any]]:
    """What the app sends back to a WebSocket handshake that came in on `address` (the ASGI scope's server)."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"localhost:8000")], "subprotocols": [],
             "server": (address, 8000), "client": ("192.0.2.99", 50000)}
    await app(scope, receive, send)
    return sent


def test_live_values_are_refused_on_an_open_network_like_every_read(tmp_path: Path) -> None:
    # As `uvicorn main:app --host 0.0.0.0` reached over the LAN with no token configured: the app sees the
    # address a request came in on.  Handed to the app in process: tests never listen beyond loopback.
    from labbridge.core.config import load_config
    from labbridge.frontend.app import create_app

    config = write_config(tmp_path / "config.yml", {"setpoint": {"class": "setpoint.Setpoint", "port": None}})
    app = create_app(load_config(config), config)
    try:
        assert asyncio.run(_handshake_on(app, "192.0.2.10")) == [
            {"type": "websocket.close", "code": 1008, "reason": ""}]
        assert asyncio.run(_handshake_on(app, "127.0.0.1"))[0]["type"] == "websocket.accept"  # loopback: it opens
    finally:
        app.state.bridge.close()


# Roles: `alice` in the old one-token-per-line form (operate), a read-only viewer, an administrator.
VIEWER = "viewer-token-0123456789abcdef"
BOSS = "boss-token-fedcba9876543210ab"
ROLES_YML = f"""\
alice: {ALICE}
viewer: {{token: {VIEWER}, role: read}}
boss:
  token: {BOSS}
  role: admin
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def with_roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("roles")
    (tmp / "tokens.yml").write_text(ROLES_YML)
    config = write_config(tmp / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"token_file": "tokens.yml"}, audit_log="audit.jsonl")
    with running_stack(config, tmp) as (_, _, url):
        yield url, tmp / "audit.jsonl"


def start_slow_move(url: str, token: str) -> str:
    started = httpx.post(f"{url}/module_a/move", json={"to": 90, "speed": 0.1}, headers=bearer(token))
    assert started.status_code == 201, started.text
    return str(started.json()["href"])


def test_a_read_token_reads_and_every_write_is_403_naming_the_role_needed(with_roles: tuple[str, Path]) -> None:
    url, _ = with_roles
    assert httpx.get(f"{url}/module_a/position", headers=bearer(VIEWER)).status_code == 200
    href = start_slow_move(url, ALICE)
    try:
        for method, path, body in (("PUT", "/module_a/speed", {"value": 5}), ("POST", "/module_a/stop", {}),
                                   ("DELETE", href, None)):
            refused = httpx.request(method, url + path, json=body, headers=bearer(VIEWER))
            assert refused.status_code == 403, (method, refused.text)
            assert refused.json() == {"error": "forbidden",
                                      "message": "this needs the operate role; viewer has read"}
            assert httpx.request(method, url + path, json=body).status_code == 401  # no token: as before
        assert httpx.get(url + href).json()["status"] in ("pending", "running")  # the viewer stopped nothing
    finally:
        assert httpx.delete(url + href, headers=bearer(BOSS)).status_code == 202  # admin may all operate may


def test_whoever_operates_can_cancel_an_action_someone_else_started(with_roles: tuple[str, Path]) -> None:
    url, _ = with_roles
    href = start_slow_move(url, BOSS)
    assert httpx.delete(url + href, headers=bearer(ALICE)).status_code == 202
    assert httpx.get(f"{url}{href}?wait=5").json()["status"] == "cancelled"


def test_the_audit_log_names_the_identity_and_its_role(with_roles: tuple[str, Path]) -> None:
    url, log = with_roles
    before = len(audit_lines(log))
    assert httpx.put(f"{url}/module_a/speed", json={"value": 7}, headers=bearer(VIEWER)).status_code == 403
    assert httpx.put(f"{url}/module_a/speed", json={"value": 7}, headers=bearer(ALICE)).status_code == 200
    assert httpx.put(f"{url}/module_a/speed", json={"value": 8}, headers=bearer(BOSS)).status_code == 200
    lines = audit_lines(log)[before:]
    assert [(line["stage"], line["identity"], line["role"], line["outcome"]) for line in lines] == [
        ("refused", "viewer", "read", "forbidden"),
        ("started", "alice", "operate", None), ("finished", "alice", "operate", "ok"),  # old form: operate
        ("started", "boss", "admin", None), ("finished", "boss", "admin", "ok")]


def test_openapi_says_403_comes_with_a_role_that_is_not_enough(with_roles: tuple[str, Path]) -> None:
    url, _ = with_roles
    schema = httpx.get(f"{url}/openapi.json").json()
    for path, method in (("/module_a/position", "put"), ("/module_a/move", "post"),
                         ("/invocations/{invocation}", "delete")):
        forbidden = schema["paths"][path][method]["responses"]["403"]["description"]
        assert "role" in forbidden and "`forbidden`" in forbidden, (path, method)
    assert "`operate`" in schema["components"]["securitySchemes"]["HTTPBearer"]["description"]


def test_an_endpoint_can_be_reserved_to_the_admin_role(tmp_path: Path) -> None:
    # No endpoint needs `admin` yet (a run queue will); one declared here as that work will declare it.
    from fastapi import Depends

    from labbridge.core.config import load_config
    from labbridge.frontend.access import needs_admin
    from labbridge.frontend.app import create_app

    (tmp_path / "tokens.yml").write_text(ROLES_YML)
    config = write_config(tmp_path / "config.yml", {"setpoint": {"class": "setpoint.Setpoint", "port": None}},
                          frontend={"token_file": "tokens.yml"})
    app = create_app(load_config(config), config)
    app.add_api_route("/queue/all/start", lambda: {"started": True}, methods=["POST"],
                      dependencies=[Depends(needs_admin)])

    async def post_as(token: str | None) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            return await client.post("/queue/all/start", headers=bearer(token) if token else {})

    try:
        assert asyncio.run(post_as(BOSS)).json() == {"started": True}
        for identity, token, role in (("alice", ALICE, "operate"), ("viewer", VIEWER, "read")):
            refused = asyncio.run(post_as(token))
            assert refused.status_code == 403
            assert refused.json() == {"error": "forbidden",
                                      "message": f"this needs the admin role; {identity} has {role}"}
        assert asyncio.run(post_as(None)).status_code == 401
    finally:
        app.state.bridge.close()
