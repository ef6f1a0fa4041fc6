"""Camera: a simulated scientific camera, made with NumPy inside the experiment process.

It shows an in-process module handing NumPy arrays to the bridge: `frame` is
declared as a 2048 x 2048 array of 16-bit counts, and its `read` hook returns
the array itself, which goes to clients as a NumPy .npy file (`Accept:
application/x-npy`, what the dashboard asks for to show it as an image) or as
JSON, without being copied on the way.

Acquisition is limited by `frame_rate`: reading `frame` takes a new image,
exposed for `exposure` milliseconds, only when the last one is older than
1 / frame_rate seconds; a read sooner gets the latest image again, as from a
camera running at that rate.  `frame_count` tells the images apart.  The
image is a test target (rings on a gradient) with a bright spot that drifts
from frame to frame, brighter the longer the exposure, with sensor noise, and
saturating at 65535 counts.  Images are made on the module's own thread, so a
slow one never holds up the event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labbridge import Attribute, BaseModule, ModuleSettings

SIZE = 2048  # pixels per side
FULL_WELL = 65535  # counts at saturation (16 bits)
COUNTS_PER_MS = 200.0  # what the brightest part of the target collects per millisecond of exposure
DARK = 100  # counts of the sensor's offset, with nothing on it
SPOT = 96  # pixels around the drifting spot's centre that it lights


class Camera(BaseModule):
    """A 2048 x 2048 camera with a 16-bit sensor, simulated: a test target and a spot that drifts across it."""

    exposure: float = Attribute(unit="ms", minimum=0.01, maximum=1000, writable=True,
                                doc="Exposure time of each frame.")
    frame_rate: float = Attribute(unit="Hz", minimum=0.1, maximum=50, writable=True,
                                  doc="The most frames acquired per second; a read sooner gets the latest frame again.")
    frame: NDArray[np.uint16] = Attribute(shape=(SIZE, SIZE), unit="counts",
                                          doc="The latest image; read as application/x-npy for a NumPy array.")
    frame_count: int = Attribute(doc="Frames acquired since the experiment process started.")

    def __init__(self, name: str, settings: ModuleSettings) -> None:
        super().__init__(name, settings)
        self.state: dict[str, Any] = {"exposure": 10.0, "frame_rate": 10.0, "frame_count": 0}
        self._sensor = Sensor()
        self._image: NDArray[np.uint16] | None = None
        self._taken = 0.0  # time.monotonic() the latest frame was started

    async def read(self, name: str) -> Any:
        if name == "frame":
            return await self._latest_frame()
        return self.state[name]

    async def write(self, name: str, value: Any) -> Any:
        self.state[name] = value
        return value

    async def _latest_frame(self) -> NDArray[np.uint16]:
        now = time.monotonic()
        if self._image is None or now - self._taken >= 1 / self.state["frame_rate"]:
            self._taken = now
            exposure = self.state["exposure"]
            await asyncio.sleep(exposure / 1000)  # the sensor collects light
            self._image = await self.worker.call(self._sensor.image, exposure, self.state["frame_count"])
            self.state["frame_count"] += 1
        return self._image


class Sensor:
    """Makes the images: the target is computed once; each image adds the spot and noise to it (a few ms)."""

    def __init__(self) -> None:
        self._target: NDArray[np.float32] | None = None
        self._noise: NDArray[np.float32] | None = None
        self._random = np.random.default_rng(2048)

    def image(self, exposure_ms: float, index: int) -> NDArray[np.uint16]:
        """A new image (never changed afterwards: the bridge may still be sending an earlier one)."""
        target, noise = self._prepared()
        counts = target * np.float32(COUNTS_PER_MS * exposure_ms)
        # The spot drifts along a slow circle, one step per frame.
        angle = index * 0.05
        row, col = (int(SIZE / 2 + SIZE / 4 * np.sin(angle)), int(SIZE / 2 + SIZE / 4 * np.cos(angle)))
        y, x = np.ogrid[-SPOT:SPOT, -SPOT:SPOT]
        spot = np.exp(-(x * x + y * y) / np.float32(2 * (SPOT / 3) ** 2)).astype(np.float32)
        counts[row - SPOT:row + SPOT, col - SPOT:col + SPOT] += spot * np.float32(COUNTS_PER_MS * exposure_ms)
        counts += np.roll(noise, int(self._random.integers(SIZE * SIZE)))  # a different noise pattern each frame
        np.clip(counts, 0, FULL_WELL, out=counts)
        return counts.astype(np.uint16)

    def _prepared(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        if self._target is None or self._noise is None:
            y, x = np.ogrid[0:SIZE, 0:SIZE]
            radius = np.hypot(x - SIZE / 2, y - SIZE / 2, dtype=np.float32)
            rings = 0.5 + 0.5 * np.cos(radius / 24, dtype=np.float32)
            gradient = (0.3 + 0.7 * x / SIZE).astype(np.float32)
            self._target = (0.2 + 0.6 * rings * gradient).astype(np.float32)
            self._noise = (DARK + self._random.normal(0, 20, (SIZE, SIZE))).astype(np.float32)
        return self._target, self._noise
