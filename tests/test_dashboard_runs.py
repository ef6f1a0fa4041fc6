"""The dashboard's Runs panel in Chromium: queue a run from its form, watch its points arrive, control it, find it again.

The shipped procedures, plus `settled_sweep` from a lab's own file beside config.yml: the shipped voltage_sweep
with a settle time between steps, so a run lasts long enough to pause, resume and abort it from the page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser import page_without_errors
from tests.processes import running_stack, shipped_procedures, wait_until, write_config

SWEEPS_PY = '''
"""A lab's own procedure: the shipped sweep, waiting `settle` seconds at each step."""
import asyncio
from typing import Annotated

from labbridge import Param, Run, procedure


@procedure(drives=["psu.voltage", "psu.output"], axes=["voltage"])
async def settled_sweep(run: Run, start: Annotated[float, Param(like="psu.voltage", doc="The first voltage.")] = 0.0,
                        stop: Annotated[float, Param(like="psu.voltage", doc="The last voltage.")] = 10.0,
                        steps: Annotated[int, Param(minimum=2, maximum=10000, doc="How many settings.")] = 11,
                        settle: Annotated[float, Param(unit="s", minimum=0, maximum=10, doc="Wait at each step.")] = 0.0,
                        ) -> None:
    """Switch the output on, set the voltage in equal steps, wait, record what the supply reports."""
    await run.set("psu.output", True)
    try:
        for i in range(steps):
            await run.checkpoint()
            voltage = await run.set("psu.voltage", start + (stop - start) * i / (steps - 1))
            await asyncio.sleep(settle)
            run.record(voltage=voltage, measured_voltage=await run.get("psu.measured_voltage"),
                       measured_current=await run.get("psu.measured_current"))
            run.progress((i + 1) / steps, f"{voltage:g} V")
    finally:
        await run.set("psu.output", False)
