"""bridge_client's actions against the real stack (both processes, the simulator): start, follow, wait, cancel.

Also what goes wrong: arguments refused before anything is sent, Busy, a failed
action, Ctrl+C while waiting, a lost invocation, tokens on POST and DELETE,
and a bridge that cannot record invocations (503 actions_unavailable, never
retried).
"""

from __future__ import annotations

import _thread
import asyncio
import inspect
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import bridge_client
from labbridge.core.errors import InvalidValue as ServerInvalidValue
from labbridge.core.values import ValueRule
from tests.conftest import Stack
from tests.processes import running_stack, start_backend, wait_until, write_config

ALICE = "alice-token-0123456789"


@pytest.fixture(scope="module")
def lab(stack: Stack) -> Iterator[bridge_client.Bridge]:
    with bridge_client.connect(stack.url) as connected:
        yield connected


@pytest.fixture(autouse=True)
def nothing_left_running(stack: Stack) -> Iterator[None]:
    """A failed test leaves no action running for the next, and each starts with the carriage at 0 mm."""
    httpx.put(f"{stack.url}/module_a/position", json={"value": 0}, timeout=10)
    yield
    for status in ("pending", "running"):
        for invocation in httpx.get(f"{stack.url}/invocations", params={"status": status}).json()["invocations"]:
            httpx.delete(stack.url + invocation["href"], timeout=10)


def server_view(stack: Stack, invocation: bridge_client.Invocation) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(stack.url + invocation.href).json()
    return found


def test_actions_are_methods_with_their_signature_and_doc(lab: bridge_client.Bridge) -> None:
    from IPython.core.completer import provisionalcompleter
    from IPython.core.interactiveshell import InteractiveShell

    assert str(inspect.signature(lab.module_a.move)) == "(*, to: float, speed: float | None = None) -> float"
    assert str(inspect.signature(lab.module_a.cycle)) == "(*, count: int, amplitude: float) -> dict"
    doc = str(lab.module_a.move.__doc__)
    assert doc.startswith("Move the carriage to `to`") and "to: float, 0 to 100 mm. Where the carriage goes." in doc
    assert "speed: float or None, 0.1 to 50 mm/s, default None." in doc and "Returns float, mm." in doc
    assert {"move", "home", "stop", "cycle"} <= set(dir(lab.module_a))
    assert "cycle(count=, amplitude=)" in str(type(lab.module_a).__doc__)  # help(lab.module_a) lists them

    shell = InteractiveShell.instance()
    shell.push({"lab": lab})
    with provisionalcompleter():
        assert "move" in [c.text for c in shell.Completer.completions("lab.module_a.mo", 15)]
        assert "to=" in [c.text for c in shell.Completer.completions("lab.module_a.move(t", 19)]
    shown = re.sub(r"\x1b\[[0-9;]*m", "", shell.object_inspect_text("lab.module_a.move"))  # without its colours
    assert "lab.module_a.move(*, to: float, speed: float | None = None) -> float" in shown and "Where the carriage goes." in shown
    with pytest.raises(AttributeError, match="is an action"):
        lab.module_a.move = 3


def test_an_action_returns_at_once_reports_live_and_wait_returns_its_result(
        lab: bridge_client.Bridge, stack: Stack) -> None:
    move = lab.module_a.move(to=30, speed=15)  # 2 s of travel
    assert move.status in ("pending", "running") and lab.module_a.position < 30  # returned before the end
    assert move.arguments == {"to": 30.0, "speed": 15.0} and move.href == f"/invocations/{move.id}"
    wait_until(lambda: (move.progress or 0) > 0.1, 5, "progress reported")
    assert re.fullmatch(r"at \d+\.\d mm, \d+\.\d s to go", str(move.message)), move.message
    with pytest.raises(TimeoutError, match="is still running after 0.2 s; it goes on"):
        move.wait(timeout=0.2)
    assert move.status == "running"
    assert move.wait() == 30.0
    assert (move.status, move.progress, move.message, move.result) == ("completed", 1.0, "arrived at 30 mm", 30.0)
    assert server_view(stack, move)["status"] == "completed" and lab.module_a.position == 30.0
    assert lab.invocation(move.id).result == 30.0  # found again by id, as another client would


