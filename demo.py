"""Run the whole demo with one command: simulated instrument, backend and web frontend.

    python demo.py            # then open http://localhost:8000/
    python demo.py --no-install --port 8080

It installs the requirements (into .venv unless a virtual environment is
active), starts `start_experiment.py` (which serves the simulated actuator) and
`uvicorn main:app`, and stops both on Ctrl+C.  If either process dies, the
other is stopped too and the exit code says so.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time

from labbridge.tools.setup_env import ROOT, prepare

log = logging.getLogger("demo")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the simulated instrument, the backend and the frontend.")
    parser.add_argument("--port", type=int, default=8000, help="port of the web frontend (default 8000)")
    parser.add_argument("--config", help="config file (default: $EXPERIMENT_CONFIG, else config.yml)")
    parser.add_argument("--no-install", action="store_true", help="skip installing requirements")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    python = prepare("requirements.txt", install=not args.no_install)
    env = dict(os.environ)
    if args.config:
        env["EXPERIMENT_CONFIG"] = os.path.abspath(args.config)
    backend = subprocess.Popen([python, "start_experiment.py"], cwd=ROOT, env=env)
    frontend = subprocess.Popen([python, "main.py", "--host", "127.0.0.1", "--port", str(args.port)], cwd=ROOT, env=env)
    log.info("open http://localhost:%d/ (or curl http://localhost:%d/module_a/position); Ctrl+C stops", args.port, args.port)
    processes = [backend, frontend]
    try:
        while all(p.poll() is None for p in processes):
            try:
                processes[0].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        log.error("a process exited; stopping the demo")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 5
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
