"""GET throughput of a lab of three experiment processes behind one frontend, against one process pair.

    python bench/lab_throughput.py [--duration 5] [--connections 32] [--repeats 3]

Both set-ups serve in-memory Setpoint modules over loopback, one frontend
each: (1) one experiment process with `setpoint`, reached through
`experiment_socket`; (2) three experiment processes (`bench`, `cryo`, `optics`)
with `s_bench`, `s_cryo`, `s_optics`, reached through `experiments:` (the
frontend routes each request to its module's process and pings each one for
its heartbeat).  Each repeat loads one module's `/value` at `--connections`
connections with wrk (bench/loadgen.py without it), the two set-ups in turn so
the machine's drift falls on both; the lab's repeats go round its three
modules.  Prints requests/s, p50 and p99 (medians over the repeats) and the
ratio lab / pair against issue 22's goal of at least 0.8.
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

from bench.load import Load, Result  # noqa: E402
from tests.lab_of_pcs import start_lab  # noqa: E402
from tests.processes import start_backend, start_frontend, write_config  # noqa: E402

GOAL = 0.8
PCS = {name: ({f"s_{name}": {"class": "setpoint.Setpoint"}}, ()) for name in ("bench", "cryo", "optics")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tool = "wrk" if shutil.which("wrk") else "asyncio"
    with tempfile.TemporaryDirectory(prefix="bridge-bench-lab-") as tmp_name, ExitStack() as running:
        tmp = Path(tmp_name)
        (tmp / "pair").mkdir()
        config = write_config(tmp / "pair" / "config.yml", {"setpoint": {"class": "setpoint.Setpoint"}})
        running.callback(start_backend(config, tmp / "pair" / "backend.log").stop)
        frontend, pair_url = start_frontend(config, tmp / "pair" / "frontend.log")
        running.callback(frontend.stop)
        (tmp / "lab").mkdir()
        lab = start_lab(tmp / "lab", pcs=PCS, alarms={})
        running.callback(lab.stop)
        load = Load(tool, args.duration, tmp)
        lab_urls = [f"{lab.url}/s_{name}/value" for name in PCS]
        load.run(pair_url + "/setpoint/value", 8, duration=0.5)  # warm both up
        load.run(lab_urls[0], 8, duration=0.5)
        pair: list[Result] = []
        several: list[Result] = []
        for repeat in range(args.repeats):
            pair.append(load.run(pair_url + "/setpoint/value", args.connections))
            several.append(load.run(lab_urls[repeat % len(lab_urls)], args.connections))
    report(pair, several, args, tool)
    return 0


def report(pair: list[Result], several: list[Result], args: argparse.Namespace, tool: str) -> None:
    print(f"GET /<module>/value at {args.connections} connections, {args.duration:g} s x {args.repeats}, "
          f"load: {'wrk' if tool == 'wrk' else 'bench/loadgen.py'}; medians\n")
    print("| set-up | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    medians = {}
    for label, results in (("one process pair", pair), ("three experiment processes, one frontend", several)):
        rps = statistics.median(r.rps for r in results)
        medians[label] = rps
        print(f"| {label} | {rps:,.0f} | {statistics.median(r.p50_ms for r in results):.2f} | "
              f"{statistics.median(r.p99_ms for r in results):.2f} | {sum(r.errors for r in results)} |")
    ratio = medians["three experiment processes, one frontend"] / medians["one process pair"]
    print(f"\n| ratio | figure | goal | |\n|---|---|---|---|\n| lab / pair, requests/s | {ratio:.2f} | "
          f">= {GOAL} | {'PASS' if ratio >= GOAL else 'MISS'} |")


if __name__ == "__main__":
    sys.exit(main())
