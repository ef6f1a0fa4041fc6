"""Runs of procedures, end to end on the real processes: queue, run on the simulated supply, store, data out.

One stack for the module (its queue is shared: each test starts from an idle, stopped queue), plus a stack of
its own for the kill -9 test.  `slow.py`, a lab's own file of procedures beside config.yml, holds a run that
records a point every 50 ms for as long as a test needs it to run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from types import SimpleNamespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from labbridge.core.errors import RunsUnavailable
from labbridge.experiment.run_queue import RunQueue
from labbridge.experiment.run_store import RunStore
from tests.processes import running_stack, start_backend, wait_until, write_config

SLOW_PY = '''
"""A lab's own procedures: a run that goes on until stopped, driving the supply."""
import asyncio
from typing import Annotated

from labbridge import Param, Run, procedure


@procedure(drives=["psu.voltage", "psu.output"], axes=["i"])
async def hold(run: Run, volts: Annotated[float, Param(like="psu.voltage", doc="The voltage held.")] = 1.0,
               points: Annotated[int, Param(minimum=1, maximum=100000, doc="How many points.")] = 100000) -> None:
    """Switch the output on at `volts` and record a point every 50 ms; the output goes off in the end."""
    await run.set("psu.output", True)
    try:
        await run.set("psu.voltage", volts)
        for i in range(points):
            await run.checkpoint()
            run.record(i=i, label="=1+1")
            run.progress(i / points, f"point {i}")
            await asyncio.sleep(0.05)
    finally:
        await run.set("psu.output", False)


@procedure()
async def broken(run: Run) -> None:
    """Fails at once."""
    raise RuntimeError("the sample holder is empty")
