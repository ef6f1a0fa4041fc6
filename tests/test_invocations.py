"""Invocations in the experiment process: run, progress, ownership, cancel, long poll, history, lost, audit."""

from __future__ import annotations

import asyncio
from dataclasses import replace
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import pytest

from base_module import Attribute, BaseModule, InvalidValue, ModuleSettings, Param, action
from labbridge.core.action import FINISHED
from labbridge.core.errors import (
    AlreadyFinished,
    Busy,
    MalformedRequest,
    NotAnAction,
    TooManyActions,
    UnknownAction,
    UnknownInvocation,
    UnknownModule,
)
from labbridge.core.config import ActionSettings
from labbridge.core.protocol import MISSING, Request
from labbridge.experiment.action_quota import ActionQuota
from labbridge.core.audit import AuditLog
from labbridge.experiment.experiment import Experiment
from labbridge.experiment.invocation_journal import InvocationJournal


class Winch(BaseModule):
    """An in-memory winch whose actions record what they did."""

    length: float = Attribute(unit="m", minimum=0, maximum=100, writable=True, doc="Rope out.")
    label: str = Attribute(writable=True, doc="A note.")

    def __init__(self, name: str, settings: ModuleSettings) -> None:
        super().__init__(name, settings)
        self.state: dict[str, Any] = {"length": 0.0, "label": ""}
        self.log: list[str] = []

    async def read(self, name: str) -> Any:
        return self.state[name]

    async def write(self, name: str, value: Any) -> Any:
        self.state[name] = value
        return value

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        return {n: self.state[n] for n in names}

    @action(owns=("length",))
    async def reel(self, to: Annotated[float, Param(like="length")], steps: int = 10) -> float:
        """Reel to `to` in `steps` steps of 20 ms; cancelling stops and notes it."""
        self.log.append("reel started")
        start = await self.read_value("length")
        try:
            for step in range(1, steps + 1):
                await asyncio.sleep(0.02)
                value = await self.write_value("length", start + (to - start) * step / steps)
                self.report(step / steps, f"at {value:g} m")
        except asyncio.CancelledError:
            self.log.append("cleaned up")
            raise
        return float(value)

    @action(owns=("length",))
    async def tension(self) -> None:
        """Conflicts with reel."""

    @action
    async def look(self) -> float:
        """Owns nothing: runs beside reel; reads inside a held turn without waiting for itself."""
        async with self.turn():
            return float(await self.read_value("length"))

    @action
    async def fail(self, how: Annotated[str, Param(choices=("bug", "refusal"))]) -> None:
        """Fails one way or the other."""
        if how == "bug":
            raise ZeroDivisionError("division by zero")
        raise InvalidValue("the winch refuses")

    @action
    async def settle(self, then: Annotated[str, Param(choices=("return", "fail"))] = "return") -> None:
        """Reports progress from an estimate that the end came sooner than, then returns (or fails)."""
        self.report(0.8343, "settling")
        if then == "fail":
            raise InvalidValue("the winch refuses")

    @action
    async def wrong(self) -> int:
        """Returns something that is not its declared result."""
        return "many"  # type: ignore[return-value]

    @action
    async def block(self, seconds: float) -> str:
        """Blocks a thread, checking the cancel flag, as a blocking driver would."""
        def work() -> str:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if self.cancelled:  # the thread is not cancelled with the task: it must look
                    self.log.append("saw the flag")
                    self.raise_if_cancelled()
                time.sleep(0.005)
            return "done"

        return await asyncio.to_thread(work)


def winch(**settings: Any) -> Winch:
    return Winch("winch", ModuleSettings.model_validate({"class": "tests.test_invocations.Winch", **settings}))


def experiment(tmp: Path | None = None, kept: int = 100, module: Winch | None = None) -> Experiment:
    return Experiment({"winch": module or winch()}, kept_invocations=kept,
                      journal=InvocationJournal(tmp / "data") if tmp else None,
                      audit=AuditLog(tmp / "audit.jsonl") if tmp else None)


def op(op: str, value: Any = MISSING, module: str | None = None, attribute: str | None = None,
       timeout: float = 5.0, client: str | None = None, identity: str | None = None) -> Request:
    request = Request.new(op, module, attribute, value, timeout=timeout)  # type: ignore[arg-type]
    return replace(request, client=client, identity=identity)


