"""Safety notices reach people: webhooks (a local receiver here), rate-limited, retried, never slowing the bridge."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from labbridge.core.safety_config import NotifySettings
from labbridge.experiment.safety import webhooks
from labbridge.experiment.safety.webhooks import Webhooks
from tests.processes import running_stack, wait_until, write_config
from tests.test_alarms import documented_notices
from tests.test_audit import audit_lines, shown_as

BROKEN_PY = '''
"""A procedure that fails at once."""
from labbridge import Run, procedure


@procedure()
async def broken(run: Run) -> None:
    """Fails at once."""
    raise RuntimeError("the sample holder is empty")
'''


class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST's path and JSON; answers each path's statuses in turn."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self.statuses: dict[str, list[int]] = {}  # path -> the statuses of its next answers (then 200)
        self.refusing: set[str] = set()  # paths that always answer 404
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((self.path, orjson.loads(body)))
                waiting = receiver.statuses.get(self.path)
                status = 404 if self.path in receiver.refusing else waiting.pop(0) if waiting else 200
                self.send_response(status)
                if 300 <= status < 400:  # a redirect, somewhere else on this receiver
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def texts(self, path: str) -> list[str]:
        return [body["text"] for where, body in self.received if where == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def flap(url: str, simulator: str, times: int) -> None:
    """The temperature across `high` (35) and back, `times` times, each value read through the bridge."""
    for _ in range(times):
        for value in (36, 30):
            httpx.put(f"{simulator}/sim/temperature", json={"value": value})
            assert httpx.get(f"{url}/module_a/temperature").status_code == 200


def stack_config(folder: Path, notify: dict[str, Any]) -> tuple[Path, str]:
    (folder / "broken.py").write_text(BROKEN_PY, encoding="utf-8")
    config = write_config(folder / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          audit_log="audit.jsonl", alarms={"module_a.temperature": {"high": 35}}, notify=notify,
                          procedures={"broken": {"function": "broken.broken"}})
    port = yaml.safe_load(config.read_text())["modules"]["module_a"]["port"]
    return config, f"http://127.0.0.1:{port}"


def test_a_failed_run_and_alarms_reach_the_webhook_and_a_flapping_alarm_sends_at_most_the_bound(
        tmp_path: Path, receiver: Receiver) -> None:
    config, simulator = stack_config(tmp_path, {"webhooks": [receiver.url + "/hook"], "max_per_minute": 5})
    with running_stack(config, tmp_path) as (_, _, url):
        run = httpx.post(f"{url}/runs", json={"procedure": "broken", "parameters": {}, "metadata": {}}).json()
        httpx.post(f"{url}/runs/queue/start")
        wait_until(lambda: len(receiver.texts("/hook")) == 1, 10, "the failed run's message")
        assert receiver.received[0][1] == {
            "text": f"[labbridge] run {run['id']} (broken) failed: RuntimeError: the sample holder is empty"}
        flap(url, simulator, 50)  # 100 notices: minor, ok, minor, ok ...

        def handled() -> int:
            counts = httpx.get(f"{url}/alarms").json()["webhooks"]
            return int(counts["sent"] + counts["rate_limited"])

        wait_until(lambda: handled() == 101, 10, "every notice handled")
        counts = httpx.get(f"{url}/alarms").json()["webhooks"]
        assert counts == {"urls": 1, "sent": 5, "rate_limited": 96, "dropped": 0, "failed": 0, "queued": 0}
        assert receiver.texts("/hook")[1:] == [
            "[labbridge] module_a.temperature is MINOR: 36 degC, at or above high 35 degC",
            "[labbridge] module_a.temperature is back to ok: 30 degC (was minor)"] * 2
        assert "bridge_webhook_messages_total{outcome=\"rate_limited\"} 96.0" in httpx.get(f"{url}/metrics").text
    notices = [line for line in audit_lines(tmp_path) if line["stage"] == "notice"]
    # Every notice is on record: in full, at most 10 a second of one attribute, the rest counted (`repeated`).
    assert sum(line.get("repeated", 1) for line in notices) == 101
    assert notices[0]["op"] == "run_failed" and notices[0]["attribute"] is None
    assert notices[0]["after"]["run"] == run["id"] and notices[0]["after"]["procedure"] == "broken"
    (shown,) = documented_notices("run_failed")  # as the manual shows it, but for the run's id and who queued it
    assert shown_as({**shown, "identity": None}, notices[0])


def test_a_webhook_that_fails_is_retried_with_backoff(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses["/flaky"] = [500, 503, 200]
    receiver.refusing.add("/gone")  # refused for good: not retried
    config, simulator = stack_config(tmp_path, {"webhooks": [receiver.url + "/flaky", receiver.url + "/gone"]})
    with running_stack(config, tmp_path) as (_, _, url):
        flap(url, simulator, 1)
        wait_until(lambda: len(receiver.texts("/flaky")) == 4, 10, "the retries")
        minor = "[labbridge] module_a.temperature is MINOR: 36 degC, at or above high 35 degC"
        assert receiver.texts("/flaky")[:3] == [minor] * 3  # 500, 503, then taken
        wait_until(lambda: httpx.get(f"{url}/alarms").json()["webhooks"]["failed"] == 2, 10, "/gone's failures")
    assert receiver.texts("/gone") == [minor, "[labbridge] module_a.temperature is back to ok: 30 degC (was minor)"]


def test_a_dead_webhook_does_not_slow_the_bridge(tmp_path: Path) -> None:
    with socket.socket() as hole:  # accepts connections (the backlog) and never answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(100)
        dead = f"http://127.0.0.1:{hole.getsockname()[1]}/hook"
        config, simulator = stack_config(tmp_path, {"webhooks": [dead], "timeout": 10, "retries": 5, "queue": 5,
                                                    "max_per_minute": 600})
        with running_stack(config, tmp_path) as (_, _, url):
            slowest = 0.0
            for _ in range(20):
                for value in (36, 30):
                    httpx.put(f"{simulator}/sim/temperature", json={"value": value})
                    start = time.perf_counter()
                    assert httpx.get(f"{url}/module_a/temperature").status_code == 200
                    slowest = max(slowest, time.perf_counter() - start)
            counts = httpx.get(f"{url}/alarms").json()["webhooks"]
        assert slowest < 0.5, slowest
        assert counts["dropped"] >= 30  # the dead URL's outbox holds five and the one being sent: the rest dropped


def test_a_dead_webhook_delays_no_other(receiver: Receiver) -> None:
    """Each URL's posts run on their own: one that never answers holds up nothing sent to the others."""
    async def scenario() -> tuple[float, dict[str, int]]:
        with socket.socket() as hole:  # accepts connections and never answers
            hole.bind(("127.0.0.1", 0))
            hole.listen(100)
            dead = f"http://127.0.0.1:{hole.getsockname()[1]}/hook"
            hooks = Webhooks(NotifySettings(webhooks=[dead, receiver.url + "/hook"], timeout=10, retries=3, queue=6))
            start = time.monotonic()
            for i in range(6):
                hooks.send(f"notice {i}")
            await asyncio.sleep(0)  # the six handed to each URL's outbox
            hooks.send("notice 6")  # one more than the dead URL's outbox holds: dropped for it (not for the other)
            async with asyncio.timeout(10):
                while len(receiver.texts("/hook")) < 7:
                    await asyncio.sleep(0.02)
            took = time.monotonic() - start
            stats = hooks.stats()
            await hooks.close(grace=0.1)
            return took, stats

    took, stats = asyncio.run(scenario())
    assert receiver.texts("/hook") == [f"notice {i}" for i in range(7)]  # in order
    assert took < 2.0, took  # not after the dead URL's 10 s timeouts
    assert stats["dropped"] <= 1  # at most the seventh, for the dead URL alone (its outbox holds six)


