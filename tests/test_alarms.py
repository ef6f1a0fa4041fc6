"""Alarm limits (config.yml `alarms:`): severities with hysteresis, on /alarms, /ws, /metrics, the audit log, history."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from labbridge.core.config import ConfigError, load_config
from labbridge.core.safety_config import AlarmLimits
from labbridge.experiment.experiment import Experiment
from labbridge.experiment.safety.alarms import Alarms, AlarmState
from tests.processes import running_stack, wait_until, write_config
from tests.test_audit import audit_lines, shown_as

TEMPERATURE = {"high": 35, "hihi": 40, "hysteresis": 0.5}


def test_a_severity_rises_at_once_and_drops_only_past_the_limit_by_the_hysteresis() -> None:
    state = AlarmState("m", "t", "degC", AlarmLimits(lolo=0, low=5, high=35, hihi=40, hysteresis=0.5))
    seen = []
    for value in (20, 35, 41, 39.8, 39.4, 34.6, 34.4, 4.9, 5.3, 5.6, -1, 45, 20):
        state.severity, state.limit = state.judge(value)
        seen.append((value, state.severity, state.limit))
    assert seen == [(20, "ok", None), (35, "minor", "high"), (41, "major", "hihi"), (39.8, "major", "hihi"),
                    (39.4, "minor", "high"), (34.6, "minor", "high"), (34.4, "ok", None), (4.9, "minor", "low"),
                    (5.3, "minor", "low"), (5.6, "ok", None), (-1, "major", "lolo"), (45, "major", "hihi"),
                    (20, "ok", None)]


class Host:
    """What Alarms needs of its experiment: where events and notices go."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []

    def publish(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def tell(self, notice: dict[str, Any]) -> None:
        self.notices.append(notice)


def test_what_is_not_a_number_is_not_judged_and_a_failed_read_is_invalid() -> None:
    host = Host()
    alarms = Alarms(host, [AlarmState("m", "t", None, AlarmLimits(high=35))])  # type: ignore[arg-type]
    alarms.observe("m", "t", {"value": 20.0})
    for reading in ({"value": None}, {"value": float("nan")}, {"value": True}, {"value": "hot"}, {}):
        alarms.observe("m", "t", reading)
    alarms.observe("m", "other", {"value": 99.0})  # no limits
    assert [e["severity"] for e in host.events] == ["ok"] and host.notices == []
    alarms.observe("m", "t", {"error": "instrument_error", "message": "sensor unplugged"})
    assert [(n["severity"], n["previous"], n["message"]) for n in host.notices] == [
        ("invalid", "ok", "m.t is INVALID: its read failed (sensor unplugged)")]
    assert alarms.describe()["alarms"][0]["value"] is None


@pytest.mark.parametrize(("alarms", "message"), [
    ({"module_b.temperature": {"high": 1}}, "alarms.module_b.temperature: name an attribute as module.attribute"),
    ({"module_a": {"high": 1}}, "alarms.module_a: name an attribute as module.attribute"),
    ({"module_a.heat": {"high": 1}}, "alarms.module_a.heat: module module_a has no attribute 'heat'"),
    ({"module_a.moving": {"high": 1}}, "alarms.module_a.moving: alarm limits need a number (int or float); "
                                       "moving is a bool"),
    ({"module_a.temperature": {"hysteresis": 1}}, "alarms.module_a.temperature: give at least one of lolo, low"),
    ({"module_a.temperature": {"low": 40, "high": 35}}, "alarms.module_a.temperature.high: 35 is not above low (40)"),
    ({"module_a.temperature": {"low": 35, "high": 35}}, "alarms.module_a.temperature.high: 35 is not above low (35)"),
    ({"module_a.temperature": {"high": 41, "hihi": 40}}, "alarms.module_a.temperature.hihi: 40 is below high (41)"),
    ({"module_a.temperature": {"lolo": 3, "low": 2}}, "alarms.module_a.temperature.low: 2 is below lolo (3)"),
    ({"module_a.temperature": {"high": 35, "hysteresis": -1}}, "alarms.module_a.temperature.hysteresis: Input "
                                                               "should be greater than or equal to 0"),
    ({"module_a.temperature": {"high": "hot"}}, "alarms.module_a.temperature.high: Input should be a valid number"),
    ({"module_a.temperature": {"high": 35, "hi": 40}}, "alarms.module_a.temperature.hi: unknown key"),
])
def test_bad_alarm_limits_are_refused_at_start_naming_the_key(tmp_path: Path, alarms: dict[str, Any],
                                                              message: str) -> None:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          alarms=alarms)
    with pytest.raises(ConfigError) as refused:
        Experiment.from_config(load_config(config), str(config))
    assert f"{config}: {message}" in str(refused.value)