def invoke(name: str, identity: str | None = "alice", **arguments: Any) -> Request:
    return op("invoke", {"arguments": arguments}, "winch", name, client="127.0.0.1", identity=identity)


async def finished(exp: Experiment, ident: str) -> dict[str, Any]:
    """The invocation once it has finished, following it with long polls."""
    while True:
        reply: dict[str, Any] = await exp.handle(op("invocation", {"id": ident, "wait": 5}))
        if reply["status"] in FINISHED:
            return reply


def run(scenario: Callable[[Experiment], Awaitable[Any]], exp: Experiment | None = None) -> Any:
    async def main() -> Any:
        nonlocal exp
        exp = exp or experiment()
        await exp.start()
        try:
            return await scenario(exp)
        finally:
            await exp.close()
    return asyncio.run(main())


def test_an_invocation_starts_pending_then_completes_with_increasing_progress() -> None:
    async def scenario(exp: Experiment) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        exp.publish = events.append
        started = await exp.handle(invoke("reel", to=10))
        return started, await finished(exp, started["id"]), events

    started, done, events = run(scenario)
    assert started["status"] == "pending" and started["arguments"] == {"to": 10.0, "steps": 10}
    assert started["href"] == f"/invocations/{started['id']}" and started["started"] is None
    assert done["status"] == "completed" and done["result"] == 10.0 and done["progress"] == 1.0
    assert done["message"] == "at 10 m" and done["error"] is None
    assert done["created"] <= done["started"] <= done["finished"]
    progress = [e["invocation"]["progress"] for e in events if "invocation" in e and e["invocation"]["progress"]]
    assert progress == sorted(progress) and len(progress) >= 10
    assert [e["invocation"]["status"] for e in events if "invocation" in e][-1] == "completed"
    # the values the action wrote went live too
    assert {"module": "winch", "attribute": "length", "value": 10.0, "unit": "m"} in events


def test_a_completed_action_that_reported_progress_ends_at_1_and_one_that_never_did_stays_null() -> None:
    async def scenario(exp: Experiment) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        exp.publish = events.append
        done = []
        for request in (invoke("settle"), invoke("settle", then="fail"), invoke("look")):
            done.append(await finished(exp, (await exp.handle(request))["id"]))
        return [*done, [e["invocation"] for e in events if e.get("invocation", {}).get("id") == done[0]["id"]][-1]]

    settled, failed, looked, published = run(scenario)
    assert settled["status"] == "completed" and settled["progress"] == 1.0 and settled["message"] == "settling"
    assert published["status"] == "completed" and published["progress"] == 1.0  # the live event says so too
    assert failed["status"] == "failed" and failed["progress"] == 0.8343  # where it got, as it said
    assert looked["status"] == "completed" and looked["progress"] is None  # it never said: nothing to round up


def test_reads_go_on_while_an_action_runs_and_see_intermediate_values() -> None:
    async def scenario(exp: Experiment) -> list[float]:
        started = await exp.handle(invoke("reel", to=50, steps=20))
        seen = []
        for _ in range(5):
            await asyncio.sleep(0.05)
            seen.append((await exp.handle(op("get", module="winch", attribute="length")))["value"])
        await finished(exp, started["id"])
        return seen

    seen = run(scenario)
    assert all(0 < v < 50 for v in seen) and seen == sorted(seen) and len(set(seen)) > 2


def test_a_write_to_an_owned_attribute_or_a_conflicting_action_is_busy_and_others_go_on() -> None:
    async def scenario(exp: Experiment) -> tuple[str, str, list[dict[str, Any]], list[str]]:
        started = await exp.handle(invoke("reel", to=5))
        await asyncio.sleep(0.01)  # running
        with pytest.raises(Busy) as put:
            await exp.handle(op("put", 3.0, "winch", "length"))
        with pytest.raises(Busy) as second:
            await exp.handle(invoke("tension"))
        replies = [await exp.handle(op("put", "calm", "winch", "label"))]
        look = await exp.handle(invoke("look"))
        replies.append(await finished(exp, look["id"]))
        await finished(exp, started["id"])
        replies.append(await exp.handle(op("put", 3.0, "winch", "length")))  # free again
        return put.value.detail, second.value.detail, replies, started["id"]

    put, second, replies, ident = run(scenario)
    assert put == (f"winch.length is driven by reel (invocation {ident}, running); "
                   f"wait for it to finish or cancel it with DELETE /invocations/{ident}")
    assert second.startswith("tension cannot start: winch.length is driven by reel") and ident in second
    assert replies[0]["value"] == "calm" and replies[1]["status"] == "completed" and replies[2]["value"] == 3.0


