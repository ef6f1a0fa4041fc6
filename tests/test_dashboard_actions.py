"""Actions on the dashboard, in a real browser (Debian's Chromium via Playwright): run, watch, cancel, results, refusals."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser import chromium
from tests.processes import running_stack, start_backend, start_frontend, write_config

MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def lab(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Browser, str]]:
    tmp = tmp_path_factory.mktemp("dashboard-actions")
    config = write_config(tmp / "config.yml", MODULES)
    with running_stack(config, tmp) as (_, _, url):
        yield browser, url


@pytest.fixture()
def page(lab: tuple[Browser, str]) -> Iterator[tuple[Page, str]]:
    browser, url = lab
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector("#action-module_a-move")
    yield page, url
    page.close()


def status_of(page: Page, action: str) -> str:
    return page.locator(f"#status-module_a-{action}").inner_text()


def test_a_move_shows_its_progress_and_the_position_live_and_cancel_stops_it(page: tuple[Page, str]) -> None:
    browser, url = page
    httpx.put(f"{url}/module_a/position", json={"value": 0})
    browser.fill("#arg-module_a-move-to", "80")
    browser.fill("#arg-module_a-move-speed", "10")
    browser.click("#run-module_a-move")
    browser.wait_for_selector("#progress-module_a-move:not([hidden])")
    browser.wait_for_function("document.querySelector('#status-module_a-move').textContent.includes('s to go')")
    browser.wait_for_function("document.querySelector('#progress-module_a-move').value > 0.05", timeout=5000)
    # the position on the page follows the move, without a reload (values read by the action are published)
    browser.wait_for_function("Number(document.querySelector('#value-module_a-position').textContent) > 5",
                              timeout=5000)
    assert browser.locator("#value-module_a-moving").inner_text() == "true"

    browser.click("#cancel-module_a-move")
    browser.wait_for_selector("#status-module_a-move[data-status=cancelled]", timeout=3000)
    stopped = httpx.get(f"{url}/module_a/position").json()["value"]
    assert status_of(browser, "move") == f"cancelled (stopped at {stopped:g} mm)"
    assert browser.locator("#cancel-module_a-move").is_hidden()
    assert browser.locator("#progress-module_a-move").is_hidden()
    browser.wait_for_function("document.querySelector('#value-module_a-moving').textContent === 'false'", timeout=3000)


def test_a_cycle_shows_its_result_and_a_refused_argument_shows_why(page: tuple[Page, str]) -> None:
    browser, url = page
    httpx.put(f"{url}/module_a/position", json={"value": 10})
    httpx.put(f"{url}/module_a/speed", json={"value": 50})
    browser.fill("#arg-module_a-cycle-count", "2")
    browser.fill("#arg-module_a-cycle-amplitude", "150")
    browser.click("#run-module_a-cycle")
    browser.wait_for_selector("#status-module_a-cycle[data-status=refused]")
    assert status_of(browser, "cycle") == "amplitude must be 0.1 to 100 mm; got 150"
    cycles = httpx.get(f"{url}/invocations").json()["invocations"]
    assert [c for c in cycles if c["action"] == "cycle"] == []  # nothing ran

    browser.fill("#arg-module_a-cycle-amplitude", "5")
    browser.click("#run-module_a-cycle")
    browser.wait_for_selector("#status-module_a-cycle[data-status=completed]", timeout=10_000)
    assert status_of(browser, "cycle").startswith('done: {"cycles":2,"peak_force":[')

    browser.fill("#arg-module_a-cycle-count", "")
    browser.click("#run-module_a-cycle")
    assert status_of(browser, "cycle") == "enter count"  # checked in the page: nothing sent


def test_a_run_shows_when_it_finished_as_a_local_date_and_time(lab: tuple[Browser, str]) -> None:
    browser, url = lab
    page = browser.new_context(timezone_id="Asia/Kathmandu").new_page()  # UTC+5:45: not the machine's zone
    httpx.put(f"{url}/module_a/position", json={"value": 1})  # a short way home
    try:
        page.goto(url + "/")
        page.wait_for_selector("#action-module_a-home")
        page.click("#run-module_a-home")
        page.wait_for_selector("#status-module_a-home[data-status=completed]", timeout=10_000)
        home = next(i for i in httpx.get(f"{url}/invocations").json()["invocations"] if i["action"] == "home")
        local = datetime.fromtimestamp(home["finished"], ZoneInfo("Asia/Kathmandu")).strftime("%Y-%m-%d %H:%M:%S")
        when = page.locator("#when-module_a-home")
        assert when.inner_text() == f"finished {local}"
        assert when.get_attribute("title") == f"{home['finished']:.15g}"  # the raw Unix seconds
    finally:
        page.context.close()


def test_a_run_started_elsewhere_shows_up_and_its_failure_is_shown(page: tuple[Page, str]) -> None:
    browser, url = page
    httpx.put(f"{url}/module_a/position", json={"value": 0})
    move = httpx.post(f"{url}/module_a/move", json={"to": 60, "speed": 10}).json()  # another client
    browser.wait_for_selector("#status-module_a-move[data-status=running]", timeout=3000)
    httpx.post(f"{url}/module_a/stop")  # halts the carriage under the move: the move fails
    browser.wait_for_selector("#status-module_a-move[data-status=failed]", timeout=3000)
    assert "the carriage was halted at" in status_of(browser, "move")
    assert httpx.get(f"{url}{move['href']}").json()["status"] == "failed"


def test_a_run_lost_when_the_experiment_process_was_killed_shows_as_lost(browser: Browser, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULES)
    backend = start_backend(config, tmp_path / "backend.log")
    frontend, url = start_frontend(config, tmp_path / "frontend.log")
    page = browser.new_page()
    try:
        page.goto(url + "/")
        page.wait_for_selector("#action-module_a-move")
        httpx.post(f"{url}/module_a/move", json={"to": 90, "speed": 5})
        page.wait_for_selector("#status-module_a-move[data-status=running]", timeout=3000)
        backend.signal(signal.SIGKILL)
        backend.wait(5)
        page.wait_for_selector("#banner:not([hidden])", timeout=10_000)
        backend = start_backend(config, tmp_path / "backend2.log")
        page.wait_for_selector("#status-module_a-move[data-status=lost]", timeout=10_000)
        assert status_of(page, "move").startswith("lost: the experiment process stopped while this ran")
        assert page.locator("#cancel-module_a-move").is_hidden()
        page.reload()  # the frontend's cache of live events still holds "running": the page asks the backend
        page.wait_for_selector("#status-module_a-move[data-status=lost]", timeout=10_000)
    finally:
        page.close()
        frontend.stop()
        backend.stop()
