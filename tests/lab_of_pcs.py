"""A lab of several experiment processes behind one frontend, for tests: each process on its own TCP ports
with its own config.yml and data folder, and one frontend whose config lists them under `experiments:`.

Over loopback by default; with a LabNetwork (tests/netns.py), each process runs in its own network namespace,
a separate lab PC reached over a veth with CurveZMQ, as between machines.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from labbridge.core.curve import generate
from tests.netns import LabNetwork, LabPC
from tests.processes import ROOT, Process, backend_answers, free_port, shipped_modules, shipped_procedures, \
    start_frontend, wait_until, write_config

# Each lab PC's modules (named differently across the lab) and procedures.
PCS: dict[str, tuple[dict[str, dict[str, Any]], tuple[str, ...]]] = {
    "bench": ({"module_a": shipped_modules()["module_a"]}, ("force_curve",)),
    "cryo": ({"setpoint": shipped_modules()["setpoint"]}, ()),
}
# Alarm limits of each of PCS (its own attributes; other labs have none unless given): GET /alarms lists them all.
ALARMS: dict[str, dict[str, Any]] = {"bench": {"module_a.speed": {"high": 45}}, "cryo": {"setpoint.value": {"high": 900}}}


@dataclass
class Pc:
    """One experiment process: its config.yml and the process, when running."""

    name: str
    config: Path
    socket: dict[str, Any]  # its experiment_socket, as the frontend's config names it
    host: LabPC | None = None  # its network namespace, if not loopback
    process: Process | None = None

    def start(self, log: Path) -> None:
        argv = [sys.executable, "start_experiment.py", "--config", str(self.config)]
        self.process = self.host.run(argv, log) if self.host else Process(argv, log, cwd=ROOT)
        if self.host is None:  # over CurveZMQ a plain ping is refused: the frontend's /health tells instead
            endpoint = f"tcp://127.0.0.1:{self.socket['port']}"
            wait_until(lambda: not self.process.alive() or backend_answers(endpoint), 20, f"{self.name} up")  # type: ignore[union-attr]
        assert self.process.alive(), self.process.output


@dataclass
class Lab:
    """The lab: its PCs, the frontend's config and, when running, the frontend."""

    tmp: Path
    pcs: dict[str, Pc]
    config: Path
    frontend: Process | None = None
    url: str = ""
    logs: list[Process] = field(default_factory=list)

    def start_frontend(self, wait_up: bool = True) -> None:
        self.frontend, self.url = start_frontend(self.config, self.tmp / "frontend.log")
        if wait_up:
            wait_until(self.all_up, 20, "every experiment process up")

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(self.url + "/health", timeout=5).json()
        return body

    def all_up(self) -> bool:
        try:
            return all(pc["up"] for pc in self.health()["experiments"].values())
        except (httpx.HTTPError, KeyError):
            return False

    def stop(self) -> None:
        if self.frontend is not None:
            self.frontend.stop()
        for pc in self.pcs.values():
            if pc.process is not None:
                pc.process.stop()


def p99(times: list[float]) -> float:
    """The 99th percentile of request times (of a few hundred: one of the slowest few)."""
    return sorted(times)[max(0, int(0.99 * len(times)) - 1)]


def unavailable(http: httpx.Client, path: str, name: str) -> bool:
    """Whether GET `path` answers 503 experiment_unavailable naming the experiment process `name`."""
    answer = http.get(path)
    return answer.status_code == 503 and answer.json()["error"] == "experiment_unavailable" \
        and repr(name) in answer.json()["message"]


def make_lab(tmp: Path, pcs: dict[str, tuple[dict[str, dict[str, Any]], tuple[str, ...]]] = PCS,
             frontend: dict[str, Any] | None = None, network: LabNetwork | None = None,
             alarms: dict[str, dict[str, Any]] | None = None,
             history: dict[str, dict[str, Any]] | None = None,
             interlocks: dict[str, dict[str, Any]] | None = None) -> Lab:
    """Config files for each PC and the frontend (nothing started); each PC in a namespace of `network`, and
    with its `history:` section from `history` (by PC name; none records by default)."""
    made: dict[str, Pc] = {}
    hosts = network(len(pcs)) if network is not None else [None] * len(pcs)
    for (name, (modules, procedures)), host in zip(pcs.items(), hosts):
        folder = tmp / name
        folder.mkdir()
        socket: dict[str, Any] = {"host": host.address if host else "127.0.0.1", "port": free_port(),
                                  "events_port": free_port()}
        theirs = dict(socket)
        if host is not None:  # between machines: CurveZMQ, each PC with its own keys
            generate(folder / "keys")
            keys = folder / "keys"
            theirs["curve"] = {"server_key": str(keys / "server.key_secret"),
                               "authorized_clients": str(keys / "authorized")}
            socket["curve"] = {"server_public_key": str(keys / "server.key"),
                               "client_key": str(keys / "frontend.key_secret")}
        more: dict[str, Any] = {"history": history[name]} if history and name in history else {}
        if interlocks and name in interlocks:
            more["interlocks"] = interlocks[name]
        config = write_config(folder / "config.yml", modules, experiment_socket=theirs,
                              procedures=shipped_procedures(*procedures) if procedures else {},
                              alarms=(ALARMS if alarms is None and pcs is PCS else alarms or {}).get(name, {}),
                              **more)
        made[name] = Pc(name, config, socket, host)
    front = tmp / "frontend.yml"
    front.write_text(yaml.safe_dump({
        "experiments": {name: pc.socket for name, pc in made.items()},
        "frontend": {"request_timeout": 3.0, **(frontend or {})},
        "data_dir": str(tmp / "frontend-data"),
    }, sort_keys=False), encoding="utf-8")
    return Lab(tmp, made, front)


def start_lab(tmp: Path, **options: Any) -> Lab:
    """make_lab, every process started, the frontend serving them all."""
    lab = make_lab(tmp, **options)
    try:
        for pc in lab.pcs.values():
            pc.start(tmp / f"{pc.name}.log")
        lab.start_frontend()
    except BaseException:
        lab.stop()
        raise
    return lab
