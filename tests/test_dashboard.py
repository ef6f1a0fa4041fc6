"""The dashboard in a real browser (Debian's Chromium via Playwright), and the live-values and docs endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import websockets

from tests.browser import chromium
from tests.processes import Process, start_backend, start_frontend, wait_until, write_config

MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": 0.3}},
           "setpoint": {"class": "setpoint.Setpoint"}}


@dataclass
class Lab:
    config: Path
    tmp: Path
    backend: Process
    url: str


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[Lab]:
    config = write_config(tmp_path / "config.yml", MODULES, frontend={"connect_timeout": 0.3})
    lab = Lab(config, tmp_path, start_backend(config, tmp_path / "backend.log"), "")
    frontend, lab.url = start_frontend(config, tmp_path / "frontend.log")
    try:
        yield lab
    finally:
        frontend.stop()
        lab.backend.stop()


def test_browser_reads_sets_and_sees_errors_and_recovery(lab: Lab) -> None:
    httpx.put(f"{lab.url}/module_a/position", json={"value": 12.5})
    with chromium() as browser:
        page = browser.new_page()
        page.goto(lab.url + "/")
        position = page.locator("#value-module_a-position")
        page.wait_for_selector("#value-module_a-position:not(.stale)")
        assert position.inner_text() == "12.5"
        assert "0 to 100 mm" in page.locator("#module-module_a tr[data-attribute=position]").inner_text()

        page.fill("#input-module_a-position", "64")
        page.click("form[aria-label='set position'] button")
        page.wait_for_function("document.querySelector('#value-module_a-position').textContent === '64'")
        assert httpx.get(f"{lab.url}/module_a/position").json()["value"] == 64.0

        page.fill("#input-module_a-position", "150")
        page.click("form[aria-label='set position'] button")
        error = page.locator("#error-module_a-position")
        error.wait_for()
        page.wait_for_function("document.querySelector('#error-module_a-position').textContent.includes('0 to 100 mm')")
        assert position.inner_text() == "64"  # the refused value never showed up

        lab.backend.stop()
        page.wait_for_selector("#banner:not([hidden])", timeout=10_000)
        assert "not reachable" in page.locator("#banner").inner_text()
        assert page.locator("#status").inner_text() == "backend down"

        lab.backend = start_backend(lab.config, lab.tmp / "backend2.log")
        page.wait_for_selector("#banner[hidden]", state="attached", timeout=10_000)
        assert page.locator("#status").inner_text() == "backend connected"


def test_live_values_arrive_without_reloading(lab: Lab) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(lab.url + "/")
        page.wait_for_selector("#value-setpoint-value:not(.stale)")
        httpx.put(f"{lab.url}/setpoint/value", json={"value": 77})  # another client writes
        page.wait_for_function("document.querySelector('#value-setpoint-value').textContent === '77'", timeout=3000)


def test_websocket_catches_up_then_streams(lab: Lab) -> None:
    httpx.put(f"{lab.url}/setpoint/value", json={"value": 5})
    ws_url = lab.url.replace("http://", "ws://") + "/ws"

    async def scenario() -> list[dict[str, object]]:
        async with websockets.connect(ws_url) as ws:
            first = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            async with httpx.AsyncClient() as http:
                await http.put(f"{lab.url}/setpoint/label", json={"value": "run 7"})
            events = [first]
            while not {"label", "force"} <= {e.get("attribute") for e in events}:
                events.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))
            return events

    events = asyncio.run(scenario())
    assert any(e["module"] == "setpoint" and e["attribute"] == "value" and e["value"] == 5.0 for e in events)
    label = next(e for e in events if e["attribute"] == "label")
    assert label == {"module": "setpoint", "attribute": "label", "value": "run 7", "unit": None, "time": label["time"]}
    assert isinstance(label["time"], float) and abs(time.time() - label["time"]) < 60  # when it was written
    assert any(e["attribute"] == "force" for e in events)  # polled values stream too


def test_api_clients_still_get_json_at_the_root(lab: Lab) -> None:
    as_json = httpx.get(lab.url + "/", headers={"Accept": "application/json"})
    assert as_json.headers["content-type"] == "application/json" and "module_a" in as_json.json()["modules"]
    as_html = httpx.get(lab.url + "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert as_html.headers["content-type"].startswith("text/html") and "<main" in as_html.text


def test_module_descriptions_come_from_the_declarations(lab: Lab) -> None:
    module_a = httpx.get(lab.url + "/module_a").json()
    assert module_a["class"] == "module_a.ModuleA" and module_a["doc"].startswith("A linear actuator")
    assert module_a["attributes"]["position"] | {"url": None} == {
        "type": "float", "unit": "mm", "writable": True, "doc": "Carriage position from the home switch.",
        "min": 0, "max": 100, "url": None}
    assert module_a["attributes"]["force"]["writable"] is False
    assert set(httpx.get(lab.url + "/modules").json()["modules"]) == {"module_a", "setpoint"}
    assert httpx.get(lab.url + "/nope").status_code == 404


def test_openapi_lists_each_attribute_and_survives_the_backend_being_down(lab: Lab) -> None:
    schema = httpx.get(lab.url + "/openapi.json").json()
    put = schema["paths"]["/module_a/position"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["properties"]["value"] == {
        "type": "number", "minimum": 0, "maximum": 100}
    assert "[mm]" in put["summary"] and "Limits: 0 to 100 [mm]" in put["description"]
    assert "put" not in schema["paths"]["/module_a/force"]
    lab.backend.stop()
    down = httpx.get(lab.url + "/openapi.json")
    assert down.status_code == 200 and "/module_a/position" not in down.json()["paths"]
    assert "/{module}/{attribute}" in down.json()["paths"]


def test_docs_pages_load_their_assets_from_the_app(lab: Lab) -> None:
    for page, asset in (("/docs", "/docs-static/swagger-ui-bundle.js"), ("/redoc", "/docs-static/redoc.standalone.js")):
        html = httpx.get(lab.url + page).text
        assert asset in html and "cdn" not in html.lower() and "googleapis" not in html
        assert httpx.get(lab.url + asset).status_code == 200
    with chromium() as browser:  # and both render, with every request they send staying on this host
        for path, rendered in (("/docs", "[data-path='/module_a/position']"),
                               ("/redoc", "[data-section-id^='tag/module_a']")):
            page = browser.new_page()
            sent: list[str] = []  # what reaches the network (a request the page's policy blocks never does)
            page.route("**/*", lambda route: (sent.append(route.request.url), route.continue_()))
            page.goto(lab.url + path)
            page.wait_for_selector(rendered, state="attached", timeout=15_000)
            page.wait_for_load_state("networkidle")
            assert sent and [url for url in sent if not url.startswith(lab.url)] == [], path  # ReDoc's logo
            page.close()


@pytest.mark.parametrize("path", ["/health", "/", "/modules", "/docs", "/redoc", "/openapi.json", "/metrics",
                                  "/invocations", "/static/app.js"])
def test_head_on_a_fixed_path_answers_as_get_without_the_body(lab: Lab, path: str) -> None:
    got, head = httpx.get(lab.url + path), httpx.head(lab.url + path)
    assert head.status_code == got.status_code == 200, head.text
    assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]


def test_a_frontend_started_after_a_write_shows_the_value_written(tmp_path: Path) -> None:
    """The experiment process hands a frontend that subscribes late (restarted, or slower to start than the
    first write) the latest value of each attribute: its dashboards do not wait for the next change."""
    config = write_config(tmp_path / "config.yml", {"setpoint": {"class": "setpoint.Setpoint"}})
    backend = start_backend(config, tmp_path / "backend.log")
    try:
        first, url = start_frontend(config, tmp_path / "frontend.log")
        assert httpx.put(f"{url}/setpoint/label", json={"value": "run 12"}).status_code == 200
        first.stop()
        second, url = start_frontend(config, tmp_path / "frontend2.log")  # subscribes after the write
        try:
            async def first_events() -> list[dict[str, object]]:
                async with websockets.connect(url.replace("http://", "ws://") + "/ws") as ws:
                    events = [orjson.loads(await asyncio.wait_for(ws.recv(), 10))]
                    while not any(e.get("attribute") == "label" for e in events):
                        events.append(orjson.loads(await asyncio.wait_for(ws.recv(), 10)))
                    return events

            events = asyncio.run(first_events())
            assert any(e.get("attribute") == "label" and e["value"] == "run 12" for e in events)
        finally:
            second.stop()
    finally:
        backend.stop()
