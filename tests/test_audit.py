"""The audit log tells the truth: every write that reaches an instrument is on disk whichever process is
killed when, a refused write is recorded with its real reason, and the client's address cannot be forged."""

from __future__ import annotations

import asyncio
import math
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml

from labbridge.core.audit import REFUSALS_PER_SECOND, AuditLog
from labbridge.core.config import ModuleSettings
from labbridge.core.errors import DeadlineExceeded, InstrumentTimeout, InvalidValue
from labbridge.core.protocol import Request
from labbridge.experiment.experiment import Experiment
from labbridge.tools.launcher import frontend_command
from tests.fixture_modules import SlowWriter
from tests.processes import Process, free_port, running_stack, start_backend, start_frontend, wait_until, write_config

SLOW = {"class": "tests.fixture_modules.SlowWriter", "port": None}
SETPOINT = {"class": "setpoint.Setpoint", "port": None}


def audited_config(tmp: Path, modules: dict[str, dict[str, Any]], frontend: dict[str, Any] | None = None) -> Path:
    journal = {"simulator": {"journal": str(tmp / "journal.txt")}}
    return write_config(tmp / "config.yml", {name: {**spec, **journal} for name, spec in modules.items()},
                        frontend=frontend, audit_log="audit.jsonl")


def audit_lines(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "audit.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def journal(tmp: Path) -> list[str]:
    path = tmp / "journal.txt"
    return path.read_text().splitlines() if path.exists() else []


def put_in_background(url: str, value: Any) -> tuple[threading.Thread, list[httpx.Response | Exception]]:
    answers: list[httpx.Response | Exception] = []

    def put() -> None:
        try:
            answers.append(httpx.put(f"{url}/slow/value", json={"value": value}, timeout=10))
        except httpx.HTTPError as exc:
            answers.append(exc)

    thread = threading.Thread(target=put)
    thread.start()
    return thread, answers


def test_a_write_in_flight_when_the_frontend_is_killed_is_recorded_with_its_outcome(tmp_path: Path) -> None:
    config = audited_config(tmp_path, {"slow": SLOW})
    with running_stack(config, tmp_path) as (_, frontend, url):
        thread, _ = put_in_background(url, 7)
        wait_until(lambda: "start 7.0" in journal(tmp_path), 10, "the write reaching the instrument")
        frontend.signal(signal.SIGKILL)  # the instrument is applying the value, nobody waits for the answer
        thread.join(10)
        wait_until(lambda: "done 7.0" in journal(tmp_path), 10, "the instrument finishing the write")
        wait_until(lambda: any(line["stage"] == "finished" for line in audit_lines(tmp_path)), 10,
                   "the write's outcome in the audit log")
    started, finished = audit_lines(tmp_path)
    assert started["stage"] == "started" and finished["id"] == started["id"]
    assert (started["module"], started["attribute"], started["requested"], started["before"]) == ("slow", "value", 7, 0.0)
    assert started["client"] == "127.0.0.1" and started["op"] == "put"
    assert (finished["after"], finished["outcome"]) == (7.0, "ok")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only")
def test_a_write_cut_short_by_killing_the_experiment_process_is_visibly_unknown(tmp_path: Path) -> None:
    config = audited_config(tmp_path, {"slow": SLOW})
    with running_stack(config, tmp_path) as (backend, _, url):
        thread, answers = put_in_background(url, 8)
        wait_until(lambda: "start 8.0" in journal(tmp_path), 10, "the write reaching the instrument")
        backend.signal(signal.SIGKILL)  # between "sent to the instrument" and "its answer"
        thread.join(10)
    (answer,) = answers
    assert isinstance(answer, httpx.Response) and answer.status_code == 503
    assert "outcome is unknown" in answer.json()["message"]
    # On disk before the instrument was called, no outcome after it; the frontend's line of the same id says
    # nobody answered.
    started, unanswered = audit_lines(tmp_path)
    assert (started["stage"], started["requested"], started["outcome"]) == ("started", 8, None)
    assert (unanswered["stage"], unanswered["requested"], unanswered["outcome"]) == (
        "unanswered", 8, "backend_unavailable")
    assert unanswered["id"] == started["id"] and unanswered["client"] == started["client"] == "127.0.0.1"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only")
def test_a_write_waiting_its_turn_when_the_experiment_process_dies_is_on_record(tmp_path: Path) -> None:
    """The experiment process had taken it in but never started it, so only the frontend can record it."""
    config = audited_config(tmp_path, {"slow": SLOW})
    with running_stack(config, tmp_path) as (backend, _, url):
        first, _ = put_in_background(url, 8)
        wait_until(lambda: "start 8.0" in journal(tmp_path), 10, "the first write reaching the instrument")
        second, answers = put_in_background(url, 9)
        wait_until(lambda: httpx.get(f"{url}/health").json()["modules"]["slow"]["queued"] == 2, 5,
                   "the second write waiting its turn")
        backend.signal(signal.SIGKILL)
        first.join(10)
        second.join(10)
    (answer,) = answers
    assert isinstance(answer, httpx.Response) and answer.status_code == 503
    lines = audit_lines(tmp_path)
    assert sorted((line["stage"], line["requested"]) for line in lines) == [
        ("started", 8), ("unanswered", 8), ("unanswered", 9)]
    waiting = next(line for line in lines if line["requested"] == 9)
    assert waiting["id"] and waiting["outcome"] == "backend_unavailable" and "start 9.0" not in journal(tmp_path)
    assert not any(line["id"] == waiting["id"] and line["stage"] == "started" for line in lines)


def test_a_value_too_deep_to_forward_is_422_and_recorded(tmp_path: Path) -> None:
    config = audited_config(tmp_path, {"slow": SLOW})
    with running_stack(config, tmp_path) as (_, _, url):
        body = '{"value": ' + "[" * 300 + "]" * 300 + "}"
        response = httpx.put(f"{url}/slow/value", content=body)
        assert response.status_code == 422 and response.json()["error"] == "malformed_request"
        huge = httpx.put(f"{url}/slow/value", json={"value": [1.5] * 100_000})
        assert huge.status_code == 422 and huge.json()["error"] == "invalid_value"
    deep, large = audit_lines(tmp_path)
    assert (deep["stage"], deep["outcome"]) == ("refused", "malformed_request")
    assert deep["requested"]["truncated"].startswith("[[[[")
    assert (large["stage"], large["outcome"]) == ("refused", "invalid_value")  # refused by the experiment process
    assert large["requested"]["bytes"] == len(orjson.dumps([1.5] * 100_000))
    assert len(orjson.dumps(large)) < 5000
    assert journal(tmp_path) == []


def test_a_client_gone_mid_body_is_recorded_as_such_and_nothing_is_sent(tmp_path: Path) -> None:
    config = audited_config(tmp_path, {"slow": SLOW})
    with running_stack(config, tmp_path) as (_, _, url):
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port)) as sock:
            sock.sendall(b"PUT /slow/value HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"value\": 5")
        wait_until(lambda: len(audit_lines(tmp_path)) == 1, 10, "the audit line of the abandoned write")
        assert httpx.get(f"{url}/slow/value").json()["value"] == 0.0
    (line,) = audit_lines(tmp_path)
    assert (line["stage"], line["outcome"], line["module"]) == ("refused", "client_disconnected", "slow")
    assert journal(tmp_path) == []


