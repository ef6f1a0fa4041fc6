"""Benchmark the bridge against its floors, all measured in one run on this machine.

    python bench/run.py [--duration 5] [--load auto|wrk|asyncio]

(It installs the test requirements into .venv first, like run_tests.py.)

Starts the real stack on free loopback ports (experiment process with the
simulated actuator and the in-memory Setpoint, uvicorn frontend), a bare
FastAPI app as the floor, and drives each from a separate load process (wrk
when installed, else bench/loadgen.py).  Prints, for GET and PUT at
concurrency 1 and 32: (a) bridge + in-memory module, (b) bridge + simulated
HTTP instrument, (c) the bare FastAPI floor, (d) the simulator hit directly;
then the trace read bridged and direct, the fast module's latency while a slow
module is kept busy, idle CPU and memory of each process, and each target as
PASS or MISS; last, what recording history costs (bench/recording.py).  Ratios
compare figures from this same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if __name__ == "__main__":  # one command on a fresh machine: install what the benchmark needs first
    from labbridge.tools.setup_env import run_inside

    run_inside("requirements-dev.txt")

import httpx  # noqa: E402

from bench.recording import recording_cost, recording_lines  # noqa: E402
from tests.processes import (  # noqa: E402
    Process, free_port, http_answers, start_backend, start_frontend, wait_until, write_config,
)

QUIET = ["--no-access-log", "--log-level", "warning"]  # same uvicorn flags for the frontend and the floor


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def cells(self) -> list[str]:
        return [f"{self.rps:,.0f}", f"{self.p50_ms:.2f}", f"{self.p99_ms:.2f}", str(self.errors)]


class Load:
    """Runs one load from a separate process: wrk if available, else bench/loadgen.py."""

    def __init__(self, tool: str, duration: float, workdir: Path) -> None:
        self.tool, self.duration, self.workdir = tool, duration, workdir

    def run(self, url: str, connections: int, body: bytes | None = None, duration: float | None = None) -> Result:
        seconds = duration or self.duration
        if self.tool == "wrk":
            return self._wrk(url, connections, body, seconds)
        args = [sys.executable, str(ROOT / "bench" / "loadgen.py"), url, "-c", str(connections), "-d", str(seconds)]
        if body is not None:
            args += ["--method", "PUT", "--body", body.decode()]
        out = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
        return Result(out["rps"], out["p50_ms"], out["p99_ms"], out["errors"])

    def _wrk(self, url: str, connections: int, body: bytes | None, seconds: float) -> Result:
        args = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{max(1, round(seconds))}s", "--latency", url]
        if body is not None:
            script = self.workdir / "put.lua"
            script.write_text(f'wrk.method = "PUT"\nwrk.body = \'{body.decode()}\'\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            args[1:1] = ["-s", str(script)]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
        return Result(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
                      _wrk_ms(out, "50%"), _wrk_ms(out, "99%"), errors)


def _wrk_ms(out: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid`, in nanosecond resolution (/proc/<pid>/stat counts 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            pass
    return total / 1e9


def rss_mib(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def idle_cpu_percent(pids: dict[str, int], seconds: float) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.monotonic()
    wait_until(lambda: time.monotonic() - start >= seconds, seconds + 5, "idle window")
    elapsed = time.monotonic() - start
    return {name: 100 * (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}


def keep_busy(url: str, stop: threading.Event, workers: int = 4) -> list[threading.Thread]:
    """Keep a slow module's queue occupied until `stop` is set."""
    def loop() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                client.get(url)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    return threads


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measurement (default 5)")
    parser.add_argument("--load", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    tool = "wrk" if args.load == "wrk" or (args.load == "auto" and shutil.which("wrk")) else "asyncio"

    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp_name:
        tmp = Path(tmp_name)
        sim_port = free_port()
        config = write_config(tmp / "config.yml", {
            "module_a": {"class": "module_a.ModuleA", "simulate": True, "port": sim_port},
            "setpoint": {"class": "setpoint.Setpoint"},
            "slow": {"class": "module_a.ModuleA", "simulate": True, "simulator": {"delay": 1.0}, "timeout": 3.0},
        }, frontend={"request_timeout": 10.0})
        backend = start_backend(config, tmp / "backend.log")
        frontend, bridge = start_frontend(config, tmp / "frontend.log", extra_args=QUIET)
        floor_port = free_port()
        floor = Process([sys.executable, "-m", "uvicorn", "--app-dir", "bench", "floor_app:app",
                         "--host", "127.0.0.1", "--port", str(floor_port), *QUIET], tmp / "floor.log")
        floor_url, sim_url = f"http://127.0.0.1:{floor_port}", f"http://127.0.0.1:{sim_port}"
        wait_until(lambda: http_answers(floor_url + "/setpoint/value"), 15, "floor app")
        try:
            figures = measure(Load(tool, args.duration, tmp), args, bridge, floor_url, sim_url,
                              {"backend": backend.proc.pid, "frontend": frontend.proc.pid, "bare uvicorn": floor.proc.pid})
        finally:
            for process in (floor, frontend, backend):
                process.stop()
        figures["recording"] = recording_cost(Load(tool, args.duration, tmp), tmp)
    report(figures, tool)
    sys.stdout.write("\n".join(recording_lines(figures["recording"])) + "\n")  # type: ignore[arg-type]
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=lambda r: r.__dict__))
    return 0


