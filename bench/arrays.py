"""Arrays through the bridge: ModuleA's trace as JSON and as .npy, and a camera frame against a bare endpoint.

bench/run.py runs this after its main table, on the same stack.  The trace
(100,000 float64) is read bridged as JSON and as .npy, and straight from the
simulator as JSON; the camera's 2048 x 2048 uint16 frame (8 MB) is read
bridged as .npy and from bench/frame_app.py, a bare Starlette endpoint that
serves the same 8 MB from memory.  All at concurrency 1.  The camera is set to
its lowest frame rate first, so every read in a run gets the frame already
taken: what is measured is the way through the bridge, not the simulated
exposure.
"""

from __future__ import annotations

from typing import Any

import httpx

from bench.load import Load

NPY = {"Accept": "application/x-npy"}


def array_cost(load: Load, bridge: str, simulator: str, frame_floor: str, bridge_pids: tuple[int, ...],
               floor_pid: int) -> dict[str, Any]:
    """Results keyed "trace json", "trace npy", "trace direct", "frame npy", "frame floor"."""
    httpx.put(f"{bridge}/camera/frame_rate", json={"value": 0.1}, timeout=30).raise_for_status()
    for url, headers in ((f"{bridge}/module_a/trace", NPY), (f"{bridge}/camera/frame", NPY), (frame_floor, None)):
        load.run(url, 1, duration=0.5, headers=headers)  # warm up: the first frame, connections, caches
    return {
        "trace json": load.run(f"{bridge}/module_a/trace", 1, pids=bridge_pids),
        "trace npy": load.run(f"{bridge}/module_a/trace", 1, headers=NPY, pids=bridge_pids),
        "trace direct": load.run(f"{simulator}/trace", 1),
        "frame npy": load.run(f"{bridge}/camera/frame", 1, headers=NPY, pids=bridge_pids),
        "frame floor": load.run(frame_floor, 1, headers=NPY, pids=(floor_pid,)),
    }


def array_lines(results: dict[str, Any]) -> list[str]:
    names = {"trace json": "trace (100,000 float64), bridged, JSON", "trace npy": "trace, bridged, .npy",
             "trace direct": "trace, from the simulator, JSON",
             "frame npy": "camera frame (2048 x 2048 uint16, 8 MB), bridged, .npy",
             "frame floor": "the same 8 MB from a bare Starlette endpoint"}
    lines = ["", "| array, concurrency 1 | req/s | p50 ms | p99 ms | errors | CPU us/req |", "|---|---|---|---|---|---|"]
    for key, result in results.items():
        cpu = "" if result.cpu_us != result.cpu_us else f"{result.cpu_us:,.0f}"  # NaN: not measured
        lines.append(f"| {names[key]} | " + " | ".join(result.cells()) + f" | {cpu} |")
    return lines
