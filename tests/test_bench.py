"""The benchmark command runs end to end and prints every figure README quotes (tiny durations: not a timing test)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.processes import ROOT


@pytest.mark.parametrize("load", ["asyncio", "wrk"])
def test_benchmark_runs_and_prints_the_whole_table(load: str) -> None:
    if load == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is installed by .ci/run")
    result = subprocess.run([sys.executable, "bench/run.py", "--duration", "0.5", "--idle", "0.5", "--load", load],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for target in ("(a) bridge, in-memory module", "(b) bridge, simulated instrument",
                   "(c) bare FastAPI (floor)", "(d) simulator direct"):
        assert out.count(target) == 4  # GET and PUT at concurrency 1 and 32
    for line in ("| a/c req/s |", "| b/d req/s |", "| bridged / direct (p50) |", "| backend |", "| frontend |",
                 "| bare uvicorn |", "Fast module while a slow module"):
        assert line in out
    assert out.count("| PASS |") + out.count("| MISS |") == 9
    assert out.count("| recording off |") == out.count("| recording on |") == 4  # GET and PUT at c1 and c32
    assert "| recording on / off |" in out
    assert ("load: wrk" if load == "wrk" else "load: bench/loadgen.py") in out
