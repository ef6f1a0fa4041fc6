"""Arrays as NumPy .npy files through both real processes: the same numbers as the JSON reading, dtype and shape
in the header, an instrument's own .npy passed on, wrong arrays refused, JSON still the default."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.fixture_modules import SPECTRUM
from tests.processes import running_stack, write_config

NPY = {"Accept": "application/x-npy"}
MODULES = {"module_a": {"class": "module_a.ModuleA", "simulate": True},
           "camera": {"class": "camera.Camera"},
           "arrays": {"class": "tests.fixture_modules.ArrayInstrument", "simulate": True},
           "setpoint": {"class": "setpoint.Setpoint"}}


def lab(tmp: Path, modules: dict[str, Any], **socket: Any) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    config = write_config(tmp / "config.yml", modules, frontend={"request_timeout": 20.0})
    data = yaml.safe_load(config.read_text())
    data["experiment_socket"].update(socket)
    config.write_text(yaml.safe_dump(data))
    with running_stack(config, tmp) as (_, _, url), httpx.Client(base_url=url, timeout=30) as client:
        yield client, data


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    yield from lab(tmp_path_factory.mktemp("npy"), MODULES)


@pytest.fixture(scope="module")
def small_replies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    # The fixture's `big` array is 2 MiB.
    yield from lab(tmp_path_factory.mktemp("npy-small"), {"arrays": MODULES["arrays"]}, max_reply_bytes=1024 * 1024)


def loaded(response: httpx.Response) -> np.ndarray[Any, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-npy"
    assert int(response.headers["content-length"]) == len(response.content)
    return np.load(io.BytesIO(response.content))


def test_a_camera_frame_as_npy_is_the_json_reading_in_binary(stack: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, _ = stack
    client.put("/camera/frame_rate", json={"value": 0.1}).raise_for_status()  # one frame for the next 10 s
    as_json = client.get("/camera/frame")
    frame = loaded(client.get("/camera/frame", headers=NPY))
    assert frame.dtype == np.uint16 and frame.shape == (2048, 2048)
    assert as_json.headers["content-type"] == "application/json"
    assert np.array_equal(frame, np.asarray(as_json.json()["value"]))
    assert client.get("/camera/frame_count").json()["value"] == 1  # both readings were of the one frame


def test_the_trace_as_npy_holds_the_numbers_of_the_json_reading(stack: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, _ = stack
    trace = loaded(client.get("/module_a/trace", headers=NPY))
    values = client.get("/module_a/trace").json()["value"]
    assert trace.dtype == np.float64 and trace.shape == (100_000,) and trace.tolist() == values


def test_json_stays_the_answer_unless_npy_is_asked_for(stack: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, _ = stack
    for accept in ("*/*", "application/json", "text/html", "application/json, application/x-npy;q=0.5"):
        answer = client.get("/arrays/spectrum", headers={"Accept": accept})
        assert answer.headers["content-type"] == "application/json", accept
        assert np.array_equal(np.asarray(answer.json()["value"], dtype=np.float32), SPECTRUM)


def test_an_instruments_own_npy_file_is_passed_on_as_it_came(stack: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, data = stack
    direct = httpx.get(f"http://127.0.0.1:{data['modules']['arrays']['port']}/spectrum", headers=NPY)
    bridged = client.get("/arrays/spectrum", headers=NPY)
    assert direct.headers["content-type"] == bridged.headers["content-type"] == "application/x-npy"
    assert bridged.content == direct.content  # the same file, byte for byte
    assert np.array_equal(loaded(bridged), SPECTRUM) and loaded(bridged).dtype == np.float32


def test_an_array_the_instrument_sends_as_json_is_sent_on_as_npy_of_the_declared_dtype(
        stack: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, _ = stack
    array = loaded(client.get("/arrays/json_only", headers=NPY))
    assert array.dtype == np.int32 and array.tolist() == [1, 2, 3]


@pytest.mark.parametrize(("name", "said"), [
    ("wrong_dtype", "sent an array of float64 whose values do not fit uint16 for wrong_dtype"),
    ("wrong_shape", r"sent an array of shape 3x3 for wrong_shape, expected ndarray\[uint16\] of shape 2x2"),
    ("broken", "answered GET /broken with a .npy file of"),
])
def test_an_instrument_that_sends_the_wrong_array_is_a_502_naming_it(
        stack: tuple[httpx.Client, dict[str, Any]], name: str, said: str) -> None:
    client, _ = stack
    for headers in (NPY, {}):
        answer = client.get(f"/arrays/{name}", headers=headers)
        assert answer.status_code == 502 and answer.json()["error"] == "instrument_error"
        assert re.search(said, answer.json()["message"]), answer.json()["message"]


def test_an_array_over_max_reply_bytes_is_a_clear_502_in_both_formats(
        small_replies: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, _ = small_replies
    for headers in (NPY, {}):
        answer = client.get("/arrays/big", headers=headers)
        assert answer.status_code == 502, answer.text
        assert "over experiment_socket.max_reply_bytes (1048576)" in answer.json()["message"]
    assert client.get("/arrays/json_only", headers=NPY).status_code == 200  # and the hop goes on working


def test_a_value_that_is_not_an_array_is_406_when_only_npy_is_taken(
        stack: tuple[httpx.Client, dict[str, Any]]) -> None:
    client, _ = stack
    refused = client.get("/setpoint/value", headers=NPY)
    assert refused.status_code == 406 and refused.json() == {
        "error": "not_acceptable",
        "message": "setpoint.value is not an array, so it comes as JSON only (application/json), "
                   "not as application/x-npy"}
    assert client.get("/setpoint/attributes", headers=NPY).status_code == 406
    taken = client.get("/setpoint/value", headers={"Accept": "application/x-npy, application/json;q=0.1"})
    assert taken.status_code == 200 and taken.json()["attribute"] == "value"
    unknown = client.get("/setpoint/nope", headers=NPY)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_attribute"
