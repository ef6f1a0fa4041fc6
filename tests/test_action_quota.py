"""Queues cannot be flooded cheaply: past `actions.max_per_module` or `max_per_client` unfinished invocations an
action gets 429 with Retry-After, a read answers promptly beside a flood of actions, and a cancel is never refused.
Both processes run for real; the simulator answers every call 50 ms late, so a flood of `stop` (three driver calls
each) lasts long enough to be measured."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import running_stack, wait_until, write_config

FLOOD = 100


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("action_quota")
    config = write_config(tmp / "config.yml",
                          {"module_a": {"class": "module_a.ModuleA", "simulate": True, "simulator": {"delay": 0.05}}},
                          frontend={"request_timeout": 5.0})
    with running_stack(config, tmp) as (_, _, address):
        yield address


def running(url: str) -> int:
    listed = httpx.get(f"{url}/invocations", params={"module": "module_a"}, timeout=10).json()["invocations"]
    return sum(1 for inv in listed if inv["status"] in ("pending", "running"))


async def flood_and_read(url: str) -> tuple[list[httpx.Response], list[tuple[int, float]]]:
    """FLOOD stops at once, each on its own connection; then reads of the position until the stops have ended."""
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=FLOOD + 10)) as client:
        answers = await asyncio.gather(*(client.post(f"{url}/module_a/stop") for _ in range(FLOOD)))
        reads: list[tuple[int, float]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            began = time.perf_counter()
            response = await client.get(f"{url}/module_a/position")
            reads.append((response.status_code, time.perf_counter() - began))
            unfinished = [(await client.get(f"{url}/invocations", params={"status": status})).json()["invocations"]
                          for status in ("pending", "running")]
            if not any(unfinished):
                break
        return list(answers), reads


def test_a_flood_of_actions_is_refused_past_the_module_bound_and_reads_still_answer(url: str) -> None:
    answers, reads = asyncio.run(flood_and_read(url))
    admitted = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code == 429]
    assert len(admitted) + len(refused) == FLOOD, {r.status_code for r in answers}
    assert 1 <= len(admitted) <= 10  # actions.max_per_module's default
    assert all(r.headers["retry-after"] == "1" and r.json()["error"] == "too_many_actions" for r in refused)
    assert "actions.max_per_module" in refused[0].json()["message"]
    slowest = max(took for _, took in reads)
    print(f"{len(admitted)} stops admitted, {len(refused)} refused; {len(reads)} reads beside them, "
          f"slowest {slowest * 1000:.0f} ms ({[round(t * 1000) for _, t in reads]})")
    assert {status for status, _ in reads} == {200}
    assert slowest < 0.5  # about three driver calls of 50 ms: the one running, one action's, its own


def test_one_connection_has_at_most_max_per_client_actions_and_a_cancel_is_never_refused(url: str) -> None:
    wait_until(lambda: running(url) == 0, 20, "earlier invocations ended")
    with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=1)) as notebook:
        started = [notebook.post(f"{url}/module_a/stop") for _ in range(5)]
        assert [r.status_code for r in started] == [201] * 5
        refused = notebook.post(f"{url}/module_a/stop")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["message"].startswith("connection 127.0.0.1:")
        assert "actions.max_per_client" in refused.json()["message"]
        with httpx.Client(timeout=10) as other:  # another connection is another client
            assert other.post(f"{url}/module_a/stop").status_code == 201
        cancelled = [notebook.delete(f"{url}{r.json()['href']}") for r in started]
        assert {r.status_code for r in cancelled} <= {202, 409}  # 409: it had already finished
