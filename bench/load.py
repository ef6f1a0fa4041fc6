"""One load on one URL, from a separate process, with the CPU time it cost the servers: what every bench table is made of.

`Load.run` drives a URL with wrk (or bench/loadgen.py when wrk is not
installed) at a given concurrency, and reads the CPU time of the serving
processes before and after from /proc/<pid>/task/*/schedstat (every thread:
the event loop, libzmq's I/O threads, a module's worker), so a `Result` holds
requests/s, latency percentiles and CPU microseconds per request.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUIET = ["--no-access-log", "--log-level", "warning"]  # same uvicorn flags for the frontend and the floors


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_us: float = float("nan")  # CPU time of the serving processes per request, in microseconds

    def cells(self) -> list[str]:
        return [f"{self.rps:,.0f}", f"{self.p50_ms:.2f}", f"{self.p99_ms:.2f}", str(self.errors)]


class Load:
    """Runs one load from a separate process: wrk if available, else bench/loadgen.py."""

    def __init__(self, tool: str, duration: float, workdir: Path) -> None:
        self.tool, self.duration, self.workdir = tool, duration, workdir

    def run(self, url: str, connections: int, body: bytes | None = None, duration: float | None = None, *,
            headers: dict[str, str] | None = None, pids: tuple[int, ...] = ()) -> Result:
        """Load `url` (a PUT of `body` if given); `pids`: the processes whose CPU time per request to measure."""
        seconds = duration or self.duration
        before = sum(cpu_seconds(pid) for pid in pids)
        result = (self._wrk if self.tool == "wrk" else self._loadgen)(url, connections, body, seconds, headers or {})
        if pids and result.requests:
            result.cpu_us = 1e6 * (sum(cpu_seconds(pid) for pid in pids) - before) / result.requests
        return result

    def _loadgen(self, url: str, connections: int, body: bytes | None, seconds: float,
                 headers: dict[str, str]) -> Result:
        args = [sys.executable, str(ROOT / "bench" / "loadgen.py"), url, "-c", str(connections), "-d", str(seconds)]
        if body is not None:
            args += ["--method", "PUT", "--body", body.decode()]
        for name, value in headers.items():
            args += ["--header", f"{name}: {value}"]
        out = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
        return Result(out["rps"], out["p50_ms"], out["p99_ms"], out["errors"], out["requests"])

    def _wrk(self, url: str, connections: int, body: bytes | None, seconds: float, headers: dict[str, str]) -> Result:
        args = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                "--latency", url]
        for name, value in headers.items():
            args[1:1] = ["-H", f"{name}: {value}"]
        if body is not None:
            script = self.workdir / "put.lua"
            script.write_text(f'wrk.method = "PUT"\nwrk.body = \'{body.decode()}\'\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            args[1:1] = ["-s", str(script)]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
        return Result(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
                      _wrk_ms(out, "50%"), _wrk_ms(out, "99%"), errors,
                      int(re.search(r"(\d+) requests in", out).group(1)))  # type: ignore[union-attr]


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
