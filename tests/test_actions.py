"""Actions end to end, through both real processes: move, cycle, cancel, 409, 422, lost, live, tokens, docs."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests.processes import running_stack, start_backend, start_frontend, wait_until, write_config

MODULES: dict[str, dict[str, Any]] = {"module_a": {"class": "module_a.ModuleA", "simulate": True},
           "setpoint": {"class": "setpoint.Setpoint", "port": None, "limits": {"value": {"min": 0, "max": 1000}}}}
FINISHED = {"completed", "failed", "cancelled", "lost"}
ALICE = "alice-token-0123456789"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("actions")
    config = write_config(tmp / "config.yml", MODULES, frontend={"request_timeout": 2.0})
    with running_stack(config, tmp) as (_, _, url):
        yield url


@pytest.fixture()
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client
        for status in ("pending", "running"):  # a failed test leaves nothing running for the next
            for invocation in client.get("/invocations", params={"status": status}).json()["invocations"]:
                client.delete(invocation["href"])


def follow(client: httpx.Client, href: str, timeout: float = 20.0) -> dict[str, Any]:
    """The invocation at `href` once finished, followed with long polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        invocation: dict[str, Any] = client.get(href, params={"wait": 5}).json()
        if invocation["status"] in FINISHED:
            return invocation
    raise TimeoutError(f"{href} did not finish within {timeout} s")


