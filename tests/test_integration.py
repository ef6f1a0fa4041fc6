"""The whole chain with real processes: curl-like client -> uvicorn -> ZeroMQ -> backend -> simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Stack


def test_put_then_get_round_trip(stack: Stack) -> None:
    put = httpx.put(f"{stack.url}/module_a/position", json={"value": 42.5})
    assert put.status_code == 200
    assert put.json() == {"module": "module_a", "attribute": "position", "value": 42.5, "unit": "mm"}
    assert httpx.get(f"{stack.url}/module_a/position").json()["value"] == 42.5


def test_force_follows_position(stack: Stack) -> None:
    httpx.put(f"{stack.url}/module_a/position", json={"value": 10})
    low = httpx.get(f"{stack.url}/module_a/force").json()["value"]
    httpx.put(f"{stack.url}/module_a/position", json={"value": 90})
    high = httpx.get(f"{stack.url}/module_a/force").json()["value"]
    assert high - low > 50


def test_attributes_lists_every_readable_value_with_units(stack: Stack) -> None:
    body = httpx.get(f"{stack.url}/module_a/attributes").json()
    assert body["module"] == "module_a"
    assert set(body["attributes"]) == {"position", "speed", "force", "temperature", "serial_number", "moving"}
    assert body["attributes"]["serial_number"] == {"value": "SIM-0001", "unit": None}
    assert body["attributes"]["temperature"]["unit"] == "degC"


def test_parameters_lists_writable_values_with_limits(stack: Stack) -> None:
    httpx.put(f"{stack.url}/module_a/speed", json={"value": 12})
    params = httpx.get(f"{stack.url}/module_a/parameters").json()["parameters"]
    assert set(params) == {"position", "speed"}
    assert params["speed"] == {"value": 12.0, "unit": "mm/s", "min": 0.1, "max": 50}


def test_index_lists_modules_with_clickable_links(stack: Stack) -> None:
    modules = httpx.get(stack.url + "/").json()["modules"]
    assert set(modules) >= {"module_a", "wide", "slow"}
    position = modules["module_a"]["attributes"]["position"]
    assert position["url"] == f"{stack.url}/module_a/position"
    assert position["min"] == 0 and position["max"] == 100 and position["unit"] == "mm"
    assert httpx.get(position["url"]).status_code == 200
    assert modules["module_a"]["links"]["parameters"] == f"{stack.url}/module_a/parameters"


ERROR_ROWS: list[tuple[str, str, Any, int, str, str]] = [
    # method, path, body (bytes or JSON-able, None for no body), status, code, text in the message
    ("GET", "/module_b/position", None, 404, "unknown_module", "no module named 'module_b'"),
    ("GET", "/module_a/height", None, 404, "unknown_attribute", "has no attribute 'height'"),
    ("GET", "/module_a/__class__", None, 404, "unknown_attribute", "__class__"),
    ("GET", "/module_a/__dict__", None, 404, "unknown_attribute", "__dict__"),
    ("GET", "/module_a/ip", None, 404, "unknown_attribute", "'ip'"),
    ("GET", "/module_a/port", None, 404, "unknown_attribute", "'port'"),
    ("GET", "/module_a/get", None, 404, "unknown_attribute", "'get'"),
    ("GET", "/module_a/_client", None, 404, "unknown_attribute", "'_client'"),
    ("GET", "/module_a/position.real", None, 404, "unknown_attribute", "position.real"),
    ("GET", "/module_a/%2e%2e", None, 404, "unknown_attribute", "'..'"),
    ("GET", "/module_a/%00", None, 404, "unknown_attribute", "\\x00"),
    ("GET", "/module_a/a%2Fb", None, 404, "not_found", ""),
    ("GET", "/a/b/c", None, 404, "not_found", "no such path: /a/b/c (the bridge serves /<module>/<attribute>"),
    ("GET", "/static/nope.js", None, 404, "not_found", "no such path: /static/nope.js"),
    ("GET", "/module_a/%C3%A9t%C3%A9", None, 404, "unknown_attribute", "'\u00e9t\u00e9'"),
    ("GET", "/%2e%2e/position", None, 404, "unknown_module", "'..'"),
    ("PUT", "/module_a/force", {"value": 1}, 405, "read_only", "module_a.force is read-only"),
    ("PUT", "/module_a/attributes", {"value": 1}, 405, "read_only", "read-only"),
    ("PUT", "/module_a/force", b"", 405, "read_only", "module_a.force is read-only"),
    ("PUT", "/module_b/position", b"not json", 404, "unknown_module", "no module named 'module_b'"),
    ("PUT", "/module_a/position", b"not json", 422, "malformed_request", "body must be JSON"),
    ("PUT", "/module_a/position", b"", 422, "malformed_request", "body must be JSON"),
    ("PUT", "/module_a/position", {"val": 1}, 422, "malformed_request", '"value" key'),
    ("PUT", "/module_a/position", [1], 422, "malformed_request", '"value" key'),
    ("PUT", "/module_a/position", {"value": 1, "unit": "m"}, 422, "malformed_request", "unknown key 'unit'; only"),
    ("PUT", "/module_a/position", b'{"value": NaN}', 422, "malformed_request", "body must be JSON"),
    ("PUT", "/module_a/position", b'{"value": 1e400}', 422, "malformed_request", "infinity"),
    ("PUT", "/module_a/position", {"value": "fast"}, 422, "invalid_value", "position must be a float"),
    ("PUT", "/module_a/position", b'{"value": ' + b"[" * 200 + b"]" * 200 + b"}", 422, "invalid_value", "must be a float"),
    ("PUT", "/module_a/position", b'{"value": ' + b"[" * 480 + b"]" * 480 + b"}", 422, "malformed_request", "cannot be forwarded: Recursion limit"),
    ("PUT", "/module_a/position", b'{"value": ' + b"[" * 1100 + b"]" * 1100 + b"}", 413, "payload_too_large", "limit"),
    ("PUT", "/module_a/position", {"value": True}, 422, "invalid_value", "position must be a float"),
    ("PUT", "/module_a/position", {"value": 150}, 422, "invalid_value", "position must be 0 to 100 mm; got 150"),
    ("PUT", "/module_a/speed", {"value": 0}, 422, "invalid_value", "speed must be 0.1 to 50 mm/s"),
    ("PUT", "/module_a/position", b'{"value": ' + b"[" * 5000 + b"]" * 5000 + b"}", 413, "payload_too_large", "limit"),
    ("PUT", "/module_a/position", {"value": "x" * 2000}, 413, "payload_too_large", "limit of 1024 bytes"),
    ("POST", "/module_a/position", {"value": 1}, 405, "method_not_allowed", ""),
    ("PUT", "/wide/position", {"value": 500}, 502, "instrument_error", "refused PUT /position with HTTP 422"),
    ("GET", "/confused/serial_number", None, 502, "instrument_error", "sent 'SIM-0001' for serial_number"),
    ("GET", "/unreachable/position", None, 502, "instrument_unreachable", "is unreachable (Connection refused)"),
    ("GET", "/slow/position", None, 504, "instrument_timeout", "did not answer GET /position within 0.3 s"),
    ("PUT", "/slow/position", {"value": 5}, 504, "instrument_timeout", "read the value back"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "text"), ERROR_ROWS,
                         ids=[f"{r[0]} {r[1][:30]} {r[3]}" for r in ERROR_ROWS])
def test_error_table(stack: Stack, method: str, path: str, body: Any, status: int, code: str, text: str) -> None:
    content = body if isinstance(body, bytes) or body is None else __import__("orjson").dumps(body)
    response = httpx.request(method, stack.url + path, content=content, timeout=10)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == code
    assert text in response.json()["message"]
    assert "Traceback" not in stack.logs()


def test_unknown_keys_of_a_write_are_named_cut_short(stack: Stack) -> None:
    body = {"value": 1, "k" * 700: 0, **{f"a{i}": 0 for i in range(30)}}  # about 1 KB, within the body limit
    response = httpx.put(f"{stack.url}/module_a/position", json=body, timeout=10)
    assert response.status_code == 422 and response.json()["error"] == "malformed_request"
    assert response.json()["message"] == (f"body has unknown key '{'k' * 59}... (702 characters) (and 30 more); "
                                          'only "value" is accepted')


def test_an_unreachable_instrument_is_said_in_words_without_tls_noise(stack: Stack) -> None:
    port = yaml.safe_load(stack.config.read_text())["modules"]["unreachable"]["port"]
    assert httpx.get(f"{stack.url}/unreachable/position").json()["message"] == (
        f"instrument of unreachable at http://127.0.0.1:{port} is unreachable (Connection refused)")  # no "ssl:default"


def test_read_only_answer_says_which_method_is_allowed(stack: Stack) -> None:
    assert httpx.put(f"{stack.url}/module_a/force", json={"value": 1}).headers["allow"] == "GET"


def test_options_names_the_methods_each_attribute_has(stack: Stack) -> None:
    writable = httpx.options(f"{stack.url}/module_a/position")
    assert writable.status_code == 405 and writable.headers["allow"] == "GET, PUT"
    assert writable.json()["error"] == "method_not_allowed"
    assert httpx.options(f"{stack.url}/module_a/force").headers["allow"] == "GET"
    assert httpx.options(f"{stack.url}/module_a/nope").json()["error"] == "unknown_attribute"


def test_a_full_module_queue_answers_503_busy_with_retry_after(stack: Stack) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
            return await asyncio.gather(*(client.get("/busy/position") for _ in range(3)))

    responses = asyncio.run(burst())
    busy = [r for r in responses if r.status_code == 503]
    assert any(r.status_code == 200 for r in responses)
    assert busy and all(r.json()["error"] == "backend_busy" and r.headers["retry-after"] for r in busy)


def test_the_refused_value_never_changed_the_instrument(stack: Stack) -> None:
    httpx.put(f"{stack.url}/module_a/position", json={"value": 7})
    httpx.put(f"{stack.url}/module_a/position", json={"value": 101})
    httpx.put(f"{stack.url}/module_a/position", json={"value": -1})
    assert httpx.get(f"{stack.url}/module_a/position").json()["value"] == 7.0


def test_fifty_concurrent_clients_each_get_their_own_reply(stack: Stack) -> None:
    attributes = ["position", "speed", "temperature", "serial_number", "force"]

    async def client(i: int, http: httpx.AsyncClient) -> None:
        put = await http.put("/module_a/position", json={"value": i * 2.0})
        assert put.status_code == 200, put.text
        assert put.json()["value"] == i * 2.0  # the value this request wrote, not a neighbour's
        name = attributes[i % len(attributes)]
        got = await http.get(f"/module_a/{name}")
        assert got.status_code == 200, got.text
        assert got.json()["attribute"] == name

    async def run_all() -> None:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=stack.url, timeout=10, limits=limits) as http:
            await asyncio.gather(*(client(i, http) for i in range(50)))

    asyncio.run(run_all())
