"""The dashboard in Chromium shows values as they are, sends only values the user chose, and fits a phone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, ViewportSize

from tests.browser import chromium
from tests.processes import running_stack, write_config

MODULES: dict[str, dict[str, Any]] = {"module_a": {"class": "module_a.ModuleA", "simulate": True},
           "setpoint": {"class": "setpoint.Setpoint"},
           "psu": {"class": "psu.PowerSupply", "simulate": True},
           "relay": {"class": "tests.fixture_modules.Relay"}}
PHONE: ViewportSize = {"width": 390, "height": 844}  # an iPhone 12 to 14, in CSS pixels


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("fields")
    with running_stack(write_config(tmp / "config.yml", MODULES), tmp) as (_, _, url):
        yield url


def shown(page: Page, module: str, attribute: str) -> str:
    selector = f"#value-{module}-{attribute}"
    page.wait_for_selector(f"{selector}:not(.stale)")
    return page.locator(selector).inner_text()


@pytest.mark.parametrize(("written", "seen"), [
    (1795724976.62, "1795724976.62"),  # a Unix time: toPrecision(6) showed 1795720000
    (123456.789, "123456.789"),
    (0.000123456789, "0.000123456789"),
    (0.30000000000000004, "0.3"),  # a float's last-place noise is not a digit of the value
    (-2.5e-9, "-2.5e-9"),
])
def test_numbers_show_every_digit_they_have(url: str, written: float, seen: str) -> None:
    assert httpx.put(f"{url}/setpoint/value", json={"value": written}).status_code == 200
    changed_at = httpx.get(f"{url}/setpoint/changed_at").json()["value"]
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url + "/")
        assert shown(page, "setpoint", "value") == seen
        shown(page, "setpoint", "changed_at")  # a time: its raw value, every digit of it, is its tooltip
        title = page.locator("#value-setpoint-changed_at").get_attribute("title")
        assert title is not None and float(title) == pytest.approx(changed_at, abs=1e-4)


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/St_Johns"])  # half-hour offsets, east and west
def test_a_time_shows_as_a_local_date_and_time_with_the_raw_value_as_its_tooltip(url: str, zone: str) -> None:
    assert httpx.put(f"{url}/setpoint/label", json={"value": "a write sets changed_at"}).status_code == 200
    changed_at = httpx.get(f"{url}/setpoint/changed_at").json()["value"]
    local = datetime.fromtimestamp(changed_at, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    with chromium() as browser:
        page = browser.new_context(timezone_id=zone).new_page()
        page.goto(url + "/")
        assert shown(page, "setpoint", "changed_at") == local  # was the raw Unix seconds
        assert page.locator("#value-setpoint-changed_at").get_attribute("title") == f"{changed_at:.15g}"


LIMITS = {"#hint-arg-setpoint-ramp-rate": "0.001 to 1000000000",  # the placeholder showed "0.001 to 100"
          "#hint-setpoint-value": "-1000000000000 to 1000000000000",
          "#hint-psu-voltage": "0 to 30 V"}


@pytest.mark.parametrize("viewport", [ViewportSize(width=1280, height=900), PHONE], ids=["desktop", "phone"])
def test_limits_show_in_full_under_every_field(url: str, viewport: ViewportSize) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport=viewport)
        page.goto(url + "/")
        page.wait_for_selector("#action-setpoint-ramp")
        for selector, text in LIMITS.items():
            assert page.locator(selector).inner_text() == text
        # every hint (attribute fields and action parameters alike) is neither clipped nor outside its card
        clipped = page.evaluate("""() => Array.from(document.querySelectorAll('.hint')).filter(h => {
            const box = h.getBoundingClientRect(), card = h.closest('.module').getBoundingClientRect();
            return h.scrollWidth > h.clientWidth || box.width === 0 || box.right > card.right + 0.5;
        }).map(h => h.id)""")
        assert page.locator(".hint").count() >= len(LIMITS) and clipped == []
        # each field names its hint, and placeholders are short enough to fit (no limits in them)
        for selector in LIMITS:
            field = page.locator(f"[aria-describedby='{selector[1:]}']")
            assert field.count() == 1
            assert field.evaluate("e => !e.placeholder || e.scrollWidth <= e.clientWidth")
        assert set(page.evaluate("Array.from(document.querySelectorAll('input[placeholder]'), e => e.placeholder)")) \
            <= {"(default)", "bearer token"}


def test_a_bool_is_set_with_a_true_false_choice_and_nothing_is_sent_unchosen(url: str) -> None:
    with chromium() as browser:
        page = browser.new_page()
        puts: list[str] = []
        page.on("request", lambda r: puts.append(r.post_data or "") if r.method == "PUT" else None)
        page.goto(url + "/")
        field = page.locator("#input-psu-output")
        assert field.evaluate("e => e.tagName") == "SELECT"  # not a free-text box where "True" meant false
        assert field.evaluate("e => Array.from(e.options, o => o.value)") == ["", "true", "false"]
        assert field.input_value() == ""  # nothing chosen yet

        page.click("form[aria-label='set output'] button")
        page.wait_for_function("document.querySelector('#error-psu-output').textContent !== ''")
        assert page.locator("#error-psu-output").inner_text() == "choose a value first"
        assert puts == []  # nothing was sent

        for choice, value in (("true", True), ("false", False), ("true", True)):
            field.select_option(choice)
            page.click("form[aria-label='set output'] button")
            page.wait_for_function(f"document.querySelector('#value-psu-output').textContent === '{choice}'")
            assert httpx.get(f"{url}/psu/output").json()["value"] is value
            assert field.input_value() == ""  # back to nothing chosen: the next Set sends nothing by itself
        assert puts == ['{"value":true}', '{"value":false}', '{"value":true}']


def test_an_action_s_required_bool_is_chosen_too(url: str) -> None:
    with chromium() as browser:
        page = browser.new_page()
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.post_data or "") if r.method == "POST" else None)
        page.goto(url + "/")
        field = page.locator("#arg-relay-switch-closed")
        assert field.evaluate("e => Array.from(e.options, o => o.value)") == ["", "true", "false"]
        page.click("#run-relay-switch")
        page.wait_for_selector("#status-relay-switch[data-status=refused]")
        assert page.locator("#status-relay-switch").inner_text() == "enter closed" and posts == []
        field.select_option("false")
        page.click("#run-relay-switch")
        page.wait_for_selector("#status-relay-switch[data-status=completed]")
        assert posts == ['{"closed":false}']


def test_the_dashboard_fits_a_phone_screen(url: str) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport=PHONE)
        page.goto(url + "/")
        shown(page, "module_a", "position")
        page.wait_for_selector("#array-module_a-trace canvas")
        page.wait_for_function("document.querySelector('#array-module_a-trace small')?.textContent.includes('samples')")
        overflowing = page.evaluate("""width => Array.from(document.querySelectorAll('body *'))
            .map(e => [e, e.getBoundingClientRect()])
            .filter(([e, r]) => r.width > 0 && (r.right > width + 0.5 || r.left < -0.5))
            .map(([e, r]) => `${e.tagName}#${e.id}.${e.className} ${Math.round(r.left)}..${Math.round(r.right)}`)""",
                                    PHONE["width"])
        assert overflowing == []
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        buttons = page.locator("form[aria-label^='set '] button")
        assert buttons.count() == 7  # every Set button (module_a 2, setpoint 2, psu 3), on the screen
        for i in range(buttons.count()):
            box = buttons.nth(i).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
