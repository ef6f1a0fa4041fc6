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


@pytest.fixture()
def interlocked(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A lab whose supply goes to its safe state when the drive passes 40 degC (a trip that latches)."""
    modules = {"module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"temperature": 0.1}},
               "psu": {"class": "psu.PowerSupply", "simulate": True, "safe_state": {"output": False, "voltage": 0}}}
    trip = {"trips_when": "module_a.temperature > 40", "then": [{"safe_state": "psu"}], "within": 0.5}
    config = write_config(tmp_path / "config.yml", modules, interlocks={"supply_hot": trip})
    port = yaml.safe_load(config.read_text())["modules"]["module_a"]["port"]
    with running_stack(config, tmp_path) as (_, _, url):
        yield url, f"http://127.0.0.1:{port}/sim/temperature"


def test_a_latched_trip_shows_with_acknowledge_and_the_safe_state_on_its_card(interlocked: tuple[str, str]) -> None:
    url, temperature = interlocked
    item = '#alarm-banner li[data-interlock="supply_hot"]'
    with page_without_errors() as page:
        page.goto(url + "/")
        page.wait_for_selector("#value-module_a-temperature:not(.stale)")
        assert page.locator("#alarm-banner").is_hidden()
        httpx.put(temperature, json={"value": 41})
        page.wait_for_selector(f'{item}[data-state="tripped"]')
        assert "module_a.temperature > 40" in page.locator(item).inner_text()
        page.wait_for_selector("#safe-state-psu")
        assert "interlock supply_hot tripped" in page.locator("#safe-state-psu").inner_text()
        page.get_by_role("button", name="acknowledge supply_hot").click()  # still 41 degC: refused, it stays
        page.wait_for_selector(f"{item} .field-error")
        assert "its condition still holds" in page.locator(item).inner_text()
        httpx.put(temperature, json={"value": None})  # back to about 22.5 degC: latched until acknowledged
        page.wait_for_selector(f'{item}[data-state="latched"]')
        page.get_by_role("button", name="acknowledge supply_hot").click()
        page.wait_for_selector("#alarm-banner", state="hidden")
    assert httpx.get(url + "/interlocks").json()["interlocks"]["supply_hot"]["state"] == "ok"