def test_cancel_stops_the_carriage_where_it_is_and_wait_then_raises_action_cancelled(
        lab: bridge_client.Bridge, stack: Stack) -> None:
    move = lab.module_a.move(to=80, speed=10)
    wait_until(lambda: lab.module_a.position > 2, 5, "carriage moving")
    move.cancel()
    stopped = lab.module_a.position
    assert move.status == "cancelled" and move.message == f"stopped at {stopped:g} mm" and 2 < stopped < 80
    assert lab.module_a.moving is False and server_view(stack, move)["status"] == "cancelled"
    with pytest.raises(bridge_client.AlreadyFinished) as refused:
        move.cancel()
    assert refused.value.status == 409 and "has already finished (cancelled)" in refused.value.message
    with pytest.raises(bridge_client.ActionCancelled, match=f"module_a.move \\(invocation {move.id}\\) was cancelled: "
                                                             f"stopped at {stopped:g} mm"):
        move.wait()


def test_ctrl_c_while_waiting_cancels_the_invocation_and_says_so(lab: bridge_client.Bridge, stack: Stack) -> None:
    move = lab.module_a.move(to=80, speed=10)
    wait_until(lambda: lab.module_a.position > 1, 5, "carriage moving")
    interrupt = threading.Timer(0.3, _thread.interrupt_main)
    interrupt.start()
    with pytest.raises(KeyboardInterrupt) as raised:
        move.wait()
    interrupt.join()
    stopped = lab.module_a.position
    assert str(raised.value) == f"interrupted: cancelled module_a.move (invocation {move.id}): stopped at {stopped:g} mm"
    assert server_view(stack, move)["status"] == "cancelled" and lab.module_a.moving is False
    lab.module_a.position = 5  # nothing owns it any more, and the client goes on
    assert lab.module_a.position == 5.0


