"""bench/scpi.py runs end to end and prints every row README quotes (a few requests: not a timing test)."""

from __future__ import annotations

import subprocess
import sys

from tests.processes import ROOT


def test_the_scpi_benchmark_prints_its_table() -> None:
    result = subprocess.run([sys.executable, "bench/scpi.py", "--requests", "20"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for row in ("| bridge over HTTP: GET / PUT |", "| the same, audit log on (2 fsynced lines a PUT) |",
                "| VisaSession, TCP_NODELAY on (as the bridge) |", "| VisaSession, Nagle on (pyvisa-py default) |",
                "set command to SYST:ERR? on the wire, bridged PUTs: p50"):
        assert row in result.stdout
