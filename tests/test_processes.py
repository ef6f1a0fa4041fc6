"""Process lifecycle: start order, backend outages, clean shutdown, idle cost."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.processes import Process, free_port, start_backend, start_frontend, wait_until, write_config

MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True}}


def position(url: str) -> httpx.Response:
    return httpx.get(f"{url}/module_a/position", timeout=10)


def test_frontend_started_first_gives_503_then_recovers_without_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, frontend={"connect_timeout": 0.2})
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    try:
        down = position(url)
        assert down.status_code == 503
        assert down.json()["error"] == "backend_unavailable"
        assert down.headers["retry-after"] == "1"
        backend = start_backend(config, tmp_path / "backend.log")
        try:
            wait_until(lambda: position(url).status_code == 200, 5, "frontend reaching the new backend")
            backend.signal(signal.SIGKILL)
            backend.wait(5)
            assert position(url).status_code == 503
            backend = start_backend(config, tmp_path / "backend2.log")
            wait_until(lambda: position(url).status_code == 200, 5, "frontend reaching the restarted backend")
        finally:
            backend.stop()
    finally:
        frontend.stop()
    assert "Traceback" not in frontend.output


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX-only")
def test_a_silent_backend_gives_504_within_the_timeout_then_recovers(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES, frontend={"request_timeout": 1.0})
    backend = start_backend(config, tmp_path / "backend.log")
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    try:
        assert position(url).status_code == 200
        backend.signal(signal.SIGSTOP)
        start = time.monotonic()
        silent = httpx.put(f"{url}/module_a/position", json={"value": 3}, timeout=10)
        elapsed = time.monotonic() - start
        assert silent.status_code == 504
        assert silent.json()["error"] == "backend_timeout"
        assert "outcome is unknown" in silent.json()["message"]
        assert elapsed < 3  # the configured 1 s, plus generous slack for a loaded machine
        backend.signal(signal.SIGCONT)
        wait_until(lambda: position(url).status_code == 200, 5, "recovery after SIGCONT")
        # The PUT that timed out had its deadline pass in the backend's queue: it never ran.
        assert position(url).json()["value"] == 0.0
    finally:
        frontend.stop()
        backend.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_backend_stops_cleanly_within_a_second(tmp_path: Path, sig: int) -> None:
    config = write_config(tmp_path / "config.yml", MODULES)
    backend = start_backend(config, tmp_path / "backend.log")
    start = time.monotonic()
    backend.signal(sig)
    assert backend.wait(5) == 0, backend.output
    assert time.monotonic() - start < 1.0
    assert "stopped" in backend.output and "Traceback" not in backend.output
    backend.stop()
    # Its ports are free again: a new backend starts on the same config.
    start_backend(config, tmp_path / "again.log").stop()


def test_frontend_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES)
    frontend, _ = start_frontend(config, tmp_path / "frontend.log")
    frontend.signal(signal.SIGINT)
    assert frontend.wait(5) == 0
    assert "Traceback" not in frontend.output
    frontend.stop()


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES)
    first = start_backend(config, tmp_path / "first.log")
    try:
        second = Process([sys.executable, "start_experiment.py", "--config", str(config)], tmp_path / "second.log")
        assert second.wait(10) == 1
        assert "cannot listen on 127.0.0.1" in second.output and "in use" in second.output
        assert "Traceback" not in second.output
        second.stop()
    finally:
        first.stop()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from /proc")
def test_idle_backend_uses_no_cpu(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES)
    backend = start_backend(config, tmp_path / "backend.log")
    try:
        def cpu_seconds() -> float:
            fields = Path(f"/proc/{backend.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before, start = cpu_seconds(), time.monotonic()
        wait_until(lambda: time.monotonic() - start >= 2.0, 5, "two idle seconds")
        used = cpu_seconds() - before
        assert used / (time.monotonic() - start) < 0.02  # a busy or sleep-polling loop would show here
    finally:
        backend.stop()


def test_backend_on_tcp_binds_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yml", MODULES, backend_port=port)
    data = yaml.safe_load(config.read_text())
    data["experiment_socket"]["host"] = "127.0.0.1"  # TCP, as on Windows (the default elsewhere is a local socket)
    config.write_text(yaml.safe_dump(data))
    backend = start_backend(config, tmp_path / "backend.log")
    try:
        listening = Path("/proc/net/tcp").read_text() if Path("/proc/net/tcp").exists() else ""
        if listening:
            entries = [line.split()[1] for line in listening.splitlines()[1:]]
            assert f"0100007F:{port:04X}" in entries
            assert f"00000000:{port:04X}" not in entries
    finally:
        backend.stop()


def test_write_config_keeps_the_modules_in_the_order_given(tmp_path: Path) -> None:
    from labbridge.core.config import load_config

    # The shipped config.yml lists module_a, setpoint, psu; clients (and README) see that order, not a sorted one.
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA"},
                                                     "setpoint": {"class": "setpoint.Setpoint"},
                                                     "psu": {"class": "psu.PowerSupply", "simulate": True}})
    assert list(load_config(config).modules) == ["module_a", "setpoint", "psu"]
