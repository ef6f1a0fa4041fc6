"""`python demo.py` and `labbridge demo`: start both processes, say where to look once they answer.

`python demo.py` (a clone) installs the requirements (setup_env.py), checks that the frontend's port is
free, starts the experiment process and the web frontend as child processes,
and polls the frontend's `/health` until its own experiment process answers
through it (`/health` names the `pid` of the one that answered: another demo's,
on the same config.yml, must not pass for it; with `auth_reads` it asks with
$BRIDGE_TOKEN, and without one it can only go by the status); only then does
it print the address to open.  Ctrl+C, SIGTERM, SIGHUP (and on Windows
Ctrl+Break or closing the console) stop both children; so does either of them
exiting, and then the demo exits with that child's code (2 for a bad
config.yml, as the processes themselves) and one line saying so.

`labbridge demo` (an installed package, `packaged_main`) installs nothing (pip
did) and runs `python -m labbridge experiment` and `python -m labbridge serve`
on ./config.yml, else on the demo's own config.yml (demo_folder.py).

Standard library only: this runs before the requirements are installed, and
afterwards uses them only through the child processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from pathlib import Path

from labbridge.tools.children import stop_children, stop_on_signals
from labbridge.tools.demo_folder import demo_config
from labbridge.tools.setup_env import ROOT, prepare

log = logging.getLogger("demo")

CONFIG_FILE, CONFIG_VAR = "config.yml", "EXPERIMENT_CONFIG"  # as labbridge/core/config.py (not imported: pydantic)
READY_TIMEOUT = 60.0  # seconds for both processes to answer (the first start imports a lot)
EXIT_FAILED = 1


def backend_command(python: str) -> list[str]:
    """The demo's experiment process."""
    return [python, "start_experiment.py"]


def frontend_command(python: str, port: int) -> list[str]:
    """The demo's web frontend: the one place its command line is written.

    `python main.py` rather than `uvicorn main:app`: it runs uvicorn with the
    frontend's connection limits and timeouts (labbridge/frontend/serve.py)."""
    return [python, "main.py", "--host", "127.0.0.1", "--port", str(port)]


def port_taken(port: int, command: str) -> bool:
    """Whether the frontend's port is in use, said in one line with the command that would choose another."""
    if port_is_free(port):
        return False
    log.error("port %d is already in use (is another demo still running?): stop it, or choose another port "
              "with `%s --port %d`", port, command, port + 1)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 demo.py",
                                     description="Run the simulated instrument, the backend and the frontend.")
    parser.add_argument("--port", type=int, default=8000, help="port of the web frontend (default 8000)")
    parser.add_argument("--config", help="config file (default: $EXPERIMENT_CONFIG, else config.yml)")
    parser.add_argument("--no-install", action="store_true", help="skip installing requirements")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    if port_taken(args.port, "python3 demo.py"):
        return EXIT_FAILED
    python = prepare("requirements.txt", install=not args.no_install)
    env = dict(os.environ)
    if args.config:
        env["EXPERIMENT_CONFIG"] = os.path.abspath(args.config)
    return run(backend_command(python), frontend_command(python, args.port), args.port, env, ROOT,
               f"(or curl http://localhost:{args.port}/module_a/position)")


def packaged_main(argv: list[str] | None = None) -> int:
    """`labbridge demo`: both processes of the installed package, on ./config.yml or else the demo's own."""
    parser = argparse.ArgumentParser(prog="labbridge demo",
                                     description="Run the experiment process and the web frontend together.")
    parser.add_argument("--port", type=int, default=8000, help="port of the web frontend (default 8000)")
    parser.add_argument("--config", help="config file (default: $EXPERIMENT_CONFIG, else ./config.yml, else the "
                                         "built-in demo's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if port_taken(args.port, "labbridge demo"):
        return EXIT_FAILED
    named = args.config or os.environ.get(CONFIG_VAR)
    if named:
        config = Path(named)
    elif Path(CONFIG_FILE).is_file():
        config = Path(CONFIG_FILE)
    else:
        config = demo_config()
        log.info("no %s here: running the built-in demo from %s (`labbridge init DIR` makes a folder of your own)",
                 CONFIG_FILE, config)
    env = {**os.environ, CONFIG_VAR: str(config.resolve())}
    python = sys.executable
    command = [python, "-m", "labbridge"]
    return run([*command, "experiment"], [*command, "serve", "--host", "127.0.0.1", "--port", str(args.port)],
               args.port, env, Path.cwd(), f"(or curl http://localhost:{args.port}/modules)")


def run(backend: list[str], frontend: list[str], port: int, env: dict[str, str], cwd: Path, hint: str) -> int:
    """Run both processes until a signal or until one exits; the demo's exit code (`hint` follows "ready")."""
    stop = threading.Event()
    restore = stop_on_signals(stop)
    experiment = subprocess.Popen(backend, cwd=cwd, env=env)
    children = {"experiment process": experiment}
    try:
        children["frontend"] = subprocess.Popen(frontend, cwd=cwd, env=env)
        health = f"http://127.0.0.1:{port}/health"
        deadline = time.monotonic() + READY_TIMEOUT
        answered_by: int | None = None  # the pid of an experiment process that answered, not ours
        while (answer := _answers(health, env.get("BRIDGE_TOKEN"))) is None or answer not in (experiment.pid, 0):
            answered_by = answer or answered_by
            if stop.is_set():
                log.info("stopping")
                return 0
            if (code := _exited(children)) is not None:
                return code
            if time.monotonic() > deadline:
                other = f" (another experiment process, pid {answered_by}, answers there)" if answered_by else ""
                log.error("the demo did not answer at %s within %.0f s%s; stopping it", health, READY_TIMEOUT, other)
                return EXIT_FAILED
            stop.wait(0.2)
        if (code := _exited(children)) is not None:  # both of ours must still be there
            return code
        log.info("ready: open http://localhost:%d/ %s; Ctrl+C stops", port, hint)
        while not stop.wait(0.5):
            if (code := _exited(children)) is not None:
                return code
        log.info("stopping")
        return 0
    finally:
        stop_children(list(children.values()))
        restore()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now (with the SO_REUSEADDR uvicorn uses on POSIX)."""
    with socket.socket() as probe:
        if os.name != "nt":  # on Windows SO_REUSEADDR would let two servers share the port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _answers(url: str, token: str | None) -> int | None:
    """Once the frontend answers 200 (it is up and reaches an experiment process): that process's pid, or 0 when
    /health does not say (reads need a token this demo was not given); None before."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            if response.status != 200:
                return None
            backend = json.loads(response.read()).get("backend")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    pid = backend.get("pid") if isinstance(backend, dict) else None
    return pid if isinstance(pid, int) and pid > 0 else 0


def _exited(children: dict[str, subprocess.Popen[bytes]]) -> int | None:
    """The exit code to leave with when a child has exited (never 0: the demo did not finish), else None."""
    for name, child in children.items():
        code = child.poll()
        if code is not None:
            log.error("the %s exited with code %d (its message is above); stopping the demo", name, code)
            return code if code > 0 else EXIT_FAILED
    return None
