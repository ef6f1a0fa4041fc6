"""Safe states in the experiment process: declared in config.yml or by a hook, checked at start, applied in order,
each write audited, a failing one reported and the others still written, bounded in time; the marker of a run.

The real processes (SIGTERM, kill -9 with an instrument that outlives them) are in test_safe_state_processes.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from labbridge.core.config import ConfigError, load_config
from labbridge.core.errors import UnknownModule
from labbridge.core.protocol import Request
from labbridge.experiment.experiment import Experiment
from labbridge.experiment.safety.run_marker import RunMarker
from labbridge.experiment.safety.safe_state import AT_STOP
from tests.fixture_modules import Recorder

RECORDER = {"class": "tests.fixture_modules.Recorder", "port": 1, "timeout": 0.2, "connect_timeout": 0.1}


class HookedRecorder(Recorder):
    """A Recorder whose class knows its safe state."""

    async def safe_state(self) -> None:
        await self.write_value("value", -1.0)


HOOKED = {**RECORDER, "class": "tests.test_safe_state.HookedRecorder"}


def experiment(tmp_path: Path, modules: dict[str, Any], **top: Any) -> Experiment:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"modules": modules, "audit_log": "audit.jsonl", **top}, sort_keys=False),
                    encoding="utf-8")
    return Experiment.from_config(load_config(path), str(path))


def audit_lines(tmp_path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]


def writes(module: Any) -> list[tuple[str, Any]]:
    return [(name, value) for op, name, value, _ in module.executed if op == "write"]


# -- config.yml: every mistake refused at start, naming the key --------------------------------

@pytest.mark.parametrize(("safe_state", "message"), [
    ({"nope": 1}, r"modules\.a\.safe_state\.nope: Recorder declares no attribute 'nope' \(writable: value, delay, mode\)"),
    ({"count": 0}, r"modules\.a\.safe_state\.count: count is read-only"),
    ({"value": 99}, r"modules\.a\.safe_state\.value: .*10"),
    ({"value": "low"}, r"modules\.a\.safe_state\.value: "),
    ({"mode": "off"}, r"modules\.a\.safe_state\.mode: .*ok"),
    ({"value": 7}, r"modules\.a\.safe_state\.value: .*5"),  # inside the class's limits, outside config.yml's
])
def test_a_safe_state_the_module_cannot_take_is_refused_at_start_naming_the_key(
        tmp_path: Path, safe_state: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        experiment(tmp_path, {"a": {**RECORDER, "limits": {"value": {"max": 5}}, "safe_state": safe_state}})


def test_unknown_keys_of_the_top_level_section_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"safe_state\.after_crahs: unknown key"):
        experiment(tmp_path, {"a": RECORDER}, safe_state={"after_crahs": False})
    with pytest.raises(ConfigError, match=r"safe_state\.after_crash: Input should be a valid boolean"):
        experiment(tmp_path, {"a": RECORDER}, safe_state={"after_crash": "sometimes"})


def test_a_hook_that_is_not_async_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match="safe_state must be `async def`"):
        type("Blocking", (Recorder,), {"safe_state": lambda self: None})


# -- applying ----------------------------------------------------------------------------------

def test_values_are_written_in_the_order_given_audited_told_and_shown_in_the_health_answer(tmp_path: Path) -> None:
    exp = experiment(tmp_path, {"a": {**RECORDER, "safe_state": {"mode": "ok", "value": 0, "delay": 0}}, "b": RECORDER})
    told: list[dict[str, Any]] = []
    exp.tell = told.append
    published: list[dict[str, Any]] = []
    exp.publish = published.append
    module = exp.modules["a"]

    async def scenario() -> dict[str, Any]:
        await exp.start()
        module.state["value"] = 3.0
        before = time.time()
        result = await exp.safe_states.apply("a", "a test")
        assert before <= result["applied_at"] <= time.time()
        return result

    result = asyncio.run(scenario())
    assert writes(module) == [("mode", "ok"), ("value", 0.0), ("delay", 0.0)]
    assert result["written"] == {"mode": "ok", "value": 0.0, "delay": 0.0} and result["failed"] == {}
    assert [(e["attribute"], e["value"]) for e in published] == [("mode", "ok"), ("value", 0.0), ("delay", 0.0)]
    assert told == [{"kind": "safe_state", "module": "a", "reason": "a test", "time": result["applied_at"],
                     "failed": {}, "message": "a put in its safe state (a test): mode='ok', value=0.0, delay=0.0"}]
    lines = [line for line in audit_lines(tmp_path) if line["op"] == "safe_state"]
    assert [(line["stage"], line["attribute"], line["outcome"]) for line in lines] == [
        ("started", "mode", None), ("finished", "mode", "ok"), ("started", "value", None),
        ("finished", "value", "ok"), ("started", "delay", None), ("finished", "delay", "ok")]
    assert {line["client"] for line in lines} == {"bridge (a test)"}
    health = asyncio.run(exp.handle(Request.new("ping", timeout=5.0)))["modules"]
    assert health["a"]["safe_state"] == {"applied_at": result["applied_at"], "reason": "a test", "failed": {}}
    assert health["b"]["safe_state"] is None
    assert not exp.safe_states.declares("b")
    with pytest.raises(UnknownModule):
        asyncio.run(exp.safe_states.apply("nope", "a test"))


def test_a_write_that_fails_is_reported_and_the_next_ones_are_still_written(tmp_path: Path) -> None:
    exp = experiment(tmp_path, {"a": {**RECORDER, "safe_state": {"value": 0, "mode": "ok"}}})
    module = exp.modules["a"]
    module.state["mode"] = "raise"  # every call but one to `mode` raises
    told: list[dict[str, Any]] = []
    exp.tell = told.append
    result = asyncio.run(exp.safe_states.apply("a", "a test"))
    assert writes(module) == [("value", 0.0), ("mode", "ok")]
    assert result["failed"] == {"value": "module a failed: RuntimeError: driver exploded"}
    assert result["written"] == {"mode": "ok"}
    assert "FAILED value: module a failed: RuntimeError: driver exploded" in told[0]["message"]
    assert [(line["attribute"], line["outcome"]) for line in audit_lines(tmp_path) if line["stage"] == "finished"] \
        == [("value", "instrument_error"), ("mode", "ok")]


def test_a_hung_instrument_cannot_hold_the_safe_state_up_past_its_bounds(tmp_path: Path) -> None:
    exp = experiment(tmp_path, {"a": {**RECORDER, "safe_state": {"value": 0, "mode": "ok"}}})
    exp.modules["a"].state["mode"] = "hang"
    started = time.monotonic()
    result = asyncio.run(exp.safe_states.apply("a", "a test"))
    assert time.monotonic() - started < 1.0  # each write bounded by timeout + connect_timeout (0.3 s)
    assert result["failed"] == {"value": "no answer within 0.3 s"} and result["written"] == {"mode": "ok"}
    exp.modules["a"].state["mode"] = "hang"
    started = time.monotonic()
    result = asyncio.run(exp.safe_states.apply("a", "a test", within=0.1))  # the whole, e.g. at a stop
    assert time.monotonic() - started < 0.6
    assert result["failed"] == {"value": "not done within 0.1 s", "mode": "not done within 0.1 s"}
    exp.audit.close()  # type: ignore[union-attr]  # the line queued for the writer thread is on disk
    cut_short = [line for line in audit_lines(tmp_path) if line["stage"] == "finished"][-1]  # not the notice
    assert (cut_short["attribute"], cut_short["outcome"]) == ("value", "instrument_timeout")  # not left open


def test_a_class_hook_is_used_when_config_declares_none_and_config_wins_when_it_does(tmp_path: Path) -> None:
    exp = experiment(tmp_path, {"hooked": HOOKED, "configured": {**HOOKED, "safe_state": {"value": 2}}})
    assert exp.safe_states.declares("hooked") and exp.safe_states.declares("configured")
    results = asyncio.run(exp.safe_states.apply_all("a test"))
    assert writes(exp.modules["hooked"]) == [("value", -1.0)]
    assert writes(exp.modules["configured"]) == [("value", 2.0)]  # the hook was not called
    assert results["hooked"]["failed"] == {} and results["configured"]["written"] == {"value": 2.0}
    hook_lines = [line for line in audit_lines(tmp_path) if line["module"] == "hooked" and line["stage"] != "notice"]
    assert [(line["op"], line["stage"], line["attribute"]) for line in hook_lines] == [
        ("safe_state", "started", None), ("safe_state", "finished", None)]


def test_a_stop_applies_the_safe_states_after_cancelling_actions_and_before_closing(tmp_path: Path) -> None:
    exp = experiment(tmp_path, {"a": {**RECORDER, "safe_state": {"value": 0}}})
    asyncio.run(exp.close())  # never started: nothing is touched
    assert writes(exp.modules["a"]) == []
    exp = experiment(tmp_path, {"a": {**RECORDER, "safe_state": {"value": 0}}})

    async def scenario() -> None:
        await exp.start()
        await exp.close()

    asyncio.run(scenario())
    assert writes(exp.modules["a"]) == [("value", 0.0)]
    assert exp.safe_states.status("a")["reason"] == AT_STOP  # type: ignore[index]
    assert exp.safe_states.owed is None


# -- the marker of a run ---------------------------------------------------------------------

def test_the_marker_tells_a_start_whether_the_last_run_stopped_cleanly(tmp_path: Path) -> None:
    assert RunMarker(tmp_path).begin() is False  # never ran here
    assert (tmp_path / "experiment.running").stat().st_mode & 0o077 == 0
    second = RunMarker(tmp_path)
    assert second.begin() is True  # the first never ended: killed
    second.end(clean=True)
    assert not (tmp_path / "experiment.running").exists()
    third = RunMarker(tmp_path)
    assert third.begin() is False
    third.end(clean=False, why="could not apply safe states: psu.voltage")
    fourth = RunMarker(tmp_path)
    assert fourth.begin() is True and fourth.left is not None
    assert fourth.left["not_clean"] == "could not apply safe states: psu.voltage"
    (tmp_path / "experiment.running").write_bytes(b'{"pid": 1')  # torn by a kill: still there, still counts
    assert RunMarker(tmp_path).begin() is True


def test_after_an_unclean_stop_the_safe_states_are_applied_with_the_reason_unless_turned_off(tmp_path: Path) -> None:
    exp = experiment(tmp_path, {"a": {**RECORDER, "safe_state": {"value": 0}}})
    exp.safe_states.note_unclean_stop({"pid": 1})
    asyncio.run(exp.safe_states.after_unclean_stop())
    assert exp.safe_states.status("a")["reason"] == "after an unclean stop"  # type: ignore[index]
    assert exp.safe_states.owed is None
    exp.safe_states.note_unclean_stop({"not_clean": "could not apply safe states: a.value"})
    asyncio.run(exp.safe_states.after_unclean_stop())
    assert exp.safe_states.status("a")["reason"] == "after a stop that could not apply safe states: a.value"  # type: ignore[index]
    off = experiment(tmp_path, {"a": {**RECORDER, "safe_state": {"value": 0}}}, safe_state={"after_crash": False})
    off.safe_states.note_unclean_stop({})
    asyncio.run(off.safe_states.after_unclean_stop())
    assert writes(off.modules["a"]) == [] and off.safe_states.status("a") is None


def test_the_crash_marker_follows_no_link_and_waits_on_no_pipe(tmp_path: Path) -> None:
    """Another local user who can write to data_dir must not make a start overwrite their choice of file, read
    forever or hang: a link or a pipe where the marker goes counts as a crash (safe states applied), never more."""
    import os

    data = tmp_path / "data"
    data.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (data / "experiment.running.part").symlink_to(victim)
    marker = RunMarker(data)
    assert marker.begin() is False  # no marker yet; this run's is written, not through the link
    assert victim.read_text() == "keep me"
    assert orjson.loads((data / "experiment.running").read_bytes())["pid"] == os.getpid()
    (data / "experiment.running").unlink()
    (data / "experiment.running").symlink_to("/dev/zero")
    started = time.monotonic()
    assert RunMarker(data).begin() is True and time.monotonic() - started < 1  # not read to the end of /dev/zero
    (data / "experiment.running").unlink()
    os.mkfifo(data / "experiment.running")
    started = time.monotonic()
    assert RunMarker(data).begin() is True and time.monotonic() - started < 1  # a pipe nobody writes: no wait
