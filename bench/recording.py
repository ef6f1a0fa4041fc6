"""What recording history costs a request: GET and PUT p50/p99 with history on and off, in one run.

    python bench/recording.py [--duration 5] [--load auto|wrk|asyncio]

(bench/run.py runs the same scenario after its own table.)  Two stacks run side
by side, identical but for config.yml's `history:` section, each polling
module_a's force every 0.5 s so the recorder always has work; the in-memory
Setpoint is then loaded through each in turn, GET and PUT at concurrency 1 and
32, off and on interleaved so that drift on a shared machine hits both alike.
Every PUT is recorded (a GET is not: only polls and writes are), so the PUT
rows show the recorder at thousands of values a second.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if __name__ == "__main__":  # one command on a fresh machine: install what the benchmark needs first
    from labbridge.tools.setup_env import run_inside

    run_inside("requirements-dev.txt")

from bench.load import QUIET, Load  # noqa: E402
from tests.processes import start_backend, start_frontend, write_config  # noqa: E402

MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": 0.5}},
           "setpoint": {"class": "setpoint.Setpoint"}}
BODY = b'{"value": 1.5}'


def recording_cost(load: Load, tmp: Path) -> dict[str, Any]:
    """Results keyed "off GET c1", "on GET c1", ... for the Setpoint through a stack without and with history."""
    urls, processes = {}, []
    try:
        for state in ("off", "on"):
            history = {"path": str(tmp / "data" / "history.sqlite3")} if state == "on" else None
            config = write_config(tmp / f"config-{state}.yml", MODULES, history=history,
                                  frontend={"request_timeout": 10.0})
            processes.append(start_backend(config, tmp / f"backend-{state}.log"))
            frontend, url = start_frontend(config, tmp / f"frontend-{state}.log", extra_args=QUIET)
            processes.append(frontend)
            urls[state] = url + "/setpoint/value"
        for url in urls.values():
            load.run(url, 8, BODY, duration=0.5)  # warm up: imports, connections, the database's first pages
        results = {}
        for method in ("GET", "PUT"):
            for connections in (1, 32):
                for state, url in urls.items():
                    results[f"{state} {method} c{connections}"] = load.run(url, connections,
                                                                           BODY if method == "PUT" else None)
        return results
    finally:
        for process in processes:
            process.stop()


def recording_lines(results: dict[str, Any]) -> list[str]:
    lines = ["", "| history (Setpoint) | method | conc. | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
    for key, result in results.items():
        state, method, conc = key.split()
        lines.append(f"| recording {state} | {method} | {conc[1:]} | " + " | ".join(result.cells()) + " |")
    lines += ["", "| recording on / off | GET c1 | GET c32 | PUT c1 | PUT c32 |", "|---|---|---|---|---|"]
    for figure in ("p50_ms", "p99_ms"):
        cells = [f"{getattr(results[f'on {m} c{c}'], figure) / getattr(results[f'off {m} c{c}'], figure):.2f}x"
                 for m in ("GET", "PUT") for c in (1, 32)]
        lines.append(f"| {figure.replace('_ms', '')} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--load", choices=["auto", "wrk", "asyncio"], default="auto")
    args = parser.parse_args()
    tool = "wrk" if args.load == "wrk" or (args.load == "auto" and shutil.which("wrk")) else "asyncio"
    with tempfile.TemporaryDirectory(prefix="bridge-bench-recording-") as tmp:
        results = recording_cost(Load(tool, args.duration, Path(tmp)), Path(tmp))
    sys.stdout.write(f"load: {tool}\n" + "\n".join(recording_lines(results)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