def test_a_webhook_that_redirects_is_not_followed(receiver: Receiver) -> None:
    receiver.statuses["/moved"] = [307]

    async def scenario() -> dict[str, int]:
        hooks = Webhooks(NotifySettings(webhooks=[receiver.url + "/moved"], retries=0))
        hooks.send("notice")
        async with asyncio.timeout(5):
            while hooks.stats()["failed"] == 0:
                await asyncio.sleep(0.02)
        await hooks.close()
        return hooks.stats()

    assert asyncio.run(scenario())["failed"] == 1
    assert [path for path, _ in receiver.received] == ["/moved"]  # a 307 answer is not followed anywhere


def test_notices_held_back_by_the_limit_are_summarised_once_the_minute_allows(
        receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "WINDOW", 1.0)  # a "minute" of one second

    async def scenario() -> None:
        hooks = Webhooks(NotifySettings(webhooks=[receiver.url + "/hook"], max_per_minute=3))
        for i in range(20):
            hooks.send(f"notice {i}")
        await asyncio.sleep(0)
        async with asyncio.timeout(10):
            while len(receiver.texts("/hook")) < 4:
                await asyncio.sleep(0.02)
        await hooks.close()

    asyncio.run(scenario())
    assert receiver.texts("/hook") == ["notice 0", "notice 1", "notice 2",
                                       "17 more notices were not sent (at most 3 a minute); see the audit log"]