def test_the_process_refuses_to_start_on_bad_limits(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.processes import ROOT

    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          alarms={"module_a.temperature": {"high": 41, "hihi": 40}})
    done = subprocess.run([sys.executable, "start_experiment.py", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "alarms.module_a.temperature.hihi: 40 is below high (41)" in done.stderr


def documented_notices(op: str) -> list[dict[str, Any]]:
    """The notice lines docs/reference/audit-log.md shows (its block titled "notice lines") of one `op`."""
    from tests.processes import ROOT

    page = (ROOT / "docs" / "reference" / "audit-log.md").read_text(encoding="utf-8")
    (block,) = re.findall(r'```json title="notice lines"\n(.*?)```', page, flags=re.S)
    shown = [orjson.loads(line) for line in block.splitlines()]
    assert shown and all(line["stage"] == "notice" for line in shown)
    return [line for line in shown if line["op"] == op]


class LiveEvents:
    """The events of /ws, gathered by a thread."""

    def __init__(self, url: str) -> None:
        self.events: list[dict[str, Any]] = []
        self._url = url.replace("http", "ws") + "/ws"
        self._socket: ClientConnection | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "no /ws connection"

    def _read(self) -> None:
        with connect(self._url) as socket:
            self._socket = socket
            self._ready.set()
            try:
                for message in socket:
                    self.events.append(orjson.loads(message))
            except ConnectionClosed:
                pass

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._thread.join(5)


@pytest.fixture()
def alarmed(tmp_path: Path) -> Iterator[tuple[str, Path, Any]]:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True,
                                                                "poll": {"temperature": 0.05}}},
                          audit_log="audit.jsonl", history={"path": "history.sqlite3", "interval": 0.1},
                          alarms={"module_a.temperature": TEMPERATURE})
    sim_port = yaml.safe_load(config.read_text())["modules"]["module_a"]["port"]
    with running_stack(config, tmp_path) as (_, _, url):
        yield url, tmp_path, f"http://127.0.0.1:{sim_port}"


def severity(url: str) -> tuple[str, str | None]:
    (alarm,) = httpx.get(f"{url}/alarms").json()["alarms"]
    return alarm["severity"], alarm["limit"]


