"""The busy rule and cancel under every ordering: each race is driven step by step (a gated driver call, a
gated audit line), never left to luck."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson

from base_module import ModuleSettings, action
from labbridge.core.audit import AuditLog
from labbridge.core.errors import AlreadyFinished, Busy
from labbridge.experiment.experiment import Experiment
from labbridge.experiment.invocation_journal import InvocationJournal
from tests.test_invocations import Winch, finished, invoke, op, run


class GatedWinch(Winch):
    """A winch whose `label` read waits for `gate`, and whose `hold` action waits for `done` and then returns."""

    def __init__(self, name: str, settings: ModuleSettings) -> None:
        super().__init__(name, settings)
        self.gate, self.done, self.reading = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def read(self, name: str) -> Any:
        if name == "label":
            self.reading.set()
            await self.gate.wait()  # holds the module's turn until the test lets it go
        return await super().read(name)

    @action(owns=("length",))
    async def hold(self) -> str:
        """Owns `length` until the test sets `done`."""
        await self.done.wait()
        return "done"


class GatedAuditLog(AuditLog):
    """An audit log whose writer stops before a cancel's `started` line until `release` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writing, self.release = threading.Event(), threading.Event()

    def _write(self, line: bytes) -> None:
        record = orjson.loads(line)
        if (record["op"], record["stage"]) == ("cancel", "started"):
            self.writing.set()
            self.release.wait(10)
        super()._write(line)


def gated(tmp: Path | None = None, audit: AuditLog | None = None) -> tuple[Experiment, GatedWinch]:
    module = GatedWinch("winch", ModuleSettings.model_validate({"class": "tests.test_invocation_races.GatedWinch"}))
    journal = InvocationJournal(tmp / "data") if tmp else None
    return Experiment({"winch": module}, journal=journal, audit=audit), module


async def until(condition: Any, what: str) -> None:
    """Let the loop run until `condition()` holds (a deadline, never a fixed wait)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


def test_two_actions_owning_one_attribute_never_both_start_while_the_journal_is_checked(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the folder should be")  # unusable at start...
    exp, _ = gated(tmp_path)

    async def scenario(exp: Experiment) -> list[Any]:
        (tmp_path / "data").unlink()  # ...and fixed later: each invoke now checks the journal (an await)
        outcomes = await asyncio.gather(exp.handle(invoke("reel", to=5, steps=1000)), exp.handle(invoke("hold")),
                                        return_exceptions=True)
        return list(outcomes)

    outcomes = run(scenario, exp)
    assert sorted(type(o).__name__ for o in outcomes) == ["Busy", "dict"], outcomes
    started, refused = (outcomes if isinstance(outcomes[0], dict) else outcomes[::-1])
    assert f"(invocation {started['id']}, " in str(refused)


def test_a_put_that_waited_for_its_turn_is_checked_again_when_it_comes() -> None:
    exp, module = gated()

    async def scenario(exp: Experiment) -> tuple[BaseException | None, dict[str, Any]]:
        read = asyncio.create_task(exp.handle(op("get", module="winch", attribute="label")))
        await until(module.reading.is_set, "the read holds the module")
        put = asyncio.create_task(exp.handle(op("put", 50.0, "winch", "length")))
        await until(lambda: module.turns.pending == 2, "the put waits for its turn")  # checked: length was free
        started = await exp.handle(invoke("reel", to=5, steps=2))
        await until(lambda: exp.invocations._all[started["id"]].status == "running", "reel runs")
        module.gate.set()  # the read ends; the put's turn comes before reel's first driver call
        await read
        try:
            await put
        except Busy as exc:
            refused: BaseException | None = exc
        else:
            refused = None
        return refused, await finished(exp, started["id"])

    refused, reel = run(scenario, exp)
    assert isinstance(refused, Busy) and "driven by reel" in str(refused) and "running" in str(refused)
    assert reel["status"] == "completed" and module.state["length"] == 5.0  # the put never reached the winch


def test_a_cancel_that_comes_as_the_action_completes_says_it_came_too_late_and_so_does_the_audit_log(
        tmp_path: Path) -> None:
    audit = GatedAuditLog(tmp_path / "audit.jsonl")
    exp, module = gated(tmp_path, audit)

    async def scenario(exp: Experiment) -> tuple[BaseException | None, dict[str, Any]]:
        started = await exp.handle(invoke("hold"))
        await until(lambda: exp.invocations._all[started["id"]].status == "running", "hold runs")
        cancel = asyncio.create_task(exp.handle(op("cancel", {"id": started["id"]})))
        await asyncio.to_thread(audit.writing.wait, 5)  # the cancel found it running and is writing its line...
        module.done.set()  # ...when the action completes
        await until(lambda: exp.invocations._all[started["id"]].status == "completed", "hold completes")
        audit.release.set()
        try:
            answer = await cancel
        except AlreadyFinished as exc:
            return exc, await finished(exp, started["id"])
        return None, answer

    refused, invocation = run(scenario, exp)
    assert isinstance(refused, AlreadyFinished), invocation
    assert "already finished (completed)" in str(refused)
    assert invocation["status"] == "completed" and invocation["result"] == "done"
    lines = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert [(r["op"], r["stage"], r["outcome"]) for r in lines] == [
        ("invoke", "started", None), ("cancel", "started", None), ("invoke", "finished", "completed"),
        ("cancel", "finished", "already_finished")]
    assert lines[-1]["after"] == "completed"


def test_a_cancel_in_time_reaches_the_action_and_its_audit_line_says_ok(tmp_path: Path) -> None:
    audit = GatedAuditLog(tmp_path / "audit.jsonl")
    exp, module = gated(tmp_path, audit)

    async def scenario(exp: Experiment) -> dict[str, Any]:
        started = await exp.handle(invoke("hold"))
        await until(lambda: exp.invocations._all[started["id"]].status == "running", "hold runs")
        cancel = asyncio.create_task(exp.handle(op("cancel", {"id": started["id"]})))
        await asyncio.to_thread(audit.writing.wait, 5)
        audit.release.set()
        answer: dict[str, Any] = await cancel
        return answer

    assert run(scenario, exp)["status"] == "cancelled"
    lines = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert [(r["op"], r["stage"], r["outcome"]) for r in lines] == [
        ("invoke", "started", None), ("cancel", "started", None), ("cancel", "finished", "ok"),
        ("invoke", "finished", "cancelled")]