def measure(load: Load, args: argparse.Namespace, bridge: str, floor: str, sim: str,
            pids: dict[str, int]) -> dict[str, object]:
    targets = {"a": (bridge + "/setpoint/value", b'{"value": 1.5}'),
               "b": (bridge + "/module_a/position", b'{"value": 42.0}'),
               "c": (floor + "/setpoint/value", b'{"value": 1.5}'),
               "d": (sim + "/position", b'{"value": 42.0}')}
    for url, _ in targets.values():  # warm up every path once (imports, connections, caches)
        load.run(url, 8, duration=0.5)
    idle = idle_cpu_percent(pids, args.idle)
    table: dict[str, Result] = {}
    for method in ("GET", "PUT"):
        for connections in (1, 32):
            for key, (url, body) in targets.items():
                table[f"{key} {method} c{connections}"] = load.run(url, connections, body if method == "PUT" else None)
    trace = {"bridged": load.run(bridge + "/module_a/trace", 1), "direct": load.run(sim + "/trace", 1)}
    stop = threading.Event()
    busy = keep_busy(bridge + "/slow/position", stop)
    try:
        isolation = load.run(bridge + "/setpoint/value", 1)
    finally:
        stop.set()
    for thread in busy:
        thread.join(timeout=15)
    return {"table": table, "trace": trace, "isolation": isolation, "idle_cpu_percent": idle,
            "rss_mib": {name: rss_mib(pid) for name, pid in pids.items()}, "machine": machine()}


def report(figures: dict[str, object], tool: str) -> None:
    table: dict[str, Result] = figures["table"]  # type: ignore[assignment]
    trace: dict[str, Result] = figures["trace"]  # type: ignore[assignment]
    isolation: Result = figures["isolation"]  # type: ignore[assignment]
    idle: dict[str, float] = figures["idle_cpu_percent"]  # type: ignore[assignment]
    rss: dict[str, float] = figures["rss_mib"]  # type: ignore[assignment]
    names = {"a": "(a) bridge, in-memory module", "b": "(b) bridge, simulated instrument",
             "c": "(c) bare FastAPI (floor)", "d": "(d) simulator direct"}
    lines = [f"Machine: {figures['machine']}; load: {'wrk' if tool == 'wrk' else 'bench/loadgen.py (asyncio)'}", "",
             "| target | method | conc. | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
    for row, result in table.items():
        key, method, conc = row.split()
        lines.append(f"| {names[key]} | {method} | {conc[1:]} | " + " | ".join(result.cells()) + " |")
    lines += ["", "| ratio | GET c1 | GET c32 | PUT c1 | PUT c32 |", "|---|---|---|---|---|"]
    for top, bottom in (("a", "c"), ("b", "d")):
        cells = [f"{table[f'{top} {m} c{c}'].rps / table[f'{bottom} {m} c{c}'].rps:.2f}x"
                 for m in ("GET", "PUT") for c in (1, 32)]
        lines.append(f"| {top}/{bottom} req/s | " + " | ".join(cells) + " |")
    trace_ratio = trace["bridged"].p50_ms / trace["direct"].p50_ms
    lines += ["", "| trace (100,000 floats), c1 | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|",
              "| bridged | " + " | ".join(trace["bridged"].cells()) + " |",
              "| direct from simulator | " + " | ".join(trace["direct"].cells()) + " |",
              f"| bridged / direct (p50) | | {trace_ratio:.2f}x | | |",
              "", "| process | idle CPU (% of a core) | RSS MiB |", "|---|---|---|"]
    lines += [f"| {name} | {idle[name]:.3f} | {rss[name]:.1f} |" for name in idle]
    lines += ["", f"Fast module while a slow module (1 s per read) is kept busy, c1: "
                  f"p50 {isolation.p50_ms:.2f} ms, p99 {isolation.p99_ms:.2f} ms, errors {isolation.errors}", ""]
    get = lambda k: table[k]  # noqa: E731
    checks = [
        ("(a) GET c32 >= 0.4x floor, 0 errors", get("a GET c32").rps >= 0.4 * get("c GET c32").rps and get("a GET c32").errors == 0),
        ("(a) GET c1 p50 <= floor p50 + 0.5 ms", get("a GET c1").p50_ms <= get("c GET c1").p50_ms + 0.5),
        ("(b) GET c32 >= 0.3x simulator direct", get("b GET c32").rps >= 0.3 * get("d GET c32").rps),
        ("(b) PUT c32 >= 0.3x simulator direct", get("b PUT c32").rps >= 0.3 * get("d PUT c32").rps),
        ("(b) GET c1 p50 <= direct p50 + 1 ms", get("b GET c1").p50_ms <= get("d GET c1").p50_ms + 1.0),
        ("(b) PUT c1 p50 <= direct p50 + 1 ms", get("b PUT c1").p50_ms <= get("d PUT c1").p50_ms + 1.0),
        ("idle CPU of backend and frontend <= bare uvicorn + 0.1%",
         all(idle[p] <= idle["bare uvicorn"] + 0.1 for p in ("backend", "frontend"))),
        ("fast module p99 < 20 ms while slow module busy", isolation.p99_ms < 20 and isolation.errors == 0),
        ("trace bridged <= 3x direct (p50)", trace_ratio <= 3.0),
    ]
    lines += ["| target | result |", "|---|---|"] + [f"| {name} | {'PASS' if ok else 'MISS'} |" for name, ok in checks]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