'''


def _config(folder: Path, **top_level: Any) -> Path:
    (folder / "slow.py").write_text(SLOW_PY, encoding="utf-8")
    return write_config(folder / "config.yml", {
        "psu": {"class": "psu.PowerSupply", "simulate": True},
        "module_a": {"class": "module_a.ModuleA", "simulate": True}},
        procedures={"voltage_sweep": {"function": "labbridge.demo.procedures.voltage_sweep"},
                    "force_curve": {"function": "labbridge.demo.procedures.force_curve"},
                    "hold": {"function": "slow.hold"}, "broken": {"function": "slow.broken"}},
        runs={"interval": 0.2}, **top_level)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("runs")
    with running_stack(_config(folder), folder) as (_, _, base):
        yield base


@pytest.fixture(autouse=True)
def idle_queue(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "url" in request.fixturenames:  # leave nothing running or queued for the next test
        base = request.getfixturevalue("url")
        httpx.post(f"{base}/runs/queue/stop")
        for run in httpx.get(f"{base}/runs").json()["runs"]:
            if run["status"] in ("queued", "running", "paused"):
                httpx.delete(f"{base}/runs/{run['id']}")
        wait_until(lambda: httpx.get(f"{base}/runs/queue").json()["current"] is None, 10, "idle queue")


def submit(url: str, procedure: str, **parameters: Any) -> str:
    metadata = parameters.pop("metadata", {})
    answer = httpx.post(f"{url}/runs", json={"procedure": procedure, "parameters": parameters, "metadata": metadata})
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == f"/runs/{answer.json()['id']}"
    return str(answer.json()["id"])


def run_of(url: str, ident: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/runs/{ident}").json()
    return answer


def wait_status(url: str, ident: str, *statuses: str, timeout: float = 15) -> dict[str, Any]:
    wait_until(lambda: run_of(url, ident)["status"] in statuses, timeout, f"run {ident} {statuses}")
    return run_of(url, ident)


def test_a_voltage_sweep_runs_on_the_simulated_supply_and_its_data_is_what_the_supply_reported(url: str) -> None:
    procedures = httpx.get(f"{url}/procedures").json()["procedures"]
    stop = procedures["voltage_sweep"]["parameters"]["properties"]["stop"]
    assert (stop["unit"], stop["minimum"], stop["maximum"], stop["default"]) == ("V", 0, 30, 10.0)
    ident = submit(url, "voltage_sweep", start=1, stop=4, steps=4, metadata={"sample": "A12", "operator": "ada"})
    assert run_of(url, ident)["status"] == "queued"
    assert httpx.post(f"{url}/runs/queue/start").json()["started"] is True
    run = wait_status(url, ident, "completed")
    assert run["points"] == 4 and run["progress"] == 1.0 and run["parameters"] == {"start": 1.0, "stop": 4.0, "steps": 4}
    assert run["snapshot_start"]["psu"]["output"]["value"] is False  # before: off; during: on; after: off again
    assert run["snapshot_end"]["psu"]["output"]["value"] is False and run["snapshot_end"]["psu"]["voltage"]["value"] == 4.0
    assert "async def voltage_sweep" in run["source"] and len(run["source_hash"]) == 64
    assert "procedures:" in run["config"] and run["version"]
    data = httpx.get(f"{url}/runs/{ident}/data").json()
    assert data["values"]["voltage"] == [1.0, 2.0, 3.0, 4.0]  # as the supply read them back
    assert data["columns"]["voltage"]["unit"] == "V" and data["columns"]["measured_current"]["unit"] == "A"
    assert data["axes"] == ["voltage"] and data["point"] == [0, 1, 2, 3]
    assert httpx.get(f"{url}/psu/output").json()["value"] is False
    later = httpx.get(f"{url}/runs/{ident}/data", params={"since": 2}).json()
    assert later["point"] == [2, 3] and later["values"]["voltage"] == [3.0, 4.0]
    found = httpx.get(f"{url}/runs", params={"q": "a12"}).json()["runs"]
    assert [r["id"] for r in found] == [ident]


def test_the_csv_file_has_parameters_and_metadata_in_a_commented_header(url: str) -> None:
    ident = submit(url, "voltage_sweep", stop=2, steps=3, metadata={"sample": "=HYPERLINK(1)", "note": "a\nb"})
    httpx.post(f"{url}/runs/queue/start")
    wait_status(url, ident, "completed")
    answer = httpx.get(f"{url}/runs/{ident}/data", params={"format": "csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[:4] == ["# procedure: voltage_sweep", f"# run: {ident}", "# status: completed", "# parameters:"]
    assert "#   stop: 2.0" in lines and "#   sample: '=HYPERLINK(1)" in lines and "#   note: a b" in lines
    header = lines.index("point,time,unix_time,voltage (V),measured_voltage (V),measured_current (A)")
    assert [row.split(",")[3] for row in lines[header + 1:]] == ["0.0", "1.0", "2.0"]


def test_a_bad_parameter_is_refused_before_anything_is_queued(url: str) -> None:
    before = httpx.get(f"{url}/runs").json()["runs"]
    for parameters, named in (({"stop": 40}, "stop must be 0 to 30 V"), ({"steps": "many"}, "steps"),
                              ({"volume": 3}, "has no parameter 'volume'")):
        answer = httpx.post(f"{url}/runs", json={"procedure": "voltage_sweep", "parameters": parameters})
        assert answer.status_code == 422 and named in answer.json()["message"], answer.text
    unknown = httpx.post(f"{url}/runs", json={"procedure": "nothing"})
    assert unknown.status_code == 404 and "voltage_sweep" in unknown.json()["message"]
    assert httpx.post(f"{url}/runs", content=b"[1]").status_code == 422
    assert httpx.get(f"{url}/runs").json()["runs"] == before


def test_runs_execute_one_at_a_time_in_the_order_they_were_queued(url: str) -> None:
    idents = [submit(url, "voltage_sweep", stop=1, steps=2) for _ in range(3)]
    assert httpx.get(f"{url}/runs/queue").json()["queued"] == idents
    httpx.post(f"{url}/runs/queue/start")
    runs = [wait_status(url, ident, "completed") for ident in idents]
    for earlier, later in zip(runs, runs[1:]):
        assert earlier["finished"] <= later["started"]


def test_pause_resume_and_stop_act_at_checkpoints_and_the_clean_up_runs(url: str) -> None:
    ident = submit(url, "hold", volts=2.0)
    httpx.post(f"{url}/runs/queue/start")
    wait_until(lambda: run_of(url, ident)["points"] >= 3, 10, "points")
    assert httpx.post(f"{url}/runs/{ident}/pause").status_code == 200
    paused = wait_status(url, ident, "paused")
    assert run_of(url, ident)["points"] == paused["points"]  # nothing is recorded while paused
    assert httpx.get(f"{url}/psu/output").json()["value"] is True
    httpx.post(f"{url}/runs/{ident}/resume")
    wait_until(lambda: run_of(url, ident)["points"] > paused["points"] + 2, 10, "points after resume")
    assert httpx.post(f"{url}/runs/{ident}/stop").status_code == 200
    stopped = wait_status(url, ident, "stopped")
    assert stopped["error"] is None and httpx.get(f"{url}/psu/output").json()["value"] is False
    again = httpx.post(f"{url}/runs/{ident}/pause")
    assert again.status_code == 409 and again.json()["error"] == "already_finished"


def test_abort_cancels_the_run_at_once_and_its_clean_up_switches_the_output_off(url: str) -> None:
    ident = submit(url, "hold")
    queued = submit(url, "voltage_sweep")
    httpx.post(f"{url}/runs/queue/start")
    wait_until(lambda: run_of(url, ident)["points"] >= 2 and
               httpx.get(f"{url}/psu/output").json()["value"] is True, 10, "output on")
    httpx.post(f"{url}/runs/{ident}/pause")
    wait_status(url, ident, "paused")
    assert httpx.post(f"{url}/runs/queue/stop").json()["stop_after_current"] is True
    assert httpx.delete(f"{url}/runs/{ident}").json()["status"] == "aborted"  # a paused run too: no checkpoint
    assert httpx.get(f"{url}/psu/output").json()["value"] is False
    wait_until(lambda: httpx.get(f"{url}/runs/queue").json()["started"] is False, 5, "queue stopped")
    removed = httpx.delete(f"{url}/runs/{queued}")
    assert removed.json()["status"] == "removed"
    assert httpx.get(f"{url}/runs/{queued}").status_code == 404


def test_a_run_holds_what_it_drives_and_an_action_holding_it_keeps_a_run_from_starting(url: str) -> None:
    ident = submit(url, "hold")
    httpx.post(f"{url}/runs/queue/start")
    wait_status(url, ident, "running")
    wait_until(lambda: run_of(url, ident)["points"] >= 1, 10, "a point")
    refused = httpx.put(f"{url}/psu/voltage", json={"value": 3})
    assert refused.status_code == 409 and refused.json()["error"] == "busy" and ident in refused.json()["message"]
    assert httpx.put(f"{url}/psu/current_limit", json={"value": 0.5}).status_code == 200  # not driven by the run
    action = httpx.post(f"{url}/psu/ramp_voltage", json={"to": 5, "rate": 1})
    assert action.status_code == 409 and ident in action.json()["message"]
    httpx.post(f"{url}/runs/queue/stop")
    httpx.delete(f"{url}/runs/{ident}")
    wait_status(url, ident, "aborted")
    # The other way: an action drives psu.voltage, so the sweep does not start; it fails naming it, and the
    # queue stops rather than go on to the next run.
    ramp = httpx.post(f"{url}/psu/ramp_voltage", json={"to": 20, "rate": 0.1}).json()
    blocked, after = submit(url, "voltage_sweep"), submit(url, "voltage_sweep")
    httpx.post(f"{url}/runs/queue/start")
    failed = wait_status(url, blocked, "failed")
    assert failed["error"]["error"] == "busy" and ramp["id"] in failed["error"]["message"]
    wait_until(lambda: httpx.get(f"{url}/runs/queue").json()["started"] is False, 5, "queue stopped")
    assert run_of(url, after)["status"] == "queued"
    httpx.delete(f"{url}/invocations/{ramp['id']}")


def test_a_procedure_that_raises_ends_failed_with_its_message_and_the_process_goes_on(url: str) -> None:
    ident = submit(url, "broken")
    httpx.post(f"{url}/runs/queue/start")
    failed = wait_status(url, ident, "failed")
    assert failed["error"]["message"] == "RuntimeError: the sample holder is empty"
    assert "slow.py" in failed["error"]["traceback"]
    assert httpx.get(f"{url}/psu/voltage").status_code == 200


def test_a_kill_mid_run_leaves_it_interrupted_with_its_points_and_the_queue_stopped(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with running_stack(config, tmp_path) as (backend, _, url):
        ident = submit(url, "hold")
        waiting = submit(url, "voltage_sweep")
        httpx.post(f"{url}/runs/queue/start")
        store = tmp_path / "data" / "runs.sqlite3"

        def on_disk() -> int:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
                return int(db.execute("SELECT count(*) FROM points WHERE run = ?", (ident,)).fetchone()[0])

        wait_until(lambda: on_disk() >= 5, 15, "points on disk")
        kept = on_disk()
        backend.signal(signal.SIGKILL)
        backend.wait(5)
        again = start_backend(config, tmp_path / "backend-again.log")
        try:
            run = run_of(url, ident)
            assert run["status"] == "interrupted" and run["points"] >= kept
            data = httpx.get(f"{url}/runs/{ident}/data").json()
            assert data["values"]["i"][:kept] == list(range(kept))
            assert run_of(url, waiting)["status"] == "queued"
            state = httpx.get(f"{url}/runs/queue").json()
            assert {key: state[key] for key in ("started", "stop_after_current", "current", "queued")} == {
                "started": False, "stop_after_current": False, "current": None, "queued": [waiting]}
        finally:
            again.stop()


def test_a_run_store_that_could_not_open_opens_on_a_later_request_without_a_restart(tmp_path: Path) -> None:
    config = _config(tmp_path, data_dir="lab/data")
    lab, kept = tmp_path / "lab", tmp_path / "kept"
    with running_stack(config, tmp_path) as (_, _, url):  # a run queued before, on record
        waiting = submit(url, "voltage_sweep", stop=1, steps=2, metadata={"sample": "B7"})
    lab.rename(kept)
    lab.write_text("a file where a folder should be")  # as a full disk or a read-only folder would
    with running_stack(config, tmp_path) as (backend, _, url):
        for _ in range(20):  # a flood is refused at once, naming the folder and saying it will be retried
            refused = httpx.post(f"{url}/runs", json={"procedure": "voltage_sweep"})
            assert refused.status_code == 503 and refused.json()["error"] == "runs_unavailable", refused.text
        message = refused.json()["message"]
        assert str(lab / "data") in message and "Not a directory" in message and "tried again" in message, message
        assert httpx.get(f"{url}/runs").status_code == 503 and httpx.post(f"{url}/runs/queue/start").status_code == 503
        lab.unlink()  # fixed (nothing else writes in lab/ meanwhile: no action is started)
        kept.rename(lab)
        wait_until(lambda: httpx.get(f"{url}/runs").status_code == 200, 10, "the run store opened again")
        assert run_of(url, waiting)["status"] == "queued"  # loaded as at start: queued, the queue stopped
        queue = httpx.get(f"{url}/runs/queue").json()
        assert queue["queued"] == [waiting] and queue["started"] is False
        later = submit(url, "voltage_sweep", stop=2, steps=2)
        assert httpx.post(f"{url}/runs/queue/start").json()["started"] is True
        assert wait_status(url, later, "completed")["points"] == 2 and run_of(url, waiting)["status"] == "completed"
        assert "the run store opened at last" in backend.output


class _CountedStore(RunStore):
    """A run store that counts its opens (how often the disk is tried)."""

    opens = 0

    def open(self) -> list[dict[str, Any]]:
        self.opens += 1
        return super().open()


def test_a_flood_of_requests_tries_the_run_store_at_most_once_per_interval(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where a folder should be")
    store = _CountedStore(tmp_path / "blocked" / "data")
    queue = RunQueue(SimpleNamespace(publish=lambda event: None), {}, store)  # type: ignore[arg-type]
    queue.retry_interval = 3600.0  # the flood below is all within one interval, however slow the machine

    async def scenario() -> None:
        await queue.start()
        for _ in range(50):
            with pytest.raises(RunsUnavailable, match="tried again"):
                await queue.list({})
        assert store.opens == 1  # the start's: every request within the interval is refused without a try
        (tmp_path / "blocked").unlink()
        queue.retry_interval = 0.0
        await asyncio.gather(*(queue.list({}) for _ in range(10)))  # one open for all of them
        assert store.opens == 2
        await queue.close()

    asyncio.run(scenario())
