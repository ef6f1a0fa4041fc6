"""No path to the instrument skips an attribute's limits (the class's, narrowed by config.yml).

An action's values reach the instrument as arguments (checked at POST time
when `like=` an attribute), as writes (`write_value`, checked like a PUT; a
ramp's every step is one) or as command arguments declared `Target(attribute,
value)`, checked before the command is sent.  An action that always drives an
attribute to a fixed value declares it (`@action(targets={"position": 0.0})`)
and is refused at POST time where the limits exclude it.  Each refusal here is
checked to have sent nothing: the fixture modules keep the commands that
reached their driver, and the shared simulated supply still reads what it had.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from base_module import Target
from labbridge.core.config import ModuleSettings
from labbridge.core.errors import InvalidValue, UnknownAttribute
from labbridge.experiment.ramp import ramp_value
from module_a import ModuleA
from setpoint import Setpoint
from tests.fixture_modules import Commanded
from tests.processes import free_port, running_stack, wait_until, write_config

ACTUATOR_PORT = free_port()
MODULES: dict[str, dict[str, Any]] = {
    # The actuator, as config.yml narrows it, and a second door to the same simulated instrument without limits
    # (how it may stand outside them: moved before the limits were set, or by hand).
    "counted": {"class": "tests.fixture_modules.CountingActuator", "simulate": True, "port": ACTUATOR_PORT,
                "limits": {"position": {"min": 20, "max": 80}}},
    "door": {"class": "module_a.ModuleA", "port": ACTUATOR_PORT},
    "commanded": {"class": "tests.fixture_modules.Commanded", "port": None,
                  "limits": {"position": {"max": 50}}},
    "setpoint": {"class": "setpoint.Setpoint", "port": None, "limits": {"value": {"min": 0, "max": 1000}}},
    # The same pyvisa-sim supply twice: narrowed to 12 V, and the test fixture that lets 25 V through.
    "psu": {"class": "psu.PowerSupply", "simulate": True, "limits": {"voltage": {"min": 0, "max": 12}}},
    "wide_psu": {"class": "tests.fixture_modules.WidePowerSupply", "simulate": True},
}


def settings(class_path: str, **limits: dict[str, float]) -> ModuleSettings:
    return ModuleSettings.model_validate({"class": class_path, "port": 1, "limits": limits})


# -- in process: the check itself ------------------------------------------------------------------------------


def test_a_command_target_outside_the_narrowed_limits_never_reaches_the_driver() -> None:
    stage = Commanded("stage", settings("tests.fixture_modules.Commanded", position={"max": 50}))
    with pytest.raises(InvalidValue) as refused:
        asyncio.run(stage.send_command("move", to=Target("position", 60.0)))
    assert refused.value.detail == ("stage.position must be 0 to 50 mm; got 60.0 "
                                    "(command 'move' refused before it was sent)")
    with pytest.raises(InvalidValue, match="stage.position must be a float; got 'far'"):
        asyncio.run(stage.send_command("move", to=Target("position", "far")))
    assert stage.sent == [] and stage.state["position"] == 0.0
    # Within the limits the driver gets the plain value, as the attribute's type.
    assert asyncio.run(stage.send_command("move", to=Target("position", 40))) == 40
    assert stage.sent == ["move"] and stage.state["position"] == 40
    with pytest.raises(UnknownAttribute, match="module 'stage' has no attribute 'angle'"):
        asyncio.run(stage.send_command("move", to=Target("angle", 1.0)))


def test_home_declares_where_it_goes_and_is_refused_where_the_limits_exclude_it() -> None:
    home = ModuleA.actions["home"]
    assert home.targets == {"position": 0.0}
    assert home.check_arguments({}, ModuleA("a", settings("module_a.ModuleA")).specs) == {}
    narrowed = ModuleA("a", settings("module_a.ModuleA", position={"min": 20, "max": 80}))
    with pytest.raises(InvalidValue) as refused:
        home.check_arguments({}, narrowed.specs)
    assert refused.value.detail == "home cannot run: it drives position to 0 mm, and position must be 20 to 80 mm"


def test_a_ramp_checks_its_end_before_it_starts_and_every_step_it_writes() -> None:
    setpoint = Setpoint("setpoint", settings("setpoint.Setpoint", value={"min": 0, "max": 1000}))
    with pytest.raises(InvalidValue, match=r"setpoint.value must be 0 to 1000; got 2000"):
        asyncio.run(ramp_value(setpoint, "value", 2000.0, 1e6))  # a target computed inside an action
    assert setpoint.state["changed_at"] == 0.0  # nothing written
    setpoint.state["value"] = 1500.0  # where it stood before config.yml narrowed it
    with pytest.raises(InvalidValue, match=r"^value must be 0 to 1000; got 1499\.\d+$"):
        asyncio.run(ramp_value(setpoint, "value", 500.0, 1.0))
    assert setpoint.state == {"value": 1500.0, "label": "", "changed_at": 0.0}  # its first step was refused


# -- through both processes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("targets")
    config = write_config(tmp / "config.yml", MODULES)
    with running_stack(config, tmp) as (_, _, base):
        yield base


@pytest.fixture()
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client


def ended(client: httpx.Client, href: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        invocation: dict[str, Any] = client.get(href, params={"wait": 5}).json()
        if invocation["status"] not in ("pending", "running"):
            return invocation
    raise TimeoutError(f"{href} did not end")


def started(client: httpx.Client, path: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(path, json=arguments)
    assert answer.status_code == 201, answer.text
    invocation: dict[str, Any] = answer.json()
    return invocation


def place(client: httpx.Client, module: str, position: float) -> None:
    """Put the carriage at `position` (a jump on the simulator) and wait until it reads so."""
    assert client.put(f"/{module}/position", json={"value": position}).status_code == 200
    wait_until(lambda: client.get("/door/position").json()["value"] == position, 5, f"carriage at {position}")


def invocations(client: httpx.Client, module: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = client.get("/invocations", params={"module": module}).json()["invocations"]
    return listed


def test_home_is_refused_at_post_when_config_keeps_the_carriage_from_zero(client: httpx.Client) -> None:
    place(client, "counted", 50)
    before = invocations(client, "counted")
    refused = client.post("/counted/home")
    assert refused.status_code == 422, refused.text
    assert refused.json() == {"error": "invalid_value", "message": (
        "home cannot run: it drives position to 0 mm, and position must be 20 to 80 mm")}
    assert invocations(client, "counted") == before and client.get("/counted/commands").json()["value"] == []
    assert client.get("/door/position").json()["value"] == 50 and client.get("/door/moving").json()["value"] is False


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/counted/move", {"to": 10}, "to must be 20 to 80 mm; got 10"),
    ("/counted/move", {"to": 90, "speed": 5}, "to must be 20 to 80 mm; got 90"),
    ("/setpoint/ramp", {"to": 2000, "rate": 10}, "to must be 0 to 1000; got 2000"),
    ("/psu/ramp_voltage", {"to": 20, "rate": 10}, "to must be 0 to 12 V; got 20"),
])
def test_a_target_parameter_outside_the_narrowed_limits_is_refused_at_post(
        client: httpx.Client, path: str, body: dict[str, Any], message: str) -> None:
    refused = client.post(path, json=body)
    assert refused.status_code == 422 and refused.json() == {"error": "invalid_value", "message": message}
    assert client.get("/counted/commands").json()["value"] == []
    to = client.get(path).json()["parameters"]["properties"]["to"]  # and the description says so
    assert (to["minimum"], to["maximum"]) in {(20, 80), (0, 1000), (0, 12)}


def test_a_cycle_that_would_leave_the_narrowed_limits_fails_before_the_carriage_moves(client: httpx.Client) -> None:
    place(client, "door", 10)  # below the narrowed minimum: a cycle would come back to 10
    cycle = ended(client, started(client, "/counted/cycle", {"count": 1, "amplitude": 5})["href"])
    assert (cycle["status"], cycle["error"]) == ("failed", {
        "error": "invalid_value", "message": "counted.position must be 20 to 80 mm; got 10.0 (each stroke comes back there)"})
    place(client, "counted", 75)  # a stroke of 10 would pass the narrowed maximum
    cycle = ended(client, started(client, "/counted/cycle", {"count": 1, "amplitude": 10})["href"])
    assert cycle["status"] == "failed" and cycle["error"]["error"] == "invalid_value"
    assert "would pass 80 mm" in cycle["error"]["message"]
    assert client.get("/counted/commands").json()["value"] == []
    assert client.get("/door/position").json()["value"] == 75
    # Within the limits, it runs.
    cycle = ended(client, started(client, "/counted/cycle", {"count": 1, "amplitude": 1})["href"])
    assert cycle["status"] == "completed", cycle
    assert client.get("/counted/commands").json()["value"] == ["move", "move"]


def test_a_target_computed_inside_an_action_is_refused_there_and_nothing_is_sent(client: httpx.Client) -> None:
    assert client.put("/commanded/position", json={"value": 40}).status_code == 200
    step = ended(client, started(client, "/commanded/step", {"by": 20})["href"])
    assert (step["status"], step["error"]) == ("failed", {"error": "invalid_value", "message": (
        "commanded.position must be 0 to 50 mm; got 60.0 (command 'move' refused before it was sent)")})
    assert client.get("/commanded/commands").json()["value"] == []
    assert client.get("/commanded/position").json()["value"] == 40
    assert ended(client, started(client, "/commanded/step", {"by": 5})["href"])["result"] == 45
    assert client.get("/commanded/commands").json()["value"] == ["move"]


def test_a_psu_ramp_from_a_voltage_outside_the_narrowed_limits_writes_nothing(client: httpx.Client) -> None:
    assert client.put("/wide_psu/voltage", json={"value": 25}).json()["value"] == 25  # the same simulated supply
    assert client.get("/psu/voltage").json()["value"] == 25
    ramp = ended(client, started(client, "/psu/ramp_voltage", {"to": 10, "rate": 1})["href"])
    assert ramp["status"] == "failed" and ramp["error"]["error"] == "invalid_value", ramp
    assert ramp["error"]["message"].startswith("voltage must be 0 to 12 V; got 24.9"), ramp
    assert client.get("/psu/voltage").json()["value"] == 25  # its first step was refused
    assert client.put("/psu/voltage", json={"value": 12}).status_code == 200
    ramp = ended(client, started(client, "/psu/ramp_voltage", {"to": 11, "rate": 20})["href"])
    assert (ramp["status"], ramp["result"]) == ("completed", 11.0)

