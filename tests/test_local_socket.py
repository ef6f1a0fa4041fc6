"""The experiment process's own door: a socket only its OS user can open, CurveZMQ keys kept private and
re-read while running."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.sync.client import connect

from labbridge.core.config import ConfigError, load_config
from labbridge.core.transport import connect_endpoints
from tests.processes import ROOT, Process, running_stack, start_backend, start_frontend, wait_until, write_config

SETPOINT = {"setpoint": {"class": "setpoint.Setpoint"}}
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="the private local socket is POSIX-only")

# Run as `nobody`: one PUT straight to the experiment process, and a subscription to its live values.
STRANGER = """
import json, os, sys, time
import zmq
os.setgid(65534)
os.setuid(65534)
requests, events = sys.argv[1], sys.argv[2]
context = zmq.Context()
dealer, sub = context.socket(zmq.DEALER), context.socket(zmq.SUB)
result = {"answered": False, "events": 0, "errors": []}
try:
    dealer.connect(requests)
    sub.subscribe(b"")
    sub.connect(events)
    dealer.send(json.dumps({"v": 1, "id": "x", "op": "put", "module": "setpoint", "attribute": "value",
                            "value": 666.0, "deadline": time.time() + 5}).encode(), zmq.NOBLOCK)
except zmq.ZMQError as exc:
    result["errors"].append(str(exc))
result["answered"] = bool(dealer.poll(1500))
until = time.monotonic() + 1.5
while time.monotonic() < until:
    if sub.poll(100):
        sub.recv_multipart()
        result["events"] += 1