def test_the_progress_bar_shows_progress_and_the_status_line_to_the_end(
        lab: bridge_client.Bridge, stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert lab.module_a.move(to=10, speed=10).wait(progress=True) == 10.0
    drawn = capsys.readouterr().err.split("\r")
    assert any(re.search(r"module_a.move: +[1-9]\d%\|.*\| 00:0\d, at \d+\.\d mm, \d\.\d s to go", d) for d in drawn)
    assert re.search(r"module_a.move: 100%\|█+\| 00:0\d, arrived at 10 mm", drawn[-1]), drawn[-1]

    # Cancelled by another client (curl, the dashboard) while the bar is shown: it ends saying so.
    move = lab.module_a.move(to=80, speed=10)
    canceller = threading.Timer(0.5, httpx.delete, args=(stack.url + move.href,))
    canceller.start()
    with pytest.raises(bridge_client.ActionCancelled):
        move.wait(progress=True)
    canceller.join()
    assert re.search(r"module_a.move cancelled: +\d+%.*stopped at", capsys.readouterr().err.split("\r")[-1])


@pytest.mark.parametrize(("action", "arguments", "message"), [
    ("move", {"to": 150}, "to must be 0 to 100 mm; got 150"),
    ("move", {"to": 50, "speed": 0}, "speed must be 0.1 to 50 mm/s; got 0"),
    ("move", {}, "move needs the argument 'to' (a float, 0 to 100 mm)"),
    ("move", {"to": 50, "sped": 5}, "move has no parameter 'sped'; its parameters: to, speed"),
    ("move", {"to": True}, "to must be a float; got True"),
    ("move", {"to": "far"}, "to must be a float; got 'far'"),
    ("move", {"to": float("nan")}, "to must be a float; got nan"),
    ("cycle", {"count": 2.5, "amplitude": 1}, "count must be an int; got 2.5"),
    ("cycle", {"count": 0, "amplitude": 1}, "count must be 1 to 1000; got 0"),
])
def test_arguments_the_bridge_would_refuse_are_refused_before_anything_is_sent(
        stack: Stack, action: str, arguments: dict[str, Any], message: str) -> None:
    async def attempt() -> tuple[bridge_client.InvalidValue, list[str]]:
        recording = RecordingTransport()
        async with bridge_client.AsyncBridge(stack.url, transport=recording) as lab:
            with pytest.raises(bridge_client.InvalidValue) as refused:
                await lab.module_a.invoke(action, **arguments)
        return refused.value, recording.methods

    refused, sent = asyncio.run(attempt())
    assert refused.message == message and sent == ["GET"]  # /modules when connecting, then nothing
    if "nan" not in message:  # the bridge, asked itself, refuses the same (NaN is not JSON: it cannot be asked)
        answer = httpx.post(f"{stack.url}/module_a/{action}", json=arguments)
        assert answer.status_code == 422 and message in answer.json()["message"]


RULES = [ValueRule("x", float, "mm", 0, 100), ValueRule("n", int, None, 1, 10), ValueRule("o", float | None, "V", 0, 12),
         ValueRule("s", str, choices=("a", "b")), ValueRule("t", str, max_length=5), ValueRule("b", bool),
         ValueRule("l", list[float]), ValueRule("r", float, "V", choices=(0.1, 1, 10, 100, 1000))]
VALUES = [5, 5.5, 3.0, 150, -1, 0, True, False, None, float("nan"), float("inf"), "a", "abcdef", [1.0, 2], ["a"], {}]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: f"{rule.name}:{rule.type_name}")
def test_the_client_refuses_exactly_what_the_bridge_refuses_and_in_its_words(rule: ValueRule) -> None:
    parameter = bridge_client.ParameterInfo.from_json(rule.name, rule.schema(), required=True)  # as /modules has it
    for value in VALUES:
        try:
            rule.validate(value)
            bridge = None
        except ServerInvalidValue as exc:
            bridge = exc.detail
        try:
            parameter.check(value)
            client = None
        except bridge_client.InvalidValue as exc:
            client = exc.message
        assert (client is None) == (bridge is None), (value, client, bridge)
        if client is not None and rule.name != "l":  # the bridge adds pydantic's reason for a wrong type
            assert str(bridge).startswith(client), (value, client, bridge)


def test_what_python_allows_and_the_bridge_takes_is_sent(lab: bridge_client.Bridge) -> None:
    cycle = lab.module_a.cycle(count=2.0, amplitude=1)  # a whole float is an int, an int a float
    assert cycle.arguments == {"count": 2, "amplitude": 1.0}
    cycle.cancel()
    with pytest.raises(bridge_client.UnknownAction, match="has no action 'fly'; known: move, home, stop, cycle"):
        lab.module_a.invoke("fly")
    with pytest.raises(TypeError, match=r"takes its arguments by name: move\(to=..., speed=...\)"):
        lab.module_a.move(80)


def test_a_second_move_or_a_write_to_what_a_move_owns_is_busy(lab: bridge_client.Bridge) -> None:
    move = lab.module_a.move(to=80, speed=10)
    with pytest.raises(bridge_client.Busy, match=f"cancel it with DELETE {move.href}") as busy:
        lab.module_a.move(to=10)
    assert busy.value.status == 409
    with pytest.raises(bridge_client.Busy):
        lab.module_a.position = 3
    lab.module_a.speed = 12  # not owned by the move
    move.cancel()


def test_a_failed_action_raises_its_own_error_from_wait(lab: bridge_client.Bridge) -> None:
    move = lab.module_a.move(to=80, speed=10)
    wait_until(lambda: lab.module_a.position > 1, 5, "carriage moving")
    halted = lab.module_a.stop().wait()  # stop makes the move under way fail
    with pytest.raises(bridge_client.InstrumentError) as failed:
        move.wait()
    assert type(failed.value) is bridge_client.InstrumentError and failed.value.code == "instrument_error"
    assert failed.value.message == (f"module_a.move failed: the carriage was halted at {halted:g} mm "
                                    "before reaching 80 mm")
    assert move.status == "failed" and move.error == {"error": "instrument_error",
                                                      "message": failed.value.message.partition(" failed: ")[2]}


