"""What a browser renders from the frontend stays out of other sites' frames, and works with storage blocked.

A page on another site framed the dashboard invisibly over a decoy, so one click
on the decoy started an action (clickjacking).  The pages and static files now
tell the browser never to frame them; the dashboard still works on its own,
even in a browser that blocks site storage (where app.js used to die).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.browser import CHROMIUM, FLAGS, chromium, missing_chromium
from tests.processes import Process, free_port, http_answers, running_stack, wait_until, write_config

MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True}, "setpoint": {"class": "setpoint.Setpoint"}}
# What the attack page does: the dashboard in a transparent frame over a decoy button.
ATTACK_PAGE = """<!doctype html><html><body style="margin:0">
<h1 style="position:absolute;top:0;left:0">Win a prize: click the button!</h1>
<iframe id="victim" src="{target}" style="position:absolute;top:0;left:0;width:1200px;height:1600px;opacity:0;border:0">
</iframe></body></html>"""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("pages")
    config = write_config(tmp / "config.yml", MODULES)
    with running_stack(config, tmp) as (_, _, url):
        yield url


@pytest.fixture()
def attack_site(tmp_path: Path, url: str) -> Iterator[str]:
    """Another origin (another port): a plain static web server holding the attack page."""
    (tmp_path / "site").mkdir()
    target = url.replace("127.0.0.1", "localhost") + "/"
    (tmp_path / "site" / "index.html").write_text(ATTACK_PAGE.format(target=target))
    port = free_port()
    server = Process([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                      "--directory", str(tmp_path / "site")], tmp_path / "site.log")
    site = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_answers(site + "/index.html"), 10, "attack site")
        yield site
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc", "/static/app.js", "/static/style.css",
                                  "/docs-static/swagger-ui.css"])
def test_pages_and_static_files_forbid_framing_and_sniffing(url: str, path: str) -> None:
    answer = httpx.get(url + path, headers={"Accept": "text/html"})
    assert answer.status_code == 200
    assert answer.headers["x-frame-options"] == "DENY"
    policy = [part.strip() for part in answer.headers["content-security-policy"].split(";")]
    # The docs pages also say what they may load (docs.py's DOCS_POLICY); framing is refused in every policy.
    assert policy[-1] == "frame-ancestors 'none'" and ("default-src 'self'" in policy) == (path in ("/docs", "/redoc"))
    assert answer.headers["x-content-type-options"] == "nosniff"


def _invocations(url: str) -> set[str]:
    return {i["id"] for i in httpx.get(f"{url}/invocations?module=module_a").json()["invocations"]}


def test_another_site_cannot_frame_the_dashboard(url: str, attack_site: str) -> None:
    before = _invocations(url)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 1600})
        page.goto(attack_site + "/index.html", wait_until="load")  # "load" waits for the frame too
        frame = page.frame_locator("#victim")
        wait_until(lambda: len(page.frames) == 2, 10, "the frame attached")
        framed = page.frames[1]
        # Chromium shows its own error page in a frame the answer forbids; the dashboard never loads there.
        assert not framed.url.startswith(url.replace("127.0.0.1", "localhost")), framed.url
        assert frame.locator("#run-module_a-home").count() == 0
        page.mouse.click(600, 400)  # the scientist clicks the decoy: nothing underneath acts
        # The dashboard on its own still works: values, and the button the attack aimed at.
        own = browser.new_page()
        own.goto(url + "/")
        own.wait_for_selector("#value-setpoint-value:not(.stale)")
        assert own.locator("#run-module_a-home").count() == 1
    assert _invocations(url) == before


def test_the_dashboard_works_when_the_browser_blocks_site_storage(url: str, tmp_path: Path) -> None:
    if (problem := missing_chromium()) is not None:
        pytest.fail(problem, pytrace=False)
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    # "Don't allow sites to save data": localStorage then throws on every use.
    (profile / "Default" / "Preferences").write_text(json.dumps(
        {"profile": {"default_content_setting_values": {"cookies": 2}}}))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, args=FLAGS,
                                                                headless=True)
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + "/")
            assert page.evaluate("() => { try { localStorage.length; return false } catch { return true } }"), \
                "this browser profile was meant to block storage"
            page.wait_for_selector("#value-setpoint-value:not(.stale)")
            page.fill("#input-setpoint-value", "21")
            page.click("form[aria-label='set value'] button")
            page.wait_for_function("document.querySelector('#value-setpoint-value').textContent === '21'")
            assert errors == []
        finally:
            context.close()
    assert httpx.get(f"{url}/setpoint/value").json()["value"] == 21.0
