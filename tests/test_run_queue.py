"""The run queue's control on the real processes: moving and re-running runs, their live events on /ws, the log
line of a procedure that holds the event loop, and the audit log's record of every control request.

One stack with tokens (alice operates, bob administers) and an audit log, shared by the module (each test starts
from an idle, stopped queue); a stack of its own for the test that restarts the experiment process.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests.processes import running_stack, start_backend, wait_until, write_config

PROCEDURES_PY = '''
"""A lab's own procedures for these tests."""
import asyncio
import time
from typing import Annotated

from labbridge import Param, Run, procedure


@procedure(axes=["i"])
async def count(run: Run, points: Annotated[int, Param(minimum=1, maximum=100000, doc="How many.")] = 3,
                pause: Annotated[float, Param(minimum=0, maximum=10, unit="s", doc="Between points.")] = 0.0) -> None:
    """Record `points` points, `pause` seconds apart."""
    for i in range(points):
        await run.checkpoint()
        run.record(i=i)
        run.progress((i + 1) / points, f"point {i}")
        await asyncio.sleep(pause)


@procedure()
async def burst(run: Run) -> None:
    """Record 1000 points without awaiting, then wait a little."""
    for i in range(1000):
        run.record(i=i)
        run.progress((i + 1) / 1000, f"point {i}")
    await asyncio.sleep(0.3)


@procedure()
async def blocking(run: Run, seconds: Annotated[float, Param(minimum=0, maximum=5, unit="s", doc="Held.")] = 0.3) -> None:
    """Hold the event loop: a blocking call where an await belongs."""
    await asyncio.sleep(0)
    time.sleep(seconds)


@procedure()
async def broken(run: Run) -> None:
    """Fails at once."""
    raise RuntimeError("the sample holder is empty")
