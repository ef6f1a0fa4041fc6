"""What polled values cost as the lab grows: experiment and frontend CPU per value, with nobody watching.

    python bench/lab_cost.py [--rates 100,1000,10000] [--windows 3] [--seconds 2] [--history on|off]

For each rate, starts one real process pair (the experiment process and the
frontend, tests/processes.py) with in-memory modules of 100 gauges each
(bench/gauges.py), polled every 0.1 s: 100 values/s is one module polling 10
of them, 1,000 one module polling all 100, 10,000 ten such modules; first a
pair with the same modules and no `poll:` gives the idle figures.  History is
recorded as the shipped config.yml does (SQLite, a batch a second) unless
`--history off`.  No dashboard and no /ws client: nobody watches the values.

Each of `windows` windows measures, with nothing else asking:
- the CPU of every thread of each process, from /proc/<pid>/task/*/schedstat (ns; /proc/<pid>/stat counts
  10 ms ticks, too coarse for 100 values/s), over `seconds`;
- the values actually polled, from each module's `reads` counter (read before and after);
and then, for `seconds` more, a light GET load (GET /m0/reads every 10 ms, one at a time) for the latency.

Reported, medians of the windows: the experiment process's CPU per polled value (goal: at most 10 us), the
frontend's % of a core against its idle figure (goal: at most idle + 1), and GET p50/p99 (goal at 10,000
values/s: p99 under 10 ms).  Prints one markdown table with PASS or MISS for each goal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.gauges import GAUGES  # noqa: E402
from bench.load import cpu_seconds  # noqa: E402
from bench.point_latency import percentile  # noqa: E402
from tests.processes import running_stack, write_config  # noqa: E402

INTERVAL = 0.1  # seconds between polls of each attribute (10 Hz)
GOAL_US = 10.0  # experiment CPU per polled value
GOAL_FRONTEND = 1.0  # % of a core above idle, values nobody watches
GOAL_P99_MS = 10.0  # GET p99 at 10,000 values/s
GET_PERIOD = 0.01  # the light GET load: one GET every 10 ms


@dataclass
class Figures:
    """The medians of one rate's windows."""

    values_per_s: float
    experiment_core: float  # % of a core
    us_per_value: float
    frontend_core: float  # % of a core
    get_p50_ms: float
    get_p99_ms: float


def layout(rate: int) -> tuple[int, int]:
    """(modules, polled attributes each) giving `rate` values/s at 10 Hz."""
    per_module = GAUGES * round(1 / INTERVAL)
    if rate <= per_module:
        return 1, max(1, round(rate * INTERVAL))
    return round(rate / per_module), GAUGES


def config(folder: Path, rate: int, modules: int, history: bool) -> Path:
    polled = 0 if rate == 0 else layout(rate)[1]
    spec = {"class": "bench.gauges.Gauges", "poll": {f"g{i}": INTERVAL for i in range(polled)}}
    extra = {"history": {"path": "history.sqlite3", "interval": 1.0}} if history else {}
    return write_config(folder / "config.yml", {f"m{i}": dict(spec) for i in range(modules)}, **extra)


def reads(client: httpx.Client, modules: int) -> int:
    return sum(int(client.get(f"/m{i}/reads").json()["value"]) for i in range(modules))


def get_latencies(client: httpx.Client, seconds: float) -> list[float]:
    """ms of each GET of a light load: one GET every GET_PERIOD, one at a time, for `seconds`."""
    latencies = []
    end = time.monotonic() + seconds
    due = time.monotonic()
    while time.monotonic() < end:
        started = time.perf_counter()
        client.get("/m0/reads").raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
        due += GET_PERIOD
        time.sleep(max(0.0, due - time.monotonic()))
    return latencies


def measure(folder: Path, rate: int, windows: int, seconds: float, history: bool) -> Figures:
    modules = layout(rate)[0] if rate else 1
    folder.mkdir(parents=True)
    path = config(folder, rate, modules, history)
    with running_stack(path, folder) as (backend, frontend, url), httpx.Client(base_url=url, timeout=10) as client:
        time.sleep(1.0)  # the first polls, the history's first batch and the imports settle
        rows: list[tuple[float, float, float, float]] = []
        latencies: list[float] = []
        for _ in range(windows):
            # The CPU window lies between the two counts, so the count's own GETs (one per module, through the
            # frontend) are not in it: at ten modules they were 0.3% of a core of a frontend that had 1%.
            counted, counting = reads(client, modules), time.monotonic()
            started, cpu = time.monotonic(), (cpu_seconds(backend.proc.pid), cpu_seconds(frontend.proc.pid))
            time.sleep(seconds)
            cpu_after = (cpu_seconds(backend.proc.pid), cpu_seconds(frontend.proc.pid))
            elapsed = time.monotonic() - started
            values = reads(client, modules) - counted
            rate_polled = values / (time.monotonic() - counting)
            spent = (cpu_after[0] - cpu[0]) / elapsed  # experiment CPU seconds per second
            rows.append((rate_polled, spent * 100, spent / rate_polled * 1e6 if rate_polled else 0.0,
                         (cpu_after[1] - cpu[1]) / elapsed * 100))
            latencies += get_latencies(client, seconds)
    median = [statistics.median(column) for column in zip(*rows)]
    return Figures(median[0], median[1], median[2], median[3], percentile(latencies, 0.5),
                   percentile(latencies, 0.99))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,1000,10000", help="values/s, comma-separated")
    parser.add_argument("--windows", type=int, default=3, help="windows per rate (medians are reported)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per window")
    parser.add_argument("--history", choices=("on", "off"), default="on")
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    history = args.history == "on"
    results: dict[int, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="lab-cost-") as tmp:
        for rate in [0, *rates]:
            results[rate] = measure(Path(tmp) / f"rate-{rate}", rate, args.windows, args.seconds, history)
    idle = results[0].frontend_core
    print(f"polled every {INTERVAL:g} s, in-memory modules of {GAUGES} gauges, one process pair, no dashboard; "
          f"history {args.history}; {args.windows} windows of {args.seconds:g} s, medians\n")
    print("| values/s asked | modules x polled | values/s polled | experiment % of a core | experiment us CPU/value "
          "| goal <= 10 us | frontend % of a core | goal <= idle + 1 | GET p50 ms | GET p99 ms | goal p99 < 10 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for rate, figures in results.items():
        modules, polled = layout(rate) if rate else (1, 0)
        cost = verdict(figures.us_per_value <= GOAL_US) if rate else "-"
        frontend = verdict(figures.frontend_core <= idle + GOAL_FRONTEND) if rate else "-"
        p99 = verdict(figures.get_p99_ms < GOAL_P99_MS) if rate >= 10_000 else "-"
        print(f"| {'idle' if rate == 0 else f'{rate:,}'} | {modules} x {polled} | {figures.values_per_s:,.0f} "
              f"| {figures.experiment_core:.1f} | {figures.us_per_value:.1f} | {cost} | {figures.frontend_core:.1f} "
              f"| {frontend} | {figures.get_p50_ms:.2f} | {figures.get_p99_ms:.2f} | {p99} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