def test_the_async_client_starts_waits_and_cancels_the_same_way(stack: Stack) -> None:
    async def session() -> tuple[Any, ...]:
        async with bridge_client.AsyncBridge(stack.url) as lab:
            assert str(inspect.signature(lab.module_a.move)) == "(*, to: float, speed: float | None = None) -> float"
            moved = await lab.module_a.move(to=5, speed=50)
            assert isinstance(moved, bridge_client.AsyncInvocation) and moved.status == "pending"
            result = await moved.wait()
            moving = await lab.module_a.move(to=80, speed=10)
            waiting = asyncio.create_task(moving.wait())
            while (await moving.refresh()).status != "running":
                await asyncio.sleep(0.02)
            waiting.cancel()  # as asyncio.run does on Ctrl+C
            with pytest.raises(asyncio.CancelledError):
                await waiting
            return result, moved.status, moving.status, moving.href

    result, first, second, href = asyncio.run(session())
    assert (result, first, second) == (5.0, "completed", "cancelled")
    assert httpx.get(stack.url + href).json()["status"] == "cancelled"


def test_starting_and_cancelling_need_a_token_as_a_write_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tokens.yml").write_text(f"alice: {ALICE}\n")
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"token_file": "tokens.yml"})
    monkeypatch.delenv("BRIDGE_TOKEN", raising=False)
    with running_stack(config, tmp_path) as (_, _, url), bridge_client.connect(url) as anonymous, \
            bridge_client.connect(url, token="wrong-token-0123456789") as wrong, \
            bridge_client.connect(url, token=ALICE) as alice:
        with pytest.raises(bridge_client.NotAuthenticated):
            anonymous.module_a.move(to=50)
        with pytest.raises(bridge_client.Forbidden):
            wrong.module_a.move(to=50)
        assert httpx.get(f"{url}/invocations").json()["invocations"] == []  # nothing started
        move = alice.module_a.move(to=50, speed=5)
        seen = anonymous.invocation(move.id)  # reads need no token (auth_reads is false)
        assert seen.status in ("pending", "running")
        with pytest.raises(bridge_client.NotAuthenticated):
            seen.cancel()
        move.cancel()
        assert seen.status == "cancelled"


def test_a_bridge_that_cannot_record_invocations_refuses_at_once_and_the_start_is_sent_once(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the folder should be")  # as a read-only or full disk would
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          data_dir="data", audit_log="audit.jsonl")
    with running_stack(config, tmp_path) as (_, _, url), bridge_client.connect(url, retries=3) as lab:
        with pytest.raises(bridge_client.ActionsUnavailable, match="actions cannot start") as refused:
            lab.module_a.move(to=10)
        assert refused.value.status == 503 and lab.module_a.position == 0.0  # reads go on
        audit = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
        assert [(a["op"], a["stage"], a["outcome"]) for a in audit] == [("invoke", "refused", "actions_unavailable")]
        (tmp_path / "data").unlink()  # fixed: the next start goes through
        assert lab.module_a.move(to=10, speed=50).wait() == 10.0


def test_an_invocation_the_experiment_process_lost_raises_action_lost(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}})
    with running_stack(config, tmp_path) as (backend, _, url), bridge_client.connect(url) as lab:
        move = lab.module_a.move(to=90, speed=5)
        wait_until(lambda: move.status == "running", 5, "move running")
        backend.signal(signal.SIGKILL)
        backend.wait(5)
        restarted = start_backend(config, tmp_path / "backend2.log")
        try:
            with pytest.raises(bridge_client.ActionLost, match="the experiment process stopped while this ran"):
                move.wait()
            assert move.status == "lost"
        finally:
            restarted.stop()


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The real transport, noting the method of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.methods: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.methods.append(request.method)
        return await super().handle_async_request(request)