def start_main_py(config: Path, log: Path, port: int) -> tuple[Process, str]:
    proc = Process([sys.executable, "main.py"], log, env={"EXPERIMENT_CONFIG": str(config)})
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: not proc.alive() or _answers(url), 15, "python main.py serving")
    assert proc.alive(), proc.output
    return proc, url


def start_demo_frontend(config: Path, log: Path, port: int) -> tuple[Process, str]:
    proc = Process(frontend_command(sys.executable, port), log, env={"EXPERIMENT_CONFIG": str(config)})
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: not proc.alive() or _answers(url), 15, "demo.py's frontend serving")
    assert proc.alive(), proc.output
    return proc, url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/static/style.css", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("started_as", ["uvicorn main:app", "python main.py", "demo.py"])
def test_x_forwarded_for_is_believed_only_from_a_configured_proxy(tmp_path: Path, started_as: str) -> None:
    port = free_port()
    config = audited_config(tmp_path, {"setpoint": SETPOINT}, frontend={"port": port})
    # The same stack and audit log, with 127.0.0.1 declared a proxy.
    trusting = tmp_path / "trusting.yml"
    settings = yaml.safe_load(config.read_text())
    settings["frontend"]["trusted_proxies"] = ["127.0.0.1", "::1"]
    trusting.write_text(yaml.safe_dump(settings))
    start = {"uvicorn main:app": lambda cfg, log: start_frontend(cfg, log, port=port),
             "python main.py": lambda cfg, log: start_main_py(cfg, log, port),
             "demo.py": lambda cfg, log: start_demo_frontend(cfg, log, port)}[started_as]
    backend = start_backend(config, tmp_path / "backend.log")
    try:
        for cfg in (config, trusting):
            frontend, url = start(cfg, tmp_path / f"{cfg.stem}.log")
            try:
                forged = {"X-Forwarded-For": "203.0.113.9"}
                assert httpx.put(f"{url}/setpoint/value", json={"value": 3}, headers=forged).status_code == 200
                assert httpx.put(f"{url}/setpoint/value", content=b"{", headers=forged).status_code == 422
            finally:
                frontend.stop()
    finally:
        backend.stop()
    clients = [(line["stage"], line["client"]) for line in audit_lines(tmp_path)]
    # A loopback client's X-Forwarded-For is ignored: the log has its real address, in both processes' lines ...
    assert clients[:3] == [("started", "127.0.0.1"), ("finished", "127.0.0.1"), ("refused", "127.0.0.1")]
    # ... unless 127.0.0.1 is a proxy config.yml trusts: then the address it forwards is the client's.
    assert clients[3:] == [("started", "203.0.113.9"), ("finished", "203.0.113.9"), ("refused", "203.0.113.9")]


