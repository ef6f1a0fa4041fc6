"""Blocking drivers (hooks written with plain `def`) run on their module's own thread, end to end.

A slow blocking driver holds up its own module only: the event loop and every
other module go on answering.  Its calls run one at a time, in order, on one
thread, even after the bridge gave up waiting for one; and a call whose
client gave up before the thread reached it never reaches the driver.  The
The manual's FilterWheel example (docs/how-to/blocking-driver.md) is served as written.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import ROOT, running_stack, write_config


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("blocking")
    config = write_config(tmp / "config.yml", {
        "slow": {"class": "tests.fixture_modules.BlockingRecorder", "timeout": 3.0},
        "impatient": {"class": "tests.fixture_modules.BlockingRecorder", "timeout": 0.3, "connect_timeout": 0.3},
        "setpoint": {"class": "setpoint.Setpoint"},
    }, frontend={"request_timeout": 5.0})
    with running_stack(config, tmp) as (_, _, base):
        yield base


def test_blocking_reads_of_one_module_leave_the_others_answering_in_under_20_ms(url: str) -> None:
    assert httpx.put(f"{url}/slow/delay", json={"value": 1.0}).status_code == 200

    async def scenario() -> list[float]:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            blocked = [asyncio.create_task(http.get("/slow/value")) for _ in range(3)]  # 3 s of blocking calls
            await asyncio.sleep(0.1)
            latencies = []
            for _ in range(20):
                start = time.perf_counter()
                assert (await http.get("/setpoint/value")).status_code == 200
                latencies.append(time.perf_counter() - start)
            assert not any(task.done() for task in blocked)  # the slow module was blocked all along
            assert all(r.status_code == 200 for r in await asyncio.gather(*blocked))
            return latencies

    try:
        latencies = asyncio.run(scenario())
    finally:
        httpx.put(f"{url}/slow/delay", json={"value": 0.0})
    assert statistics.median(latencies) < 0.020, latencies
    assert max(latencies) < 0.25, latencies  # a blocked event loop would show the slow module's 1 s


def test_a_blocking_driver_runs_on_its_module_s_own_thread(url: str) -> None:
    assert httpx.get(f"{url}/slow/thread").json()["value"] == "module-slow"
    assert httpx.get(f"{url}/impatient/thread").json()["value"] == "module-impatient"


def test_calls_never_overlap_and_a_call_whose_client_gave_up_in_the_queue_never_runs(url: str) -> None:
    before = httpx.get(f"{url}/impatient/writes").json()["value"]
    assert httpx.put(f"{url}/impatient/delay", json={"value": 1.5}).status_code == 200
    try:
        # The first write blocks the thread for 1.5 s; the bridge gives up on it after 0.6 s (504) ...
        first = httpx.put(f"{url}/impatient/value", json={"value": 1.0}, timeout=10)
        assert first.status_code == 504 and "outcome is unknown" in first.json()["message"], first.text
        # ... and on the second one too, which waits behind it on the thread and so is never run.
        second = httpx.put(f"{url}/impatient/value", json={"value": 2.0}, timeout=10)
        assert second.status_code == 504, second.text
    finally:
        time.sleep(1.0)  # let the first write finish on the thread
        assert httpx.put(f"{url}/impatient/delay", json={"value": 0.0}, timeout=10).status_code == 200
    assert httpx.get(f"{url}/impatient/writes").json()["value"] == [*before, 1.0]
    assert httpx.get(f"{url}/impatient/most_at_once").json()["value"] == 1


def readme_block(first_line: str) -> str:
    readme = (ROOT / "docs" / "how-to" / "blocking-driver.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if b.startswith(first_line)]
    return block


def test_the_readme_filter_wheel_is_served_and_turns_while_others_answer(tmp_path: Path) -> None:
    modules = tmp_path / "lab_modules"
    modules.mkdir()
    (modules / "filter_wheel.py").write_text(readme_block("# filter_wheel.py"), encoding="utf-8")
    config = write_config(tmp_path / "config.yml", {
        "wheel": {"class": "filter_wheel.FilterWheel", "resource": "COM3"},
        "setpoint": {"class": "setpoint.Setpoint"}})
    with running_stack(config, tmp_path, backend_env={"PYTHONPATH": str(modules)}) as (_, _, url):
        assert httpx.get(f"{url}/wheel/position").json()["value"] == 1

        async def turn_while_reading() -> float:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                turning = asyncio.create_task(http.put("/wheel/position", json={"value": 4}))
                await asyncio.sleep(0.1)
                start = time.perf_counter()
                assert (await http.get("/setpoint/value")).status_code == 200
                elapsed = time.perf_counter() - start
                assert not turning.done()
                assert (await turning).json()["value"] == 4
                return elapsed

        assert asyncio.run(turn_while_reading()) < 0.25
        assert httpx.put(f"{url}/wheel/position", json={"value": 7}).status_code == 422