'''


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("dashboard-runs")
    (folder / "sweeps.py").write_text(SWEEPS_PY, encoding="utf-8")
    config = write_config(folder / "config.yml", {
        "psu": {"class": "psu.PowerSupply", "simulate": True},
        "module_a": {"class": "module_a.ModuleA", "simulate": True}},
        procedures={**shipped_procedures("voltage_sweep", "force_curve"), "settled_sweep": {"function": "sweeps.settled_sweep"}},
        history={"path": "history.sqlite3"})  # the sparklines read it: without, each logs a 404 in the console
    with running_stack(config, folder) as (_, _, base):
        yield base


@pytest.fixture(autouse=True)
def idle_queue(url: str) -> Iterator[None]:
    yield
    httpx.post(f"{url}/runs/queue/stop")  # leave nothing running or queued for the next test
    for run in httpx.get(f"{url}/runs").json()["runs"]:
        if run["status"] in ("queued", "running", "paused"):
            httpx.delete(f"{url}/runs/{run['id']}")
    wait_until(lambda: httpx.get(f"{url}/runs/queue").json()["current"] is None, 10, "idle queue")


@contextmanager
def dashboard(url: str, refused: str | None = None) -> Iterator[Page]:
    """The dashboard with its Runs panel built; no script may throw and nothing may be logged as an error
    (but the browser's own line about a request `refused` on purpose, e.g. "422 (Unprocessable Entity)")."""
    with page_without_errors() as page:
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.text} {message.location['url']}")
                if message.type == "error" else None)
        page.goto(url + "/")
        page.wait_for_selector("#procedure-settled_sweep")
        yield page
        assert [line for line in console if not (refused and refused in line)] == []


def run_of(url: str, ident: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/runs/{ident}").json()
    return answer


def plotted(page: Page) -> int:
    """How many points the live plot holds."""
    return int(page.evaluate("RunPlot.shown() && RunPlot.shown().data ? RunPlot.shown().data[0].length : 0"))


def test_a_run_queued_on_the_page_plots_its_points_live_and_is_paused_resumed_and_aborted_there(url: str) -> None:
    with dashboard(url) as page:
        assert page.locator("#hint-arg-proc-settled_sweep-stop").inner_text() == "0 to 30 V, optional"
        assert page.get_attribute("#arg-proc-settled_sweep-steps", "placeholder") == "11"  # the default
        page.fill("#arg-proc-settled_sweep-stop", "20")
        page.fill("#arg-proc-settled_sweep-steps", "2001")  # 0.01 V a step, 100 s in all
        page.fill("#arg-proc-settled_sweep-settle", "0.05")
        page.fill("#metadata-settled_sweep", "sample: A12\noperator = ada")
        page.click("#queue-settled_sweep")
        page.wait_for_selector("#queue-list li[data-run]")
        [queued] = httpx.get(f"{url}/runs", params={"status": "queued"}).json()["runs"]
        ident = queued["id"]
        assert queued["parameters"] == {"start": 0.0, "stop": 20.0, "steps": 2001, "settle": 0.05}
        assert queued["metadata"] == {"sample": "A12", "operator": "ada"}
        assert "sample=A12" in page.locator(f"#queue-list li[data-run='{ident}']").inner_text()
        assert page.locator("#queue-state").inner_text() == "stopped"
        assert page.locator("#queue-list .move-up, #queue-list .move-down").count() == 2  # up and down: the server moves queued runs

        page.click("#queue-start")
        page.wait_for_selector("#run-status[data-status=running]", timeout=10_000)
        page.wait_for_function("RunPlot.shown() && RunPlot.shown().data && RunPlot.shown().data[0].length >= 5",
                               timeout=10_000)
        x = page.evaluate("RunPlot.shown().data[0].slice(0, 3)")
        assert x == [0.0, 0.01, 0.02]  # the declared axis, the voltage the supply reports, is x
        labels = page.evaluate("RunPlot.shown().plot.series.map((s) => s.label)")
        assert labels == ["voltage [V]", "measured_voltage [V]", "measured_current [A]"]
        # the run's message and progress come with its status, read every second
        page.wait_for_function("document.querySelector('#run-message').textContent.endsWith(' V')", timeout=5000)
        page.wait_for_function("document.querySelector('#run-progress').value > 0", timeout=5000)
        assert page.evaluate("document.querySelector('#run-progress').value") < 1

        page.click("#run-pause")
        page.wait_for_selector("#run-status[data-status=paused]", timeout=5000)
        assert run_of(url, ident)["status"] == "paused"
        held = run_of(url, ident)["points"]
        page.wait_for_function(f"RunPlot.shown().data[0].length === {held}", timeout=5000)  # all there, no more
        assert page.locator("#run-points").inner_text() == f"{held} points"
        assert page.locator("#run-pause").is_hidden() and page.locator("#run-resume").is_visible()

        page.click("#run-resume")
        page.wait_for_selector("#run-status[data-status=running]", timeout=5000)
        page.wait_for_function(f"RunPlot.shown().data[0].length > {held + 3}", timeout=10_000)
        assert httpx.get(f"{url}/psu/output").json()["value"] is True

        page.click("#queue-stop")
        page.wait_for_function("document.querySelector('#queue-state').textContent === 'stops after the current run'")
        assert httpx.get(f"{url}/runs/queue").json()["stop_after_current"] is True
        page.click("#run-abort")
        page.wait_for_selector("#run-status[data-status=aborted]", timeout=5000)
        assert run_of(url, ident)["status"] == "aborted"
        assert httpx.get(f"{url}/psu/output").json()["value"] is False  # the clean-up ran
        assert page.locator("#run-abort").is_hidden() and page.locator("#run-stop").is_hidden()
        points = run_of(url, ident)["points"]
        page.wait_for_function(f"RunPlot.shown().data[0].length === {points}", timeout=5000)

        row = page.locator(f"#runs-past tr[data-run='{ident}']")
        row.locator("td.run-status[data-status=aborted]").wait_for(timeout=5000)
        csv = row.locator("a.csv").get_attribute("href")
        assert csv == f"/runs/{ident}/data?format=csv"
        answer = httpx.get(url + csv)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        assert "#   sample: A12" in answer.text and len(answer.text.splitlines()) > points
        assert row.locator("a.hdf5").get_attribute("href") == f"/runs/{ident}/data?format=hdf5"


def test_a_run_s_events_on_the_websocket_bring_its_points_to_the_page_without_waiting_for_a_timer(url: str) -> None:
    with page_without_errors() as page:
        now = time.time()
        page.clock.install(time=now)
        page.clock.pause_at(now + 1)  # the page's timers stand still: its refresh and its 250 ms reads never come
        page.goto(url + "/")
        page.wait_for_selector("#procedure-settled_sweep")  # the first refresh, called once at start
        answer = httpx.post(f"{url}/runs", json={"procedure": "settled_sweep",
                                                 "parameters": {"stop": 2, "steps": 200, "settle": 0.02}})
        ident = answer.json()["id"]
        httpx.post(f"{url}/runs/queue/start")
        page.wait_for_function(f"Runs.panel.current === '{ident}' && RunPlot.shown() && RunPlot.shown().data "
                               "&& RunPlot.shown().data[0].length >= 10", timeout=10_000)
        assert run_of(url, ident)["status"] == "running"  # followed and plotted while it runs, on its events alone


def test_past_runs_are_found_by_their_metadata_shown_in_local_time_and_run_again(url: str) -> None:
    idents = []
    for sample in ("B7", "C9"):
        answer = httpx.post(f"{url}/runs", json={"procedure": "voltage_sweep", "parameters": {"stop": 2, "steps": 3},
                                                   "metadata": {"sample": sample, "comment": "dashboard test"}})
        idents.append(answer.json()["id"])
    httpx.post(f"{url}/runs/queue/start")
    wait_until(lambda: all(run_of(url, i)["status"] == "completed" for i in idents), 15, "two sweeps")
    with dashboard(url) as page:
        page.wait_for_selector(f"#runs-past tr[data-run='{idents[1]}']")
        page.fill("#runs-search", "b7")
        page.wait_for_function("document.querySelectorAll('#runs-past tr').length === 1")
        row = page.locator(f"#runs-past tr[data-run='{idents[0]}']")
        assert "start=0, stop=2, steps=3" in row.inner_text() and "sample=B7" in row.inner_text()
        zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
        finished = run_of(url, idents[0])["finished"]
        local = datetime.fromtimestamp(finished, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
        assert row.locator("time").inner_text() == f"finished {local}"

        httpx.post(f"{url}/runs/queue/stop")
        wait_until(lambda: httpx.get(f"{url}/runs/queue").json()["started"] is False, 5, "queue stopped")
        row.locator("button.again").click()
        page.wait_for_selector("#queue-list li[data-run]")
        [again] = httpx.get(f"{url}/runs", params={"status": "queued"}).json()["runs"]
        assert (again["procedure"], again["parameters"], again["metadata"]) == (
            "voltage_sweep", {"start": 0.0, "stop": 2.0, "steps": 3}, {"sample": "B7", "comment": "dashboard test"})


def test_a_refused_parameter_or_unreadable_metadata_is_shown_and_nothing_is_queued(url: str) -> None:
    with dashboard(url, refused=f"status of 422 (Unprocessable Entity) {url}/runs") as page:
        page.fill("#arg-proc-voltage_sweep-stop", "40")
        page.click("#queue-voltage_sweep")
        page.wait_for_selector("#runs-note:not([hidden])")
        assert "stop must be 0 to 30 V" in page.locator("#runs-note").inner_text()
        page.fill("#arg-proc-voltage_sweep-stop", "4")
        page.fill("#metadata-voltage_sweep", '{"sample": ')
        page.click("#queue-voltage_sweep")
        page.wait_for_function("document.querySelector('#runs-note').textContent.startsWith('metadata is not JSON')")
        assert httpx.get(f"{url}/runs", params={"status": "queued"}).json()["runs"] == []
        page.fill("#metadata-voltage_sweep", '{"sample": "D1", "temperature_K": 4.2}')
        page.click("#queue-voltage_sweep")
        page.wait_for_selector("#queue-list li[data-run]")
        assert page.locator("#runs-note").is_hidden()  # the refusal shown before is gone
        [queued] = httpx.get(f"{url}/runs", params={"status": "queued"}).json()["runs"]
        assert queued["metadata"] == {"sample": "D1", "temperature_K": 4.2}
        page.click(f"#queue-list li[data-run='{queued['id']}'] button.remove")
        page.wait_for_selector("#queue-list li.empty")
        assert httpx.get(f"{url}/runs/{queued['id']}").status_code == 404


def test_writes_from_the_panel_carry_the_token_entered_on_the_page(tmp_path: Path) -> None:
    token = "0123456789abcdef0123456789abcdef"
    config = write_config(tmp_path / "config.yml", {"psu": {"class": "psu.PowerSupply", "simulate": True}},
                          procedures={"voltage_sweep": shipped_procedures()["voltage_sweep"]},
                          history={"path": "history.sqlite3"})
    with running_stack(config, tmp_path, env={"BRIDGE_TOKEN": token}) as (_, _, url), \
            page_without_errors() as page:
        page.goto(url + "/")
        page.wait_for_selector("#procedure-voltage_sweep")
        assert page.locator("#token-box").is_hidden()
        page.click("#queue-voltage_sweep")
        page.wait_for_selector("#runs-note:not([hidden])")
        assert page.locator("#token-box").is_visible()  # refused without a token: the page asks for one
        assert httpx.get(f"{url}/runs").json()["runs"] == []
        page.fill("#token", token)
        page.dispatch_event("#token", "change")
        page.click("#queue-voltage_sweep")
        page.wait_for_selector("#queue-list li[data-run]")
        [queued] = httpx.get(f"{url}/runs").json()["runs"]
        assert queued["procedure"] == "voltage_sweep" and queued["queued_by"]
