"""The dashboard in Chromium subscribes on /ws to the attributes on screen, and shows them live at about 10 a second."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Page, WebSocket

from tests.browser import page_without_errors
from tests.processes import running_stack, write_config

# Ten modules of twelve rows: the page is several screens long, so the last module starts off screen.
MODULES = {f"gauges{i}": {"class": "bench.fanout_gauges.Gauges", "poll": {"count": 0.01}} for i in range(10)}


@pytest.fixture()
def url(tmp_path: Path) -> Iterator[str]:
    config = write_config(tmp_path / "config.yml", MODULES)
    with running_stack(config, tmp_path) as (_, _, url):
        yield url


def subscribed_to(sent: list[dict[str, Any]], name: str) -> bool:
    return any(name in message.get("subscribe", []) for message in sent)


def pump_until(page: Page, check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for `check` while Playwright delivers the page's events (a plain sleep would hold them back)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        page.wait_for_timeout(50)


def test_the_dashboard_subscribes_to_what_it_shows_and_follows_scrolling(url: str) -> None:
    sent: list[dict[str, Any]] = []
    counts: list[tuple[float, str]] = []  # (arrival, module) of each count received

    def received(payload: str | bytes) -> None:
        event = orjson.loads(payload)
        if event.get("attribute") == "count":
            counts.append((time.monotonic(), event["module"]))

    with page_without_errors(height=800) as page:
        def listen(ws: WebSocket) -> None:
            ws.on("framesent", lambda payload: sent.append(orjson.loads(payload)))
            ws.on("framereceived", received)

        page.on("websocket", listen)
        page.goto(url + "/")
        pump_until(page, lambda: subscribed_to(sent, "gauges0.count"), 10, "subscription")
        subscription = sent[-1]["subscribe"]
        assert isinstance(subscription, list) and "gauges0.g0" in subscription
        assert not any(name.startswith("gauges9.") for name in subscription)  # off screen: not sent

        shown: list[str | None] = []  # the value on screen changes live, though only about 10 a second arrive of a value polled at 100
        deadline = time.monotonic() + 5
        while len(set(shown)) < 5 and time.monotonic() < deadline:
            shown.append(page.text_content("#value-gauges0-count"))
            page.wait_for_timeout(100)
        assert len(set(shown)) >= 5, shown
        start = time.monotonic()
        page.wait_for_timeout(2000)
        arrived = [t for t, module in counts if module == "gauges0" and start <= t <= start + 2]
        assert 10 <= len(arrived) <= 25, len(arrived)

        page.locator("#module-gauges9").scroll_into_view_if_needed()
        pump_until(page, lambda: subscribed_to(sent, "gauges9.count"), 10, "subscription of gauges9")
        first = page.text_content("#value-gauges9-count")
        page.wait_for_function(f"document.querySelector('#value-gauges9-count').textContent !== '{first}'",
                               timeout=2000)  # live, not the 5 s refresh