def slow_writer(tmp: Path, seconds: float) -> SlowWriter:
    settings = ModuleSettings.model_validate({"class": "tests.fixture_modules.SlowWriter", "timeout": 0.3,
                                              "connect_timeout": 0.1,
                                              "simulator": {"journal": str(tmp / "journal.txt"), "seconds": seconds}})
    return SlowWriter("slow", settings)


def put(value: Any, timeout: float = 5.0) -> Request:
    return Request.new("put", "slow", "value", value, timeout=timeout)


def test_every_way_a_write_can_end_is_recorded_by_the_experiment_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        experiment = Experiment({"slow": slow_writer(tmp_path, 5.0)})  # each write outlasts the module's timeout
        experiment.audit = AuditLog(tmp_path / "audit.jsonl")
        with pytest.raises(InvalidValue):
            await experiment.handle(put(2e9))  # refused at once: the line says so
        with pytest.raises(InstrumentTimeout):
            await experiment.handle(put(1.0))  # reached the instrument, which did not answer in time
        hanging = asyncio.create_task(experiment.handle(put(2.0)))
        while "start 2.0" not in journal(tmp_path):
            await asyncio.sleep(0.01)
        with pytest.raises(DeadlineExceeded):
            await experiment.handle(put(3.0, timeout=0.1))  # waited in the queue behind it until its client gave up
        hanging.cancel()  # the process shutting down mid-write
        with pytest.raises(asyncio.CancelledError):
            await hanging
        experiment.audit.close()  # every line recorded is on disk once it returns

    asyncio.run(scenario())
    lines = [(line["stage"], line["requested"], line["outcome"]) for line in audit_lines(tmp_path)]
    assert lines == [
        ("refused", 2e9, "invalid_value"),
        ("started", 1.0, None), ("finished", 1.0, "instrument_timeout"),
        ("started", 2.0, None),
        ("refused", 3.0, "deadline_exceeded"),
        ("finished", 2.0, "backend_unavailable"),
    ]


