"""The benchmark command runs end to end and prints every figure README quotes (tiny durations: not a timing test).

It starts a real LabThings-FastAPI server, from .venv-labthings (made on first use)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

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
                   "(c) bare FastAPI (floor)", "(d) simulator direct", "(e) LabThings-FastAPI property"):
        assert out.count(target) == 4  # GET and PUT at concurrency 1 and 32
    for line in ("| a/c req/s |", "| b/d req/s |", "| a/e req/s |", "| a/e p50 |", "| a/c CPU/req |",
                 "| backend |", "| frontend |", "| bare uvicorn |", "| LabThings |", "Fast module while a slow module",
                 "| trace (100,000 float64), bridged, JSON |", "| trace, bridged, .npy |",
                 "| camera frame (2048 x 2048 uint16, 8 MB), bridged, .npy |",
                 "| the same 8 MB from a bare Starlette endpoint |", "trace JSON / .npy, bridged (p50)"):
        assert line in out
    cpu = re.findall(r"^\| \((?:a|c|e)\) [^|]+ \| (?:GET|PUT) \| \d+ \|(?: [^|]+ \|){4} ([\d,]+) \|$", out, re.M)
    assert len(cpu) == 12 and all(int(us.replace(",", "")) > 0 for us in cpu)  # CPU per request of each server
    assert out.count("| PASS |") + out.count("| MISS |") == 14
    assert out.count("| recording off |") == out.count("| recording on |") == 4  # GET and PUT at c1 and c32
    assert "| recording on / off |" in out
    assert ("load: wrk" if load == "wrk" else "load: bench/loadgen.py") in out


def test_trees_compares_two_checkouts_in_one_run(tmp_path: Path) -> None:
    other = tmp_path / "copy"  # a second tree: this checkout's files, as `git worktree add` would give
    shutil.copytree(ROOT, other, ignore=shutil.ignore_patterns(".venv*", ".git", "data", "logs", "__pycache__"))
    result = subprocess.run([sys.executable, "bench/trees.py", str(ROOT), str(other), "--rounds", "1",
                             "--seconds", "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(r"^\| (\S+) \| (GET|PUT) \| (1|32) \| [\d.]+ \| [\d,]+ \| ([\d,]+) \|$", result.stdout, re.M)
    assert {(tree, method, conc) for tree, method, conc, _ in rows} == {
        (str(tree), method, conc) for tree in (ROOT, other) for method in ("GET", "PUT") for conc in ("1", "32")}
    assert all(int(cpu.replace(",", "")) > 0 for *_, cpu in rows)


def test_runs_bench_prints_every_figure_of_a_run() -> None:
    result = subprocess.run([sys.executable, "bench/runs.py", "--points", "20", "--repeats", "1", "--records", "50",
                             "--frames", "2", "--aborts", "1", "--latency-points", "20"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for row in ("in-process (no bridge), ms/point", "through the queue, audit log off, ms/point",
                "through the queue, audit log on, ms/point", "record() of scalars, points/s",
                "experiment CPU ms/frame", "frames recorded, sustained, frames/s", "DELETE to status aborted",
                "writable array (copied by record()): CPU ms/frame", "to a watching dashboard, ms: median",
                "reading every 250 ms only (no /ws): median"):
        assert out.count(row) == 1, out
    assert out.count("| PASS |") + out.count("| MISS |") == 4
    figures = re.findall(r"^\| [^|]+ \| (-?[\d,.]+) \|", out, re.M)
    assert len(figures) == 15 and all(float(figure.replace(",", "")) > 0 for figure in figures[:3]), out
    latencies = [float(f) for f in figures[10:14]]  # from record() to the watcher: never before it was recorded
    assert all(0 < latency < 5000 for latency in latencies), out


def test_safety_bench_prints_the_cost_per_value_of_the_rules() -> None:
    result = subprocess.run([sys.executable, "bench/safety.py", "--values", "2000", "--repeats", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(r"^\| ([a-z0-9, ]+) \| ([\d.]+) \|", result.stdout, re.M)
    assert [label for label, _ in rows] == [
        "unreferenced", "alarm limits only, ok", "alarm limits only, in alarm", "referenced by 1 trip, with limits",
        "referenced by 10 trips", "alarm changing at every value"]
    assert all(float(us) > 0 for _, us in rows)
    assert result.stdout.count("| PASS |") + result.stdout.count("| MISS |") == 4
    assert "tripped" not in result.stdout + result.stderr  # thresholds are never crossed: judging, not tripping


def test_lab_throughput_bench_compares_three_processes_with_one_pair() -> None:
    result = subprocess.run([sys.executable, "bench/lab_throughput.py", "--duration", "1", "--repeats", "1",
                             "--connections", "8"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(re.findall(r"^\| (one process pair|three experiment processes, one frontend) \| ([\d,]+) \|",
                           result.stdout, re.M))
    assert len(rows) == 2 and all(int(rps.replace(",", "")) > 0 for rps in rows.values()), result.stdout
    assert re.search(r"^\| lab / pair, requests/s \| [\d.]+ \| >= 0.8 \| (PASS|MISS) \|$", result.stdout, re.M)


def test_lab_cost_bench_prints_the_cost_per_polled_value_against_the_goals() -> None:
    result = subprocess.run([sys.executable, "bench/lab_cost.py", "--rates", "100,1000", "--windows", "1",
                             "--seconds", "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(r"^\| (idle|[\d,]+) \| (\d+) x (\d+) \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \| (PASS|MISS|-) "
                      r"\| ([\d.]+) \| (PASS|MISS|-) \| ([\d.]+) \| ([\d.]+) \| (PASS|MISS|-) \|$", result.stdout, re.M)
    assert [(row[0], row[1], row[2]) for row in rows] == [("idle", "1", "0"), ("100", "1", "10"),
                                                          ("1,000", "1", "100")], result.stdout
    for label, _, _, polled, _, us_per_value, cost, frontend, _, p50, p99, _ in rows[1:]:
        assert int(polled.replace(",", "")) > 0 and float(us_per_value) > 0 and cost in ("PASS", "MISS")
        assert float(frontend) > 0 and 0 < float(p50) <= float(p99)


def test_dashboard_fanout_bench_prints_a_row_per_number_of_dashboards() -> None:
    result = subprocess.run([sys.executable, "bench/dashboard_fanout.py", "--rates", "100", "--dashboards", "0,1,50",
                             "--seconds", "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    rows = re.findall(r"^\| 100 \| (\d+)[^|]* \| [\d.]+ \| ([\d,]+) \| [\d.]+ \|", out, re.M)
    assert [dashboards for dashboards, _ in rows] == ["0", "1", "50"]
    assert all(int(messages) > 0 for dashboards, messages in rows if dashboards != "0")  # they got values
    # Goals: idle + 1% with none watching; about 10/s per attribute with 1 and 50; the lag with 50, one slow.
    assert len(re.findall(r"\b(?:PASS|MISS)\b", out)) == 4
    assert "Frontend idle (same modules, nothing polled)" in out
