"""Benchmark the bridge against its floors and LabThings-FastAPI, all measured in one run on this machine.

    python bench/run.py [--duration 5] [--load auto|wrk|asyncio]

(It installs the test requirements into .venv first, like run_tests.py, and
LabThings-FastAPI into .venv-labthings.)

Starts the real stack on free loopback ports (experiment process with the
simulated actuator, the in-memory Setpoint and the simulated camera, the
frontend as `python main.py` runs it), a bare FastAPI app as the floor, a
LabThings-FastAPI Thing with one float property on its own ThingServer, and a
bare Starlette endpoint serving an 8 MB array, and drives each from a
separate load process (wrk when installed, else bench/loadgen.py).  Prints,
for GET and PUT at concurrency 1 and 32: (a) bridge + in-memory module, (b)
bridge + simulated HTTP instrument, (c) the bare FastAPI floor, (d) the
simulator hit directly, (e) the LabThings property, each with the CPU time its
server processes spent per request (the bridge's: both processes, every
thread); then arrays as JSON and .npy (bench/arrays.py), the fast module's
latency while a slow module is kept busy, idle CPU and memory of each
process, and each target as PASS or MISS; last, what recording history costs
(bench/recording.py).  Ratios compare figures from this same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if __name__ == "__main__":  # one command on a fresh machine: install what the benchmark needs first
    from labbridge.tools.setup_env import run_inside

    run_inside("requirements-dev.txt")

import httpx  # noqa: E402

from bench.arrays import array_cost, array_lines  # noqa: E402
from bench.load import QUIET, Load, Result, cpu_seconds  # noqa: E402
from bench.recording import recording_cost, recording_lines  # noqa: E402
from tests.labthings import labthings_server  # noqa: E402
from tests.processes import (  # noqa: E402
    Process, free_port, http_answers, start_backend, start_frontend, wait_until, write_config,
)

NAMES = {"a": "(a) bridge, in-memory module", "b": "(b) bridge, simulated instrument",
         "c": "(c) bare FastAPI (floor)", "d": "(d) simulator direct", "e": "(e) LabThings-FastAPI property"}


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


def uvicorn_app(app: str, port: int, log: Path) -> Process:
    return Process([sys.executable, "-m", "uvicorn", "--app-dir", "bench", app, "--host", "127.0.0.1",
                    "--port", str(port), *QUIET], log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measurement (default 5)")
    parser.add_argument("--load", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    tool = "wrk" if args.load == "wrk" or (args.load == "auto" and shutil.which("wrk")) else "asyncio"

    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp_name, ExitStack() as running:
        tmp = Path(tmp_name)
        sim_port = free_port()
        config = write_config(tmp / "config.yml", {
            "module_a": {"class": "module_a.ModuleA", "simulate": True, "port": sim_port},
            "setpoint": {"class": "setpoint.Setpoint"},
            "camera": {"class": "camera.Camera"},
            "slow": {"class": "module_a.ModuleA", "simulate": True, "simulator": {"delay": 1.0}, "timeout": 3.0},
        }, frontend={"request_timeout": 10.0})
        backend = start_backend(config, tmp / "backend.log")
        running.callback(backend.stop)
        frontend, bridge = start_frontend(config, tmp / "frontend.log", extra_args=QUIET)
        running.callback(frontend.stop)
        floor_port, frame_port = free_port(), free_port()
        floor = uvicorn_app("floor_app:app", floor_port, tmp / "floor.log")
        running.callback(floor.stop)
        frame_floor = uvicorn_app("frame_app:app", frame_port, tmp / "frame.log")
        running.callback(frame_floor.stop)
        labthings, labthings_port = running.enter_context(labthings_server({"stage": "tests.labthings_things:Stage"}, tmp))
        urls = {"floor": f"http://127.0.0.1:{floor_port}", "frame": f"http://127.0.0.1:{frame_port}/camera/frame",
                "sim": f"http://127.0.0.1:{sim_port}", "labthings": f"http://127.0.0.1:{labthings_port}"}
        wait_until(lambda: http_answers(urls["floor"] + "/setpoint/value") and http_answers(urls["frame"]), 15,
                   "floor apps")
        pids = {"backend": backend.proc.pid, "frontend": frontend.proc.pid, "bare uvicorn": floor.proc.pid,
                "LabThings": labthings.proc.pid}
        figures = measure(Load(tool, args.duration, tmp), args, bridge, urls, pids)
        figures["arrays"] = array_cost(Load(tool, args.duration, tmp), bridge, urls["sim"], urls["frame"],
                                       (frontend.proc.pid, backend.proc.pid), frame_floor.proc.pid)
        running.close()
        figures["recording"] = recording_cost(Load(tool, args.duration, tmp), tmp)
    report(figures, tool)
    sys.stdout.write("\n".join(recording_lines(figures["recording"])) + "\n")  # type: ignore[arg-type]
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=lambda r: r.__dict__))
    return 0


def measure(load: Load, args: argparse.Namespace, bridge: str, urls: dict[str, str],
            pids: dict[str, int]) -> dict[str, object]:
    both = (pids["frontend"], pids["backend"])
    targets = {"a": (bridge + "/setpoint/value", b'{"value": 1.5}', both),
               "b": (bridge + "/module_a/position", b'{"value": 42.0}', both),
               "c": (urls["floor"] + "/setpoint/value", b'{"value": 1.5}', (pids["bare uvicorn"],)),
               "d": (urls["sim"] + "/position", b'{"value": 42.0}', (pids["backend"],)),  # the simulator runs in it
               "e": (urls["labthings"] + "/stage/position", b"1.5", (pids["LabThings"],))}
    for url, _, _ in targets.values():  # warm up every path once (imports, connections, caches)
        load.run(url, 8, duration=0.5)
    idle = idle_cpu_percent(pids, args.idle)
    table: dict[str, Result] = {}
    for method in ("GET", "PUT"):
        for connections in (1, 32):
            for key, (url, body, measured) in targets.items():
                table[f"{key} {method} c{connections}"] = load.run(url, connections, body if method == "PUT" else None,
                                                                   pids=measured)
    stop = threading.Event()
    busy = keep_busy(bridge + "/slow/position", stop)
    try:
        isolation = load.run(bridge + "/setpoint/value", 1)
    finally:
        stop.set()
    for thread in busy:
        thread.join(timeout=15)
    return {"table": table, "isolation": isolation, "idle_cpu_percent": idle,
            "rss_mib": {name: rss_mib(pid) for name, pid in pids.items()}, "machine": machine()}


def report(figures: dict[str, object], tool: str) -> None:
    table: dict[str, Result] = figures["table"]  # type: ignore[assignment]
    arrays: dict[str, Result] = figures["arrays"]  # type: ignore[assignment]
    isolation: Result = figures["isolation"]  # type: ignore[assignment]
    idle: dict[str, float] = figures["idle_cpu_percent"]  # type: ignore[assignment]
    rss: dict[str, float] = figures["rss_mib"]  # type: ignore[assignment]
    lines = [f"Machine: {figures['machine']}; load: {'wrk' if tool == 'wrk' else 'bench/loadgen.py (asyncio)'}", "",
             "| target | method | conc. | req/s | p50 ms | p99 ms | errors | CPU us/req |",
             "|---|---|---|---|---|---|---|---|"]
    for row, result in table.items():
        key, method, conc = row.split()
        lines.append(f"| {NAMES[key]} | {method} | {conc[1:]} | " + " | ".join(result.cells())
                     + f" | {result.cpu_us:,.0f} |")
    get = lambda k: table[k]  # noqa: E731
    lines += ["", "| ratio | GET c1 | GET c32 | PUT c1 | PUT c32 |", "|---|---|---|---|---|"]
    for top, bottom, what in (("a", "c", "req/s"), ("b", "d", "req/s"), ("a", "e", "req/s"), ("a", "e", "p50"),
                              ("a", "c", "CPU/req")):
        attribute = {"req/s": "rps", "p50": "p50_ms", "CPU/req": "cpu_us"}[what]
        cells = [f"{getattr(get(f'{top} {m} c{c}'), attribute) / getattr(get(f'{bottom} {m} c{c}'), attribute):.2f}x"
                 for m in ("GET", "PUT") for c in (1, 32)]
        lines.append(f"| {top}/{bottom} {what} | " + " | ".join(cells) + " |")
    lines += array_lines(arrays)
    trace_ratio = arrays["trace json"].p50_ms / arrays["trace direct"].p50_ms
    npy_speedup = arrays["trace json"].p50_ms / arrays["trace npy"].p50_ms
    frame_ratio = arrays["frame npy"].p50_ms / arrays["frame floor"].p50_ms
    lines += ["", f"Trace bridged / direct, JSON (p50): {trace_ratio:.2f}x; trace JSON / .npy, bridged (p50): "
                  f"{npy_speedup:.2f}x; frame bridged / bare Starlette (p50): {frame_ratio:.2f}x",
              "", "| process | idle CPU (% of a core) | RSS MiB |", "|---|---|---|"]
    lines += [f"| {name} | {idle[name]:.3f} | {rss[name]:.1f} |" for name in idle]
    lines += ["", f"Fast module while a slow module (1 s per read) is kept busy, c1: "
                  f"p50 {isolation.p50_ms:.2f} ms, p99 {isolation.p99_ms:.2f} ms, errors {isolation.errors}", ""]
    checks = [
        ("(a) GET c32 >= 0.4x floor, 0 errors", get("a GET c32").rps >= 0.4 * get("c GET c32").rps and get("a GET c32").errors == 0),
        ("(a) GET c1 p50 <= floor p50 + 0.5 ms", get("a GET c1").p50_ms <= get("c GET c1").p50_ms + 0.5),
        ("(a) GET c1 p50 <= LabThings GET c1 p50", get("a GET c1").p50_ms <= get("e GET c1").p50_ms),
        ("(a) GET c32 >= 3x LabThings req/s", get("a GET c32").rps >= 3 * get("e GET c32").rps),
        ("(a) GET c32 CPU/req (both processes) <= 2x floor's", get("a GET c32").cpu_us <= 2 * get("c GET c32").cpu_us),
        ("(b) GET c32 >= 0.3x simulator direct", get("b GET c32").rps >= 0.3 * get("d GET c32").rps),
        ("(b) PUT c32 >= 0.3x simulator direct", get("b PUT c32").rps >= 0.3 * get("d PUT c32").rps),
        ("(b) GET c1 p50 <= direct p50 + 1 ms", get("b GET c1").p50_ms <= get("d GET c1").p50_ms + 1.0),
        ("(b) PUT c1 p50 <= direct p50 + 1 ms", get("b PUT c1").p50_ms <= get("d PUT c1").p50_ms + 1.0),
        ("idle CPU of backend and frontend <= bare uvicorn + 0.1%",
         all(idle[p] <= idle["bare uvicorn"] + 0.1 for p in ("backend", "frontend"))),
        ("fast module p99 < 20 ms while slow module busy", isolation.p99_ms < 20 and isolation.errors == 0),
        ("trace bridged <= 3x direct (JSON, p50)", trace_ratio <= 3.0),
        ("trace .npy >= 5x faster than JSON, bridged (p50)", npy_speedup >= 5.0),
        ("frame .npy bridged <= 2x bare Starlette (p50)", frame_ratio <= 2.0),
    ]
    lines += ["| target | result |", "|---|---|"] + [f"| {name} | {'PASS' if ok else 'MISS'} |" for name, ok in checks]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