def test_a_flood_of_refused_writes_adds_a_few_lines_a_second_and_counts_the_rest(tmp_path: Path) -> None:
    config = audited_config(tmp_path, {"setpoint": SETPOINT})
    flood = 300
    with running_stack(config, tmp_path, env={"BRIDGE_TOKEN": "0123456789abcdef0123456789abcdef"}) as (_, _, url):

        async def without_a_token() -> None:
            async with httpx.AsyncClient(base_url=url) as client:
                async def worker(k: int) -> None:
                    for i in range(k, flood, 8):
                        answer = await client.put(f"/setpoint/x{i:0200d}", json={"value": i})
                        assert answer.status_code == 401

                await asyncio.gather(*(worker(k) for k in range(8)))

        started = time.monotonic()
        asyncio.run(without_a_token())
        seconds = time.monotonic() - started
    # The frontend has stopped: the counts of its last second are written too.
    lines = [line for line in audit_lines(tmp_path) if line["outcome"] == "not_authenticated"]
    full = [line for line in lines if "repeated" not in line]
    counted = [line for line in lines if "repeated" in line]
    assert len(full) + sum(line["repeated"] for line in counted) == flood  # every refusal is on record
    assert len(full) <= REFUSALS_PER_SECOND * (math.ceil(seconds) + 1), (len(full), seconds)
    assert all(line["attribute"].startswith("x") and len(line["attribute"]) == 203 for line in full)  # 200 + "..."
    assert all(len(orjson.dumps(line)) < 1000 for line in lines)
    assert {(line["stage"], line["client"], line["module"]) for line in counted} == {("refused", "127.0.0.1", None)}


def test_refused_invocations_and_cancels_and_a_run_lost_in_a_crash_are_all_on_record(tmp_path: Path) -> None:
    token = "0123456789abcdef0123456789abcdef"
    config = audited_config(tmp_path, {"setpoint": SETPOINT})
    alice = {"Authorization": f"Bearer {token}"}
    backend = start_backend(config, tmp_path / "backend.log")
    try:
        frontend, url = start_frontend(config, tmp_path / "frontend.log", env={"BRIDGE_TOKEN": token})
        try:
            assert httpx.post(f"{url}/nomodule/ramp", json={}, headers=alice).json()["error"] == "unknown_module"
            assert httpx.post(f"{url}/setpoint/nothing", json={}, headers=alice).json()["error"] == "unknown_action"
            assert httpx.delete(f"{url}/invocations/nosuch", headers=alice).json()["error"] == "unknown_invocation"
            assert httpx.delete(f"{url}/invocations/abc").status_code == 401  # refused by the frontend
            ramp = httpx.post(f"{url}/setpoint/ramp", json={"to": 1e6, "rate": 1.0}, headers=alice).json()
            wait_until(lambda: httpx.get(f"{url}{ramp['href']}").json()["status"] == "running", 10, "running")
            backend.proc.kill()  # the worst moment: the action runs
            backend.wait(10)
            backend = start_backend(config, tmp_path / "backend2.log")
            lost = httpx.get(f"{url}{ramp['href']}").json()
            assert lost["status"] == "lost" and lost["started"] is not None  # it had started: unknown outcome
            backend.stop()
            backend = start_backend(config, tmp_path / "backend3.log")  # a further restart adds nothing
            assert httpx.get(f"{url}{ramp['href']}").json()["status"] == "lost"
        finally:
            frontend.stop()
    finally:
        backend.stop()
    # $BRIDGE_TOKEN's identity is "env", with the role "operate"; the role of a lost run comes from the journal.
    seen = [(line["op"], line["stage"], line["module"], line["attribute"], line["requested"], line["identity"],
             line["role"], line["outcome"]) for line in audit_lines(tmp_path)]
    assert seen == [
        ("invoke", "refused", "nomodule", "ramp", {}, "env", "operate", "unknown_module"),
        ("invoke", "refused", "setpoint", "nothing", {}, "env", "operate", "unknown_action"),
        ("cancel", "refused", None, None, {"invocation": "nosuch"}, "env", "operate", "unknown_invocation"),
        ("cancel", "refused", None, None, {"invocation": "abc"}, None, None, "not_authenticated"),
        ("invoke", "started", "setpoint", "ramp", {"to": 1e6, "rate": 1.0}, "env", "operate", None),
        ("invoke", "finished", "setpoint", "ramp", {"to": 1e6, "rate": 1.0}, "env", "operate", "lost"),
    ]
    started, finished = audit_lines(tmp_path)[-2:]
    assert started["id"] == finished["id"] == ramp["id"] and finished["client"] == started["client"] == "127.0.0.1"


README_TOKEN = "6d1c0b1e7c2a4f0e9b8a7d6c5b4a3f2e"  # alice's, in the manual's tokens.yml (how-to/tokens.md)