def test_temperature_over_high_and_hihi_and_back_through_the_hysteresis_band(
        alarmed: tuple[str, Path, str]) -> None:
    url, folder, simulator = alarmed
    (alarm,) = httpx.get(f"{url}/alarms").json()["alarms"]
    assert set(alarm) == {"module", "attribute", "severity", "limit", "value", "since", "unit", "limits"}
    assert alarm["limits"] == {**TEMPERATURE, "hysteresis": 0.5} and alarm["unit"] == "degC"
    live = LiveEvents(url)
    try:
        steps = [(30, ("ok", None)), (36, ("minor", "high")), (41, ("major", "hihi")),
                 (39.8, ("major", "hihi")),  # inside the hysteresis band: still alarmed
                 (39.2, ("minor", "high")), (34.7, ("minor", "high")), (34.2, ("ok", None))]
        for value, expected in steps:
            assert httpx.put(f"{simulator}/sim/temperature", json={"value": value}).status_code == 200
            assert httpx.get(f"{url}/module_a/temperature").json()["value"] == value  # a plain read is judged
            assert severity(url) == expected, value
        httpx.put(f"{simulator}/sim/temperature", json={"fail": True})
        assert httpx.get(f"{url}/module_a/temperature").status_code == 502
        assert severity(url) == ("invalid", None)
        metrics = httpx.get(f"{url}/metrics").text
        assert 'bridge_alarm_severity{attribute="temperature",module="module_a"} 3.0' in metrics
        httpx.put(f"{simulator}/sim/temperature", json={"value": 20})  # held, read once reads work again
        httpx.put(f"{simulator}/sim/temperature", json={"fail": False})
        httpx.get(f"{url}/module_a/temperature")
        assert severity(url) == ("ok", None)
        assert 'bridge_alarm_severity{attribute="temperature",module="module_a"} 0.0' in httpx.get(
            f"{url}/metrics").text
        transitions = ["ok", "minor", "major", "minor", "ok", "invalid", "ok"]
        wait_until(lambda: len([e for e in live.events if "alarm" in e]) == len(transitions), 10, "the live events")
        wait_until(lambda: len([e for e in live.events if "notice" in e]) == len(transitions) - 1, 10, "notices")
    finally:
        live.close()
    alarms = [e for e in live.events if "alarm" in e]
    assert [e["severity"] for e in alarms] == transitions
    assert alarms[2]["attribute"] == "temperature.alarm" and alarms[2]["limit"] == "hihi"
    assert alarms[2]["value"] == {"severity": "major", "limit": "hihi", "value": 41}
    notices = [e["notice"] for e in live.events if "notice" in e]
    assert [n["severity"] for n in notices] == transitions[1:]
    assert notices[1]["message"] == "module_a.temperature is MAJOR: 41 degC, at or above hihi 40 degC"
    assert notices[4]["message"].startswith("module_a.temperature is INVALID: its read failed (")
    lines = [line for line in audit_lines(folder) if line["stage"] == "notice"]
    assert [(line["op"], line["module"], line["attribute"], line["before"], line["outcome"]) for line in lines] == [
        ("alarm", "module_a", "temperature", before, after) for before, after in zip(transitions, transitions[1:])]
    assert lines[1]["after"]["limit"] == "hihi" and lines[1]["after"]["value"] == 41
    for shown in documented_notices("alarm"):  # the manual's notice lines are what the process writes
        assert any(shown_as(shown, line) for line in lines), shown
    # History: the values in the attribute's channel, the transitions in <attribute>.alarm.
    wait_until(lambda: len(httpx.get(f"{url}/module_a/temperature.alarm/history").json().get("points", []))
               == len(transitions), 10, "the transitions in history")
    points = httpx.get(f"{url}/module_a/temperature.alarm/history").json()["points"]
    assert [(p[1]["severity"], p[1]["limit"]) for p in points] == [
        ("ok", None), ("minor", "high"), ("major", "hihi"), ("minor", "high"), ("ok", None), ("invalid", None),
        ("ok", None)]
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    read = [30, 36, 41, 39.8, 39.2, 34.7, 34.2, None, 20]  # the polled values, a failed read a gap
    wait_until(lambda: value_changes(f"{url}/module_a/temperature/history")[-9:] == read, 10,
               f"the values ({value_changes(f'{url}/module_a/temperature/history')})")


def value_changes(history: str) -> list[Any]:
    values = [p[1] for p in httpx.get(history).json()["points"]]
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def test_the_python_client_lists_the_alarms_sync_and_async(alarmed: tuple[str, Path, str]) -> None:
    import asyncio

    from bridge_client import AsyncBridge, connect
    from bridge_client.watch import _event

    url, _, simulator = alarmed
    httpx.put(f"{simulator}/sim/temperature", json={"value": 41})
    wait_until(lambda: severity(url) == ("major", "hihi"), 10, "the poll's alarm")
    with connect(url) as lab:
        (alarm,) = lab.alarms()
    assert (alarm["module"], alarm["attribute"], alarm["severity"], alarm["limit"], alarm["value"]) == (
        "module_a", "temperature", "major", "hihi", 41)
    assert alarm["limits"]["hihi"] == 40 and isinstance(alarm["since"], float)

    async def listed() -> list[dict[str, Any]]:
        async with AsyncBridge(url) as lab:
            return await lab.alarms()

    assert asyncio.run(listed()) == [alarm]
    # lab.watch() yields values only: an alarm's live event is not one
    event = {"module": "module_a", "attribute": "temperature.alarm", "alarm": "temperature", "severity": "major",
             "limit": "hihi", "value": {"severity": "major", "limit": "hihi", "value": 41}}
    assert _event(orjson.dumps(event)) is None
