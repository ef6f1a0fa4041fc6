"""What a run of a procedure costs: per point through the queue, record() throughput, frames, abort latency.

    python bench/runs.py [--points 1000] [--records 10000] [--frames 40] [--aborts 5] [--latency-points 300]

Starts the real experiment and frontend processes (tests/processes.py) with the
in-memory modules of the demo, `setpoint` (labbridge/demo/setpoint.py) and the
simulated `camera`, and a procedure file of its own beside config.yml (PROCEDURES_PY).
Measures, each from the run's own `started` and `finished` times:

- `loop`: per point, `run.set` and `run.get` of setpoint.value and a `run.record()`; with the audit log off
  and on (a separate stack each, every `run.set` then appended to it), against the same loop in this process
  without the bridge (Setpoint's own `write` and `read` in a plain asyncio loop, the point appended to a
  list); the overhead per point is bridged minus in-process (goal: at most 1 ms, audit log off).
- `records`: `run.record()` of scalars only, points per second.
- `frames`: one camera frame (2048 x 2048 uint16, 8 MiB) taken, then recorded `frames` times: the experiment
  process's CPU (/proc/<pid>/stat utime + stime, before and after) per frame recorded (goal: at most 2 ms)
  and the sustained rate of frames recorded per second, to disk (a run's `finished` time comes before its
  last points are written, so this one is timed from queueing the run to seeing it completed); both from a
  run of `frames` frames less one of a single frame, so that the run's own start and end cancel out; medians
  of `repeats`.  The frame is taken once, by a first run, and kept (the simulator's work is not recording's);
  recorded as get() gives it (read-only, kept by record() as it is), then as a writable array (copied).
- latency: a run records a point every 10 ms, `latency-points` of them, while a client does what the
  dashboard's Runs panel does (bench/point_latency.py): ms from each point's record() to its arrival there
  (goal: p95 within 250 ms); and again with the panel's 250 ms reads alone, no /ws events.
- abort: the time from sending DELETE /runs/<id> of a running run (in-memory: nothing to stop) until
  GET /runs/<id> says `aborted` (goal: within 100 ms), median of `aborts` runs.

Prints one table, with medians where a figure is repeated, and PASS or MISS for each goal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.point_latency import dashboard_data_ms, percentile, point_latencies  # noqa: E402
from labbridge.core.config import ModuleSettings  # noqa: E402
from labbridge.demo.setpoint import Setpoint  # noqa: E402
from tests.processes import running_stack, wait_until, write_config  # noqa: E402

PROCEDURES_PY = '''
"""The benchmark's procedures (bench/runs.py): in-memory modules only, so what is timed is the bridge."""
import asyncio
from typing import Annotated

from labbridge import Param, Run, procedure


@procedure(drives=["setpoint.value"], axes=["i"])
async def loop(run: Run, points: Annotated[int, Param(minimum=1, maximum=10000000, doc="Points.")] = 1000) -> None:
    """Set the setpoint, read it back and record both, `points` times."""
    for i in range(points):
        value = await run.set("setpoint.value", float(i))
        run.record(i=i, set=value, got=await run.get("setpoint.value"))


@procedure(axes=["i"])
async def records(run: Run, points: Annotated[int, Param(minimum=1, maximum=10000000, doc="Points.")] = 10000) -> None:
    """Record `points` points of two scalars, nothing else."""
    for i in range(points):
        run.record(i=i, x=i * 0.5)


FRAME = []  # the camera's frame, taken by the first run and kept for the later ones


@procedure(axes=["i"])
async def frames(run: Run, count: Annotated[int, Param(minimum=1, maximum=10000, doc="Frames.")] = 20,
                 writable: bool = False) -> None:
    """Record the camera's frame `count` times (taken once, by the first run: what is timed is recording,
    not the simulator); as get() gives it (read-only: kept as it is), or a writable copy (copied by record())."""
    if not FRAME:
        FRAME.append(await run.get("camera.frame"))
    frame = FRAME[0].copy() if writable else FRAME[0]
    for i in range(count):
        run.record(i=i, frame=frame)


@procedure(axes=["i"])
async def paced(run: Run, points: Annotated[int, Param(minimum=1, maximum=100000, doc="Points.")] = 300,
                period: Annotated[float, Param(unit="s", minimum=0, maximum=1, doc="Between points.")] = 0.01) -> None:
    """Record a point every `period` seconds, as a slow instrument would."""
    for i in range(points):
        run.record(i=i)
        await asyncio.sleep(period)


