"""Interlocks with the real processes and the simulators: guards refuse, trips act at once, latch and are acknowledged.

Readings are driven through the simulated actuator (PUT /sim/force, /sim/temperature on the module's own port).
The stack runs with tokens and an audit log, so the acknowledgement is on record with its identity."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.processes import running_stack, shipped_procedures, wait_until, write_config

POLL = 0.5  # seconds between reads of force and temperature
MODULES = {
    "module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": POLL, "temperature": POLL}},
    "psu": {"class": "psu.PowerSupply", "simulate": True, "safe_state": {"output": False, "voltage": 0}},
    "setpoint": {"class": "setpoint.Setpoint"},
}
INTERLOCKS = {
    "supply_only_when_cool": {"guards": ["psu.output = true", "psu.ramp_voltage"],
                              "requires": "module_a.temperature < 40", "within": POLL},
    "setpoint_when_cool": {"guards": ["setpoint.value"], "requires": "module_a.temperature < 40", "within": POLL},
    "overforce": {"trips_when": "module_a.force > 90",
                  "then": [{"set": "psu.output", "value": False}, {"run": "module_a.stop"}, {"safe_state": "psu"}],
                  "within": POLL},
}
TOKEN = secrets.token_hex(16)
# A procedure that switches the supply on and off until stopped: a guard that starts to fail mid-run refuses the
# step that would switch it on, and the run ends failed naming the rule.
BLINK_PY = '''
import asyncio

from labbridge import Run, procedure


@procedure(drives=["psu.output"])
async def blink(run: Run) -> None:
    """Switch the output on and off every 50 ms, a point each time, until stopped; off in the end."""
    try:
        for i in range(100000):
            await run.checkpoint()
            await run.set("psu.output", i % 2 == 0)
            run.record(i=i)
            await asyncio.sleep(0.05)
    finally:
        await run.set("psu.output", False)
'''


@dataclass
class Lab:
    url: str
    sim: str  # the simulated actuator's own HTTP API
    tmp: Path

    def http(self, method: str, path: str, **options: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
                             **options)

    def drive(self, sensor: str, **body: Any) -> None:
        httpx.put(f"{self.sim}/sim/{sensor}", json=body, timeout=5).raise_for_status()

    def interlock(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.http("GET", "/interlocks").json()["interlocks"][name]
        return answer

    def output(self) -> bool:
        answer = self.http("GET", "/psu/output")
        assert answer.status_code == 200, answer.text
        value: bool = answer.json()["value"]
        return value

    def switch(self, on: bool) -> None:
        """Switch the supply on or off, as an operator does (a refusal fails the test, saying why)."""
        answer = self.http("PUT", "/psu/output", json={"value": on})
        assert answer.status_code == 200 and answer.json()["value"] is on, answer.text

    def audit(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in (self.tmp / "audit.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("interlocks")
    (tmp / "tokens.yml").write_text(f"alice: {{token: {TOKEN}, role: admin}}\n")  # admin: starts the run queue
    (tmp / "blink.py").write_text(BLINK_PY, encoding="utf-8")
    config = write_config(tmp / "config.yml", MODULES, frontend={"token_file": "tokens.yml"}, audit_log="audit.jsonl",
                          interlocks=INTERLOCKS,
                          procedures={**shipped_procedures("voltage_sweep"), "blink": {"function": "blink.blink"}})
    sim = f"http://127.0.0.1:{yaml.safe_load(config.read_text())['modules']['module_a']['port']}"
    with running_stack(config, tmp) as (_, _, url):
        lab = Lab(url, sim, tmp)
        wait_until(lambda: lab.interlock("overforce")["values"]["module_a.force"] != "unknown (not read yet)", 10,
                   "the first force reading")
        yield lab


def test_a_guard_refuses_a_put_an_action_and_a_run_naming_the_rule_until_its_condition_holds(lab: Lab) -> None:
    lab.drive("temperature", value=45)
    wait_until(lambda: lab.interlock("supply_only_when_cool")["state"] == "tripped", 5, "the guard to see 45 degC")
    refused = lab.http("PUT", "/psu/output", json={"value": True})
    assert refused.status_code == 409 and refused.json()["error"] == "interlocked"
    assert refused.json()["message"] == (
        "psu.output = True refused by interlock supply_only_when_cool: it requires module_a.temperature < 40; "
        "module_a.temperature is 45.0")
    assert lab.http("PUT", "/psu/output", json={"value": False}).status_code == 200  # the safe way is never refused
    action = lab.http("POST", "/psu/ramp_voltage", json={"to": 5, "rate": 10})
    assert action.status_code == 409 and "interlock supply_only_when_cool" in action.json()["message"]
    run = lab.http("POST", "/runs", json={"procedure": "voltage_sweep", "parameters": {"steps": 2}}).json()
    lab.http("POST", "/runs/queue/start").raise_for_status()
    ended = lab.http("GET", f"/runs/{run['id']}", params={"wait": 10}).json()
    assert ended["status"] == "failed" and ended["error"]["error"] == "interlocked"
    assert "it drives psu.output) refused by interlock supply_only_when_cool" in ended["error"]["message"]
    assert lab.output() is False  # nothing reached the supply

    lab.drive("temperature", value=None)  # back to about 22.5 degC
    wait_until(lambda: lab.interlock("supply_only_when_cool")["state"] == "ok", 5, "the guard to allow")
    lab.switch(True)
    lab.switch(False)


def test_a_guard_that_fails_mid_run_refuses_the_procedure_s_next_step_and_the_run_fails_naming_it(lab: Lab) -> None:
    run = lab.http("POST", "/runs", json={"procedure": "blink"}).json()
    lab.http("POST", "/runs/queue/start").raise_for_status()
    wait_until(lambda: lab.http("GET", f"/runs/{run['id']}").json()["points"] >= 3, 10, "the run to switch a few times")
    try:
        lab.drive("temperature", value=45)
        ended = lab.http("GET", f"/runs/{run['id']}", params={"wait": 10}).json()
    finally:
        lab.drive("temperature", value=None)
    assert ended["status"] == "failed" and ended["error"]["error"] == "interlocked", ended
    assert ended["error"]["message"] == (
        "psu.output = True refused by interlock supply_only_when_cool: it requires module_a.temperature < 40; "
        "module_a.temperature is 45.0")
    assert lab.output() is False  # its clean-up switched it off: the safe way is never refused
    wait_until(lambda: lab.interlock("supply_only_when_cool")["state"] == "ok", 5, "the guard to allow")


def test_a_guard_that_fails_while_an_action_runs_stops_its_next_write(lab: Lab) -> None:
    """A ramp started while the guard held is refused at its next step once it fails, not only at its start."""
    ramp = lab.http("POST", "/setpoint/ramp", json={"to": 1000, "rate": 10})
    assert ramp.status_code == 201, ramp.text
    href = ramp.json()["href"]
    wait_until(lambda: lab.http("GET", "/setpoint/value").json()["value"] > 0.5, 10, "the ramp to move")
    try:
        lab.drive("temperature", value=45)
        ended = lab.http("GET", href, params={"wait": 10}).json()
    finally:
        lab.drive("temperature", value=None)
    assert ended["status"] == "failed" and ended["error"]["error"] == "interlocked", ended
    assert "refused by interlock setpoint_when_cool" in ended["error"]["message"]
    stopped = lab.http("GET", "/setpoint/value").json()["value"]
    wait_until(lambda: lab.interlock("setpoint_when_cool")["state"] == "ok", 5, "the guard to allow")
    assert lab.http("GET", "/setpoint/value").json()["value"] == stopped < 1000  # nothing written after


def test_the_client_raises_interlocked_on_a_refused_write(lab: Lab) -> None:
    import bridge_client

    lab.drive("temperature", value=50)
    wait_until(lambda: lab.interlock("supply_only_when_cool")["state"] == "tripped", 5, "the guard to see 50 degC")
    try:
        with bridge_client.connect(lab.url, token=TOKEN) as client, \
                pytest.raises(bridge_client.Interlocked) as refused:
            client.psu.output = True
        assert refused.value.status == 409 and "supply_only_when_cool" in refused.value.message
    finally:
        lab.drive("temperature", value=None)
        wait_until(lambda: lab.interlock("supply_only_when_cool")["state"] == "ok", 5, "the guard to allow")


def test_a_trip_switches_the_supply_off_at_once_cancels_the_move_latches_and_waits_for_an_ack(lab: Lab) -> None:
    lab.switch(True)
    assert lab.http("PUT", "/psu/voltage", json={"value": 5}).status_code == 200
    move = lab.http("POST", "/module_a/move", json={"to": 100, "speed": 1}).json()
    wait_until(lambda: lab.http("GET", move["href"]).json()["status"] == "running", 5, "the move to run")

    try:
        lab.drive("force", value=95)
        # The crossing: when the simulator answers, it holds the force (it runs in the experiment process, on the
        # same busy machine, so its answer may take a while: the time before it is not the bridge's).
        crossed = time.time()
        wait_until(lambda: lab.output() is False, 5, "the supply to be switched off")
        # When the bridge had it written (its audit line), not when this test's next read saw it.
        off = next(line["time"] for line in lab.audit() if line["op"] == "put" and line["stage"] == "finished"
                   and line["attribute"] == "output" and line["client"] == "interlock overforce")
        took = off - crossed
        assert took <= POLL + 0.1, f"the supply went off {took:.3f} s after the crossing"
        wait_until(lambda: lab.http("GET", "/psu/voltage").json()["value"] == 0, 5, "the supply's safe state")

        assert lab.http("GET", move["href"], params={"wait": 5}).json()["status"] == "cancelled"
        tripped = lab.interlock("overforce")
        assert tripped["state"] == "tripped" and tripped["trip_values"] == {"module_a.force": 95.0}
        refused = lab.http("PUT", "/psu/output", json={"value": True})
        assert refused.status_code == 409 and refused.json()["error"] == "interlocked"
        assert ("interlock overforce: it tripped (module_a.force > 90; module_a.force is 95.0)"
                in refused.json()["message"])
        # What the trip put in place stays: its safe state's values too; writing the safe values is never refused.
        assert lab.http("PUT", "/psu/voltage", json={"value": 3}).json()["error"] == "interlocked"
        assert lab.http("PUT", "/psu/voltage", json={"value": 0}).status_code == 200
        assert lab.http("PUT", "/psu/output", json={"value": False}).status_code == 200
        assert tripped["guards"] == ["psu.output != false", "psu.voltage != 0"]

        early = lab.http("POST", "/interlocks/overforce/ack")
        assert early.status_code == 409 and early.json()["error"] == "interlocked"
        assert "its condition still holds (module_a.force > 90; module_a.force is 95.0)" in early.json()["message"]
    finally:
        lab.drive("force", value=None)
    wait_until(lambda: lab.interlock("overforce")["state"] == "latched", 5, "the trip to latch")
    assert lab.http("PUT", "/psu/output", json={"value": True}).status_code == 409  # latched: still refused
    acked = lab.http("POST", "/interlocks/overforce/ack")
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "ok" and acked.json()["acknowledged_by"] == "alice"
    lab.switch(True)
    lab.switch(False)

    lines = [line for line in lab.audit() if line["op"] == "interlock_ack"]
    assert [(line["stage"], line["outcome"], line["identity"], line["attribute"]) for line in lines] == [
        ("refused", "interlocked", "alice", "overforce"), ("started", None, "alice", "overforce"),
        ("finished", "ok", "alice", "overforce")]


def test_a_failing_read_trips_the_rule(lab: Lab) -> None:
    lab.switch(True)
    lab.drive("force", fail=True)
    try:
        wait_until(lambda: lab.output() is False, 5, "the supply to be switched off")
        tripped = lab.interlock("overforce")
        assert tripped["state"] == "tripped" and tripped["trip_values"] == {"module_a.force": "read failed"}
    finally:
        lab.drive("force", fail=False)
    wait_until(lambda: lab.interlock("overforce")["state"] == "latched", 5, "the trip to latch")
    assert lab.http("POST", "/interlocks/overforce/ack").json()["state"] == "ok"


def test_the_unknown_and_the_wrong_are_refused_clearly(lab: Lab) -> None:
    unknown = lab.http("POST", "/interlocks/nope/ack")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_interlock"
    guard = lab.http("POST", "/interlocks/supply_only_when_cool/ack")
    assert guard.status_code == 422 and "is a guard" in guard.json()["message"]
    assert httpx.post(lab.url + "/interlocks/overforce/ack").status_code == 401  # operating needs a token