def start(client: httpx.Client, path: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    response = client.post(path, json=arguments or {}, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == body["href"] == f"/invocations/{body['id']}"
    return body


def test_a_move_reports_progress_reads_answer_fast_a_put_is_refused_and_cancel_stops_the_carriage(
        client: httpx.Client) -> None:
    assert client.put("/module_a/position", json={"value": 0}).status_code == 200
    move = start(client, "/module_a/move", {"to": 80, "speed": 10})
    assert move["status"] == "pending" and move["arguments"] == {"to": 80.0, "speed": 10.0}
    positions, progress, read_times = [], [], []
    for _ in range(12):
        begun = time.perf_counter()
        reading = client.get("/module_a/position")
        read_times.append(time.perf_counter() - begun)
        positions.append(reading.json()["value"])
        progress.append(client.get(move["href"]).json()["progress"])
        time.sleep(0.1)
    # Each read takes a few ms; on a loaded 2-core machine one may be held up by the scheduler, never by the
    # move (a read that waited for the move would take seconds).
    assert sorted(read_times)[-2] < 0.05 and max(read_times) < 0.5, read_times
    # The first read may come before the move's first step (it is still pending): 0 is allowed there.
    assert 0 <= positions[0] < positions[-1] < 80 and positions == sorted(positions) and len(set(positions)) >= 9
    reported = [p for p in progress if p is not None]
    assert reported == sorted(reported) and 0 < reported[0] < reported[-1] < 1 and len(set(reported)) >= 8

    refused = client.put("/module_a/position", json={"value": 10})
    assert refused.status_code == 409 and refused.json()["error"] == "busy"
    assert f"cancel it with DELETE {move['href']}" in refused.json()["message"]
    assert client.put("/module_a/speed", json={"value": 12}).status_code == 200  # not owned by the move

    begun = time.perf_counter()
    cancelled = client.delete(move["href"])
    took = time.perf_counter() - begun
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled" and took < 0.5, took
    stopped = client.get("/module_a/position").json()["value"]
    assert positions[-1] < stopped < 80 and cancelled.json()["message"] == f"stopped at {stopped:g} mm"
    time.sleep(0.3)
    assert client.get("/module_a/position").json()["value"] == stopped
    assert client.get("/module_a/moving").json()["value"] is False
    assert client.delete(move["href"]).status_code == 409


def test_a_cycle_completes_with_its_result(client: httpx.Client) -> None:
    client.put("/module_a/position", json={"value": 10})
    client.put("/module_a/speed", json={"value": 50})
    cycle = start(client, "/module_a/cycle", {"count": 3, "amplitude": 10})
    done = follow(client, cycle["href"])
    assert done["status"] == "completed" and done["progress"] == 1.0, done
    result = done["result"]
    assert result["cycles"] == 3 and len(result["peak_force"]) == 3
    assert all(f == pytest.approx(0.8 * 20 + 0.05 * 50, abs=0.1) for f in result["peak_force"])
    assert result["max_force"] == max(result["peak_force"])
    assert client.get("/module_a/position").json()["value"] == 10.0
    assert client.get("/module_a/trace").json()["value"][0] == pytest.approx(0.8 * 20 + 2.5, abs=0.05)  # last stroke


@pytest.mark.parametrize(("body", "code", "message"), [
    ({"to": 150}, "invalid_value", "to must be 0 to 100 mm; got 150"),
    ({"to": 50, "speed": 100}, "invalid_value", "speed must be 0.1 to 50 mm/s; got 100"),
    ({"to": "far"}, "invalid_value", "to must be a float; got 'far'"),
    ({}, "invalid_value", "move needs the argument 'to' (a float, 0 to 100 mm)"),
    ({"to": 5, "sped": 3}, "invalid_value", "move has no parameter 'sped'; its parameters: to, speed"),
    (b"[5]", "malformed_request", "body must be a JSON object of arguments"),
    (b"{to: 5}", "malformed_request", "body must be a JSON object of arguments"),
])
def test_an_invalid_argument_gets_422_and_nothing_runs(client: httpx.Client, body: Any, code: str, message: str) -> None:
    client.put("/module_a/position", json={"value": 33})
    before = client.get("/invocations", params={"module": "module_a"}).json()["invocations"]
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    refused = client.post("/module_a/move", content=content)
    assert refused.status_code == 422 and refused.json()["error"] == code and message in refused.json()["message"]
    assert client.get("/invocations", params={"module": "module_a"}).json()["invocations"] == before
    assert client.get("/module_a/position").json()["value"] == 33.0


def test_unknown_actions_and_a_post_to_an_attribute_are_refused(client: httpx.Client) -> None:
    unknown = client.post("/module_a/jump")
    assert unknown.status_code == 404 and unknown.json()["message"] == (
        "module 'module_a' has no action 'jump'; known: move, home, stop, cycle")
    attribute = client.post("/module_a/position", json={"value": 1})
    assert attribute.status_code == 405 and attribute.headers["allow"] == "GET, PUT"
    assert "GET reads it, PUT sets it" in attribute.json()["message"]
    for read_only in ("force", "attributes"):  # neither may be PUT: the message does not say it may
        refused = client.post(f"/module_a/{read_only}")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET", refused.text
        assert "PUT" not in refused.json()["message"] and "GET reads it;" in refused.json()["message"]
    assert client.post("/module_b/move").json()["error"] == "unknown_module"
    assert client.get("/invocations/0123abcd").status_code == 404
    assert client.get("/invocations", params={"status": "done"}).status_code == 422
    assert client.get("/invocations/0123abcd", params={"wait": 61}).json()["error"] == "malformed_request"


def test_a_long_poll_outlasts_the_frontend_request_timeout(client: httpx.Client) -> None:
    client.put("/module_a/position", json={"value": 0})
    move = start(client, "/module_a/move", {"to": 30, "speed": 10})  # 3 s, the request timeout is 2 s
    time.sleep(0.2)
    begun = time.perf_counter()
    done = client.get(move["href"], params={"wait": 10}).json()
    assert done["status"] == "completed" and done["result"] == 30.0 and 2.0 < time.perf_counter() - begun < 4.0
    assert done["message"] == "arrived at 30 mm"


def test_a_ramp_of_the_setpoint_changes_it_steadily_to_its_target(client: httpx.Client) -> None:
    client.put("/setpoint/value", json={"value": 0})
    assert client.post("/setpoint/ramp", json={"to": 2000, "rate": 10}).json()["message"] == (
        "to must be 0 to 1000; got 2000")  # the limits config.yml narrows
    ramp = start(client, "/setpoint/ramp", {"to": 20, "rate": 40})
    time.sleep(0.2)
    midway = client.get("/setpoint/value").json()["value"]
    assert 0 < midway < 20
    assert follow(client, ramp["href"])["result"] == 20.0
    assert client.get("/setpoint/value").json()["value"] == 20.0


def test_invocation_changes_arrive_on_the_websocket(client: httpx.Client, url: str) -> None:
    client.put("/setpoint/value", json={"value": 0})

    async def watch() -> list[dict[str, Any]]:
        async with websockets.connect(url.replace("http", "ws") + "/ws") as socket:
            ramp = await asyncio.to_thread(start, client, "/setpoint/ramp", {"to": 10, "rate": 40})
            seen: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while not seen or seen[-1]["status"] not in FINISHED:
                    event = orjson.loads(await socket.recv())
                    if event.get("invocation", {}).get("id") == ramp["id"]:
                        seen.append(event["invocation"])
            return seen

    seen = asyncio.run(watch())
    assert [s["status"] for s in seen][-1] == "completed" and "running" in [s["status"] for s in seen]
    progress = [s["progress"] for s in seen if s["progress"] is not None]
    assert progress == sorted(progress) and len(progress) > 3 and progress[-1] == 1.0


def test_modules_list_actions_and_openapi_has_one_operation_per_action(client: httpx.Client, url: str) -> None:
    actions = client.get("/modules").json()["modules"]["module_a"]["actions"]
    assert list(actions) == ["move", "home", "stop", "cycle"]
    assert actions["move"]["url"] == f"{url}/module_a/move"
    assert actions["cycle"]["parameters"]["required"] == ["count", "amplitude"]
    assert client.get("/module_a").json()["actions"]["stop"]["owns"] == []
    described = client.get("/module_a/move").json()
    assert described["action"] == "move" and described["parameters"]["properties"]["to"]["unit"] == "mm"
    paths = client.get("/openapi.json").json()["paths"]
    post = paths["/module_a/move"]["post"]
    assert post["operationId"] == "start_module_a_move" and "201" in post["responses"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["properties"]["to"]["maximum"] == 100
    assert paths["/setpoint/ramp"]["post"]["requestBody"]["required"] is True
    assert paths["/module_a/home"]["post"]["requestBody"]["required"] is False
    assert set(paths["/invocations/{invocation}"]) == {"get", "delete"} and "/invocations" in paths


def test_killing_the_experiment_process_during_a_move_reports_it_lost_and_a_frontend_restart_changes_nothing(
        tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES)
    backend = start_backend(config, tmp_path / "backend.log")
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            move = start(client, "/module_a/move", {"to": 90, "speed": 5})
            wait_until(lambda: client.get(move["href"]).json()["status"] == "running", 5, "move running")
            frontend.stop()
            frontend, url = start_frontend(config, tmp_path / "frontend2.log", port=int(url.rsplit(":", 1)[1]))
            assert client.get(move["href"]).json()["status"] == "running"  # the frontend keeps nothing
            backend.signal(signal.SIGKILL)
            backend.wait(5)
            backend = start_backend(config, tmp_path / "backend2.log")
            lost = client.get(move["href"]).json()
            assert lost["status"] == "lost" and lost["arguments"] == {"to": 90.0, "speed": 5.0}
            assert lost["error"]["error"] == "lost" and lost["finished"] >= move["created"]
            assert [i["id"] for i in client.get("/invocations", params={"status": "lost"}).json()["invocations"]] == [
                move["id"]]
            assert client.put("/module_a/position", json={"value": 5}).status_code == 200  # nothing owns it now
    finally:
        frontend.stop()
        backend.stop()


def test_tokens_apply_to_post_and_delete_as_to_put_and_both_are_audited(tmp_path: Path) -> None:
    (tmp_path / "tokens.yml").write_text(f"alice: {ALICE}\n")
    config = write_config(tmp_path / "config.yml", MODULES,
                          frontend={"token_file": "tokens.yml"}, audit_log="audit.jsonl")
    with running_stack(config, tmp_path) as (_, _, url), httpx.Client(base_url=url, timeout=10) as client:
        alice = {"Authorization": f"Bearer {ALICE}"}
        assert client.post("/module_a/move", json={"to": 50}).status_code == 401
        assert client.post("/module_a/move", json={"to": 50},
                           headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 403
        move = start(client, "/module_a/move", {"to": 50, "speed": 5}, headers=alice)
        assert client.get(move["href"]).status_code == 200  # reads need no token (auth_reads is false)
        assert client.delete(move["href"]).status_code == 401
        assert client.delete(move["href"], headers=alice).status_code == 202
        records = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    # The frontend records what it refused (no token, a wrong one), the experiment process the rest.
    assert [(r["op"], r["stage"], r["identity"], r["outcome"]) for r in records] == [
        ("invoke", "refused", None, "not_authenticated"), ("invoke", "refused", None, "forbidden"),
        ("invoke", "started", "alice", None), ("cancel", "refused", None, "not_authenticated"),
        ("cancel", "started", "alice", None), ("cancel", "finished", "alice", "ok"),
        ("invoke", "finished", "alice", "cancelled")]
    assert all(r["client"] == "127.0.0.1" for r in records)
    assert [r["id"] for r in records if r["op"] == "invoke" and r["stage"] != "refused"] == [move["id"]] * 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_clean_stop_during_a_move_cancels_it_and_a_restart_keeps_it_and_every_finished_one(
        tmp_path: Path, sig: int) -> None:
    import bridge_client  # the client waiting on the move hears ActionCancelled, not "no such invocation"

    config = write_config(tmp_path / "config.yml", MODULES)
    backend = start_backend(config, tmp_path / "backend.log")
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    try:
        with httpx.Client(base_url=url, timeout=10) as client, bridge_client.connect(url) as lab:
            cycle = start(client, "/module_a/cycle", {"count": 1, "amplitude": 1})
            assert follow(client, cycle["href"])["status"] == "completed"
            move = lab["module_a"].move(to=90, speed=5)
            wait_until(lambda: move.status == "running", 5, "move running")
            backend.signal(sig)
            assert backend.wait(10) == 0  # within the 10 s a supervisor waits before kill -9
            backend = start_backend(config, tmp_path / "backend2.log")
            with pytest.raises(bridge_client.ActionCancelled, match="was cancelled: stopped at"):  # its clean-up ran
                move.wait(timeout=10)
            cancelled = client.get(move.href).json()
            assert cancelled["status"] == "cancelled" and cancelled["error"] is None
            assert cancelled["finished"] >= cancelled["started"] >= move.created
            assert client.get(cycle["href"]).json()["status"] == "completed"  # finished ones are kept too
            assert client.put("/module_a/position", json={"value": 5}).status_code == 200  # nothing owns it now
    finally:
        frontend.stop()
        backend.stop()
