"""A Thing on a real LabThings-FastAPI server, behind the bridge, end to end through both processes.

labthings_stage.py declares how LabThings' HTTP API differs from the bridge's
(bare values, PUT answering 201 with nothing, refusals in FastAPI's "detail");
these tests hold it to that against the real server: reads, writes, the
bridge's limits, the Thing's own refusals in both of FastAPI's shapes, two
Things on one port, a frozen server (504) and a dead one (502), and a module
written by `python -m labbridge scaffold` from the Thing's description.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.labthings import labthings_server
from tests.processes import ROOT, running_stack, write_config

THINGS = {"stage": "tests.labthings_things:Stage", "stage_y": "tests.labthings_things:Stage"}


@pytest.fixture(scope="module")
def labthings_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with labthings_server(THINGS, tmp_path_factory.mktemp("labthings")) as (_, port):
        yield port


@pytest.fixture(scope="module")
def url(labthings_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("labthings-stack")
    config = write_config(tmp / "config.yml", {
        "stage": {"class": "labthings_stage.LabThingsStage", "port": labthings_port},
        # The same server, another Thing: only the path differs.
        "stage_y": {"class": "labthings_stage.LabThingsStage", "port": labthings_port, "path": "/stage_y/{name}"},
        "wide_stage": {"class": "tests.fixture_modules.WideLabThingsStage", "port": labthings_port},
    })
    with running_stack(config, tmp) as (_, _, base):
        yield base


def test_get_and_put_reach_the_thing_and_report_what_it_holds(url: str) -> None:
    assert httpx.get(f"{url}/stage/homed").json() == {"module": "stage", "attribute": "homed", "value": True,
                                                      "unit": None}
    put = httpx.put(f"{url}/stage/position", json={"value": 12.5})
    assert put.json() == {"module": "stage", "attribute": "position", "value": 12.5, "unit": "mm"}, put.text
    assert httpx.get(f"{url}/stage/position").json()["value"] == 12.5


def test_two_modules_on_one_labthings_port_reach_their_own_things(url: str) -> None:
    assert httpx.put(f"{url}/stage/speed", json={"value": 4.0}).status_code == 200
    assert httpx.put(f"{url}/stage_y/speed", json={"value": 7.5}).status_code == 200
    assert httpx.get(f"{url}/stage/speed").json()["value"] == 4.0
    assert httpx.get(f"{url}/stage_y/speed").json()["value"] == 7.5


def test_attributes_are_read_one_by_one_from_a_thing_without_a_summary(url: str) -> None:
    attributes = httpx.get(f"{url}/stage/attributes").json()["attributes"]
    assert set(attributes) == {"position", "speed", "step_size", "temperature", "homed"}
    assert attributes["temperature"] == {"value": 21.5, "unit": "degC"}


def test_the_bridge_refuses_a_value_outside_its_limits_before_the_thing_sees_it(url: str) -> None:
    before = httpx.get(f"{url}/stage/position").json()["value"]
    refused = httpx.put(f"{url}/stage/position", json={"value": 30})
    assert refused.status_code == 422
    assert refused.json() == {"error": "invalid_value", "message": "position must be 0 to 25 mm; got 30"}
    assert httpx.get(f"{url}/stage/position").json()["value"] == before


@pytest.mark.parametrize(("module", "attribute", "value", "message"), [
    # pydantic's limit on the Thing: FastAPI's {"detail": [{"msg": ...}]}
    ("wide_stage", "position", 50, "refused PUT /stage/position with HTTP 422: Input should be less than or equal to 25"),
    # the Thing's setter raising: {"detail": "<message>"}
    ("stage", "step_size", 0.07, "step_size 0.07 mm is not a whole number of motor steps (0.05 mm)"),
])
def test_a_refusal_of_the_thing_comes_back_with_its_own_message(
        url: str, module: str, attribute: str, value: float, message: str) -> None:
    refused = httpx.put(f"{url}/{module}/{attribute}", json={"value": value})
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"] == "instrument_error"
    assert message in refused.json()["message"]


def test_a_module_written_by_scaffold_serves_the_thing(labthings_port: int, tmp_path: Path) -> None:
    printed = subprocess.run([sys.executable, "-m", "labbridge", "scaffold", f"http://127.0.0.1:{labthings_port}/stage/"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "position: float = Attribute(minimum=0, maximum=25, writable=True," in printed
    assert "temperature: float = Attribute(doc=\"Temperature of the motor driver, in degC.\")" in printed
    modules = tmp_path / "lab_modules"  # a folder of the lab's own modules, on PYTHONPATH
    modules.mkdir()
    (modules / "scaffolded_stage.py").write_text(printed, encoding="utf-8")
    config = write_config(tmp_path / "config.yml", {"stage": {"class": "scaffolded_stage.Stage", "port": labthings_port}})
    with running_stack(config, tmp_path, backend_env={"PYTHONPATH": str(modules)}) as (_, _, url):
        described = httpx.get(f"{url}/stage").json()["attributes"]
        assert described["position"]["min"] == 0 and described["position"]["max"] == 25
        assert described["temperature"]["writable"] is False
        assert httpx.put(f"{url}/stage/position", json={"value": 3.25}).json()["value"] == 3.25
        assert httpx.get(f"{url}/stage/position").json()["value"] == 3.25
        assert httpx.put(f"{url}/stage/position", json={"value": 26}).status_code == 422


def test_a_frozen_thing_times_out_and_a_dead_one_is_unreachable(tmp_path: Path) -> None:
    with labthings_server({"stage": THINGS["stage"]}, tmp_path) as (server, port):
        config = write_config(tmp_path / "config.yml", {"stage": {
            "class": "labthings_stage.LabThingsStage", "port": port, "timeout": 0.5, "connect_timeout": 0.5}})
        with running_stack(config, tmp_path) as (_, _, url):
            assert httpx.get(f"{url}/stage/position").status_code == 200  # leaves a kept-alive connection
            server.signal(signal.SIGSTOP)
            try:
                frozen = httpx.get(f"{url}/stage/position", timeout=10)
                assert (frozen.status_code, frozen.json()["error"]) == (504, "instrument_timeout"), frozen.text
                write = httpx.put(f"{url}/stage/position", json={"value": 1.0}, timeout=10)
                assert write.status_code == 504 and "outcome is unknown" in write.json()["message"], write.text
            finally:
                server.signal(signal.SIGCONT)
            assert httpx.get(f"{url}/stage/position", timeout=10).status_code == 200  # thawed: served again
            server.proc.kill()
            server.wait(10)
            for _ in range(2):  # the kept-alive connection is gone, and so is the server
                dead = httpx.get(f"{url}/stage/position", timeout=10)
                assert dead.status_code == 502, dead.text
                assert dead.json()["error"] == "instrument_unreachable", dead.text
                assert "Traceback" not in dead.text and "unreachable" in dead.json()["message"]
