"""HttpDialect and HttpDriver: each way an instrument's HTTP API may differ, spoken to a real HTTP server on loopback.

The server is a small aiohttp app whose routes answer in the shapes the dialect
fields describe; the driver talks to it through the bridge's own
InstrumentClient, as a module does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from labbridge.core.errors import InstrumentError
from labbridge.experiment.drivers.http_dialect import HOME, HttpDialect, HttpDriver
from labbridge.experiment.instrument_client import MAX_MESSAGE_CHARS, InstrumentClient


class Instrument:
    """Values kept by the test server, and the bodies of the PUTs it received."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {"gain": 2.0, "mode": "auto"}
        self.put_bodies: list[Any] = []


def app_for(instrument: Instrument) -> web.Application:
    async def get_bare(request: web.Request) -> web.Response:
        return web.json_response(instrument.values[request.match_info["name"]])

    async def put_bare_nothing(request: web.Request) -> web.Response:
        body = await request.json()
        instrument.put_bodies.append(body)
        if isinstance(body, float) and body > 10:
            return web.json_response({"message": f"gain {body} is above 10"}, status=400)
        instrument.values[request.match_info["name"]] = body
        return web.Response(status=204)

    async def summary(request: web.Request) -> web.Response:
        return web.json_response(instrument.values)

    async def summary_list(request: web.Request) -> web.Response:
        return web.json_response(list(instrument.values.values()))

    async def refuse_fastapi(request: web.Request) -> web.Response:
        return web.json_response({"detail": [{"loc": ["body"], "msg": "Input should be a valid number"},
                                             {"loc": ["body"], "msg": "second problem"}]}, status=422)

    async def refuse_long(request: web.Request) -> web.Response:
        return web.json_response({"error": "x" * 10_000}, status=500)

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/api/v2/{name}/value", get_bare), web.put("/api/v2/{name}/value", put_bare_nothing),
                    web.get("/api/v2/all", summary), web.get("/api/v2/list", summary_list),
                    web.put("/fastapi/{name}", refuse_fastapi),
                    web.put("/long/{name}", refuse_long), web.get("/html/{name}", not_json)])
    return app


def with_driver(dialect: HttpDialect, scenario: Callable[[HttpDriver, Instrument], Awaitable[None]]) -> None:
    async def run() -> None:
        instrument = Instrument()
        runner = web.AppRunner(app_for(instrument))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        client = InstrumentClient("dev", f"http://127.0.0.1:{port}", timeout=2, connect_timeout=1,
                                  error_key=dialect.error_key)
        await client.start()
        try:
            await scenario(HttpDriver("dev", dialect, client), instrument)
        finally:
            await client.close()
            await runner.cleanup()

    asyncio.run(run())


API_V2 = HttpDialect(path="/api/v2/{name}/value", body="bare", reply="bare", put_reply="nothing",
                     error_key="message", summary=None)


def test_bare_values_are_read_and_written_as_they_are() -> None:
    async def scenario(driver: HttpDriver, instrument: Instrument) -> None:
        assert await driver.read("gain") == (2.0, b"2.0")
        assert await driver.write("gain", 4.5) == 4.5  # put_reply "nothing": the value sent
        assert instrument.put_bodies == [4.5]  # a bare body, not {"value": ...}
        assert instrument.values["gain"] == 4.5

    with_driver(API_V2, scenario)


def test_an_error_message_is_taken_from_the_dialect_s_error_key() -> None:
    async def scenario(driver: HttpDriver, instrument: Instrument) -> None:
        with pytest.raises(InstrumentError, match=r"refused PUT /api/v2/gain/value with HTTP 400: gain 12.0 is above 10"):
            await driver.write("gain", 12.0)

    with_driver(API_V2, scenario)


def test_without_a_summary_read_many_reads_one_attribute_at_a_time() -> None:
    async def scenario(driver: HttpDriver, instrument: Instrument) -> None:
        assert await driver.read_many(["gain", "mode"]) == {"gain": 2.0, "mode": "auto"}

    with_driver(API_V2, scenario)


def test_a_summary_path_answers_every_value_in_one_request() -> None:
    async def scenario(driver: HttpDriver, instrument: Instrument) -> None:
        assert await driver.read_many(["gain", "mode"]) == {"gain": 2.0, "mode": "auto"}

    with_driver(HttpDialect(path="/api/v2/{name}/value", reply="bare", summary="/api/v2/all"), scenario)


def test_a_summary_that_is_not_a_json_object_is_an_instrument_error() -> None:
    async def scenario(driver: HttpDriver, instrument: Instrument) -> None:
        with pytest.raises(InstrumentError, match=r"answered GET /api/v2/list with something that is not a JSON object"):
            await driver.read_many(["gain"])

    with_driver(HttpDialect(path="/api/v2/{name}/value", summary="/api/v2/list"), scenario)


def test_fastapi_s_list_of_errors_becomes_their_messages() -> None:
    async def scenario(driver: HttpDriver, instrument: Instrument) -> None:
        with pytest.raises(InstrumentError, match=r"HTTP 422: Input should be a valid number; second problem$"):
            await driver.write("gain", 1.0)

    with_driver(HttpDialect(path="/fastapi/{name}", error_key="detail"), scenario)


def test_a_long_error_message_is_cut() -> None:
    async def scenario(driver: HttpDriver, instrument: Instrument) -> None:
        with pytest.raises(InstrumentError) as info:
            await driver.write("gain", 1.0)
        assert len(info.value.detail) < MAX_MESSAGE_CHARS + 100 and info.value.detail.endswith("x...")

    with_driver(HttpDialect(path="/long/{name}"), scenario)


@pytest.mark.parametrize("reply", ["wrapped", "bare"])
def test_a_reply_that_is_not_json_is_an_instrument_error(reply: Any) -> None:
    async def scenario(driver: HttpDriver, instrument: Instrument) -> None:
        with pytest.raises(InstrumentError, match=r"answered GET /html/gain with something that is not JSON"):
            await driver.read("gain")

    with_driver(HttpDialect(path="/html/{name}", reply=reply), scenario)


@pytest.mark.parametrize(("fields", "message"), [
    ({"path": "/gain"}, r"must start with / and contain \{name\}"),
    ({"path": "api/{name}"}, r"must start with / and contain \{name\}"),
    ({"body": "json"}, r"body must be one of \('wrapped', 'bare'\)"),
    ({"put_reply": "echo"}, r"put_reply must be one of"),
])
def test_a_dialect_that_cannot_be_spoken_is_refused_when_declared(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpDialect(**fields)


def test_the_home_dialect_is_the_bridge_s_own() -> None:
    assert (HOME.url("position"), HOME.body, HOME.reply, HOME.put_reply, HOME.error_key, HOME.summary) == (
        "/position", "wrapped", "wrapped", "value", "error", "/attributes")