@procedure(drives=["setpoint.value"])
async def hold(run: Run) -> None:
    """Go on until aborted, at a checkpoint every 10 ms."""
    while True:
        await run.checkpoint()
        await asyncio.sleep(0.01)
'''

MODULES = {"setpoint": {"class": "setpoint.Setpoint"}, "camera": {"class": "camera.Camera"}}
FRAME_MB = 2048 * 2048 * 2 / 2**20  # MiB per frame


def stat_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (threads that ended count too), in 10 ms ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def stack(folder: Path, audit: bool) -> Iterator[tuple[int, httpx.Client]]:
    """The experiment process and the frontend with the benchmark's procedures: (experiment pid, client)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_procedures.py").write_text(PROCEDURES_PY, encoding="utf-8")
    extra: dict[str, Any] = {"audit_log": str(folder / "audit.jsonl")} if audit else {}
    config = write_config(folder / "config.yml", MODULES, runs={"interval": 0.2}, **extra,
                          procedures={name: {"function": f"bench_procedures.{name}"}
                                      for name in ("loop", "records", "frames", "paced", "hold")})
    with running_stack(config, folder) as (backend, _, url), httpx.Client(base_url=url, timeout=60) as client:
        client.post("/runs/queue/start").raise_for_status()
        yield backend.proc.pid, client


def submit(client: httpx.Client, procedure: str, **parameters: Any) -> str:
    answer = client.post("/runs", json={"procedure": procedure, "parameters": parameters})
    answer.raise_for_status()
    return str(answer.json()["id"])


def finished_run(client: httpx.Client, procedure: str, **parameters: Any) -> dict[str, Any]:
    """Queue a run, wait for it to complete, its last points written; its record (started and finished are
    Unix times, `finished` taken before the last points are written) and "wall", seconds from queueing it
    to seeing it completed."""
    start = time.perf_counter()
    ident = submit(client, procedure, **parameters)
    # A long poll, answered when the status changes: polling would add its own cost to the experiment's CPU
    record: dict[str, Any] = {"status": "queued"}
    while record["status"] in ("queued", "running"):
        if time.perf_counter() - start > 600:
            raise RuntimeError(f"run {ident} of {procedure} not finished within 600 s")
        record = client.get(f"/runs/{ident}", params={"wait": 30}).json()
    run: dict[str, Any] = {**record, "wall": time.perf_counter() - start}
    if run["status"] != "completed":
        raise RuntimeError(f"run {ident} of {procedure} ended {run['status']}: {run['error']}")
    return run


def seconds(run: dict[str, Any]) -> float:
    return float(run["finished"] - run["started"])


def bridged_loop_ms(client: httpx.Client, points: int, repeats: int) -> float:
    """Median ms per point of the `loop` procedure, over `repeats` runs (after one to warm up)."""
    finished_run(client, "loop", points=min(points, 100))
    return statistics.median(seconds(finished_run(client, "loop", points=points)) / points * 1000
                             for _ in range(repeats))


async def _in_process(points: int) -> float:
    setpoint = Setpoint("setpoint", ModuleSettings.model_validate({"class": "labbridge.demo.setpoint.Setpoint"}))
    recorded: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i in range(points):
        value = await setpoint.write("value", float(i))
        recorded.append({"i": i, "set": value, "got": await setpoint.read("value")})
    return time.perf_counter() - start


def in_process_loop_ms(points: int, repeats: int) -> float:
    return statistics.median(asyncio.run(_in_process(points)) / points * 1000 for _ in range(repeats))


def frame_cost(pid: int, client: httpx.Client, frames: int, writable: bool = False) -> tuple[float, float]:
    """Experiment CPU ms per frame recorded and frames recorded per second: a run recording `frames` frames
    less one recording a single frame, so the frame's acquisition and the run's own cost cancel out."""
    finished_run(client, "frames", count=1)  # takes the frame
    cost = []
    for count in (1, frames):
        cpu_before = stat_cpu_seconds(pid)
        run = finished_run(client, "frames", count=count, writable=writable)
        cost.append((stat_cpu_seconds(pid) - cpu_before, run["wall"]))
    (cpu_one, time_one), (cpu_all, time_all) = cost
    return (cpu_all - cpu_one) * 1000 / (frames - 1), (frames - 1) / (time_all - time_one)


def median_frame_cost(pid: int, client: httpx.Client, frames: int, repeats: int,
                      writable: bool = False) -> tuple[float, float]:
    """frame_cost's two figures, each the median of `repeats` measurements."""
    costs = [frame_cost(pid, client, frames, writable) for _ in range(repeats)]
    return statistics.median(c for c, _ in costs), statistics.median(r for _, r in costs)


def abort_ms(client: httpx.Client) -> float:
    """ms from sending DELETE of a running run until GET says it is aborted."""
    ident = submit(client, "hold")
    wait_until(lambda: client.get(f"/runs/{ident}").json()["status"] == "running", 30, f"{ident} running")
    start = time.perf_counter()
    client.delete(f"/runs/{ident}").raise_for_status()
    while client.get(f"/runs/{ident}").json()["status"] != "aborted":
        if time.perf_counter() - start > 10:
            raise RuntimeError(f"run {ident} not aborted within 10 s")
    return (time.perf_counter() - start) * 1000


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1000, help="points of the set/get/record loop (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the loop per figure; the median (default 3)")
    parser.add_argument("--records", type=int, default=10000, help="points of the record-only run (default 10000)")
    parser.add_argument("--frames", type=int, default=40, help="8 MiB frames recorded, 2 or more (default 40)")
    parser.add_argument("--aborts", type=int, default=5, help="runs aborted; the median (default 5)")
    parser.add_argument("--latency-points", type=int, default=300,
                        help="points of the run a dashboard watches, one every 10 ms (default 300)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bridge-bench-runs-") as tmp_name:
        tmp = Path(tmp_name)
        with stack(tmp / "audit-off", audit=False) as (pid, client):
            off = bridged_loop_ms(client, args.points, args.repeats)
            finished_run(client, "records", points=min(args.records, 100))
            per_second = args.records / seconds(finished_run(client, "records", points=args.records))
            cpu_per_frame, frame_rate = median_frame_cost(pid, client, args.frames, args.repeats)
            cpu_per_copied, _ = median_frame_cost(pid, client, args.frames, args.repeats, writable=True)
            aborts = [abort_ms(client) for _ in range(args.aborts)]
            url = str(client.base_url).rstrip("/")
            watched = point_latencies(url, args.latency_points, 0.01, events=True)
            polled = point_latencies(url, args.latency_points, 0.01, events=False)
        with stack(tmp / "audit-on", audit=True) as (_, client):
            on = bridged_loop_ms(client, args.points, args.repeats)
    direct = in_process_loop_ms(args.points, args.repeats)
    abort = statistics.median(aborts)
    cpu = os.cpu_count()
    lines = [f"Machine: {platform.processor() or platform.machine()}, {cpu} cores, Linux {platform.release()}, "
             f"Python {platform.python_version()}",
             "", "| measure | figure | goal | met |", "|---|---|---|---|",
             f"| loop of set + get + record, in-process (no bridge), ms/point | {direct:.4f} |  |  |",
             f"| the same through the queue, audit log off, ms/point | {off:.3f} |  |  |",
             f"| the same through the queue, audit log on, ms/point | {on:.3f} |  |  |",
             f"| overhead per point, audit log off, ms | {off - direct:.3f} | <= 1 ms | {verdict(off - direct <= 1)} |",
             f"| overhead per point, audit log on, ms | {on - direct:.3f} |  |  |",
             f"| record() of scalars, points/s (calls; written to disk in batches after) | {per_second:,.0f} |  |  |",
             f"| camera frame (8 MiB) recorded: experiment CPU ms/frame | {cpu_per_frame:.1f} | <= 2 ms "
             f"| {verdict(cpu_per_frame <= 2)} |",
             f"| the same: experiment CPU ms/MiB | {cpu_per_frame / FRAME_MB:.2f} |  |  |",
             f"| camera frames recorded, sustained, frames/s | {frame_rate:.1f} |  |  |",
             f"| the frame as a writable array (copied by record()): CPU ms/frame | {cpu_per_copied:.1f} |  |  |",
             f"| point from record() to a watching dashboard, ms: median | {statistics.median(watched):.0f} |  |  |",
             f"| the same, p95 | {percentile(watched, 0.95):.0f} | <= 250 ms "
             f"| {verdict(percentile(watched, 0.95) <= 250)} |",
             f"| the same, the dashboard reading every {dashboard_data_ms()} ms only (no /ws): median "
             f"| {statistics.median(polled):.0f} |  |  |",
             f"| the same, p95 | {percentile(polled, 0.95):.0f} |  |  |",
             f"| abort: DELETE to status aborted, ms (median of {len(aborts)}) | {abort:.1f} | <= 100 ms "
             f"| {verdict(abort <= 100)} |",
             "", f"audit on / off per point: {on / off:.2f}x; bridged (audit off) / in-process: {off / direct:.0f}x"]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
