"""Faults with real processes: health, instruments and backends that die, shutdown under load, CurveZMQ."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import yaml

from labbridge.core.curve import generate
from tests.processes import Process, free_port, http_answers, start_backend, start_frontend, wait_until, write_config

ACTUATOR = {"module_a": {"class": "module_a.ModuleA", "simulate": True}}


def test_health_reports_backend_round_trip_and_module_contact(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {**ACTUATOR, "gone": {"class": "module_a.ModuleA"}},
                          frontend={"connect_timeout": 0.2})
    backend = start_backend(config, tmp_path / "backend.log")
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    try:
        httpx.get(f"{url}/module_a/position")
        httpx.get(f"{url}/gone/position")
        health = httpx.get(f"{url}/health")
        body = health.json()
        assert health.status_code == 200 and body["status"] == "degraded" and body["frontend"] == "up"
        assert body["backend"]["reachable"] is True and 0 < body["backend"]["rtt_ms"] < 1000
        assert body["modules"]["module_a"]["last_error"] is None
        assert time.time() - body["modules"]["module_a"]["last_contact"] < 60
        assert body["modules"]["gone"] == {"last_contact": None, "last_error": "instrument_unreachable", "queued": 0,
                                           "start_error": None, "safe_state": None}
        backend.stop()
        down = httpx.get(f"{url}/health")
        assert down.status_code == 503 and down.json()["status"] == "down"
        assert down.json()["backend"]["error"] == "backend_unavailable"
    finally:
        frontend.stop()
        backend.stop()


def test_an_instrument_that_goes_away_and_comes_back_is_reconnected(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "port": port}})
    backend = start_backend(config, tmp_path / "backend.log")
    frontend, url = start_frontend(config, tmp_path / "frontend.log")

    def simulator(log: str) -> Process:
        sim = Process([sys.executable, "-m", "labbridge.experiment.simulators.actuator", "--port", str(port)], tmp_path / log)
        wait_until(lambda: http_answers(f"http://127.0.0.1:{port}/position"), 15, "simulator")
        return sim

    try:
        sim = simulator("sim1.log")
        assert httpx.put(f"{url}/module_a/position", json={"value": 9}).status_code == 200
        sim.stop()
        gone = httpx.get(f"{url}/module_a/position")
        assert gone.status_code == 502 and gone.json()["error"] in ("instrument_unreachable", "instrument_error")
        sim = simulator("sim2.log")
        back = httpx.get(f"{url}/module_a/position")  # the very next request, no restart of anything
        assert back.status_code == 200 and back.json()["value"] == 0.0  # a fresh instrument
        sim.stop()
    finally:
        frontend.stop()
        backend.stop()


def test_a_module_whose_start_fails_waits_for_its_instrument_while_the_others_serve(tmp_path: Path) -> None:
    device = tmp_path / "COM7"  # not plugged in yet
    config = write_config(tmp_path / "config.yml", {**ACTUATOR, "wheel": {
        "class": "tests.fixture_modules.PluggedLater", "simulator": {"device": str(device)}}})
    backend = start_backend(config, tmp_path / "backend.log")  # it comes up: one module cannot start, the rest can
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    try:
        said = [line for line in backend.output.splitlines() if "COM7" in line]
        assert len(said) == 1 and "module wheel could not start: OSError: COM7: no such port" in said[0], backend.output
        assert "Traceback" not in backend.output
        assert httpx.get(f"{url}/module_a/position").status_code == 200
        for attempt in (httpx.get(f"{url}/wheel/value"), httpx.put(f"{url}/wheel/value", json={"value": 1})):
            assert attempt.status_code == 502 and attempt.json()["error"] == "instrument_unreachable"
            assert "module wheel could not start: OSError: COM7: no such port" in attempt.json()["message"]
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "degraded" and health["modules"]["wheel"]["last_error"] == "instrument_unreachable"
        assert health["modules"]["wheel"]["start_error"] == "OSError: COM7: no such port"
        assert health["modules"]["module_a"]["start_error"] is None

        device.write_text("4.5")  # plugged in: the next request starts it, no restart of anything
        assert httpx.get(f"{url}/wheel/value").json()["value"] == 4.5
        assert httpx.put(f"{url}/wheel/value", json={"value": 2}).json()["value"] == 2.0
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "ok" and health["modules"]["wheel"]["start_error"] is None
        assert "module wheel started" in backend.output and backend.alive()
    finally:
        frontend.stop()
        backend.stop()
    assert backend.proc.returncode == 0 and "Traceback" not in backend.output  # stopped cleanly, wheel included


async def _hammer(url: str, seconds: float, results: list[tuple[str, int, float, httpx.Response]]) -> None:
    async def client(i: int, http: httpx.AsyncClient) -> None:
        until = time.monotonic() + seconds
        n = 0
        while time.monotonic() < until:
            n += 1
            attribute = ("position", "speed")[n % 2]
            start = time.monotonic()
            if n % 3:
                response = await http.get(f"/module_a/{attribute}")
            else:
                response = await http.put(f"/module_a/{attribute}", json={"value": float(1 + (i % 40))})
            results.append((attribute, response.status_code, time.monotonic() - start, response))

    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        await asyncio.gather(*(client(i, http) for i in range(16)))


def test_backend_killed_under_load_gives_503_or_504_in_time_then_recovers(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", ACTUATOR, frontend={"request_timeout": 1.0, "connect_timeout": 0.3})
    backend = start_backend(config, tmp_path / "backend.log")
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    results: list[tuple[str, int, float, httpx.Response]] = []
    try:
        async def scenario() -> None:
            load = asyncio.create_task(_hammer(url, 3.0, results))
            await asyncio.sleep(1.0)
            backend.signal(signal.SIGKILL)
            await load

        asyncio.run(scenario())
        assert {status for _, status, _, _ in results} <= {200, 503, 504}
        assert any(status == 200 for _, status, _, _ in results)
        assert any(status in (503, 504) for _, status, _, _ in results)
        assert max(elapsed for _, _, elapsed, _ in results) < 1.0 + 0.5  # the configured timeout, plus slack
        for attribute, status, _, response in results:
            if status == 200:
                assert response.json()["attribute"] == attribute  # never another request's reply
        restarted = start_backend(config, tmp_path / "backend2.log")
        ready = time.monotonic()
        wait_until(lambda: httpx.get(f"{url}/module_a/position").status_code == 200, 5, "recovery")
        assert time.monotonic() - ready < 1.0
        restarted.stop()
    finally:
        frontend.stop()
        backend.stop()


def test_sigterm_under_load_acknowledges_only_writes_that_happened(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    config = write_config(tmp_path / "config.yml", {
        "j": {"class": "tests.fixture_modules.Journal", "simulator": {"journal": str(journal)}}},
        frontend={"request_timeout": 2.0, "connect_timeout": 0.3})
    backend = start_backend(config, tmp_path / "backend.log")
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    acknowledged: list[float] = []
    statuses: list[int] = []
    try:
        async def writer(i: int, http: httpx.AsyncClient) -> None:
            for n in range(200):
                value = float(i * 1000 + n)
                response = await http.put("/j/value", json={"value": value})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    acknowledged.append(value)
                elif response.status_code == 503 and "not running" in response.json()["message"]:
                    return

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                load = asyncio.gather(*(writer(i, http) for i in range(8)))
                await asyncio.sleep(0.5)
                backend.signal(signal.SIGTERM)
                await load

        asyncio.run(scenario())
        assert backend.wait(5) == 0
        assert set(statuses) <= {200, 503}, set(statuses)
        assert 503 in statuses and acknowledged
        done = {float(line) for line in journal.read_text().split()}
        assert set(acknowledged) <= done  # nothing acknowledged that did not happen
    finally:
        frontend.stop()
        backend.stop()


def test_curve_lets_in_known_frontends_only(tmp_path: Path) -> None:
    generate(tmp_path / "keys")
    generate(tmp_path / "stranger")  # a valid key pair the backend has never seen
    curve = {"server_key": "keys/server.key_secret", "authorized_clients": "keys/authorized",
             "server_public_key": "keys/server.key", "client_key": "keys/frontend.key_secret"}
    config = write_config(tmp_path / "config.yml", ACTUATOR, frontend={"connect_timeout": 0.5})
    data = yaml.safe_load(config.read_text())
    data["experiment_socket"]["curve"] = curve
    config.write_text(yaml.safe_dump(data))
    stranger = tmp_path / "stranger.yml"
    data["experiment_socket"]["curve"] = {**curve, "client_key": "stranger/frontend.key_secret"}
    stranger.write_text(yaml.safe_dump(data))
    with ExitStack() as stopping:  # every process started is stopped, even when a later one fails to come up
        backend = Process([sys.executable, "start_experiment.py", "--config", str(config)], tmp_path / "backend.log")
        stopping.callback(backend.stop)
        known, known_url = start_frontend(config, tmp_path / "known.log")
        stopping.callback(known.stop)
        unknown, unknown_url = start_frontend(stranger, tmp_path / "unknown.log")
        stopping.callback(unknown.stop)
        wait_until(lambda: httpx.get(f"{known_url}/module_a/position").status_code == 200, 15, "known frontend served")
        refused = httpx.get(f"{unknown_url}/module_a/position")
        assert refused.status_code == 503 and "CurveZMQ" in refused.json()["message"]
        assert "CurveZMQ on: 1 authorized frontend key(s)" in backend.output


def test_frontend_sigterm_lets_requests_in_flight_finish(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {
        "slow": {"class": "module_a.ModuleA", "simulate": True, "simulator": {"delay": 0.5}}})
    backend = start_backend(config, tmp_path / "backend.log")
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    try:
        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                in_flight = [asyncio.create_task(http.put("/slow/position", json={"value": float(i)})) for i in range(3)]
                await asyncio.sleep(0.2)  # all three are inside the frontend now
                frontend.signal(signal.SIGTERM)
                return list(await asyncio.gather(*in_flight))

        responses = asyncio.run(scenario())
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert sorted(r.json()["value"] for r in responses) == [0.0, 1.0, 2.0]
        # uvicorn finishes its shutdown, then re-raises SIGTERM so a process manager sees it.
        assert frontend.wait(10) in (0, -signal.SIGTERM)
        assert "Finished server process" in frontend.output and "Traceback" not in frontend.output
    finally:
        frontend.stop()
        backend.stop()
