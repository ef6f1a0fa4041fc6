"""The simulated camera: frames at most frame_rate times a second, brighter with a longer exposure, and shown on
the dashboard as an image (Chromium via Playwright) that is the frame, averaged down, and refreshed on demand."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page

from camera import Camera
from labbridge.core.config import ModuleSettings
from tests.browser import page_without_errors
from tests.processes import running_stack, write_config

NPY = {"Accept": "application/x-npy"}


def camera() -> Camera:
    return Camera("camera", ModuleSettings.model_validate({"class": "camera.Camera"}))


def test_a_read_sooner_than_one_frame_period_gets_the_same_frame_and_a_later_one_a_new_frame() -> None:
    async def scenario() -> list[Any]:
        cam = camera()
        await cam.put("frame_rate", 2.0)  # a frame every 0.5 s at most
        first = (await cam.get("frame", raw=True))["value"]
        again = (await cam.get("frame", raw=True))["value"]
        count = (await cam.get("frame_count"))["value"]
        await asyncio.sleep(0.5)
        later = (await cam.get("frame", raw=True))["value"]
        return [first, again, count, later, (await cam.get("frame_count"))["value"]]

    first, again, count, later, later_count = asyncio.run(scenario())
    assert first.dtype == np.uint16 and first.shape == (2048, 2048)
    assert again is first and count == 1
    assert later_count == 2 and not np.array_equal(later, first)


def test_acquisition_is_limited_to_frame_rate_however_fast_it_is_read() -> None:
    async def scenario() -> tuple[int, float]:
        cam = camera()
        await cam.put("frame_rate", 20.0)
        await cam.put("exposure", 0.01)
        start, reads = time.monotonic(), 0
        while time.monotonic() - start < 0.5 or reads < 3:  # a loaded machine may make one frame take 0.5 s
            await cam.get("frame")
            reads += 1
        return (await cam.get("frame_count"))["value"], time.monotonic() - start

    frames, seconds = asyncio.run(scenario())
    assert 2 <= frames <= 20 * seconds + 1


def test_a_longer_exposure_gives_a_brighter_frame_up_to_saturation() -> None:
    async def mean_at(exposure: float) -> tuple[float, int]:
        cam = camera()
        await cam.put("exposure", exposure)
        frame = (await cam.get("frame", raw=True))["value"]
        return float(frame.mean()), int(frame.max())

    (dim, _), (bright, _), (_, saturated) = (asyncio.run(mean_at(e)) for e in (1.0, 10.0, 1000.0))
    assert dim < bright / 3
    assert saturated == 65535


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("camera")
    config = write_config(tmp / "config.yml", {"camera": {"class": "camera.Camera"}})
    with running_stack(config, tmp) as (_, _, base):
        yield base


@pytest.fixture()
def page(url: str) -> Iterator[Page]:
    with page_without_errors() as page:
        yield page


def shown(frame: np.ndarray[Any, Any], block: int) -> np.ndarray[Any, Any]:
    """The grey levels the dashboard draws: block means stretched from the darkest to the brightest block."""
    rows, cols = frame.shape
    means = frame.reshape(rows // block, block, cols // block, block).mean(axis=(1, 3))
    low, high = means.min(), means.max()
    return np.floor((means - low) * 255 / (high - low) + 0.5).astype(np.uint8)


def test_the_dashboard_draws_a_frame_as_the_image_of_its_numbers(url: str, page: Page) -> None:
    httpx.put(f"{url}/camera/frame_rate", json={"value": 0.1}).raise_for_status()  # one frame for 10 s
    frame = np.load(io.BytesIO(httpx.get(f"{url}/camera/frame", headers=NPY, timeout=30).content))
    requests: list[dict[str, str]] = []
    page.on("request", lambda r: requests.append(r.headers) if r.url.endswith("/camera/frame") else None)
    page.goto(url + "/")
    page.wait_for_function("Images.views['camera/frame']?.loaded === 1")
    assert requests and requests[0]["accept"] == "application/x-npy"  # the numbers, not 20 MB of JSON
    view = page.evaluate("(({shape, dtype, step, canvas}) => ({shape, dtype, step, width: canvas.width, "
                         "height: canvas.height}))(Images.views['camera/frame'])")
    assert view == {"shape": [2048, 2048], "dtype": "<u2", "step": 4, "width": 512, "height": 512}
    drawn = page.evaluate("""() => {
        const canvas = Images.views['camera/frame'].canvas;
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        return Array.from(pixels.filter((_, i) => i % 4 === 0));
    }""")
    assert np.array_equal(np.array(drawn, dtype=np.uint8).reshape(512, 512), shown(frame, 4))
    status = page.locator("#image-camera-frame small").inner_text()
    assert status.startswith("2048 × 2048 uint16, shown in 4 × 4 blocks") and status.endswith(" counts")


def test_refresh_reads_the_frame_again_and_draws_the_new_one(url: str, page: Page) -> None:
    page.goto(url + "/")
    page.wait_for_function("Images.views['camera/frame']?.loaded === 1")
    before = page.evaluate("Array.from(Images.views['camera/frame'].grey.slice(0, 4096))")
    httpx.put(f"{url}/camera/frame_rate", json={"value": 50}).raise_for_status()  # a new frame on the next read
    httpx.put(f"{url}/camera/exposure", json={"value": 30}).raise_for_status()
    with page.expect_request(lambda r: r.url.endswith("/camera/frame")):
        page.click("#image-camera-frame button")
    page.wait_for_function("Images.views['camera/frame'].loaded === 2")
    assert page.evaluate("Array.from(Images.views['camera/frame'].grey.slice(0, 4096))") != before
