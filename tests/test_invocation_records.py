"""What the experiment process keeps of invocations: the journal (lost after a crash) and the audit records."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from base_module import InvalidValue
from labbridge.core.config import ConfigError
from labbridge.core.errors import ActionsUnavailable, AlreadyFinished, UnknownInvocation
from labbridge.experiment.experiment import Experiment
from labbridge.experiment.invocation_journal import FILE_NAME, InvocationJournal
from tests.test_invocations import experiment, finished, invoke, op, run, winch


def test_a_journal_reports_what_ran_when_the_process_died_as_lost_and_keeps_it_across_restarts(tmp_path: Path) -> None:
    async def crash(exp: Experiment) -> str:
        ident: str = (await exp.handle(invoke("reel", to=5, steps=1000)))["id"]
        await asyncio.sleep(0.05)
        exp.invocations.journal = None  # the process "dies": its close never records an end
        return ident

    ident = run(crash, experiment(tmp_path))
    with open(tmp_path / "data" / FILE_NAME, "ab") as journal:
        journal.write(b'{"event": "start", "id": "torn')  # a kill in the middle of a write

    async def restarted(exp: Experiment) -> dict[str, Any]:
        reply: dict[str, Any] = await exp.handle(op("invocation", {"id": ident}))
        return reply

    for _ in range(2):  # and again after a further restart
        lost = run(restarted, experiment(tmp_path))
        assert lost["status"] == "lost" and lost["arguments"] == {"to": 5.0, "steps": 1000}
        assert lost["error"] == {"error": "lost", "message": "the experiment process stopped while this ran; "
                                                             "its outcome is unknown"}
        assert lost["finished"] is not None


def test_stopping_cleanly_cancels_what_runs_with_its_clean_up_and_a_restart_keeps_every_finished_one(
        tmp_path: Path) -> None:
    module = winch()

    async def started(exp: Experiment) -> tuple[str, str]:
        done: str = (await exp.handle(invoke("reel", to=2, steps=1)))["id"]
        assert (await finished(exp, done))["status"] == "completed"
        ident: str = (await exp.handle(invoke("reel", to=5, steps=1000)))["id"]
        await asyncio.sleep(0.05)
        return done, ident

    done, ident = run(started, experiment(tmp_path, module=module))
    assert module.log == ["reel started", "reel started", "cleaned up"]

    async def restarted(exp: Experiment) -> tuple[dict[str, Any], dict[str, Any]]:
        return (await exp.handle(op("invocation", {"id": done})), await exp.handle(op("invocation", {"id": ident})))

    for _ in range(2):  # and again after a further restart
        completed, cancelled = run(restarted, experiment(tmp_path))
        assert completed["status"] == "completed" and completed["result"] == 2.0 and completed["progress"] == 1.0
        assert cancelled["status"] == "cancelled" and cancelled["error"] is None
        assert cancelled["message"] == "cancelled: the experiment process is stopping"
        assert cancelled["arguments"] == {"to": 5.0, "steps": 1000} and cancelled["started"] <= cancelled["finished"]


def test_a_restart_keeps_the_last_history_per_module_of_finished_invocations(tmp_path: Path) -> None:
    async def three(exp: Experiment) -> list[str]:
        idents = []
        for to in (1, 2, 3):
            idents.append((await exp.handle(invoke("reel", to=to, steps=1)))["id"])
            await finished(exp, idents[-1])
        return idents

    idents = run(three, experiment(tmp_path, kept=2))

    async def listed(exp: Experiment) -> list[str]:
        return [inv["id"] for inv in (await exp.handle(op("invocations", {})))["invocations"]]

    assert run(listed, experiment(tmp_path, kept=2)) == idents[:0:-1]  # the newest two, newest first


def test_every_invoke_cancel_and_end_is_audited_with_identity_and_client(tmp_path: Path) -> None:
    async def scenario(exp: Experiment) -> str:
        with pytest.raises(InvalidValue):
            await exp.handle(invoke("reel", identity="mallory", to=500))
        ident: str = (await exp.handle(invoke("reel", to=5, steps=1000)))["id"]
        await asyncio.sleep(0.05)
        await exp.handle(op("cancel", {"id": ident}, client="10.0.0.2", identity="bob"))
        with pytest.raises(AlreadyFinished):
            await exp.handle(op("cancel", {"id": ident}, client="10.0.0.2", identity="bob"))
        return ident

    ident = run(scenario, experiment(tmp_path))
    records = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    seen = [(r["op"], r["stage"], r["identity"], r["client"], r["outcome"]) for r in records]
    assert seen == [("invoke", "refused", "mallory", "127.0.0.1", "invalid_value"),
                    ("invoke", "started", "alice", "127.0.0.1", None),
                    ("cancel", "started", "bob", "10.0.0.2", None),
                    ("cancel", "finished", "bob", "10.0.0.2", "ok"),
                    ("invoke", "finished", "alice", "127.0.0.1", "cancelled"),
                    ("cancel", "refused", "bob", "10.0.0.2", "already_finished")]
    assert records[1]["requested"] == {"to": 5.0, "steps": 1000} and all(r["attribute"] == "reel" for r in records)
    # The lines of the run and of the cancel that reached it name the invocation; the started one its id.
    assert records[1]["id"] == records[4]["id"] == ident
    assert records[2]["requested"] == records[5]["requested"] == {"invocation": ident}


def test_a_data_dir_that_cannot_be_used_stops_the_start_with_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the folder should be")
    with pytest.raises(ConfigError, match="data_dir: cannot use"):
        InvocationJournal(tmp_path / "data").recover(time.time())


def test_actions_wait_for_a_usable_data_dir_while_the_rest_goes_on(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the folder should be")  # as a read-only or full disk would

    async def scenario(exp: Experiment) -> str:
        with pytest.raises(ActionsUnavailable, match="data"):
            await exp.handle(invoke("reel", to=5))
        assert (await exp.handle(op("get", module="winch", attribute="length")))["value"] == 0.0  # reads go on
        (tmp_path / "data").unlink()  # fixed: the next invoke finds the folder usable
        started: str = (await exp.handle(invoke("reel", to=1, steps=1)))["status"]
        return started

    assert run(scenario, experiment(tmp_path)) in ("pending", "running")


def test_the_journal_is_compacted_to_what_must_be_kept(tmp_path: Path) -> None:
    journal = InvocationJournal(tmp_path, compact_after=10, kept=3)
    journal.recover(time.time())
    record: dict[str, Any] = {"module": "winch", "action": "reel", "arguments": {}, "started": None}
    journal.started({**record, "id": "open", "created": 0.0})
    for number in range(20):
        journal.started({**record, "id": f"done{number}", "created": 1.0 + number})
        journal.ended({**record, "id": f"done{number}", "created": 1.0 + number, "status": "completed",
                       "finished": 2.0 + number})
    lines = (tmp_path / FILE_NAME).read_bytes().splitlines()
    assert len(lines) < 12
    recovered = InvocationJournal(tmp_path, kept=3).recover(30.0)
    # still known: the open one (as lost, however old) and the newest finished ones, up to `kept` per module
    assert [(r["id"], r["status"]) for r in recovered] == [("open", "lost"), ("done18", "completed"),
                                                           ("done19", "completed")]
