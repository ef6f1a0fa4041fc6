"""Safe states with the real processes and an instrument that outlives them (issue 21, points 3 and 5).

The power supply is tests/scpi_instrument.py, a process of its own on a TCP
socket (TCPIP::127.0.0.1::PORT::SOCKET), driven by the shipped PowerSupply
module: so a `kill -9` of the experiment process leaves its output on, as a
real supply would stay on, and the test asks the instrument itself.
Its `SOUR:CURR` is a header it does not know, so a safe state that writes
`current_limit` has one write the instrument refuses.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.processes import ROOT, Process, start_backend, start_frontend, wait_until, write_config
from tests.scpi_instrument_process import SocketInstrument

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and SIGTERM are POSIX's")

PSU = "labbridge.demo.psu.PowerSupply"
MARKER = Path("data") / "experiment.running"


@pytest.fixture
def instrument(tmp_path: Path) -> Iterator[SocketInstrument]:
    instrument = SocketInstrument(tmp_path)
    yield instrument
    instrument.stop()


def config(tmp_path: Path, instrument: SocketInstrument, values: dict[str, Any], **top: Any) -> Path:
    return write_config(tmp_path / "config.yml", {"psu": {"class": PSU, "resource": instrument.resource,
                                                          "safe_state": values}},
                        audit_log="audit.jsonl", **top)


def safe_state_lines(tmp_path: Path) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    return [line for line in lines if line["op"] == "safe_state" and line["stage"] == "finished"]


def switched_off_at(instrument: SocketInstrument) -> list[float]:
    """When the instrument's output was set off, by its own clock (Unix time)."""
    log = instrument.ask("DIAG:OUTP:LOG?")
    return [float(entry.split("=")[0]) for entry in log.split(",") if entry.endswith("=0")]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])  # a supervisor's stop, Ctrl+C
def test_a_clean_stop_puts_the_supply_in_its_safe_state_even_when_one_write_fails(
        tmp_path: Path, instrument: SocketInstrument, stop: signal.Signals) -> None:
    path = config(tmp_path, instrument, {"current_limit": 0, "output": False, "voltage": 0})
    backend = start_backend(path, tmp_path / "backend.log")
    try:
        frontend, url = start_frontend(path, tmp_path / "frontend.log")
        try:
            assert httpx.put(f"{url}/psu/voltage", json={"value": 12}).status_code == 200
            assert httpx.put(f"{url}/psu/output", json={"value": True}).status_code == 200
        finally:
            frontend.stop()
        assert instrument.ask("OUTP?") == "1"
        backend.signal(stop)
        assert backend.wait(10) == 0
    finally:
        backend.stop()
    assert instrument.ask("OUTP?") == "0"  # asked of the instrument, which outlived the bridge
    assert float(instrument.ask("SOUR:VOLT?")) == 0.0
    lines = safe_state_lines(tmp_path)
    assert [(line["attribute"], line["outcome"]) for line in lines] == [
        ("current_limit", "instrument_error"), ("output", "ok"), ("voltage", "ok")]  # in the order written
    assert {line["client"] for line in lines} == {"bridge (the experiment process stopped)"}
    assert "FAILED current_limit" in backend.output
    # Not all of it applied: the marker stays, and the next start applies it again.
    marker = orjson.loads((tmp_path / MARKER).read_bytes())
    assert marker["not_clean"] == "could not apply safe states: psu.current_limit"


