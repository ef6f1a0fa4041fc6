"""bridge_client's runs against the real stack (both processes, the simulated supply): `lab.runs` and `Run`.

Queue a shipped procedure and wait with a progress bar, its data checked
against the instrument; parameters refused before anything is sent; pause,
resume, stop and abort (the supply's output really off), Ctrl+C while
waiting; a failed run; list and search; pandas and xarray with the declared
axes as dimensions; rerun; the async client.  `lab_procedures.py`, a lab's
own file beside config.yml, holds a run that records a point every 20 ms for
as long as a test needs it, a grid of two axes, and one that fails.
"""

from __future__ import annotations

import _thread
import asyncio
import itertools
import re
import threading
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

import bridge_client
from tests.processes import running_stack, shipped_procedures, wait_until, write_config

LAB_PROCEDURES = '''
"""A lab's own procedures, for the client's tests."""
import asyncio
from typing import Annotated

import numpy as np

from labbridge import Param, Run, procedure


@procedure(drives=["psu.voltage", "psu.output"], axes=["i"])
async def hold(run: Run, volts: Annotated[float, Param(like="psu.voltage", doc="The voltage held.")] = 1.0) -> None:
    """Switch the output on at `volts` and record a point every 20 ms until stopped; the output goes off."""
    await run.set("psu.output", True)
    try:
        await run.set("psu.voltage", volts)
        for i in range(1_000_000):
            await run.checkpoint()
            run.record(i=i, volts=await run.get("psu.voltage"))
            run.progress(None, f"point {i}")
            await asyncio.sleep(0.02)
    finally:
        await run.set("psu.output", False)


@procedure(axes=["x", "y"])
async def grid(run: Run, n: Annotated[int, Param(minimum=1, maximum=10, doc="Points per side.")] = 3) -> None:
    """z = 10 x + y on an n by n grid, with a small array per point."""
    for x in range(n):
        for y in range(n):
            run.record(x=x, y=y, z=10.0 * x + y, trace=np.arange(4, dtype=np.uint16) + x)


@procedure()
async def broken(run: Run) -> None:
    """Fails at once."""
    raise RuntimeError("the sample holder is empty")
'''


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("client_runs")
    (folder / "lab_procedures.py").write_text(LAB_PROCEDURES, encoding="utf-8")
    procedures = {**shipped_procedures("voltage_sweep", "force_curve"), **{name: {"function": f"lab_procedures.{name}"}
                                             for name in ("hold", "grid", "broken")}}
    config = write_config(folder / "config.yml", {"psu": {"class": "psu.PowerSupply", "simulate": True},
                                                  "module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          procedures=procedures, runs={"interval": 0.2})
    with running_stack(config, folder) as (_, _, base):
        yield base


@pytest.fixture(scope="module")
def lab(url: str) -> Iterator[bridge_client.Bridge]:
    with bridge_client.connect(url) as connected:
        yield connected


@pytest.fixture(autouse=True)
def idle_queue(lab: bridge_client.Bridge) -> Iterator[None]:
    """Each test starts with a stopped, empty queue, and leaves nothing running for the next."""
    yield
    lab.runs.stop()
    for status in ("queued", "running", "paused"):
        for run in lab.runs.list(status=status):
            run.abort()
    wait_until(lambda: lab.runs.queue()["current"] is None, 10, "an idle queue")


def test_a_sweep_submitted_waited_with_a_bar_gives_the_instruments_values(
        lab: bridge_client.Bridge, capsys: pytest.CaptureFixture[str]) -> None:
    run = lab.runs.submit("voltage_sweep", start=0, stop=10, steps=50, metadata={"sample": "A12", "operator": "ada"})
    assert (run.status, run.parameters, run.metadata) == ("queued", {"start": 0.0, "stop": 10.0, "steps": 50},
                                                          {"sample": "A12", "operator": "ada"})
    lab.runs.start()
    assert run.wait(progress=True) is run and run.status == "completed"
    drawn = capsys.readouterr().err.split("\r")
    assert re.search(r"voltage_sweep: 100%\|█+\| 00:0\d, 10 V", drawn[-1]), drawn[-1]

    data = run.data()
    assert list(data) == ["point", "time", "voltage", "measured_voltage", "measured_current"]
    assert data["point"].tolist() == list(range(50)) and data["voltage"].dtype == np.float64
    # The supply reports the voltage it set to the millivolt: the column holds what it reported, not what was asked.
    assert data["voltage"].tolist() == np.round(np.linspace(0, 10, 50), 3).tolist()
    assert np.all(np.diff(data["time"]) > 0)
    assert lab.psu.voltage == data["voltage"][-1] and lab.psu.output is False  # its clean-up switched it off
    assert run.units == {"voltage": "V", "measured_voltage": "V", "measured_current": "A"}
    assert run.axes == ("voltage",) and run.point_count == 50
    # points() of a finished run gives every point once, as data() has them, and ends.
    points = list(run.points())
    assert [p["point"] for p in points] == list(range(50))
    assert [p["voltage"] for p in points] == data["voltage"].tolist()


def test_parameters_are_checked_before_anything_is_queued(lab: bridge_client.Bridge, url: str) -> None:
    before = len(httpx.get(f"{url}/runs").json()["runs"])
    with pytest.raises(bridge_client.InvalidValue, match=r"^stop must be 0 to 30 V; got 40$"):
        lab.runs.submit("voltage_sweep", stop=40)
    with pytest.raises(bridge_client.InvalidValue, match=r"voltage_sweep has no parameter 'volts'; its parameters: "
                                                          r"start, stop, steps"):
        lab.runs.submit("voltage_sweep", volts=3)
    with pytest.raises(bridge_client.InvalidValue, match=r"steps must be an int; got 2.5"):
        lab.runs.submit("voltage_sweep", steps=2.5)
    with pytest.raises(bridge_client.UnknownProcedure, match=r"no procedure 'sweep'; known: voltage_sweep, "):
        lab.runs.submit("sweep")
    assert len(httpx.get(f"{url}/runs").json()["runs"]) == before

    described = lab.procedures["voltage_sweep"]
    assert (described.axes, described.drives) == (("voltage",), ("psu.voltage", "psu.output"))
    assert "steps: int, 2 to 1000, default 11. How many settings." in described.help_text()
    assert repr(described) == "<procedure voltage_sweep(*, start: float = 0.0, stop: float = 10.0, steps: int = 11)>"


def test_pause_resume_and_abort_with_points_followed_live(lab: bridge_client.Bridge) -> None:
    run = lab.runs.submit("hold", volts=2.5, metadata={"sample": "B7"})
    with pytest.raises(bridge_client.WrongRunState, match="is queued, not running"):
        run.pause()
    lab.runs.start()
    live = list(itertools.islice(run.points(), 5))  # arrive while it runs
    assert [p["i"] for p in live] == [0, 1, 2, 3, 4] and all(p["volts"] == 2.5 for p in live)
    assert run.status == "running" and lab.psu.output is True

    run.pause()
    wait_until(lambda: run.status == "paused", 5, "the run paused at its checkpoint")
    held = run.point_count
    with pytest.raises(bridge_client.Busy, match=f"run {run.id}"):  # what it drives is still its own
        lab.psu.voltage = 1
    assert run.refresh().point_count == held  # a paused run records nothing
    with pytest.raises(bridge_client.WrongRunState, match="not paused"):
        run.resume().resume()
    wait_until(lambda: run.point_count > held + 2, 5, "points again after resume")

    run.abort()
    assert run.status == "aborted" and lab.psu.output is False  # aborted at once, its clean-up ran
    with pytest.raises(bridge_client.RunAborted, match=f"hold \\(run {run.id}\\) was aborted"):
        run.wait()
    with pytest.raises(bridge_client.AlreadyFinished):
        run.abort()


def test_stop_ends_a_run_as_a_success_and_a_queued_run_aborted_is_removed(lab: bridge_client.Bridge) -> None:
    first, second = lab.runs.submit("hold"), lab.runs.submit("hold")
    assert second.abort().status == "removed"
    with pytest.raises(bridge_client.RunAborted, match="was removed from the queue"):
        second.wait()
    with pytest.raises(bridge_client.UnknownRun):
        lab.runs[second.id]
    lab.runs.start()
    wait_until(lambda: first.point_count > 2, 5, "points")
    assert first.stop().wait(timeout=10) is first and first.status == "stopped" and lab.psu.output is False


def test_ctrl_c_while_waiting_aborts_the_run_and_says_so(lab: bridge_client.Bridge) -> None:
    run = lab.runs.submit("hold")
    lab.runs.start()
    wait_until(lambda: run.status == "running", 5, "the run running")
    interrupt = threading.Timer(0.3, _thread.interrupt_main)
    interrupt.start()
    with pytest.raises(KeyboardInterrupt) as raised:
        run.wait()
    interrupt.join()
    assert str(raised.value) == f"interrupted: aborted hold (run {run.id})"
    assert lab.runs[run.id].status == "aborted" and lab.psu.output is False


def test_a_failed_run_raises_its_error_and_a_timeout_leaves_it_running(lab: bridge_client.Bridge) -> None:
    run = lab.runs.submit("broken")
    lab.runs.start()
    with pytest.raises(bridge_client.RunFailed) as raised:
        run.wait(timeout=10)
    assert raised.value.code == "procedure_failed"
    assert str(raised.value) == f"broken (run {run.id}) failed: RuntimeError: the sample holder is empty"
    assert raised.value.traceback is not None and "lab_procedures.py" in raised.value.traceback

    held = lab.runs.submit("hold")
    lab.runs.start()  # a failed run stopped the queue
    with pytest.raises(TimeoutError, match=f"hold \\(run {held.id}\\) is still running after 0.5 s; it goes on"):
        held.wait(timeout=0.5)
    assert held.status == "running"


def test_runs_are_listed_found_by_metadata_and_queued_again(lab: bridge_client.Bridge) -> None:
    sweep = lab.runs.submit("voltage_sweep", stop=5, steps=6, metadata={"sample": "Z-99 quartz"})
    lab.runs.start()
    sweep.wait(timeout=20)
    again = sweep.rerun()
    assert again.id != sweep.id
    assert (again.procedure, again.parameters, again.metadata) == (sweep.procedure, sweep.parameters, sweep.metadata)
    lab.runs.start()
    again.wait(timeout=20)
    np.testing.assert_allclose(again.data()["voltage"], sweep.data()["voltage"])

    found = lab.runs.list(q="z-99")
    assert [run.id for run in found] == [again.id, sweep.id]  # newest first
    assert [run.id for run in lab.runs.list(status="completed", procedure="voltage_sweep", q="quartz", limit=1)] == [
        again.id]
    assert lab.runs.list(q="z-99", status="failed") == []
    assert lab.runs[sweep.id].parameters == {"start": 0.0, "stop": 5.0, "steps": 6}
    assert lab.runs.get(sweep.href).id == sweep.id
    with pytest.raises(bridge_client.UnknownRun, match="no run 'nope'") as raised:
        lab.runs["nope"]
    assert raised.value.status == 404


def test_to_pandas_and_to_xarray_take_the_declared_axes_as_dimensions(lab: bridge_client.Bridge) -> None:
    grid = lab.runs.submit("grid", n=3)
    sweep = lab.runs.submit("voltage_sweep", stop=4, steps=5)
    lab.runs.start()
    grid.wait(timeout=20)
    sweep.wait(timeout=20)

    data = grid.data()
    assert data["trace"].shape == (9, 4) and data["trace"].dtype == np.uint16 and data["x"].dtype == np.int64
    frame = grid.to_pandas()
    assert frame.index.name == "point" and list(frame.columns) == ["time", "x", "y", "z", "trace"]
    assert frame["z"].tolist() == [10.0 * x + y for x in range(3) for y in range(3)]

    dataset = grid.to_xarray()
    assert dict(dataset.sizes) == {"x": 3, "y": 3}  # a grid: the two axes are its dimensions
    assert float(dataset["z"].sel(x=2, y=1)) == 21.0

    swept = sweep.to_xarray()
    assert dict(swept.sizes) == {"voltage": 5} and swept["voltage"].values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert swept["measured_current"].attrs["units"] == "A" and swept.attrs["procedure"] == "voltage_sweep"

    # The hold run's axis `i` counts up, so it indexes too; a run with no axes is indexed by point.
    broken = lab.runs.submit("broken")
    lab.runs.start()
    with pytest.raises(bridge_client.RunFailed):
        broken.wait(timeout=10)
    assert dict(broken.to_xarray().sizes) == {"point": 0}


def test_the_async_client_submits_waits_and_reads_data(lab: bridge_client.Bridge, url: str) -> None:
    async def sweep() -> tuple[str, list[float], dict[str, str | None]]:
        async with bridge_client.AsyncBridge(url) as async_lab:
            with pytest.raises(bridge_client.InvalidValue, match="stop must be 0 to 30 V"):
                await async_lab.runs.submit("voltage_sweep", stop=31)
            run = await async_lab.runs.submit("voltage_sweep", stop=2, steps=3, metadata={"sample": "async"})
            await async_lab.runs.start()
            finished = await run.wait(timeout=20)
            points = [point["voltage"] async for point in run.points()]
            assert points == [0.0, 1.0, 2.0]
            data = await finished.data()
            return finished.status, data["voltage"].tolist(), (await run.refresh()).units

    status, voltages, units = asyncio.run(sweep())
    assert (status, voltages, units["voltage"]) == ("completed", [0.0, 1.0, 2.0], "V")
    assert lab.runs.list(q="async")[0].status == "completed"


def test_the_runs_error_codes_are_exported_classes() -> None:
    for code, cls, status in (("unknown_procedure", bridge_client.UnknownProcedure, 404),
                              ("unknown_run", bridge_client.UnknownRun, 404),
                              ("wrong_run_state", bridge_client.WrongRunState, 409),
                              ("runs_unavailable", bridge_client.RunsUnavailable, 503)):
        body = f'{{"error": "{code}", "message": "said"}}'.encode()
        error = bridge_client.errors.error_from_response(status, body, write=True)
        assert type(error) is cls and (error.status, error.code, error.message) == (status, code, "said")
        assert cls.__module__ == "bridge_client" and cls.__name__ in bridge_client.__all__