def test_cancel_stops_the_action_at_its_await_runs_its_clean_up_and_a_second_cancel_is_409() -> None:
    module = winch()

    async def scenario(exp: Experiment) -> tuple[dict[str, Any], float, float, float]:
        started = await exp.handle(invoke("reel", to=100, steps=100))
        await asyncio.sleep(0.2)
        begun = time.perf_counter()
        cancelled = await exp.handle(op("cancel", {"id": started["id"]}, client="10.0.0.2", identity="bob"))
        took = time.perf_counter() - begun
        stopped_at = module.state["length"]
        await asyncio.sleep(0.1)
        with pytest.raises(AlreadyFinished, match="already finished \\(cancelled\\)"):
            await exp.handle(op("cancel", {"id": started["id"]}))
        return cancelled, took, stopped_at, module.state["length"]

    cancelled, took, stopped_at, later = run(scenario, experiment(module=module))
    assert cancelled["status"] == "cancelled" and cancelled["result"] is None and cancelled["error"] is None
    assert took < 0.1 and 0 < stopped_at < 100 and later == stopped_at
    assert module.log == ["reel started", "cleaned up"]


def test_an_invocation_cancelled_before_it_started_never_runs() -> None:
    module = winch()

    async def scenario(exp: Experiment) -> dict[str, Any]:
        started = await exp.handle(invoke("reel", to=5))
        cancelled: dict[str, Any] = await exp.handle(op("cancel", {"id": started["id"]}))  # before its first turn
        return cancelled

    assert run(scenario, experiment(module=module))["status"] == "cancelled"
    assert module.log == []


def test_code_blocking_in_a_thread_sees_the_cancelled_flag() -> None:
    module = winch()

    async def scenario(exp: Experiment) -> dict[str, Any]:
        started = await exp.handle(invoke("block", seconds=5))
        await asyncio.sleep(0.1)
        await exp.handle(op("cancel", {"id": started["id"]}))
        await asyncio.sleep(0.1)  # the thread looks every 5 ms
        return await finished(exp, started["id"])

    assert run(scenario, experiment(module=module))["status"] == "cancelled"
    assert module.log == ["saw the flag"]


@pytest.mark.parametrize(("name", "arguments", "error"), [
    ("fail", {"how": "bug"}, {"error": "instrument_error",
                               "message": "winch.fail failed: ZeroDivisionError: division by zero"}),
    ("fail", {"how": "refusal"}, {"error": "invalid_value", "message": "the winch refuses"}),
    ("wrong", {}, {"error": "instrument_error",
                   "message": "action wrong returned 'many', expected an int (Input should be a valid integer, "
                              "unable to parse string as an integer)"}),
])
def test_an_action_that_raises_or_returns_garbage_fails_with_a_clear_error(
        name: str, arguments: dict[str, Any], error: dict[str, str]) -> None:
    async def scenario(exp: Experiment) -> dict[str, Any]:
        return await finished(exp, (await exp.handle(invoke(name, **arguments)))["id"])

    done = run(scenario)
    assert done["status"] == "failed" and done["error"] == error


@pytest.mark.parametrize(("request_", "error"), [
    (invoke("reel", to=500), InvalidValue),
    (invoke("reel"), InvalidValue),
    (invoke("reel", to=5, speed=3), InvalidValue),
    (invoke("length"), NotAnAction),
    (invoke("attributes"), NotAnAction),
    (invoke("unwind"), UnknownAction),
    (op("invoke", {"arguments": [5]}, "winch", "reel"), MalformedRequest),
    (op("invoke", {}, "crane", "reel"), UnknownModule),
    (op("invocation", {"id": "nope"}), UnknownInvocation),
    (op("cancel", {"id": None}), UnknownInvocation),
    (op("invocation", {"id": "x", "wait": 61}), UnknownInvocation),
    (op("invocations", {"status": "done"}), InvalidValue),
    (op("invocations", {"module": "crane"}), UnknownModule),
    (op("invocations", [1]), MalformedRequest),
])
def test_bad_invocation_requests_are_refused_and_nothing_runs(request_: Request, error: type[Exception]) -> None:
    module = winch()

    async def scenario(exp: Experiment) -> None:
        with pytest.raises(error):
            await exp.handle(request_)
        assert (await exp.handle(op("invocations", {})))["invocations"] == []

    run(scenario, experiment(module=module))
    assert module.log == []


