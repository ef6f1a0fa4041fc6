"""The experiment process on a separate "lab PC" (a network namespace, tests/netns.py), the frontend here.

The hop is real TCP between two hosts, with CurveZMQ as between two machines.
Faults: kill -9 of the experiment process, SIGSTOP then SIGCONT (a hung PC),
the cable pulled then plugged back in.  What is asserted is what the bridge
guarantees today with one experiment process: an answer (503 or 504, JSON)
within its timeouts, never a hang, and service again by itself afterwards.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from labbridge.core.curve import generate
from tests.netns import LabNetwork, LabPC, lab_pcs, netns, remove_leftovers  # noqa: F401 - the fixture
from tests.processes import Process, free_port, start_frontend, wait_until, write_config

REQUEST_TIMEOUT, CONNECT_TIMEOUT = 1.5, 0.5  # the frontend's: 504 after the first, 503 after the second
MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True}}  # its simulator: loopback in the namespace


@dataclass
class RemoteLab:
    """A frontend here (url) and an experiment process (backend) on the lab PC `pc`."""

    pc: LabPC
    config: Path
    backend: Process
    frontend: Process
    url: str

    def start_backend(self) -> None:
        """(Re)start the experiment process on the lab PC, as a lab PC's service manager would."""
        self.backend = self.pc.run([sys.executable, "start_experiment.py", "--config", str(self.config)],
                                   self.config.parent / "backend.log")

    def get(self) -> tuple[httpx.Response, float]:
        """GET module_a's position: the answer and the seconds it took."""
        start = time.monotonic()
        response = httpx.get(f"{self.url}/module_a/position", timeout=30)
        return response, time.monotonic() - start

    def served(self) -> bool:
        return self.get()[0].status_code == 200


def remote_config(folder: Path, pc: LabPC) -> Path:
    """config.yml of both processes: the experiment socket on the lab PC's address, CurveZMQ keys."""
    generate(folder / "keys")
    config = write_config(folder / "config.yml", MODULES, frontend={"request_timeout": REQUEST_TIMEOUT,
                                                                   "connect_timeout": CONNECT_TIMEOUT})
    data = yaml.safe_load(config.read_text())
    data["experiment_socket"] = {"host": pc.address, "port": free_port(), "events_port": free_port(), "curve": {
        "server_key": "keys/server.key_secret", "authorized_clients": "keys/authorized",
        "server_public_key": "keys/server.key", "client_key": "keys/frontend.key_secret"}}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


@contextmanager
def remote_lab(pc: LabPC, folder: Path) -> Iterator[RemoteLab]:
    """Both processes running and serving module_a; both stopped afterwards."""
    config = remote_config(folder, pc)
    with ExitStack() as stopping:
        lab = RemoteLab(pc, config, None, None, "")  # type: ignore[arg-type]  # filled in just below
        lab.start_backend()
        stopping.callback(lambda: lab.backend.stop())  # the one running at the end (a test may restart it)
        lab.frontend, lab.url = start_frontend(config, folder / "frontend.log")
        stopping.callback(lab.frontend.stop)
        wait_until(lambda: not lab.backend.alive() or lab.served(), 20, "module_a served across the link")
        assert lab.backend.alive(), lab.backend.output
        yield lab


