"""The dashboard's plots in a real browser (Chromium via Playwright): sparklines from history then live values,
the larger plot's ranges and zoom fetching history again, and array attributes drawn as line charts."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser import page_without_errors
from tests.processes import running_stack, wait_until, write_config
from tests.test_history import insert

MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": 0.3}},
           "setpoint": {"class": "setpoint.Setpoint"}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("plots")
    config = write_config(tmp / "config.yml", MODULES, history={"path": "data/h.sqlite3", "interval": 0.2})
    with running_stack(config, tmp) as (_, _, base):
        wait_until((tmp / "data" / "h.sqlite3").exists, 5, "the history database created")
        yield base, tmp / "data" / "h.sqlite3"


@pytest.fixture(scope="module")
def url(lab: tuple[str, Path]) -> str:
    return lab[0]


@pytest.fixture()
def page(url: str) -> Iterator[Page]:
    with page_without_errors() as page:
        yield page


def sparkline_points(page: Page, key: str) -> list[list[float | None]]:
    return page.evaluate(f"Plots.sparklines['{key}'].plot.data.map((column) => Array.from(column))")  # type: ignore[no-any-return]


def test_a_sparkline_draws_recorded_values_then_extends_with_live_ones(lab: tuple[str, Path], page: Page) -> None:
    url, db = lab
    now = time.time()
    insert(db, "setpoint", "label", [(now - 180, "not a number: no sparkline")])
    insert(db, "setpoint", "changed_at", [(now - 240, 5.0), (now - 120, 6.0), (now - 60, 9.0)])  # recorded before
    page.goto(url + "/")
    page.wait_for_function("Plots.sparklines['setpoint/changed_at']?.plot.data[0].length === 3")
    times, values = sparkline_points(page, "setpoint/changed_at")
    assert values == [5.0, 6.0, 9.0] and all(now - 241 <= t <= now - 60 for t in times)  # type: ignore[operator]
    assert page.locator("#spark-setpoint-label").count() == 0
    drawn = page.evaluate("""() => {
        const canvas = document.querySelector('#spark-setpoint-changed_at canvas');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) inked++;
        return inked;
    }""")
    assert drawn > 20  # the curve is on the canvas, not only in the data
    before = len(sparkline_points(page, "setpoint/value")[0])
    httpx.put(f"{url}/setpoint/value", json={"value": 42.0})  # live, from another client
    page.wait_for_function(f"Plots.sparklines['setpoint/value'].plot.data[0].length > {before}")
    assert sparkline_points(page, "setpoint/value")[1][-1] == 42.0
    page.wait_for_function("Plots.sparklines['module_a/force'].plot.data[0].length >= 3")  # polled values too


def test_the_larger_plot_fetches_history_for_each_range_and_zoom(url: str, page: Page) -> None:
    requested: list[str] = []  # filled while Playwright calls run (it delivers events then)
    page.on("request", lambda r: requested.append(r.url) if "/module_a/force/history" in r.url else None)
    page.goto(url + "/")
    page.wait_for_function("Plots.sparklines['module_a/force']?.plot.data[0].length >= 1")
    assert len(requested) == 1  # the sparkline's
    history = lambda r: "/module_a/force/history" in r.url  # noqa: E731
    with page.expect_request(history) as first:
        page.click("#spark-module_a-force")
    assert "every=1&" in first.value.url  # the last 10 min in 600 buckets
    page.wait_for_function("Plots.detail().loaded === 1 && Plots.detail().plot.data[0].length >= 1")
    for label, every, loaded in (("1 h", "every=6&", 2), ("1 day", "every=144&", 3)):
        with page.expect_request(history) as fetched:
            page.click(f"#plot-dialog button:text('{label}')")
        assert every in fetched.value.url
        page.wait_for_function(f"Plots.detail().loaded === {loaded}")  # drawn: a drag now selects on this plot
    box = page.locator("#plot-dialog .u-over").bounding_box()
    assert box is not None
    with page.expect_request(history) as zoomed:
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 50)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + 50, steps=5)
        page.mouse.up()
    since, until = (float(re.search(rf"{k}=([\d.]+)", zoomed.value.url).group(1)) for k in ("since", "until"))  # type: ignore[union-attr]
    assert 0.25 * 86400 < until - since < 0.35 * 86400  # the part of the day dragged across, in finer buckets
    page.wait_for_function("Plots.detail().seconds === null")  # a fixed range: live values no longer slide it
    assert len(requested) == 5


def test_live_values_extend_the_open_plot(url: str, page: Page) -> None:
    page.goto(url + "/")
    page.wait_for_selector("#spark-setpoint-value")
    page.click("#spark-setpoint-value")
    page.wait_for_function("Plots.detail()?.loaded === 1")  # the first fetch replaces the data: wait for it
    before = page.evaluate("Plots.detail().plot.data[0].length")
    httpx.put(f"{url}/setpoint/value", json={"value": 77.0})
    page.wait_for_function(f"Plots.detail().plot.data[0].length === {before + 1}")
    assert page.evaluate("Plots.detail().plot.data[1].at(-1)") == 77.0


def test_an_array_attribute_is_a_line_chart_not_text(url: str, page: Page) -> None:
    page.goto(url + "/")
    page.wait_for_function("Plots.arrays['module_a/trace']?.data[1]?.length > 0")
    expected = httpx.get(f"{url}/module_a/trace").json()["value"]
    drawn = page.evaluate("Array.from(Plots.arrays['module_a/trace'].data[1])")
    assert drawn == expected and len(drawn) == 100_000
    assert page.evaluate("Array.from(Plots.arrays['module_a/trace'].data[0].slice(0, 3))") == [0, 1, 2]
    row = page.locator("#module-module_a tr[data-attribute=trace]")
    assert row.locator("canvas").count() >= 1 and len(row.inner_text()) < 200  # drawn, not printed
