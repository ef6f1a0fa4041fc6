"""The HTTP hop to an instrument, end to end through both processes: no false timeouts, no write sent twice.

Two aiohttp behaviours bit the bridge.  aiohttp 3.14 re-arms the `sock_read`
timer on a pooled idle connection after a large body is drained
(aio-libs/aiohttp#12953, fixed upstream for asyncio's loop in 3.14.2 but still
there on uvloop, which the experiment process runs, in 3.14.5), so the next
request failed at once with a false 504.  And aiohttp resends a PUT (it counts
PUT as idempotent) when the connection drops, so an instrument that applied a
write and then closed the connection got it twice.  These tests run the real
experiment process against instruments on loopback.
"""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, running_stack, write_config


def test_a_read_after_two_large_reads_and_a_pause_reaches_the_instrument(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}})
    with running_stack(config, tmp_path) as (_, _, url):
        for _i in range(2):  # two bodies of ~700 KB: over aiohttp's 128 KiB buffer
            assert httpx.get(f"{url}/module_a/trace", timeout=10).status_code == 200
        # Longer than the module's 2 s timeout: a timer wrongly left on the pooled connection fires now.
        time.sleep(2.5)
        position = httpx.get(f"{url}/module_a/position", timeout=10)
        assert position.status_code == 200, position.text
        write = httpx.put(f"{url}/module_a/position", json={"value": 7}, timeout=10)
        assert write.status_code == 200, write.text


class DroppingInstrument(socketserver.ThreadingTCPServer):
    """An instrument on loopback that applies every PUT, and drops the connection instead of answering the first.

    It speaks just enough HTTP/1.1 for aiohttp: `GET /<name>` answers `{"value": ...}` on a
    kept-alive connection, so the PUT that follows reuses a pooled connection, as in the field.
    """

    daemon_threads = True

    def __init__(self) -> None:
        self.port = free_port()
        self.puts: list[bytes] = []
        self.value = b"0.0"
        super().__init__(("127.0.0.1", self.port), _DroppingHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _DroppingHandler(socketserver.StreamRequestHandler):
    server: DroppingInstrument

    def handle(self) -> None:
        while line := self.rfile.readline():
            method = line.split()[0]
            length = 0
            while (header := self.rfile.readline()) not in (b"\r\n", b""):
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            body = self.rfile.read(length)
            if method == b"PUT":
                self.server.puts.append(body)
                self.server.value = body.split(b":")[1].rstrip(b"}").strip()
                if len(self.server.puts) == 1:
                    return  # applied, then gone without an answer
            reply = b'{"value": ' + self.server.value + b"}"
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(reply)).encode() + b"\r\n\r\n" + reply)


@pytest.fixture
def dropping_instrument() -> Iterator[DroppingInstrument]:
    instrument = DroppingInstrument()
    yield instrument
    instrument.close()


def test_a_put_whose_connection_drops_is_sent_once_and_reported_unknown(
        tmp_path: Path, dropping_instrument: DroppingInstrument) -> None:
    config = write_config(tmp_path / "config.yml", {
        "module_a": {"class": "module_a.ModuleA", "port": dropping_instrument.port}})
    with running_stack(config, tmp_path) as (_, _, url):
        assert httpx.get(f"{url}/module_a/position").json()["value"] == 0.0  # leaves a pooled connection
        write = httpx.put(f"{url}/module_a/position", json={"value": 12.5}, timeout=10)
        assert write.status_code == 502, write.text
        assert "outcome is unknown" in write.json()["message"]
        assert dropping_instrument.puts == [b'{"value":12.5}']  # exactly once
        # The instrument did apply it, as the message warned: reading back shows it.
        assert httpx.get(f"{url}/module_a/position").json()["value"] == 12.5


@pytest.mark.parametrize("declared", [True, False])
def test_an_answer_over_the_limit_is_refused_while_it_is_read(declared: bool) -> None:
    """An instrument that sends more than max_reply_bytes (declared in Content-Length, or streamed without end)
    gets an InstrumentError, and the experiment process never holds more than the limit."""
    import asyncio

    from labbridge.core.errors import InstrumentError
    from labbridge.experiment.instrument_client import InstrumentClient

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        length = b"Content-Length: 10000000\r\n" if declared else b"Transfer-Encoding: chunked\r\n"
        writer.write(b"HTTP/1.1 200 OK\r\n" + length + b"Content-Type: application/json\r\n\r\n")
        try:
            for _ in range(200):
                chunk = b" " * 65536
                writer.write(chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def scenario() -> str:
        server = await asyncio.start_server(endless, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = InstrumentClient("big", f"http://127.0.0.1:{port}", timeout=10, connect_timeout=2,
                                  max_reply_bytes=1024 * 1024)
        await client.start()
        try:
            with pytest.raises(InstrumentError) as refused:
                await client.request("GET", "/trace")
            return str(refused.value)
        finally:
            await client.close()
            server.close()

    message = asyncio.run(scenario())
    assert "over the limit of 1048576 bytes" in message and "instrument of big's answer to GET /trace" in message
