"""BackendClient against a real experiment process: every reply reaches its own request, or nobody."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from labbridge.frontend.backend_client import BackendClient
from labbridge.core.errors import BackendTimeout, BackendUnavailable, UnknownModule
from tests.processes import backend_endpoint, free_port, start_backend, write_config

MODULES = {"rec": {"class": "tests.fixture_modules.Recorder"}}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("client")
    config = write_config(tmp / "config.yml", MODULES)
    backend = start_backend(config, tmp / "backend.log")
    try:
        yield backend_endpoint(config)
    finally:
        backend.stop()


def attribute_of(body: bytes) -> str:
    return str(orjson.loads(body)["attribute"])


def test_a_cancelled_request_does_not_leave_its_reply_for_the_next(endpoint: str) -> None:
    async def scenario() -> None:
        client = BackendClient(endpoint, timeout=5)
        await client.request("put", "rec", "delay", 0.3)
        slow = asyncio.create_task(client.request("get", "rec", "value"))
        await asyncio.sleep(0.05)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        await client.request("put", "rec", "delay", 0.0)
        # The late reply to the cancelled GET must not be taken for these.
        for name in ("count", "mode", "delay"):
            assert attribute_of(await client.request("get", "rec", name)) == name
        client.close()

    asyncio.run(scenario())


def test_a_late_reply_to_a_timed_out_request_is_dropped() -> None:
    """A backend that answers late (a peer we control) must not reach the next request."""
    import zmq
    import zmq.asyncio

    from labbridge.core.protocol import Request, encode_reply

    async def scenario() -> None:
        port = free_port()
        server = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
        server.bind(f"tcp://127.0.0.1:{port}")
        client = BackendClient(f"tcp://127.0.0.1:{port}", timeout=0.2)
        try:
            with pytest.raises(BackendTimeout, match="within 0.2 s"):
                await client.request("get", "rec", "value")
            peer, first = await server.recv_multipart()
            second = asyncio.create_task(client.request("get", "rec", "count"))
            peer, payload = await server.recv_multipart()
            late = Request.decode(first)
            await server.send_multipart([peer, *encode_reply(late.id, {"attribute": "value"})])
            await server.send_multipart([peer, *encode_reply(Request.decode(payload).id, {"attribute": "count"})])
            assert attribute_of(await second) == "count"
            assert not client._pending  # nothing left waiting, nothing leaked
        finally:
            client.close()
            server.close(linger=0)

    asyncio.run(scenario())


def test_errors_come_back_as_their_own_class(endpoint: str) -> None:
    async def scenario() -> None:
        client = BackendClient(endpoint, timeout=5)
        with pytest.raises(UnknownModule):
            await client.request("get", "nope", "value")
        assert attribute_of(await client.request("get", "rec", "mode")) == "mode"
        client.close()

    asyncio.run(scenario())


def test_concurrent_requests_all_get_their_own_answers(endpoint: str) -> None:
    async def scenario() -> None:
        client = BackendClient(endpoint, timeout=5)
        names = ["value", "delay", "count", "mode"] * 16
        bodies = await asyncio.gather(*(client.request("get", "rec", n) for n in names))
        assert [attribute_of(b) for b in bodies] == names
        client.close()

    asyncio.run(scenario())


def test_no_backend_is_a_quick_backend_unavailable(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = BackendClient(f"tcp://127.0.0.1:{free_port()}", timeout=5, connect_timeout=0.2)
        with pytest.raises(BackendUnavailable, match="not running"):
            await client.request("get", "rec", "value")
        client.close()

    asyncio.run(scenario())