def test_after_kill_9_the_next_start_switches_the_supply_off_before_it_serves(
        tmp_path: Path, instrument: SocketInstrument) -> None:
    path = config(tmp_path, instrument, {"output": False, "voltage": 0})
    backend = start_backend(path, tmp_path / "backend.log")
    frontend, url = start_frontend(path, tmp_path / "frontend.log")  # it outlives both experiment processes
    try:
        assert httpx.put(f"{url}/psu/voltage", json={"value": 12}).status_code == 200
        assert httpx.put(f"{url}/psu/output", json={"value": True}).status_code == 200
        backend.signal(signal.SIGKILL)
        backend.wait(10)
        assert instrument.ask("OUTP?") == "1"  # the plug was pulled on the bridge, not on the supply
        assert (tmp_path / MARKER).exists()
        # Switching off takes 0.5 s: were anything served before it is done, the health polls would see it.
        instrument.ask("DIAG:OUTP:DELAY 0.5;DIAG:WAITING?")
        backend = Process([sys.executable, "start_experiment.py", "--config", str(path)], tmp_path / "backend2.log")
        first: list[dict[str, Any]] = []
        wait_until(lambda: _health(url, first), 20, "the new experiment process answering")
        # The first answer it served already says the supply was put in its safe state, and why.
        safe_state = first[0]["modules"]["psu"]["safe_state"]
        assert safe_state["reason"] == "after an unclean stop" and safe_state["failed"] == {}
        assert instrument.ask("OUTP?") == "0" and float(instrument.ask("SOUR:VOLT?")) == 0.0
        assert switched_off_at(instrument)[-1] >= safe_state["applied_at"]
        assert httpx.get(f"{url}/psu/output").json()["value"] is False
        backend.signal(signal.SIGTERM)
        assert backend.wait(10) == 0
        assert not (tmp_path / MARKER).exists()  # a clean stop that applied everything: nothing owed
    finally:
        frontend.stop()
        backend.stop()
    reasons = [line["client"] for line in safe_state_lines(tmp_path)]
    assert reasons == ["bridge (after an unclean stop)"] * 2 + ["bridge (the experiment process stopped)"] * 2


def test_after_crash_false_leaves_the_supply_as_the_killed_process_left_it(
        tmp_path: Path, instrument: SocketInstrument) -> None:
    path = config(tmp_path, instrument, {"output": False}, safe_state={"after_crash": False})
    backend = start_backend(path, tmp_path / "backend.log")
    backend.signal(signal.SIGKILL)
    backend.wait(10)
    assert instrument.ask("OUTP 1;OUTP?") == "1"
    backend = start_backend(path, tmp_path / "backend2.log")
    try:
        assert instrument.ask("OUTP?") == "1"
        assert "safe states are not applied (safe_state.after_crash: false)" in backend.output
        backend.signal(signal.SIGTERM)  # a clean stop still applies it
        assert backend.wait(10) == 0
    finally:
        backend.stop()
    assert instrument.ask("OUTP?") == "0"


def test_a_reload_puts_the_supply_in_its_safe_state_before_the_new_process_starts(
        tmp_path: Path, instrument: SocketInstrument) -> None:
    path = config(tmp_path, instrument, {"output": False})
    reloader = Process([sys.executable, "start_experiment.py", "--config", str(path), "--reload"],
                       tmp_path / "reloader.log")
    try:
        wait_until(lambda: "experiment ready" in reloader.output, 20, "the first child serving")
        assert instrument.ask("OUTP 1;OUTP?") == "1"
        path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")  # a change: the child restarts
        wait_until(lambda: reloader.output.count("experiment ready") == 2, 20, "the second child serving")
        assert instrument.ask("OUTP?") == "0"
    finally:
        reloader.stop()
    assert [line["client"] for line in safe_state_lines(tmp_path)][:1] == ["bridge (the experiment process stopped)"]


def test_a_safe_state_the_supply_cannot_take_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.yml", {"psu": {"class": PSU, "resource": "TCPIP::127.0.0.1::9::SOCKET",
                                                          "safe_state": {"output": False, "voltage": 31}}})
    done = subprocess.run([sys.executable, "start_experiment.py", "--config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "modules.psu.safe_state.voltage:" in done.stderr and "30" in done.stderr
    assert "Traceback" not in done.stderr


def _health(url: str, first: list[dict[str, Any]]) -> bool:
    try:
        answer = httpx.get(f"{url}/health", timeout=5)
    except httpx.HTTPError:
        return False
    if answer.status_code != 200:
        return False
    first.append(answer.json())
    return True
