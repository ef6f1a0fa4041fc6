"""The manual: built offline (nothing from a CDN), served by the frontend at /guide with a policy its scripts pass.

The site is built once per session into site/, as a user builds it
(`mkdocs build`), and the real frontend (`python main.py`) serves it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import ROOT, start_frontend, write_config

SITE = ROOT / "site"
# Anything a page would fetch from elsewhere: scripts, stylesheets, fonts, preloads, CSS imports and urls.
REMOTE_FETCH = [
    re.compile(r"<script[^>]*\bsrc=[\"']?(?:https?:)?//", re.I),
    re.compile(r"<link[^>]*\brel=[\"']?(?:stylesheet|preload|preconnect|modulepreload|icon)[^>]*\bhref=[\"']?(?:https?:)?//",
               re.I),
    re.compile(r"<link[^>]*\bhref=[\"']?(?:https?:)?//[^>]*\brel=[\"']?(?:stylesheet|preload|preconnect|modulepreload)",
               re.I),
    re.compile(r"@import\s+(?:url\()?[\"']?(?:https?:)?//", re.I),
    re.compile(r"url\([\"']?(?:https?:)?//", re.I),
    re.compile(r"fonts\.(?:googleapis|gstatic)\.com", re.I),
]


@pytest.fixture(scope="session")
def site() -> Path:
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"], cwd=ROOT, check=True,
                   timeout=300, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(ROOT)})
    assert (SITE / "index.html").is_file()
    return SITE


@pytest.fixture(scope="module")
def frontend(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("guide")
    config = write_config(tmp / "config.yml", {"setpoint": {"class": "setpoint.Setpoint"}})
    proc, url = start_frontend(config, tmp / "frontend.log")  # no experiment process: the manual needs none
    try:
        yield url
    finally:
        proc.stop()


def test_the_built_site_fetches_nothing_from_elsewhere(site: Path) -> None:
    files = [*site.rglob("*.html"), *site.rglob("*.css"), *site.rglob("*.js")]
    assert len([f for f in files if f.suffix == ".html"]) >= 25
    for file in files:
        text = file.read_text(encoding="utf-8", errors="replace")
        if file.suffix == ".js":  # scripts may name URLs in strings; only fonts fetched by them would matter
            assert not REMOTE_FETCH[-1].search(text), file
            continue
        for pattern in REMOTE_FETCH:
            assert not pattern.search(text), f"{file.relative_to(site)} fetches from elsewhere: {pattern.pattern}"


def test_the_check_finds_a_remote_script_font_or_stylesheet() -> None:
    for remote in ('<script src="https://cdn.example.org/x.js"></script>',
                   '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">',
                   '<link href="//cdn.example.org/a.css" rel="stylesheet">',
                   "@font-face { src: url(https://example.org/f.woff2) }"):
        assert any(p.search(remote) for p in REMOTE_FETCH), remote
    assert not any(p.search('<script src="../assets/javascripts/bundle.js"></script>') for p in REMOTE_FETCH)


def test_the_frontend_serves_the_manual_at_guide_with_its_policy(frontend: str) -> None:
    index = httpx.get(f"{frontend}/guide/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "<title>Instrument bridge</title>" in index.text
    policy = index.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy and "unsafe-inline" not in policy.split("script-src", 1)[1].split(
        ";", 1)[0] and "frame-ancestors 'none'" in policy
    assert index.headers["x-frame-options"] == "DENY"
    page = httpx.get(f"{frontend}/guide/tutorials/demo/")
    assert page.status_code == 200 and "Two terminals" in page.text
    assert httpx.get(f"{frontend}/guide/reference/openapi.json").json()["paths"]
    bare = httpx.get(f"{frontend}/guide")
    assert bare.status_code == 308 and bare.headers["location"] == "/guide/"
    missing = httpx.get(f"{frontend}/guide/no-such-page/")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert "no-such-page" in missing.json()["message"]


def test_the_manuals_scripts_run_under_its_policy_in_a_browser(frontend: str) -> None:
    from tests.browser import chromium

    with chromium() as browser:
        page = browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
        page.goto(f"{frontend}/guide/tutorials/demo/")
        # The inline script (allowed by its hash) and Material's bundle (from 'self') both ran.
        page.wait_for_function("() => typeof window.__md_scope !== 'undefined' && typeof window.document$ !== 'undefined'")
        # Content tabs are switched by the bundle: the Windows tab shows its PowerShell.
        page.click("text=Windows (PowerShell)")
        page.wait_for_selector("text=Invoke-RestMethod", state="visible")
        page.close()
    assert problems == [], problems


def test_guide_is_a_reserved_module_name(tmp_path: Path) -> None:
    from labbridge.core.config import ConfigError, load_config

    config = write_config(tmp_path / "config.yml", {"guide": {"class": "setpoint.Setpoint"}})
    with pytest.raises(ConfigError, match="guide"):
        load_config(config)


def test_guide_before_the_manual_is_built_answers_404_saying_how_to_build_it(tmp_path: Path) -> None:
    """A fresh clone has no site/: `/guide/` must say how to build it, not fail with a 500 (and a traceback in the
    log), and a manual built afterwards is served without a restart."""
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from labbridge.frontend import guide
    from labbridge.frontend.responses import add_error_handlers

    site = tmp_path / "site"
    app = FastAPI()
    app.mount(guide.PREFIX, guide.GuideFiles(directory=site, html=True, check_dir=False))
    add_error_handlers(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        missing = client.get("/guide/")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        assert "mkdocs build" in missing.json()["message"]
        site.mkdir()
        (site / "index.html").write_text("<title>Instrument bridge</title>")
        built = client.get("/guide/")
        assert built.status_code == 200 and "<title>Instrument bridge</title>" in built.text
