"""Headless Chromium (Debian's package) driven by Playwright, for the dashboard tests and screenshots.

Without Chromium the browser tests fail (CI must run them, never skip them)
with one line saying what is missing and how to get it, which conftest.py also
prints in the session's header, before any test runs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this closed network refuses.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def missing_chromium() -> str | None:
    """The one line to show when there is no Chromium to drive, else None."""
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return None
    return (f"Chromium not found at {CHROMIUM}: the dashboard tests need it; install it (`apt-get install chromium` "
            "on Debian) or set CHROMIUM=/path/to/chrome")


@contextmanager
def chromium() -> Iterator[Browser]:
    if (problem := missing_chromium()) is not None:
        pytest.fail(problem, pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page_without_errors(width: int = 1280, height: int = 900) -> Iterator[Page]:
    """A page in a fresh Chromium that fails the test if any script on it threw."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": width, "height": height})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        assert errors == []
