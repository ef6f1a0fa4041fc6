"""Who may write: bearer tokens, the audit log, and refusing an unprotected open network."""

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