def listeners(pc: LabPC | None) -> list[str]:
    """Local addresses of TCP listening sockets in the lab PC's namespace (the root one for None)."""
    out = subprocess.run([*(pc.prefix if pc else []), "ss", "-Hltn"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[3] for line in out.splitlines()]


def established(pc: LabPC, port: int) -> list[str]:
    """The root namespace's established TCP connections to the lab PC's `port` (their local addresses)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "dst", f"{pc.address}:{port}"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split()[2] for line in out.splitlines()]


def request_port(lab: RemoteLab) -> int:
    return int(yaml.safe_load(lab.config.read_text())["experiment_socket"]["port"])


def test_a_lab_pc_is_a_separate_host_and_is_removed_afterwards(netns: LabNetwork) -> None:
    pc, other = netns(2)
    assert pc.address != other.address and pc.name != other.name
    inside = json.loads(pc.ip("-j", "-4", "addr"))
    assert sorted(link["ifname"] for link in inside) == sorted(["lo", pc.veth])  # loopback up, one link, nothing else
    assert pc.ip("-4", "route").count("default") == 0  # it reaches nothing but its end of the link
    with lab_pcs(1) as (short_lived,):
        assert short_lived.link_is_up() and short_lived.name in pc.ip("netns", "list")
    assert short_lived.name not in pc.ip("netns", "list") and short_lived.host_veth not in pc.ip("link")


def test_leftovers_of_a_killed_run_are_removed(netns: LabNetwork) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid names the leftover of "a run killed before its cleanup"
    name, veth = f"lbtest-main-{dead.pid}-1", f"lbt{dead.pid}h1"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", f"lbt{dead.pid}n1", "netns", name],
                   check=True)
    mine, = netns(1)  # a live run's (this one's) are kept
    remove_leftovers()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
    assert name not in namespaces and veth not in links
    assert mine.name in namespaces and mine.host_veth in links


def test_get_and_put_across_the_link_with_curve(netns: LabNetwork, tmp_path: Path) -> None:
    pc, = netns(1)
    with remote_lab(pc, tmp_path) as lab:
        put = httpx.put(f"{lab.url}/module_a/position", json={"value": 3.5}, timeout=10)
        assert put.status_code == 200, put.text
        got, _ = lab.get()
        assert got.status_code == 200 and got.json()["value"] == 3.5
        assert "CurveZMQ on: 1 authorized frontend key(s)" in lab.backend.output
        # The experiment process listens on its lab PC only: its address, and loopback (the simulator).
        inside = listeners(pc)
        assert f"{pc.address}:{request_port(lab)}" in inside
        assert all(a.startswith((f"{pc.address}:", "127.0.0.1:")) for a in inside), inside
        assert not any(a.startswith(f"{pc.address}:") for a in listeners(None))


def test_kill_9_answers_503_quickly_and_a_restarted_process_is_served_again(netns: LabNetwork,
                                                                              tmp_path: Path) -> None:
    pc, = netns(1)
    with remote_lab(pc, tmp_path) as lab:
        lab.backend.signal(signal.SIGKILL)
        lab.backend.wait(5)
        # The connection closes at once (the namespace's kernel resets it), so no request waits its timeout.
        down, took = lab.get()
        assert down.status_code == 503 and down.json()["error"] == "backend_unavailable", down.text
        assert took < CONNECT_TIMEOUT + 1.0
        print(f"kill -9: {down.status_code} in {took:.3f} s")
        lab.start_backend()
        start = time.monotonic()
        wait_until(lab.served, 20, "served again after a restart")
        print(f"kill -9: served {time.monotonic() - start:.3f} s after the restart")


def test_sigstop_answers_504_and_sigcont_serves_again(netns: LabNetwork, tmp_path: Path) -> None:
    pc, = netns(1)
    with remote_lab(pc, tmp_path) as lab:
        lab.backend.signal(signal.SIGSTOP)
        # A hung PC keeps its TCP connection open: today the frontend waits its request timeout.
        hung, took = lab.get()
        assert hung.status_code in (503, 504) and "error" in hung.json(), hung.text
        assert took < REQUEST_TIMEOUT + 1.0
        print(f"SIGSTOP: {hung.status_code} {hung.json()['error']} in {took:.3f} s")
        lab.backend.signal(signal.SIGCONT)
        start = time.monotonic()
        wait_until(lab.served, 10, "served again after SIGCONT")
        print(f"SIGCONT: served again within {time.monotonic() - start:.3f} s")


def test_pulled_cable_answers_within_the_timeout_and_service_returns_by_itself(netns: LabNetwork,
                                                                                 tmp_path: Path) -> None:
    pc, = netns(1)
    with remote_lab(pc, tmp_path) as lab:
        connection = established(pc, request_port(lab))
        assert len(connection) == 1
        pc.link_down()
        # As with a pulled cable, nothing resets the connection: it hangs, established, with its data unacked.
        assert not pc.link_is_up() and established(pc, request_port(lab)) == connection
        cut, took = lab.get()
        assert cut.status_code in (503, 504) and "error" in cut.json(), cut.text
        assert took < REQUEST_TIMEOUT + 1.0
        assert lab.backend.alive()
        print(f"link down: {cut.status_code} {cut.json()['error']} in {took:.3f} s")
        pc.link_up()
        start = time.monotonic()
        wait_until(lab.served, 30, "served again after the link came back")  # TCP retransmits: no restart
        print(f"link up: served again within {time.monotonic() - start:.3f} s")
