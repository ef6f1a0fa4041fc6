"""The SCPI power supply (psu.py) on pyvisa-sim, end to end through both processes.

pyvisa-sim plays the instrument from labbridge/experiment/simulators/psu.yaml:
it keeps its own limits and puts a refused command in its error queue, so
these tests see the bridge's own refusal (config.yml limits narrower than the
class) and the instrument's (a class whose limits are wider than the
instrument's), VISA timeouts as 504, and instruments that are not there as 502.
`ramp_voltage` steps the supply through both processes; on a supply whose
(blocking) settings take a second, a cancel still answers at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import free_port, running_stack, wait_until, write_config


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("psu")
    config = write_config(tmp / "config.yml", {
        "psu": {"class": "psu.PowerSupply", "simulate": True, "limits": {"voltage": {"min": 0, "max": 20}}},
        "wide_psu": {"class": "tests.fixture_modules.WidePowerSupply", "simulate": True},
        # The simulated supply on the serial line: its own device, whose error queue the others do not share.
        "mute_psu": {"class": "tests.fixture_modules.MutePowerSupply", "simulate": True, "resource": "ASRL1::INSTR",
                     "timeout": 0.3},
        "absent_psu": {"class": "psu.PowerSupply", "simulate": True, "resource": "ASRL9::INSTR"},
        # A real TCP socket (pyvisa-py) on a loopback port where nothing listens.
        "socket_psu": {"class": "psu.PowerSupply", "ip": "127.0.0.1", "port": free_port(), "timeout": 0.5},
        # The same simulated supply as psu's (mute_psu's queries leave errors in the serial one's queue).
        "slow_psu": {"class": "tests.fixture_modules.SlowPowerSupply", "simulate": True},
    })
    with running_stack(config, tmp) as (_, _, base):
        yield base


def test_idn_is_read_from_the_instrument(url: str) -> None:
    assert httpx.get(f"{url}/psu/idn").json() == {"module": "psu", "attribute": "idn",
                                                  "value": "LABBRIDGE,PSU3003,SIM0001,1.0", "unit": None}


def test_a_put_sets_the_instrument_and_answers_what_it_reads_back(url: str) -> None:
    put = httpx.put(f"{url}/psu/voltage", json={"value": 12.3456})
    # The supply keeps millivolts: the bridge reports the value read back, not the one sent.
    assert put.json() == {"module": "psu", "attribute": "voltage", "value": 12.346, "unit": "V"}, put.text
    assert httpx.get(f"{url}/psu/voltage").json()["value"] == 12.346
    assert httpx.put(f"{url}/psu/current_limit", json={"value": 0.5}).json()["value"] == 0.5
    assert httpx.put(f"{url}/psu/output", json={"value": True}).json()["value"] is True  # sent as OUTP 1
    assert httpx.get(f"{url}/psu/output").json()["value"] is True
    assert httpx.put(f"{url}/psu/output", json={"value": False}).json()["value"] is False


def test_every_attribute_reads_with_its_type(url: str) -> None:
    attributes = httpx.get(f"{url}/psu/attributes").json()["attributes"]
    assert set(attributes) == {"voltage", "current_limit", "output", "measured_voltage", "measured_current", "idn"}
    assert isinstance(attributes["measured_current"]["value"], float)
    assert httpx.get(f"{url}/psu/parameters").json()["parameters"]["voltage"]["max"] == 20


def test_the_bridge_refuses_a_voltage_outside_config_limits_before_the_instrument(url: str) -> None:
    before = httpx.get(f"{url}/psu/voltage").json()["value"]
    refused = httpx.put(f"{url}/psu/voltage", json={"value": 25})
    assert refused.status_code == 422
    assert refused.json() == {"error": "invalid_value", "message": "voltage must be 0 to 20 V; got 25"}
    assert httpx.put(f"{url}/psu/measured_voltage", json={"value": 1}).status_code == 405
    assert httpx.get(f"{url}/psu/voltage").json()["value"] == before


def test_the_instrument_refuses_a_voltage_beyond_its_own_range_with_its_error_text(url: str) -> None:
    before = httpx.get(f"{url}/wide_psu/voltage").json()["value"]
    refused = httpx.put(f"{url}/wide_psu/voltage", json={"value": 50})
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"] == "instrument_error"
    assert refused.json()["message"] == "instrument of wide_psu refused 'SOUR:VOLT 50.0': -222,\"Data out of range\""
    assert httpx.get(f"{url}/wide_psu/voltage").json()["value"] == before  # the setting stayed
    # The refusal was taken from the queue: the next write is not blamed for it.
    assert httpx.put(f"{url}/wide_psu/voltage", json={"value": 5}).json()["value"] == 5.0


def test_a_query_the_instrument_never_answers_is_a_timeout(url: str) -> None:
    silent = httpx.get(f"{url}/mute_psu/silent", timeout=10)
    assert (silent.status_code, silent.json()["error"]) == (504, "instrument_timeout"), silent.text
    assert "did not answer 'SYST:NOPE?' within 0.3 s" in silent.json()["message"]
    assert httpx.get(f"{url}/mute_psu/idn").status_code == 200  # the module goes on


@pytest.mark.parametrize(("module", "reason"), [
    ("absent_psu", "ASRL9::INSTR is unreachable"),  # no such resource
    ("socket_psu", "Connection refused"),  # TCPIP::127.0.0.1::<port>::SOCKET, nothing listening
])
def test_an_instrument_that_is_not_there_is_unreachable(url: str, module: str, reason: str) -> None:
    for _ in range(2):  # and stays so, request after request
        answer = httpx.get(f"{url}/{module}/voltage", timeout=10)
        assert (answer.status_code, answer.json()["error"]) == (502, "instrument_unreachable"), answer.text
        assert reason in answer.json()["message"]
    put = httpx.put(f"{url}/{module}/voltage", json={"value": 1.0}, timeout=10)
    assert put.json()["error"] == "instrument_unreachable"


def started(url: str, module: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{url}/{module}/ramp_voltage", json=arguments)
    assert answer.status_code == 201, answer.text
    invocation: dict[str, Any] = answer.json()
    return invocation


def finished(url: str, href: str) -> dict[str, Any]:
    """The invocation once it has ended, followed with long polls."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        invocation: dict[str, Any] = httpx.get(url + href, params={"wait": 5}, timeout=10).json()
        if invocation["status"] not in ("pending", "running"):
            return invocation
    raise TimeoutError(f"{href} did not end")


