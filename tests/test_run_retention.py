"""Retention of runs by age and size: the oldest finished runs go with their files, never a queued or running one.

On a real run store in a temporary folder, then end to end: camera runs filling the size bound on a live stack.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np

from labbridge.core.config import RunSettings
from labbridge.experiment.run_retention import apply_retention
from labbridge.experiment.run_store import RunStore
from tests.processes import running_stack, wait_until, write_config

DAY = 86400.0


def _store_with_runs(folder: Path, now: float) -> RunStore:
    """Five runs, each with a 1 MB array: ended 10, 5 and 1 days ago, and a queued and a running one from 20 days ago."""
    store = RunStore(folder)
    store.open()
    for seq, (ident, status, ended) in enumerate([("old", "completed", 10), ("middle", "failed", 5),
                                                  ("new", "stopped", 1), ("waiting", "queued", None),
                                                  ("going", "running", None)], 1):
        store.insert({"id": ident, "seq": seq, "procedure": "p", "parameters": {}, "metadata": {}, "status": status,
                      "created": now - 20 * DAY, "finished": None if ended is None else now - ended * DAY})
        store.add_points(ident, [(0, now, {"x": 1.0, "image": np.zeros(125_000)})], points=1)
    return store


def _left(store: RunStore) -> list[str]:
    return [run["id"] for run in store.list_runs(None, None, None, 100)]


def test_runs_older_than_max_age_go_with_their_files_but_never_a_queued_or_running_one(tmp_path: Path) -> None:
    now = time.time()
    store = _store_with_runs(tmp_path, now)
    try:
        assert apply_retention(store, RunSettings(max_age_days=3), now) == ["old", "middle"]
        assert _left(store) == ["going", "waiting", "new"]
        assert store.stored_points("old", 0, 10) == [] and not (tmp_path / "runs" / "old").exists()
        assert (tmp_path / "runs" / "new").is_dir() and (tmp_path / "runs" / "going").is_dir()
        assert apply_retention(store, RunSettings(max_age_days=3), now) == []  # nothing more to do
    finally:
        store.close()


def test_over_max_size_the_oldest_finished_runs_go_until_it_fits_and_unfinished_ones_stay(tmp_path: Path) -> None:
    now = time.time()
    store = _store_with_runs(tmp_path, now)
    try:
        assert apply_retention(store, RunSettings(max_size_mb=3.5), now) == ["old", "middle"]  # 5 MB: 3 left
        assert _left(store) == ["going", "waiting", "new"]
        # A bound the unfinished runs alone are over: every finished run goes, the queued and running ones stay.
        assert apply_retention(store, RunSettings(max_size_mb=0.5), now) == ["new"]
        assert _left(store) == ["going", "waiting"]
        assert apply_retention(store, RunSettings(), now) == []  # no bound: everything kept
    finally:
        store.close()


def _camera_run(url: str) -> str:
    answer = httpx.post(f"{url}/runs", json={"procedure": "exposure_series", "parameters": {"steps": 2}})
    assert answer.status_code == 201, answer.text
    ident = str(answer.json()["id"])
    httpx.post(f"{url}/runs/queue/start")
    wait_until(lambda: httpx.get(f"{url}/runs/{ident}").json()["status"] == "completed", 30, f"run {ident}")
    return ident


def test_on_a_live_stack_a_run_that_fills_the_size_bound_makes_the_oldest_go(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {"camera": {"class": "camera.Camera"}},
                          procedures={"exposure_series": {"function": "labbridge.demo.procedures.exposure_series"}},
                          runs={"interval": 0.2, "max_size_mb": 20}, data_dir="data")
    with running_stack(config, tmp_path) as (_, _, url):
        first = _camera_run(url)  # two 8 MB frames: 16 MB, within the bound
        assert httpx.get(f"{url}/runs/{first}").status_code == 200
        second = _camera_run(url)  # 32 MB with the first: the first goes
        wait_until(lambda: httpx.get(f"{url}/runs/{first}").status_code == 404, 10, "the first run deleted")
        assert not (tmp_path / "data" / "runs" / first).exists()
        assert httpx.get(f"{url}/runs/{second}").json()["points"] == 2
        assert [run["id"] for run in httpx.get(f"{url}/runs").json()["runs"]] == [second]
