"""A run's HDF5 (NeXus) file, end to end: runs on the simulators, downloaded over HTTP, read back with h5py.

One stack for the module: the simulated supply and camera, the shipped voltage_sweep and exposure_series, and
`shapes.py`, a lab's own procedure recording arrays whose shape changes from point to point.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest

from tests.processes import running_stack, wait_until, write_config

SHAPES_PY = '''
"""A lab's own procedure: a spectrum whose length grows with each point, and a fixed-size background."""
import asyncio

import numpy as np

from labbridge import Run, procedure


@procedure(axes=["step"])
async def spectra(run: Run) -> None:
    for step in range(3):
        run.record(step=step, spectrum=np.arange(step + 2, dtype=np.float32), background=np.full(4, step))


@procedure(axes=["i"])
async def buffers(run: Run) -> None:
    """A camera frame as get() gives it (may it be changed?) and a buffer of its own, refilled after each record."""
    frame = await run.get("camera.frame")
    try:
        frame += 1
        changed = True
    except ValueError:
        changed = False
    buffer = np.zeros((1024, 1024))
    for i in range(2):
        buffer[:] = i + 1
        run.record(i=i, frame=frame, buffer=buffer, frame_changed=changed)


@procedure(axes=["i"])
async def ticks(run: Run) -> None:
    for i in range(100000):
        await run.checkpoint()
        run.record(i=i)
        await asyncio.sleep(0.02)
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("export")
    (folder / "shapes.py").write_text(SHAPES_PY, encoding="utf-8")
    config = write_config(folder / "config.yml", {
        "psu": {"class": "psu.PowerSupply", "simulate": True}, "camera": {"class": "camera.Camera"}},
        procedures={"voltage_sweep": {"function": "labbridge.demo.procedures.voltage_sweep"},
                    "exposure_series": {"function": "labbridge.demo.procedures.exposure_series"},
                    "spectra": {"function": "shapes.spectra"}, "ticks": {"function": "shapes.ticks"},
                    "buffers": {"function": "shapes.buffers"}},
        runs={"interval": 0.2}, data_dir="data")
    with running_stack(config, folder) as (_, _, base):
        yield base, folder / "data"


def _run(url: str, procedure: str, metadata: dict[str, Any] | None = None, **parameters: Any) -> str:
    answer = httpx.post(f"{url}/runs", json={"procedure": procedure, "parameters": parameters,
                                             "metadata": metadata or {}})
    assert answer.status_code == 201, answer.text
    ident = str(answer.json()["id"])
    httpx.post(f"{url}/runs/queue/start")
    wait_until(lambda: httpx.get(f"{url}/runs/{ident}").json()["status"] == "completed", 30, f"run {ident}")
    return ident


def _download(url: str, ident: str, **how: Any) -> h5py.File:
    answer = httpx.get(f"{url}/runs/{ident}/data", timeout=60, **how)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-hdf5"
    assert int(answer.headers["content-length"]) == len(answer.content)
    return h5py.File(io.BytesIO(answer.content), "r")


def test_a_voltage_sweep_downloads_as_a_nexus_file_with_its_axes_units_and_snapshot(stack: tuple[str, Path]) -> None:
    url, data_dir = stack
    ident = _run(url, "voltage_sweep", {"sample": "A12"}, start=1, stop=3, steps=3)
    with _download(url, ident, params={"format": "hdf5"}) as f:
        assert f.attrs["default"] == "entry"
        entry = f["entry"]
        assert entry.attrs["NX_class"] == "NXentry" and entry.attrs["default"] == "data"
        assert entry.attrs["status"] == "completed" and entry["title"][()].decode() == "voltage_sweep"
        assert entry["metadata/sample"][()].decode() == "A12" and entry["parameters/steps"][()] == 3
        assert len(entry["procedure/source_hash"][()]) == 64
        assert b"async def voltage_sweep" in entry["procedure/source"][()]
        # Before the run the supply's output was off, and it is off again after: the clean-up ran.
        assert entry["snapshot_start/psu/output/value"][()] == False  # noqa: E712 (a NumPy bool)
        assert entry["snapshot_end/psu/voltage/value"][()] == 3.0
        data = entry["data"]
        assert data.attrs["NX_class"] == "NXdata"
        assert data.attrs["signal"] == "measured_voltage" and list(data.attrs["axes"]) == ["voltage"]
        assert data.attrs["voltage_indices"] == 0 and list(data.attrs["auxiliary_signals"]) == ["measured_current"]
        assert list(data["voltage"][:]) == [1.0, 2.0, 3.0] and data["voltage"].attrs["units"] == "V"
        assert data["measured_current"].attrs["units"] == "A" and list(data["point"][:]) == [0, 1, 2]
    assert (data_dir / "runs" / ident / "run.h5").is_file()  # a finished run's file is kept for the next download
    with _download(url, ident, headers={"Accept": "application/x-hdf5"}) as again:
        assert list(again["entry/data/voltage"][:]) == [1.0, 2.0, 3.0]


