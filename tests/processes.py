"""Start the real processes (backend, frontend) on free loopback ports for tests.

Every wait polls with a deadline; nothing sleeps a fixed time.  Process output
goes to a log file, shown when a process fails to come up.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
import zmq

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} not reached within {timeout} s")


def shipped_modules() -> dict[str, dict[str, Any]]:
    """The modules of the shipped config.yml, without their ports (write_config gives free ones)."""
    shipped = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))["modules"]
    return {name: {k: v for k, v in spec.items() if k not in ("ip", "port")} for name, spec in shipped.items()}


def shipped_history() -> dict[str, Any]:
    """The shipped config.yml's `history:` (its relative path lands beside the config written from it)."""
    history: dict[str, Any] = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))["history"]
    return history


def shipped_procedures(*names: str) -> dict[str, Any]:
    """The shipped config.yml's `procedures:` (the demo's, in the package); only `names` if given (a config
    without the camera cannot declare exposure_series, which drives it)."""
    procedures: dict[str, Any] = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))["procedures"]
    return {name: spec for name, spec in procedures.items() if not names or name in names}


def write_config(path: Path, modules: dict[str, dict[str, Any]], *, backend_port: int | None = None,
                 frontend: dict[str, Any] | None = None, **top_level: Any) -> Path:
    """Write a config.yml with the given modules (each gets a free port unless it names one) and top-level keys.

    The experiment socket is the default transport (a private local socket, TCP on Windows); its ports
    are free ones, for TCP.  Keys keep the order given, as in a config.yml a user writes (modules are
    listed in that order)."""
    data: dict[str, Any] = {
        "experiment_socket": {"port": backend_port or free_port(), "events_port": free_port()},
        "modules": {name: {"ip": "127.0.0.1", "port": free_port(), **spec} for name, spec in modules.items()},
    }
    if frontend:
        data["frontend"] = frontend
    data.update(top_level)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class Process:
    """A child process whose output goes to a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.args, self.log_path = args, log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    @property
    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def copy_repository(dest: Path) -> Path:
    """A copy of the repository's files (tracked and new, not ignored ones such as .venv) at `dest`."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def backend_endpoint(config: Path) -> str:
    """The ZeroMQ endpoint of the experiment process that `config` describes (where the frontend connects)."""
    from labbridge.core.config import load_config
    from labbridge.core.transport import connect_endpoints

    return connect_endpoints(load_config(config).experiment_socket, config).requests


def start_backend(config: Path, log: Path, root: Path = ROOT, env: dict[str, str] | None = None,
                  wrapper: list[str] | None = None) -> Process:
    """The experiment process, answering pings; `wrapper` runs it through a command such as setpriv."""
    proc = Process([*(wrapper or []), sys.executable, "start_experiment.py", "--config", str(config)], log,
                   env=env, cwd=root)
    endpoint = backend_endpoint(config)
    _wait_alive(proc, lambda: backend_answers(endpoint), "backend")
    return proc


def start_frontend(config: Path, log: Path, port: int | None = None, extra_args: list[str] | None = None,
                   env: dict[str, str] | None = None, root: Path = ROOT) -> tuple[Process, str]:
    """`python main.py` (as demo.py and deploy/ run it) on a free loopback port; `extra_args` go to main.py."""
    port = port or free_port()
    proc = Process([sys.executable, "main.py", "--host", "127.0.0.1", "--port", str(port), *(extra_args or [])],
                   log, env={"EXPERIMENT_CONFIG": str(config), **(env or {})}, cwd=root)
    url = f"http://127.0.0.1:{port}"
    # A static file: answered without asking the backend, so readiness does not depend on it.
    _wait_alive(proc, lambda: http_answers(url + "/static/style.css"), "frontend")
    return proc, url


@contextmanager
def running_stack(config: Path, logs: Path, env: dict[str, str] | None = None, root: Path = ROOT,
                  backend_env: dict[str, str] | None = None) -> Iterator[tuple[Process, Process, str]]:
    """Backend and frontend on `config`, run from `root`, stopped afterwards: (backend, frontend, frontend URL)."""
    backend = start_backend(config, logs / "backend.log", root, backend_env)
    try:
        frontend, url = start_frontend(config, logs / "frontend.log", env=env, root=root)
        try:
            yield backend, frontend, url
        finally:
            frontend.stop()
    finally:
        backend.stop()


def backend_answers(endpoint: str) -> bool:
    """One ping over a fresh REQ socket (a real protocol request)."""
    from labbridge.core.protocol import Request

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send(Request.new("ping", timeout=1.0).encode())
        return bool(sock.poll(200))
    finally:
        sock.close()


def http_answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_alive(proc: Process, ready: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    try:
        wait_until(lambda: not proc.alive() or ready(), timeout, f"{what} ready")
    except TimeoutError:
        proc.stop()
        raise AssertionError(f"{what} did not come up in {timeout} s:\n{proc.output}") from None
    if not proc.alive():
        raise AssertionError(f"{what} exited with {proc.proc.returncode}:\n{proc.output}")