'''
ALICE = "739583827727e7f4ecf422644981d000"  # operate
BOB = "f34c4606d1c424d78065e1b81ce1385b"  # admin
AS_ALICE = {"Authorization": f"Bearer {ALICE}"}
AS_BOB = {"Authorization": f"Bearer {BOB}"}


def _config(folder: Path) -> Path:
    (folder / "lab_procedures.py").write_text(PROCEDURES_PY, encoding="utf-8")
    (folder / "tokens.yml").write_text(f"alice: {ALICE}\nbob: {{token: {BOB}, role: admin}}\n", encoding="utf-8")
    return write_config(folder / "config.yml", {"psu": {"class": "psu.PowerSupply", "simulate": True}},
                        procedures={name: {"function": f"lab_procedures.{name}"}
                                    for name in ("count", "burst", "blocking", "broken")},
                        runs={"interval": 0.1}, frontend={"token_file": "tokens.yml"}, audit_log="audit.jsonl")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Any]]:
    folder = tmp_path_factory.mktemp("queue")
    with running_stack(_config(folder), folder) as (backend, _, base):
        yield base, folder, backend


@pytest.fixture
def url(stack: tuple[str, Path, Any]) -> Iterator[str]:
    base = stack[0]
    yield base
    httpx.post(f"{base}/runs/queue/stop", headers=AS_ALICE)  # leave nothing running or queued for the next test
    for run in httpx.get(f"{base}/runs").json()["runs"]:
        if run["status"] in ("queued", "running", "paused"):
            httpx.delete(f"{base}/runs/{run['id']}", headers=AS_ALICE)
    wait_until(lambda: httpx.get(f"{base}/runs/queue").json()["current"] is None, 10, "idle queue")


def submit(url: str, procedure: str, **parameters: Any) -> str:
    metadata = parameters.pop("metadata", {})
    answer = httpx.post(f"{url}/runs", json={"procedure": procedure, "parameters": parameters, "metadata": metadata},
                        headers=AS_ALICE)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def move(url: str, ident: str, body: Any) -> httpx.Response:
    return httpx.post(f"{url}/runs/{ident}/move", json=body, headers=AS_ALICE)


def queued(url: str) -> list[str]:
    return list(httpx.get(f"{url}/runs/queue").json()["queued"])


def start_queue(url: str) -> None:
    assert httpx.post(f"{url}/runs/queue/start", headers=AS_BOB).status_code == 200


def wait_status(url: str, ident: str, *statuses: str) -> dict[str, Any]:
    wait_until(lambda: httpx.get(f"{url}/runs/{ident}").json()["status"] in statuses, 15, f"run {statuses}")
    answer: dict[str, Any] = httpx.get(f"{url}/runs/{ident}").json()
    return answer


def audit_lines(folder: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (folder / "audit.jsonl").read_bytes().splitlines()]


def test_a_queued_run_moves_to_a_place_or_by_places_and_the_queue_runs_in_the_new_order(url: str) -> None:
    a, b, c = (submit(url, "count") for _ in range(3))
    answer = move(url, c, {"to": 0})
    assert answer.status_code == 200 and answer.json()["queued"] == [c, a, b]
    assert move(url, a, {"by": -5}).json()["queued"] == [a, c, b]  # stops at the front
    assert move(url, b, {"by": 1}).json()["queued"] == [a, c, b]  # already last
    assert move(url, b, {"by": -1}).json()["queued"] == [a, b, c]
    state = httpx.get(f"{url}/runs/queue").json()
    assert [run["id"] for run in state["runs"]] == [a, b, c] and state["runs"][0]["status"] == "queued"
    assert move(url, c, {"to": 99}).json()["queued"] == [a, b, c]  # past the end: last
    for body, status, named in (({"to": -1}, 422, "to must be a place in the queue, 0 (next) or more; got -1"),
                                ({"to": 0, "by": 1}, 422, "body must be"), ({}, 422, "body must be"),
                                ({"by": "up"}, 422, "by must be a whole number"), ([0], 422, "JSON object")):
        refused = move(url, a, body)
        assert refused.status_code == status and named in refused.json()["message"], refused.text
    assert move(url, "nothing", {"to": 0}).status_code == 404
    assert httpx.post(f"{url}/runs/{a}/move", json={"to": 0}).status_code == 401  # operating needs a token
    start_queue(url)
    runs = [wait_status(url, ident, "completed") for ident in (a, b, c)]
    assert [run["started"] for run in runs] == sorted(run["started"] for run in runs)
    late = move(url, a, {"to": 0})
    assert late.status_code == 409 and late.json()["error"] == "already_finished"


def test_a_running_run_cannot_be_moved(url: str) -> None:
    running = submit(url, "count", points=1000, pause=0.05)
    start_queue(url)
    wait_status(url, running, "running")
    refused = move(url, running, {"to": 0})
    assert refused.status_code == 409 and refused.json()["error"] == "wrong_run_state"
    assert "only a queued run can be moved" in refused.json()["message"]


def test_a_past_run_is_queued_again_with_its_parameters_and_metadata_by_whoever_asks(url: str) -> None:
    first = submit(url, "count", points=4, metadata={"sample": "A12"})
    start_queue(url)
    wait_status(url, first, "completed")
    httpx.post(f"{url}/runs/queue/stop", headers=AS_ALICE)
    answer = httpx.post(f"{url}/runs/{first}/rerun", headers=AS_BOB)
    assert answer.status_code == 201, answer.text
    again = answer.json()
    assert answer.headers["location"] == f"/runs/{again['id']}" and again["id"] != first
    assert (again["procedure"], again["parameters"], again["metadata"], again["status"], again["queued_by"]) == (
        "count", {"points": 4, "pause": 0.0}, {"sample": "A12"}, "queued", "bob")
    assert queued(url) == [again["id"]]
    assert httpx.post(f"{url}/runs/nothing/rerun", headers=AS_ALICE).status_code == 404


def test_each_change_of_a_run_and_of_the_queue_is_published_on_the_websocket(url: str) -> None:
    async def watch() -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        async with websockets.connect(url.replace("http", "ws") + "/ws") as socket:
            ident = await asyncio.to_thread(submit, url, "burst")
            await asyncio.to_thread(start_queue, url)
            runs: list[dict[str, Any]] = []
            queues: list[dict[str, Any]] = []
            async with asyncio.timeout(15):
                while not runs or runs[-1]["status"] != "completed":
                    event = orjson.loads(await socket.recv())
                    if event.get("run", {}).get("id") == ident:
                        runs.append(event["run"])
                    elif "queue" in event:
                        queues.append(event["queue"])
            return ident, runs, queues

    ident, runs, queues = asyncio.run(watch())
    statuses = [run["status"] for run in runs]  # "queued" first, unless it came before the socket's subscription
    assert statuses[-1] == "completed" and "running" in statuses and statuses[0] in ("queued", "running")
    assert runs[-1]["points"] == 1000 and runs[-1]["progress"] == 1.0 and runs[-1]["href"] == f"/runs/{ident}"
    # 1000 points and progress reports without an await between them: one event says them all.
    during = [run for run in runs if run["status"] == "running"]
    assert len(during) <= 3 and during[-1]["points"] == 1000 and during[-1]["message"] == "point 999"
    assert any(queue["queued"] == [ident] for queue in queues)  # queued, then taken: current
    assert any(queue["current"] == ident and queue["started"] for queue in queues)


def test_a_procedure_that_holds_the_event_loop_is_in_the_log_with_the_time_it_took(
        url: str, stack: tuple[str, Path, Any]) -> None:
    ident = submit(url, "blocking", seconds=0.4)
    start_queue(url)
    wait_status(url, ident, "completed")
    backend = stack[2]
    wait_until(lambda: f"run {ident} (blocking) held the event loop" in backend.output, 5, "the log line")
    line = next(line for line in backend.output.splitlines() if f"run {ident} (blocking) held" in line)
    held = float(re.search(r"for ([\d.]+) s", line).group(1))  # type: ignore[union-attr]
    assert 0.4 <= held < 2, line
    quick = submit(url, "count", points=20)  # a procedure that awaits is never reported
    start_queue(url)
    wait_status(url, quick, "completed")
    assert f"run {quick} (count) held" not in backend.output


def test_every_control_request_and_a_run_s_failure_are_in_the_audit_log_with_identity_and_role(
        url: str, stack: tuple[str, Path, Any]) -> None:
    folder = stack[1]
    seen = len(audit_lines(folder))
    held = submit(url, "count", points=1000, pause=0.05)
    other = submit(url, "count")
    move(url, other, {"to": 0})
    move(url, held, {"to": -5})  # refused: on record with its error code
    httpx.post(f"{url}/runs/{held}/rerun", headers=AS_ALICE)
    assert httpx.post(f"{url}/runs/queue/start", headers=AS_ALICE).status_code == 403  # admin only
    httpx.post(f"{url}/runs/queue/stop", headers=AS_ALICE)
    httpx.delete(f"{url}/runs/{other}", headers=AS_ALICE)
    broken = submit(url, "broken")
    move(url, broken, {"to": 0})
    start_queue(url)
    failed = wait_status(url, broken, "failed")
    lines = audit_lines(folder)[seen:]
    control = [(r["op"], r["module"], r["attribute"], r["stage"], r["identity"], r["role"], r["outcome"])
               for r in lines if r["op"] != "run" and r["stage"] not in ("started", "notice")]
    assert control == [
        ("submit_run", "runs", "count", "finished", "alice", "operate", "ok"),
        ("submit_run", "runs", "count", "finished", "alice", "operate", "ok"),
        ("run_control", "runs", "move", "finished", "alice", "operate", "ok"),
        ("run_control", "runs", "move", "finished", "alice", "operate", "invalid_value"),
        ("run_control", "runs", "rerun", "finished", "alice", "operate", "ok"),
        ("run_queue", None, None, "refused", "alice", "operate", "forbidden"),  # the frontend's: not allowed
        ("run_queue", "runs", "stop", "finished", "alice", "operate", "ok"),
        ("run_control", "runs", "abort", "finished", "alice", "operate", "ok"),
        ("submit_run", "runs", "broken", "finished", "alice", "operate", "ok"),
        ("run_control", "runs", "move", "finished", "alice", "operate", "ok"),
        ("run_queue", "runs", "start", "finished", "bob", "admin", "ok")]
    started = [r for r in lines if r["stage"] == "started" and r["op"] != "run"]
    assert len(started) == len(control) - 1  # each on disk before it was acted on (not the frontend's refusal)
    assert [r["requested"] for r in lines if r["stage"] == "started"][2] == {"id": other, "do": "move", "to": 0}
    run = [(r["stage"], r["identity"], r["role"], r["outcome"]) for r in lines if r["op"] == "run" and r["id"] == broken]
    assert run == [("started", "alice", "operate", None), ("finished", "alice", "operate", "procedure_failed")]
    ended = next(r for r in lines if r["op"] == "run" and r["stage"] == "finished")
    assert ended["after"]["error"]["message"] == failed["error"]["message"] == "RuntimeError: the sample holder is empty"
    # People are told (experiment/safety/notices.py): a notice line, written just after the run's end.
    wait_until(lambda: any(r["op"] == "run_failed" for r in audit_lines(folder)[seen:]), 10, "the notice")
    notice = next(r for r in audit_lines(folder)[seen:] if r["op"] == "run_failed")
    assert (notice["stage"], notice["identity"], notice["after"]["run"]) == ("notice", "alice", broken)


def test_a_moved_queue_keeps_its_order_after_a_restart(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with running_stack(config, tmp_path) as (backend, _, url):
        a, b, c = (submit(url, "count") for _ in range(3))
        move(url, c, {"to": 0})
        backend.stop()
        again = start_backend(config, tmp_path / "backend-again.log")
        try:
            assert queued(url) == [c, a, b]
            assert httpx.get(f"{url}/runs", params={"status": "queued"}).json()["runs"][0]["id"] == b
        finally:
            again.stop()


def test_openapi_documents_each_procedure_s_body_and_every_status_of_the_run_routes(url: str) -> None:
    schema = httpx.get(f"{url}/openapi.json").json()
    paths = schema["paths"]
    bodies = paths["/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    count = next(body for body in bodies if body["title"] == "count")
    assert count["properties"]["procedure"] == {"type": "string", "enum": ["count"]}
    pause = count["properties"]["parameters"]["properties"]["pause"]
    assert (pause["type"], pause["unit"], pause["minimum"], pause["maximum"], pause["default"]) == (
        "number", "s", 0, 10, 0.0)
    assert count["properties"]["parameters"]["additionalProperties"] is False
    assert {body["title"] for body in bodies} == {"count", "burst", "blocking", "broken"}
    submit = paths["/runs"]["post"]["responses"]
    assert {"201", "401", "403", "404", "413", "422", "503"} <= set(submit) and "`unknown_procedure`" in submit["404"]["description"]
    assert "Location" in submit["201"]["headers"]
    move_ = paths["/runs/{run}/move"]["post"]
    assert {"200", "404", "409", "422"} <= set(move_["responses"]) and "`wrong_run_state`" in move_["responses"]["409"]["description"]
    assert move_["requestBody"]["content"]["application/json"]["schema"]["properties"]["by"]["type"] == "integer"
    assert {"201", "404", "422"} <= set(paths["/runs/{run}/rerun"]["post"]["responses"])
    assert {"200", "404", "409"} <= set(paths["/runs/{run}"]["delete"]["responses"])
    assert "queue" in paths["/runs/queue"]["get"]["responses"]["200"]["description"]


def test_a_misspelt_key_a_wrong_method_and_a_whole_float_get_the_right_answers(url: str) -> None:
    typo = httpx.post(f"{url}/runs", json={"procedure": "count", "parameter": {"points": 5}}, headers=AS_ALICE)
    assert typo.status_code == 422 and "unknown: parameter" in typo.json()["message"]
    a, b = submit(url, "count"), submit(url, "count")
    assert move(url, b, {"to": 0.0}).json()["queued"] == [b, a]  # JSON's 0.0 is a whole number
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        wrong = httpx.request(method, f"{url}/runs/queue", headers=AS_ALICE)
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET", (method, wrong.text)
    assert httpx.post(f"{url}/runs/{a}/data", headers=AS_ALICE).status_code == 405
    assert httpx.get(f"{url}/runs/{a}/data", params={"since": 2**60}).status_code == 422
