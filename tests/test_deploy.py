"""deploy/supervisord.conf as shipped, in a fresh copy of the repository: restarts a killed backend, gives up on a
bad config; and what git must never pick up (secrets, logs, data)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.processes import ROOT, copy_repository, free_port, wait_until, write_config


@dataclass
class Clone:
    """A fresh copy of the repository (what git tracks, as a clone has it), where supervisord runs."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "deploy" / "supervisord.conf"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


@pytest.fixture()
def clone(tmp_path: Path) -> Clone:
    # A short path: supervisord's control socket lives in logs/ (a socket path holds at most 107 bytes).
    return Clone(copy_repository(tmp_path / "r"))


@contextmanager
def supervisord(clone: Clone, config: Path, conf: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    # supervisord's children inherit its environment: this interpreter first on PATH (an activated venv), this config.
    env = {**os.environ, "EXPERIMENT_CONFIG": str(config),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # As README says, from the repository's folder; nothing is created beforehand (logs/ comes with the clone).
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf or clone.conf)],
                            cwd=clone.root, env=env)
    try:
        yield proc
    finally:
        supervisorctl(clone, "shutdown")  # README's way to stop it
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def supervisorctl(clone: Clone, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(clone.conf), *args],
                          capture_output=True, text=True, timeout=10).stdout.strip()


def supervised_pid(clone: Clone, name: str) -> int:
    out = supervisorctl(clone, "pid", name)
    return int(out) if out.isdigit() else 0


def supervised_state(clone: Clone, name: str) -> str:
    """RUNNING, BACKOFF, FATAL, EXITED, ... (empty while supervisord is not answering yet)."""
    fields = supervisorctl(clone, "status", name).split()
    return fields[1] if len(fields) > 1 else ""


def serving(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_supervisor_restarts_a_killed_backend_within_5_seconds(tmp_path: Path, clone: Clone) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/module_a/position"
    with supervisord(clone, config) as proc:
        wait_until(lambda: serving(url) or proc.poll() is not None, 30, "the supervised stack serving")
        assert proc.poll() is None, f"supervisord exited with {proc.returncode}"
        first = supervised_pid(clone, "backend")
        assert first > 0
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: supervised_pid(clone, "backend") not in (0, first) and serving(url), 10, "backend restarted")
        assert time.monotonic() - killed_at < 5
    assert proc.returncode == 0  # `supervisorctl shutdown` stopped it, and both processes with it
    assert not serving(url)
    assert "exited: backend (terminated by SIGKILL; not expected)" in (clone.logs / "supervisord.log").read_text()


@pytest.mark.parametrize("machine", ["as shipped", "slower than startsecs"])
def test_supervisor_leaves_a_backend_with_a_bad_config_stopped(tmp_path: Path, clone: Clone, machine: str) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"modules": {"module_a": {"class": "module_a.ModuleA", "port": 70000}}}))
    conf = None
    if machine != "as shipped":
        # A machine that takes longer than startsecs to import and read the config
        # (a loaded CI runner, a Raspberry Pi): the exit comes after "RUNNING".
        conf = tmp_path / "supervisord.conf"
        conf.write_text(clone.conf.read_text().replace("%(here)s/..", str(clone.root))
                        .replace("startsecs=1", "startsecs=0"))
    with supervisord(clone, config, conf) as proc:
        # FATAL and EXITED are the states Supervisor never leaves by itself.
        wait_until(lambda: supervised_state(clone, "backend") in ("FATAL", "EXITED") or proc.poll() is not None, 30,
                   "supervisor leaving the backend stopped")
        assert proc.poll() is None, f"supervisord exited with {proc.returncode}"
        log = _log(clone)
    assert log.count("spawned: 'backend'") <= 4  # the first start and at most 3 retries, not a loop
    if machine == "as shipped":
        assert "gave up: backend entered FATAL state" in log or "exited: backend (exit status 2; expected)" in log
    else:
        assert "exited: backend (exit status 2; expected)" in log and log.count("spawned: 'backend'") == 1
    assert "modules.module_a.port" in (clone.logs / "backend.log").read_text()


def _log(clone: Clone) -> str:
    path = clone.logs / "supervisord.log"
    return path.read_text() if path.exists() else ""


def test_git_ignores_secrets_logs_and_data_but_keeps_the_logs_folder() -> None:
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0

    for path in ("tokens.yml", "keys/server.key_secret", "keys/server.key", "keys/authorized/frontend.key",
                 "lab2.key_secret", "logs/audit.jsonl", "logs/backend.log", "logs/supervisor.sock",
                 "logs/supervisord.pid", "data/history.sqlite3", "data/invocations.jsonl"):
        assert ignored(path), f"git would pick up {path}"
    assert not ignored("logs/.gitkeep")
    tracked = subprocess.run(["git", "ls-files", "logs"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert tracked == ["logs/.gitkeep"]  # a fresh clone has logs/, where deploy/supervisord.conf writes
