"""Concurrency through the real processes: replies never cross, slow modules stay apart, late requests never run."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zmq

from labbridge.core.protocol import Request, decode_reply
from tests.processes import backend_endpoint, running_stack, wait_until, write_config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("concurrency")
    config = write_config(tmp / "config.yml", {
        "module_a": {"class": "module_a.ModuleA", "simulate": True},
        "setpoint": {"class": "setpoint.Setpoint"},
        "slow": {"class": "module_a.ModuleA", "simulate": True, "simulator": {"delay": 1.0}, "timeout": 3.0},
        "rec": {"class": "tests.fixture_modules.Recorder"},
    }, frontend={"request_timeout": 0.5})
    with running_stack(config, tmp) as (_, _, base):
        yield base, backend_endpoint(config)


@pytest.fixture(scope="module")
def url(stack: tuple[str, str]) -> str:
    return stack[0]


@pytest.fixture(scope="module")
def endpoint(stack: tuple[str, str]) -> str:
    return stack[1]


def test_64_clients_across_two_modules_each_get_their_own_reply(url: str) -> None:
    async def client(i: int, http: httpx.AsyncClient) -> None:
        if i % 2:
            put = await http.put("/setpoint/label", json={"value": f"client-{i}"})
            assert put.json()["value"] == f"client-{i}", put.text
            put = await http.put("/setpoint/value", json={"value": i * 1.5})
            assert put.json() == {"module": "setpoint", "attribute": "value", "value": i * 1.5, "unit": None}
        else:
            put = await http.put("/module_a/position", json={"value": float(i)})
            assert put.json()["value"] == float(i), put.text
        for name in ("speed", "changed_at") if i % 2 == 0 else ("changed_at", "speed"):
            module = "module_a" if name == "speed" else "setpoint"
            got = await http.get(f"/{module}/{name}")
            assert (got.json()["module"], got.json()["attribute"]) == (module, name), got.text

    async def run_all() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10, limits=httpx.Limits(max_connections=64)) as http:
            await asyncio.gather(*(client(i, http) for i in range(64)))

    asyncio.run(run_all())


def test_a_busy_slow_module_does_not_delay_a_fast_one(url: str) -> None:
    async def scenario() -> list[float]:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            # Keep the slow module's queue occupied (each read takes 1 s; they time out at 0.5 s).
            slow = [asyncio.create_task(http.get("/slow/position")) for _ in range(3)]
            await asyncio.sleep(0.05)
            latencies = []
            for _ in range(20):
                start = time.perf_counter()
                assert (await http.get("/setpoint/value")).status_code == 200
                latencies.append(time.perf_counter() - start)
            assert all(not task.done() for task in slow)  # the slow ones were still running all along
            await asyncio.gather(*slow)
            return latencies

    latencies = asyncio.run(scenario())
    assert max(latencies) < 0.25, latencies  # generous: a blocked loop would show the slow module's 1 s
    assert statistics.median(latencies) < 0.1


def test_a_request_past_its_deadline_never_reaches_the_module(url: str, endpoint: str) -> None:
    before = httpx.get(f"{url}/rec/writes").json()["value"]
    assert httpx.put(f"{url}/rec/delay", json={"value": 1.0}).status_code == 200
    # A write with a long deadline, sent straight to the backend, holds the module for 1 s ...
    holder = zmq.Context.instance().socket(zmq.DEALER)
    holder.linger = 0
    holder.connect(endpoint)
    try:
        request = Request.new("put", "rec", "value", 1.0, timeout=5.0)
        holder.send(request.encode())
        wait_until(lambda: httpx.get(f"{url}/health").json()["modules"]["rec"]["queued"] == 1, 5, "the write running")
        # ... so a write through the frontend (deadline 0.5 s) expires in the queue behind it.
        late = httpx.put(f"{url}/rec/value", json={"value": 2.0}, timeout=10)
        assert (late.status_code, late.json()["error"]) == (504, "deadline_exceeded"), late.text
        assert "expired before it ran" in late.json()["message"]
        assert holder.poll(5000), "the holding write never finished"
        assert decode_reply(holder.recv_multipart(), request.id)  # it ran, and succeeded
    finally:
        holder.close()
        httpx.put(f"{url}/rec/delay", json={"value": 0.0})
    # The module saw the holding write, never the one whose client had given up.
    assert httpx.get(f"{url}/rec/writes").json()["value"] == [*before, 1.0]


@pytest.mark.parametrize(("mode", "status", "code", "text"), [
    ("raise", 502, "instrument_error", "module rec failed: RuntimeError: driver exploded"),
    ("hang", 504, "instrument_timeout", "module rec did not finish get value"),
])
def test_a_faulty_module_costs_only_its_own_request(url: str, mode: str, status: int, code: str, text: str) -> None:
    assert httpx.put(f"{url}/rec/mode", json={"value": mode}).status_code == 200
    try:
        faulty = httpx.get(f"{url}/rec/value", timeout=10)
        assert (faulty.status_code, faulty.json()["error"]) == (status, code)
        assert text in faulty.json()["message"]
        assert httpx.get(f"{url}/setpoint/value").status_code == 200  # the others are served
        assert httpx.get(f"{url}/module_a/position").status_code == 200
    finally:
        assert httpx.put(f"{url}/rec/mode", json={"value": "ok"}).status_code == 200
    assert httpx.get(f"{url}/rec/value").status_code == 200  # and the module itself recovers