def readme_audit_lines() -> list[dict[str, Any]]:
    """The audit lines the manual shows (docs/reference/audit-log.md)."""
    from tests.processes import ROOT

    section = (ROOT / "docs" / "reference" / "audit-log.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.S)
    return [orjson.loads(line) for block in blocks for line in block.splitlines()]


def shown_as(shown: dict[str, Any], real: dict[str, Any]) -> bool:
    """Whether a real line is one README shows: the same keys and words; times, ids and values read from the
    instrument by their type (a null stays null), and an invocation's id in `requested` too."""
    if set(shown) != set(real):
        return False
    for key, value in shown.items():
        if key in ("time", "id", "before", "after") or (key == "requested" and isinstance(value, dict)
                                                      and "invocation" in value):
            if type(value) is not type(real[key]) or (isinstance(value, dict) and set(value) != set(real[key])):
                return False
        elif value != real[key]:
            return False
    return True


def test_the_audit_lines_readme_shows_are_what_the_processes_write(tmp_path: Path) -> None:
    (tmp_path / "tokens.yml").write_text(yaml.safe_dump({"alice": README_TOKEN}))
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"token_file": "tokens.yml"}, audit_log="audit.jsonl")
    alice = {"Authorization": f"Bearer {README_TOKEN}"}
    with running_stack(config, tmp_path) as (_, _, url):
        position = f"{url}/module_a/position"
        assert httpx.put(position, json={"value": 42.5}, headers=alice).status_code == 200
        assert httpx.put(position, json={"value": 10}, headers=alice).status_code == 200
        assert httpx.put(position, json={"value": 10}).status_code == 401  # no token
        assert httpx.put(position, json={"value": 150}, headers=alice).status_code == 422
        move = httpx.post(f"{url}/module_a/move", json={"to": 80, "speed": 20}, headers=alice).json()
        assert httpx.get(f"{url}/invocations/{move['id']}?wait=30", timeout=40).json()["status"] == "completed"
        cycle = httpx.post(f"{url}/module_a/cycle", json={"count": 50, "amplitude": 10}, headers=alice).json()
        assert httpx.delete(f"{url}/invocations/{cycle['id']}", headers=alice).json()["status"] == "cancelled"
        assert httpx.delete(f"{url}/invocations/{cycle['id']}", headers=alice).status_code == 409
        assert httpx.delete(f"{url}/invocations/{cycle['id']}").status_code == 401
        wait_until(lambda: sum(line["op"] != "put" for line in audit_lines(tmp_path)) == 8, 10, "the action lines")
    real = audit_lines(tmp_path)
    shown = readme_audit_lines()
    assert len(shown) >= 10
    for line in shown:
        assert any(shown_as(line, written) for written in real), f"README shows {line}\nwritten:\n" + "\n".join(
            orjson.dumps(w).decode() for w in real)


def test_a_flapping_alarm_adds_a_few_notice_lines_a_second_and_counts_the_rest(tmp_path: Path) -> None:
    """An instrument whose every other read fails flaps its alarm between ok and invalid at the poll rate: each
    notice an fsynced line would queue PUTs' own lines behind them.  At most 10 a second per attribute in full."""

    async def scenario() -> None:
        audit = AuditLog(tmp_path / "audit.jsonl")
        for n in range(100):
            audit.record_notice({"kind": "alarm", "module": "module_a", "attribute": "temperature",
                                 "severity": "invalid" if n % 2 else "ok", "message": f"flap {n}"})
        audit.record_notice({"kind": "alarm", "module": "module_a", "attribute": "force", "severity": "minor",
                             "message": "another attribute: its own count"})
        await asyncio.sleep(1.2)  # the second is over: the count is written
        audit.close()

    asyncio.run(scenario())
    lines = audit_lines(tmp_path)
    temperature = [line for line in lines if line["attribute"] == "temperature"]
    full = [line for line in temperature if "repeated" not in line]
    (counted,) = [line for line in temperature if "repeated" in line]
    assert len(full) == REFUSALS_PER_SECOND and counted["repeated"] == 100 - REFUSALS_PER_SECOND
    assert (counted["op"], counted["stage"], counted["module"]) == ("alarm", "notice", "module_a")
    assert [line["attribute"] for line in lines if "repeated" not in line].count("force") == 1