def test_a_long_poll_answers_when_the_status_changes_and_refuses_waits_over_the_bound() -> None:
    async def scenario(exp: Experiment) -> tuple[float, dict[str, Any], float]:
        started = await exp.handle(invoke("reel", to=5, steps=5))
        await asyncio.sleep(0.01)
        begun = time.perf_counter()
        done = await exp.handle(op("invocation", {"id": started["id"], "wait": 10}))
        waited = time.perf_counter() - begun
        with pytest.raises(InvalidValue, match="wait must be 0 to 60 s; got 61"):
            await exp.handle(op("invocation", {"id": started["id"], "wait": 61}))
        begun = time.perf_counter()
        await exp.handle(op("invocation", {"id": started["id"], "wait": 10}))  # finished: at once
        return waited, done, time.perf_counter() - begun

    waited, done, again = run(scenario)
    assert done["status"] == "completed" and 0.05 < waited < 1 and again < 0.05


def test_a_long_poll_ends_before_its_request_deadline() -> None:
    async def scenario(exp: Experiment) -> float:
        started = await exp.handle(invoke("reel", to=5, steps=100))
        await asyncio.sleep(0.01)  # running
        begun = time.perf_counter()
        await exp.handle(op("invocation", {"id": started["id"], "wait": 30}, timeout=0.5))
        return time.perf_counter() - begun

    assert 0.3 < run(scenario) < 0.5


def test_the_list_is_newest_first_filtered_and_bounded_by_the_history_per_module() -> None:
    async def scenario(exp: Experiment) -> tuple[list[str], list[str], list[str]]:
        ids = []
        for _ in range(3):
            ids.append((await exp.handle(invoke("look")))["id"])
            await finished(exp, ids[-1])
        running = (await exp.handle(invoke("reel", to=1)))["id"]
        listed = [i["id"] for i in (await exp.handle(op("invocations", {"module": "winch"})))["invocations"]]
        # The reel's task has not had a turn yet: nothing in this coroutine awaited since it was created.
        only_running = [i["id"] for i in (await exp.handle(op("invocations", {"status": "pending"})))["invocations"]]
        with pytest.raises(UnknownInvocation):
            await exp.handle(op("invocation", {"id": ids[0]}))
        return [running, *ids], listed, only_running

    expected, listed, running = run(scenario, experiment(kept=2))
    assert listed == [expected[0], expected[3], expected[2]]  # the oldest finished one is forgotten
    assert running == [expected[0]]


def test_a_get_of_an_action_describes_it() -> None:
    async def scenario(exp: Experiment) -> dict[str, Any]:
        return await exp.handle(op("get", module="winch", attribute="reel"))  # type: ignore[no-any-return]

    described = run(scenario)
    assert described["module"] == "winch" and described["action"] == "reel" and described["owns"] == ["length"]
    assert described["parameters"]["properties"]["to"]["maximum"] == 100


def test_a_module_and_a_client_have_at_most_their_share_of_unfinished_actions() -> None:
    async def scenario(exp: Experiment) -> None:
        first = await exp.handle(invoke("reel", identity="alice", to=50, steps=100))
        looked = await exp.handle(invoke("look", identity="alice"))
        await finished(exp, looked["id"])  # no longer counted once it has ended
        await exp.handle(invoke("block", identity="alice", seconds=5))
        with pytest.raises(TooManyActions, match="identity alice has 2 actions pending or running"):
            await exp.handle(invoke("look", identity="alice"))
        await exp.handle(invoke("block", identity="bob", seconds=5))
        with pytest.raises(TooManyActions, match="module winch has 3 actions pending or running"):
            await exp.handle(invoke("look", identity="carol"))
        await exp.handle(op("cancel", {"id": first["id"]}, identity="alice"))  # a cancel is never refused
        assert (await exp.handle(invoke("look", identity="carol")))["status"] in ("pending", "running", "completed")

    exp = Experiment({"winch": winch()}, quota=ActionQuota(ActionSettings(max_per_module=3, max_per_client=2)))
    run(scenario, exp)
