"""Compare source trees of the bridge in one run: the in-memory GET and PUT through each, interleaved.

    git worktree add /tmp/before eb01508
    python bench/trees.py /tmp/before . [--rounds 3] [--seconds 5]

Starts the experiment process and the frontend of every tree given (each from
its own folder, with this environment's Python), then loads each in turn with
wrk or bench/loadgen.py, `--rounds` times, and prints the median of the rounds:
p50 and requests/s at concurrency 1 and 32, with the CPU time both processes
spent per request.  This is how bench/HISTORY.md's "What bought what" was measured: a
change is worth what separates two trees run side by side on the same machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import QUIET, Load, Result  # noqa: E402
from tests.processes import start_backend, start_frontend, write_config  # noqa: E402

CASES = [("GET", 1), ("GET", 32), ("PUT", 1), ("PUT", 32)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", type=Path, help="folders holding a checkout of the bridge")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement (default 5)")
    args = parser.parse_args()
    tool = "wrk" if shutil.which("wrk") else "asyncio"
    results: dict[tuple[str, str, int], list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="bridge-trees-") as tmp_name, ExitStack() as running:
        tmp = Path(tmp_name)
        stacks = {}
        for n, tree in enumerate(args.trees):
            folder = tmp / str(n)
            folder.mkdir()
            config = write_config(folder / "config.yml", {"setpoint": {"class": "setpoint.Setpoint"}},
                                  frontend={"request_timeout": 10.0})
            backend = start_backend(config, folder / "backend.log", root=tree.resolve())
            running.callback(backend.stop)
            frontend, url = start_frontend(config, folder / "frontend.log", extra_args=QUIET, root=tree.resolve())
            running.callback(frontend.stop)
            stacks[str(tree)] = (url + "/setpoint/value", (backend.proc.pid, frontend.proc.pid))
        load = Load(tool, args.seconds, tmp)
        for url, _ in stacks.values():  # warm up: imports, connections, caches
            load.run(url, 8, duration=1)
        for _ in range(args.rounds):
            for tree, (url, pids) in stacks.items():
                for method, connections in CASES:
                    body = b'{"value": 1.5}' if method == "PUT" else None
                    results.setdefault((tree, method, connections), []).append(
                        load.run(url, connections, body, pids=pids))
    lines = ["| tree | method | conc. | p50 ms | req/s | CPU us/req |", "|---|---|---|---|---|---|"]
    for (tree, method, connections), runs in results.items():
        lines.append(f"| {tree} | {method} | {connections} | {statistics.median(r.p50_ms for r in runs):.2f} | "
                     f"{statistics.median(r.rps for r in runs):,.0f} | {statistics.median(r.cpu_us for r in runs):,.0f} |")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
