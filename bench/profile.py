"""Where does the time go?  Profiles the frontend and the backend under load with py-spy.

    python bench/profile.py [get|put|simulated|trace] [--connections 32] [--seconds 5]

Starts the stack on free loopback ports, puts a load on one path (get/put: the
in-memory Setpoint; simulated: ModuleA's position through the simulated
instrument; trace: the 100,000-sample array), samples both processes with
py-spy while it runs, and prints each process's busiest functions by own time.
Needs py-spy (in requirements-dev.txt) and permission to trace processes (root,
or CAP_SYS_PTRACE in a container).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if __name__ == "__main__":
    from labbridge.tools.setup_env import run_inside

    run_inside("requirements-dev.txt")

from bench.load import QUIET, Load  # noqa: E402
from tests.processes import free_port, start_backend, start_frontend, write_config  # noqa: E402

PATHS = {"get": ("/setpoint/value", None), "put": ("/setpoint/value", b'{"value": 1.5}'),
         "simulated": ("/module_a/position", None), "trace": ("/module_a/trace", None)}


def top_functions(raw: Path, count: int) -> list[str]:
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        total += int(samples)
        own[stack.split(";")[-1]] += int(samples)
    return [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(count)] if total else ["no samples"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", choices=sorted(PATHS), nargs="?", default="get")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bridge-profile-") as name:
        tmp = Path(name)
        config = write_config(tmp / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True},
                                                   "setpoint": {"class": "setpoint.Setpoint"}})
        backend = start_backend(config, tmp / "backend.log")
        frontend, url = start_frontend(config, tmp / "frontend.log", extra_args=QUIET)
        try:
            path, body = PATHS[args.path]
            spies = {proc_name: (tmp / f"{proc_name}.txt", subprocess.Popen(
                [_py_spy(), "record", "--pid", str(pid), "--duration", str(args.seconds), "--rate", "200",
                 "--format", "raw", "--output", str(tmp / f"{proc_name}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                for proc_name, pid in (("frontend", frontend.proc.pid), ("backend", backend.proc.pid))}
            result = Load("wrk" if _has_wrk() else "asyncio", args.seconds + 1, tmp).run(url + path, args.connections, body)
            for _, spy in spies.values():
                spy.wait()
            sys.stdout.write(f"{args.path} at concurrency {args.connections}: {result.rps:,.0f} req/s, "
                             f"p50 {result.p50_ms:.2f} ms\n")
            for proc_name, (raw, _) in spies.items():
                sys.stdout.write(f"\n{proc_name}, own time (share of samples; idle waiting shows as Runner.run):\n")
                sys.stdout.write("\n".join(top_functions(raw, args.top)) + "\n")
        finally:
            frontend.stop()
            backend.stop()


def _has_wrk() -> bool:
    return shutil.which("wrk") is not None


def _py_spy() -> str:
    """py-spy from PATH, else the one installed beside this Python (a virtual environment not activated)."""
    return shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


if __name__ == "__main__":
    main()