def test_ramp_voltage_steps_the_supply_to_its_target_with_progress_and_owns_the_voltage(url: str) -> None:
    assert httpx.put(f"{url}/psu/voltage", json={"value": 0}).status_code == 200
    assert httpx.post(f"{url}/psu/ramp_voltage", json={"to": 25, "rate": 10}).json()["message"] == (
        "to must be 0 to 20 V; got 25")  # the limits config.yml narrows
    ramp = started(url, "psu", {"to": 10, "rate": 5})  # two seconds, in steps of 50 ms
    busy = httpx.put(f"{url}/psu/voltage", json={"value": 1})
    assert busy.status_code == 409 and f"cancel it with DELETE {ramp['href']}" in busy.json()["message"]
    voltages, progress = [], []
    while len(voltages) < 6:
        voltages.append(httpx.get(f"{url}/psu/voltage").json()["value"])
        progress.append(httpx.get(url + ramp["href"]).json()["progress"])
        time.sleep(0.05)
    assert voltages == sorted(voltages) and 0 < voltages[-1] < 10 and len(set(voltages)) >= 4, voltages
    reported = [p for p in progress if p is not None]
    assert reported == sorted(reported) and 0 < reported[-1] < 1, progress
    done = finished(url, ramp["href"])
    assert (done["status"], done["result"], done["progress"], done["message"]) == ("completed", 10.0, 1.0, "at 10 V")
    assert httpx.get(f"{url}/psu/voltage").json()["value"] == 10.0


def test_a_cancelled_ramp_stops_where_it_got(url: str) -> None:
    assert httpx.put(f"{url}/psu/voltage", json={"value": 10}).status_code == 200
    ramp = started(url, "psu", {"to": 0, "rate": 5})  # 2 s
    wait_until(lambda: httpx.get(f"{url}/psu/voltage").json()["value"] < 9, 5, "ramp under way")
    cancelled = httpx.delete(url + ramp["href"])
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    stopped = httpx.get(f"{url}/psu/voltage").json()["value"]
    time.sleep(0.3)  # six steps' time: none comes
    assert httpx.get(f"{url}/psu/voltage").json()["value"] == stopped and 0 < stopped < 9
    assert cancelled.json()["message"] == f"at {stopped:g} V"


def test_a_cancel_answers_at_once_while_a_blocking_setting_takes_a_second(url: str) -> None:
    first = httpx.put(f"{url}/slow_psu/voltage", json={"value": 0}, timeout=10)
    assert first.status_code == 200, first.text
    ramp = started(url, "slow_psu", {"to": 10, "rate": 1})  # a step a second: each one's write blocks for 1 s
    wait_until(lambda: httpx.get(url + ramp["href"]).json()["progress"] is not None, 5, "first step done")
    time.sleep(0.3)  # now in the middle of the next step's write
    begun = time.perf_counter()
    cancelled = httpx.delete(url + ramp["href"])
    took = time.perf_counter() - begun
    # Not held up by the write under way (the answer would come after a second, still running).
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled" and took < 0.5, took
    stopped = httpx.get(f"{url}/slow_psu/voltage", timeout=10).json()["value"]  # after the write under way
    assert 0 < stopped < 10
    assert httpx.put(f"{url}/slow_psu/voltage", json={"value": 0}, timeout=10).status_code == 200  # owned no more
def test_text_an_instrument_cannot_take_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {"panel": {"class": "tests.fixture_modules.DisplayPanel",
                                                              "simulate": True}})
    with running_stack(config, tmp_path) as (_, _, url):
        assert httpx.put(f"{url}/panel/text", json={"value": "run 7"}).json()["value"] == "run 7"
        for text in ("h\u00e9llo", "del\x7f", "two\nlines"):
            refused = httpx.put(f"{url}/panel/text", json={"value": text})
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"] == "invalid_value" and "printable ASCII only" in refused.json()["message"]
        assert httpx.get(f"{url}/panel/text").json()["value"] == "run 7"  # nothing reached the display
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "ok" and health["modules"]["panel"]["last_error"] is None  # not degraded