def test_camera_frames_are_stacked_along_the_points_and_arrays_of_varying_shape_kept_per_point(
        stack: tuple[str, Path]) -> None:
    url, _ = stack
    ident = _run(url, "exposure_series", shortest=1, longest=4, steps=3)
    with _download(url, ident, params={"format": "hdf5"}) as f:
        data = f["entry/data"]
        assert data.attrs["signal"] == "frame" and list(data.attrs["axes"]) == ["exposure", ".", "."]
        frames = data["frame"]
        assert frames.shape == (3, 2048, 2048) and frames.dtype == np.uint16
        assert list(data["exposure"][:]) == [1.0, 2.0, 4.0] and data["exposure"].attrs["units"] == "ms"
        means = frames[:].mean(axis=(1, 2))
        assert np.allclose(means, data["mean_counts"][:]) and means[0] < means[1] < means[2]  # longer: brighter
    ident = _run(url, "spectra")
    with _download(url, ident, params={"format": "hdf5"}) as f:
        data = f["entry/data"]
        assert data["spectrum"].attrs["NX_class"] == "NXcollection"
        assert [list(data[f"spectrum/{n}"][:]) for n in "012"] == [[0, 1], [0, 1, 2], [0, 1, 2, 3]]
        assert data["background"].shape == (3, 4) and list(data["background"][:, 0]) == [0, 1, 2]
        assert data.attrs["signal"] == "background"  # the first column that is one dataset


def test_a_frame_from_get_is_read_only_and_recorded_as_np_save_writes_it_and_a_refilled_buffer_keeps_each_value(
        stack: tuple[str, Path]) -> None:
    url, data_dir = stack
    ident = _run(url, "buffers")
    with sqlite3.connect(data_dir / "runs.sqlite3") as db:
        points = [json.loads(data) for data, in db.execute("SELECT data FROM points WHERE run = ? ORDER BY n", (ident,))]
    assert [p["frame_changed"] for p in points] == [False, False]  # the camera's own array, not the procedure's
    assert [p["frame"] for p in points] == [{"npy": f"runs/{ident}/{n}-frame.npy", "dtype": "uint16",
                                             "shape": [2048, 2048]} for n in range(2)]
    frame = np.load(data_dir / points[0]["frame"]["npy"])
    assert frame.shape == (2048, 2048) and frame.any()
    expected = io.BytesIO()
    np.save(expected, frame, allow_pickle=False)
    assert all((data_dir / p["frame"]["npy"]).read_bytes() == expected.getvalue() for p in points)
    for n, value in enumerate((1.0, 2.0)):  # recorded, then the buffer refilled: each point keeps its own
        buffer = np.load(data_dir / points[n]["buffer"]["npy"])
        assert buffer.shape == (1024, 1024) and (buffer == value).all()


def test_an_unknown_run_is_a_404_naming_it(stack: tuple[str, Path]) -> None:
    url, _ = stack
    answer = httpx.get(f"{url}/runs/nosuchrun/data", params={"format": "hdf5"})
    assert answer.status_code == 404 and "nosuchrun" in answer.json()["message"]


def test_a_running_run_downloads_with_the_points_on_disk_and_its_file_is_removed_after(stack: tuple[str, Path]) -> None:
    url, data_dir = stack
    ident = httpx.post(f"{url}/runs", json={"procedure": "ticks"}).json()["id"]
    httpx.post(f"{url}/runs/queue/start")
    try:
        wait_until(lambda: httpx.get(f"{url}/runs/{ident}/data", params={"limit": 1}).json()["total"] >= 20, 15,
                   "20 points")
        with _download(url, ident, params={"format": "hdf5"}) as f:
            assert f["entry"].attrs["status"] == "running"
            points = list(f["entry/data/point"][:])
            assert len(points) >= 1 and points == list(range(len(points)))  # the points written so far, in order
        folder = data_dir / "runs" / ident
        wait_until(lambda: not list(folder.glob("*.h5")), 5, "the running run's file removed")
    finally:
        httpx.delete(f"{url}/runs/{ident}")


def test_a_run_of_camera_frames_reads_as_json_and_csv_a_few_frames_per_page(stack: tuple[str, Path]) -> None:
    # 8 frames of 8 MB: all in one JSON page they were 150 MB, built for seconds holding the experiment
    # process's event loop, then refused as over max_reply_bytes (502).
    url, _ = stack
    ident = _run(url, "exposure_series", steps=8)
    first = httpx.get(f"{url}/runs/{ident}/data", timeout=60)
    assert first.status_code == 200, first.text[:300]
    page = first.json()
    assert 1 <= len(page["point"]) < 8 and page["next"] == len(page["point"]) and page["total"] == 8
    frames: list[Any] = []
    means: list[float] = []
    while page["point"]:  # as the client and the dashboard read a run: page after page from `next`
        frames += [np.asarray(frame) for frame in page["values"]["frame"]]
        means += page["values"]["mean_counts"]
        page = httpx.get(f"{url}/runs/{ident}/data", params={"since": page["next"]}, timeout=60).json()
    assert len(frames) == 8 and [frame.shape for frame in frames] == [(2048, 2048)] * 8
    assert [float(frame.mean()) for frame in frames] == pytest.approx(means)
    csv = httpx.get(f"{url}/runs/{ident}/data", params={"format": "csv"}, timeout=60)
    assert csv.status_code == 200 and len([line for line in csv.text.splitlines() if line[:1].isdigit()]) == 8