print(json.dumps(result))
"""


def listening_tcp_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@POSIX_ONLY
@pytest.mark.skipif(os.geteuid() != 0 or not Path("/proc/net/tcp").exists(),
                    reason="needs root (to become another user) and Linux's /proc")
def test_another_local_user_can_neither_write_nor_listen(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", SETPOINT)
    ports = yaml.safe_load(config.read_text())["experiment_socket"]
    with running_stack(config, tmp_path) as (_, _, url):
        endpoints = connect_endpoints(load_config(config).experiment_socket, config)
        stranger = subprocess.Popen([sys.executable, "-c", STRANGER, endpoints.requests, endpoints.events],
                                    cwd="/", stdout=subprocess.PIPE, text=True)
        while stranger.poll() is None:  # live values go out all the while the stranger listens
            assert httpx.put(f"{url}/setpoint/value", json={"value": 1.0}).status_code == 200
            time.sleep(0.05)
        result = json.loads(stranger.communicate()[0])
        assert not result["answered"] and result["events"] == 0, result
        assert httpx.get(f"{url}/setpoint/value").json()["value"] == 1.0  # the stranger's 666 never ran
        assert not {ports["port"], ports["events_port"]} & listening_tcp_ports()


@POSIX_ONLY
def test_the_socket_folder_is_private_and_the_sockets_are_the_owners_only(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", SETPOINT)
    with running_stack(config, tmp_path):
        endpoints = connect_endpoints(load_config(config).experiment_socket, config)
        assert endpoints.folder is not None and endpoints.requests.startswith("ipc://")
        folder = endpoints.folder.stat()
        assert folder.st_uid == os.getuid() and stat.S_IMODE(folder.st_mode) == 0o700
        for path in endpoints.socket_files:
            assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not any(path.exists() for path in endpoints.socket_files)  # removed on a clean stop
    lock = endpoints.socket_files[0].with_suffix(".lock")  # experiment-<port>.lock
    assert lock.parent == endpoints.folder and not lock.exists()  # and so is the lock's file: none pile up


@POSIX_ONLY
def test_two_configs_get_two_sockets_and_one_config_one_experiment(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_config(tmp_path / "a" / "config.yml", SETPOINT)
    second = write_config(tmp_path / "b" / "config.yml", SETPOINT)
    assert backend_of(first) != backend_of(second)
    backend = start_backend(first, tmp_path / "first.log")
    try:
        again = Process([sys.executable, "start_experiment.py", "--config", str(first)], tmp_path / "again.log")
        assert again.wait(15) == 1
        assert "another experiment process is serving" in again.output and "Traceback" not in again.output
        again.stop()
        frontend, url = start_frontend(first, tmp_path / "frontend.log")
        try:  # the first experiment still has its socket: the second did not take it over
            assert httpx.put(f"{url}/setpoint/value", json={"value": 3.0}).status_code == 200
        finally:
            frontend.stop()
    finally:
        backend.stop()


@POSIX_ONLY
def test_a_second_config_on_a_taken_socket_names_the_socket_and_the_key_to_change(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_config(tmp_path / "a" / "config.yml", SETPOINT)
    port = load_config(first).experiment_socket.port
    second = write_config(tmp_path / "b" / "config.yml", SETPOINT, backend_port=port)  # a copy that kept the port
    assert backend_of(first) == backend_of(second)  # the private socket is named after the port, not the file
    backend = start_backend(first, tmp_path / "first.log")
    try:
        again = Process([sys.executable, "start_experiment.py", "--config", str(second)], tmp_path / "again.log")
        assert again.wait(15) == 1
        line = next(line for line in again.output.splitlines() if "cannot bind" in line)
        socket_file = backend_of(first).removeprefix("ipc://")
        assert f"another experiment process is serving the socket {socket_file}" in line, line
        assert f"experiment_socket.port: {port}" in line and "give this experiment another experiment_socket.port" in line
        assert f"serving {second}" not in line and "Traceback" not in again.output
        again.stop()
    finally:
        backend.stop()


def backend_of(config: Path) -> str:
    return connect_endpoints(load_config(config).experiment_socket, config).requests


@POSIX_ONLY
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder owned by another user")
def test_a_socket_folder_made_by_another_user_is_refused(tmp_path: Path) -> None:
    squatted = tmp_path / "sockets"
    squatted.mkdir(mode=0o700)
    os.chown(squatted, 65534, 65534)
    refused_at_start(socket_config(tmp_path, socket_dir="sockets"), "belongs to user id 65534")


def test_tcp_beyond_loopback_needs_curve(tmp_path: Path) -> None:
    refused_at_start(socket_config(tmp_path, host="0.0.0.0"), "experiment_socket.host: 0.0.0.0 lets other machines")


def socket_config(tmp_path: Path, **socket: Any) -> Path:
    """A config.yml with these `experiment_socket` keys."""
    config = write_config(tmp_path / "config.yml", SETPOINT)
    data = yaml.safe_load(config.read_text())
    data["experiment_socket"].update(socket)
    config.write_text(yaml.safe_dump(data))
    return config


def refused_at_start(config: Path, message: str) -> None:
    """Both ways in refuse `config`: reading it, and the experiment process (exit 2, one line, no traceback)."""
    with pytest.raises(ConfigError, match=message):
        backend_of(config)
    result = subprocess.run([sys.executable, "start_experiment.py", "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@POSIX_ONLY
def test_the_keys_command_writes_secret_keys_for_their_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask, which leaves new files readable by everyone
    try:
        subprocess.run([sys.executable, "-m", "labbridge", "keys", str(tmp_path / "keys")], cwd=ROOT, check=True,
                       capture_output=True, timeout=30)
    finally:
        os.umask(old_umask)
    keys = tmp_path / "keys"
    for name in ("server.key_secret", "frontend.key_secret"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in keys.iterdir()) == ["authorized", "frontend.key", "frontend.key_secret",
                                                      "server.key", "server.key_secret"]


def test_authorized_keys_added_or_removed_take_effect_without_a_restart(tmp_path: Path) -> None:
    from labbridge.core.curve import generate

    generate(tmp_path / "keys")  # the backend's pair, and a frontend it knows
    generate(tmp_path / "lab2")  # a second frontend's pair, not authorized yet
    curve = {"server_key": "keys/server.key_secret", "authorized_clients": "keys/authorized",
             "server_public_key": "keys/server.key", "client_key": "keys/frontend.key_secret"}
    config = write_config(tmp_path / "config.yml", SETPOINT, frontend={"connect_timeout": 0.5})
    data = yaml.safe_load(config.read_text())
    data["experiment_socket"].update(host="127.0.0.1", curve=curve)  # frontends on other machines come over TCP
    config.write_text(yaml.safe_dump(data))
    second = tmp_path / "lab2.yml"  # the second frontend's own config.yml, as on its own machine
    data["experiment_socket"]["curve"]["client_key"] = "lab2/frontend.key_secret"
    second.write_text(yaml.safe_dump(data))
    with ExitStack() as stopping:
        backend = Process([sys.executable, "start_experiment.py", "--config", str(config)], tmp_path / "backend.log")
        stopping.callback(backend.stop)
        lab2, lab2_url = start_frontend(second, tmp_path / "lab2.log")
        stopping.callback(lab2.stop)
        wait_until(lambda: "experiment ready" in backend.output, 15, "backend ready")
        assert httpx.get(f"{lab2_url}/setpoint/value").status_code == 503  # not authorized yet
        added = tmp_path / "keys" / "authorized" / "lab2.key"
        added.write_bytes((tmp_path / "lab2" / "frontend.key").read_bytes())
        wait_until(lambda: httpx.get(f"{lab2_url}/setpoint/value").status_code == 200, 10, "added key let in")
        with connect(lab2_url.replace("http", "ws") + "/ws") as live:  # its live values come in too
            def a_live_value_arrives() -> bool:
                httpx.put(f"{lab2_url}/setpoint/value", json={"value": 2.0})
                try:
                    return '"value":2.0' in str(live.recv(timeout=0.5))
                except TimeoutError:
                    return False

            wait_until(a_live_value_arrives, 10, "live values over the added key")
        assert "CurveZMQ reloaded: 2 authorized frontend key(s)" in backend.output and "lab2.key (" in backend.output
        added.unlink()
        # Its connection is already open: the backend still refuses its next request.
        wait_until(lambda: httpx.get(f"{lab2_url}/setpoint/value").status_code == 403, 10, "removed key refused")
        refused = httpx.put(f"{lab2_url}/setpoint/value", json={"value": 9.0})
        assert refused.status_code == 403 and "no longer in" in refused.json()["message"]
        assert backend.alive()
        backend.signal(signal.SIGTERM)
        assert backend.wait(10) == 0
