"""Regenerate docs/dashboard.png: the shipped config.yml's modules, in headless Chromium.

    python docs/screenshot.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from tests.browser import chromium  # noqa: E402
from tests.processes import start_backend, start_frontend, write_config  # noqa: E402


def main() -> None:
    shipped = yaml.safe_load((ROOT / "config.yml").read_text())
    modules = {name: {k: v for k, v in spec.items() if k not in ("ip", "port")} for name, spec in shipped["modules"].items()}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        config = write_config(tmp / "config.yml", modules, history=shipped["history"])
        backend = start_backend(config, tmp / "backend.log")
        frontend, url = start_frontend(config, tmp / "frontend.log")
        try:
            httpx.put(f"{url}/module_a/position", json={"value": 42.5})
            httpx.put(f"{url}/setpoint/label", json={"value": "oven target"})
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1200, "height": 720})
                page.goto(url + "/")
                page.wait_for_selector("#value-module_a-position:not(.stale)")
                # a few polls drawn, so the sparklines show a curve
                page.wait_for_function("Plots.sparklines['module_a/force'].plot.data[0].length >= 8", timeout=30_000)
                page.wait_for_function("Plots.arrays['module_a/trace'].data[1].length > 0")
                page.fill("#input-module_a-position", "150")
                page.click("form[aria-label='set position'] button")
                page.wait_for_function("document.querySelector('#error-module_a-position').textContent !== ''")
                page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)
        finally:
            frontend.stop()
            backend.stop()


if __name__ == "__main__":
    main()
