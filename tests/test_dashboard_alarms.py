"""The dashboard in Chromium colours an attribute in alarm, says the limit crossed and lists it in the alarm banner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import Page

from tests.browser import page_without_errors
from tests.processes import running_stack, write_config


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[tuple[str, str]]:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True,
                                                                 "poll": {"temperature": 0.1}}},
                          alarms={"module_a.temperature": {"high": 35, "hihi": 40, "hysteresis": 0.5}})
    port = yaml.safe_load(config.read_text())["modules"]["module_a"]["port"]
    with running_stack(config, tmp_path) as (_, _, url):
        yield url, f"http://127.0.0.1:{port}/sim/temperature"


def background(page: Page, selector: str) -> str:
    return str(page.eval_on_selector(selector, "node => getComputedStyle(node).backgroundColor"))


def test_an_attribute_in_alarm_is_coloured_with_its_limit_and_listed_in_the_banner_until_ok(
        stack: tuple[str, str]) -> None:
    url, temperature = stack
    value, note, banner = "#value-module_a-temperature", "#alarm-module_a-temperature", "#alarm-banner"
    with page_without_errors() as page:  # GET /interlocks answers 404 here: no interlocks, no error
        page.goto(url + "/")
        page.wait_for_selector(f"{value}:not(.stale)")
        plain = background(page, value)
        assert page.locator(banner).is_hidden()
        httpx.put(temperature, json={"value": 36})
        page.wait_for_selector(f'{value}[data-severity="minor"]')
        assert page.locator(note).inner_text() == "MINOR: at or above high 35 degC"
        assert page.locator(banner).is_visible()
        assert page.locator(f"{banner} li").inner_text() == "module_a.temperature 36 degC MINOR: at or above high 35 degC"
        minor = background(page, value)
        httpx.put(temperature, json={"value": 41})
        page.wait_for_selector(f'{value}[data-severity="major"]')
        assert page.locator(value).get_attribute("title") == "MAJOR: at or above hihi 40 degC"
        major = background(page, value)
        assert len({plain, minor, major}) == 3, (plain, minor, major)
        httpx.put(temperature, json={"fail": True})
        page.wait_for_selector(f'{value}[data-severity="invalid"]')
        assert page.locator(note).inner_text() == "INVALID: read failed"
        httpx.put(temperature, json={"value": 20})
        httpx.put(temperature, json={"fail": False})
        page.wait_for_selector(f"{value}:not([data-severity])")
        page.wait_for_selector(banner, state="hidden")
        assert page.locator(note).is_hidden() and background(page, value) == plain
        httpx.put(temperature, json={"value": 37})  # a page opened now shows the alarm at once (GET /alarms)
        page.wait_for_selector(f'{value}[data-severity="minor"]')
        page.reload()
        page.wait_for_selector(f'{value}[data-severity="minor"]')
        assert page.locator(banner).is_visible()


def test_latched_interlocks_show_with_acknowledge_and_a_safe_state_on_its_card(stack: tuple[str, str]) -> None:
    # The interlocks' routes and /health's safe_state are another part's (issue 21): answered here as their
    # contract says, by the browser's own routing, to drive this page's side of them.
    import orjson
    from playwright.sync_api import Route

    url, _ = stack
    latched = {"supply_hot": {"kind": "trip", "condition": "module_a.temperature > 40", "state": "latched",
                              "since": 1764151234.5, "values": {"module_a.temperature": 41.0},
                              "acknowledged_by": None}}
    acks: list[str] = []

    def interlocks(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=orjson.dumps({"interlocks": latched}))

    def ack(route: Route) -> None:
        acks.append(route.request.method)
        if len(acks) == 1:
            route.fulfill(status=409, content_type="application/json",
                          body=orjson.dumps({"error": "interlocked", "message": "supply_hot: the condition holds"}))
            return
        latched["supply_hot"]["state"] = "ok"
        route.fulfill(status=200, content_type="application/json", body=b"{}")

    def health(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        body["modules"]["module_a"]["safe_state"] = {"applied_at": 1764151240.0, "reason": "trip supply_hot"}
        route.fulfill(response=answer, body=orjson.dumps(body))

    with page_without_errors() as page:
        page.route("**/interlocks", interlocks)
        page.route("**/interlocks/supply_hot/ack", ack)
        page.route("**/health", health)
        page.goto(url + "/")
        item = page.locator('#alarm-banner li[data-interlock="supply_hot"]')
        item.wait_for()
        assert "interlock supply_hot latched since" in item.inner_text()
        assert "module_a.temperature > 40" in item.inner_text()
        page.wait_for_selector("#safe-state-module_a")
        assert "trip supply_hot" in page.locator("#safe-state-module_a").inner_text()
        item.get_by_role("button", name="acknowledge supply_hot").click()
        page.wait_for_selector('#alarm-banner li[data-interlock="supply_hot"] .field-error')
        assert "the condition holds" in item.inner_text()  # refused: the message shows, the interlock stays
        item.get_by_role("button", name="acknowledge supply_hot").click()
        page.wait_for_selector("#alarm-banner", state="hidden")
        assert acks == ["POST", "POST"]
