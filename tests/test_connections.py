"""Connections that never finish: idle and half-sent ones are closed, a full frontend answers 503, and a
thousand idle connections on a 1024-descriptor limit do not stop the next request."""

from __future__ import annotations

import asyncio
import shlex
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from labbridge.frontend.server_limits import MAX_HEAD_BYTES
from tests.processes import ROOT, Process, free_port, http_answers, running_stack, start_backend, wait_until, write_config

SETPOINT = {"setpoint": {"class": "setpoint.Setpoint"}}
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="sets the open-file limit with the shell's ulimit")


# The two ways to start the frontend: both get the same limits (serve.py).
COMMANDS = {
    "python main.py": "{python} main.py --host 127.0.0.1 --port {port}",
    "uvicorn main:app": "{python} -m uvicorn main:app --host 127.0.0.1 --port {port}",
}


@contextmanager
def frontend_with_file_limit(config: Path, log: Path, files: int,
                             started_as: str = "python main.py") -> Iterator[tuple[Process, str]]:
    """The frontend started with soft and hard open-file limits of `files` (it cannot raise them)."""
    port = free_port()
    command = f"ulimit -n {files} && exec " + COMMANDS[started_as].format(python=shlex.quote(sys.executable), port=port)
    proc = Process(["sh", "-c", command], log, env={"EXPERIMENT_CONFIG": str(config)}, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: not proc.alive() or http_answers(url + "/static/style.css"), 15, "frontend")
        assert proc.alive(), proc.output
        yield proc, url
    finally:
        proc.stop()


def open_connection(port: int, send: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    if send:
        sock.sendall(send)
    sock.setblocking(False)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    try:
        while sock.recv(65536):  # an answer (a 503 or 431) may come before the end
            pass
        return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


HALF_SENT = [
    b"",  # idle: nothing at all
    b"GET /setpoint/value HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers that never end
    b"PUT /setpoint/value HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"value\"",  # a body that never ends
]


@POSIX_ONLY
@pytest.mark.parametrize("started_as", list(COMMANDS))
def test_1100_idle_and_half_sent_connections_on_1024_descriptors(tmp_path: Path, started_as: str) -> None:
    config = write_config(tmp_path / "config.yml", SETPOINT, frontend={"client_timeout": 2.0})
    backend = start_backend(config, tmp_path / "backend.log")
    sockets: list[socket.socket] = []
    try:
        with frontend_with_file_limit(config, tmp_path / "frontend.log", 1024, started_as) as (frontend, url):
            port = int(url.rsplit(":", 1)[1])
            opened = time.monotonic()
            sockets = [open_connection(port, HALF_SENT[i % 3]) for i in range(1100)]
            # The next client is served at once: the connection waiting longest made room for it.
            answer = httpx.get(f"{url}/setpoint/value", timeout=5)
            assert answer.status_code == 200 and answer.json()["value"] == 0.0
            assert httpx.put(f"{url}/setpoint/value", json={"value": 5.0}, timeout=5).status_code == 200
            # Every idle and half-sent one is closed within client_timeout (2 s) of its start.
            wait_until(lambda: all(closed_by_server(s) for s in sockets), 15, "idle connections closed")
            assert time.monotonic() - opened < 2.0 + 8  # the timeout, plus slack for a loaded machine
            assert httpx.get(f"{url}/setpoint/value", timeout=5).json()["value"] == 5.0
            assert frontend.alive()
            assert "serving at most 512 connections at once" in frontend.output
            assert "Traceback" not in frontend.output and "Too many open files" not in frontend.output
    finally:
        for sock in sockets:
            sock.close()
        backend.stop()


def test_a_frontend_whose_connections_are_all_busy_answers_503(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", SETPOINT, frontend={"max_connections": 3, "max_websockets": 2})
    with running_stack(config, tmp_path) as (_, frontend, url):
        ramp = httpx.post(f"{url}/setpoint/ramp", json={"to": 1e6, "rate": 1.0}).json()
        with ExitStack() as dashboards:  # a WebSocket is busy for as long as it is open
            for _ in range(2):
                dashboards.enter_context(connect(url.replace("http", "ws") + "/ws"))
            stop = threading.Event()

            def long_polls() -> None:  # a long poll is busy too
                while not stop.is_set():
                    try:
                        httpx.get(f"{url}{ramp['href']}?wait=30", timeout=40)
                    except httpx.TransportError:  # dropped for room while its request had not come yet: again
                        pass

            with ThreadPoolExecutor(1) as poller:
                poller.submit(long_polls)
                wait_until(lambda: httpx.get(f"{url}/setpoint/value").status_code == 503, 5, "every connection busy")
                full = httpx.get(f"{url}/setpoint/value")
                assert full.status_code == 503 and full.headers["retry-after"] == "1"
                assert full.json() == {"error": "too_many_connections", "message":
                                       "the frontend is serving its maximum of 3 connections; try again shortly"}
                assert httpx.delete(f"{url}{ramp['href']}").status_code == 503  # as full for a cancel
                stop.set()
                dashboards.close()  # room again: the cancel goes through, and the long poll ends with it
                wait_until(lambda: httpx.delete(f"{url}{ramp['href']}").status_code == 202, 5, "cancelled")
            wait_until(lambda: httpx.get(f"{url}/setpoint/value").status_code == 200, 5, "a free place served")
        assert frontend.alive()


@POSIX_ONLY
@pytest.mark.parametrize("started_as", list(COMMANDS))
def test_headers_that_never_end_get_431(tmp_path: Path, started_as: str) -> None:
    config = write_config(tmp_path / "config.yml", SETPOINT)
    backend = start_backend(config, tmp_path / "backend.log")
    with frontend_with_file_limit(config, tmp_path / "frontend.log", 4096, started_as) as (_, url):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /setpoint/value HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
            answer = b""
            try:
                for _ in range(200):  # 200 x 8 KiB, far past the limit, unless the frontend stops us first
                    sock.sendall(b"a" * 8192)
            except ConnectionError:
                pass
            sock.settimeout(5)
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionError:
                pass
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert b'"error":"headers_too_large"' in answer
        assert httpx.get(f"{url}/setpoint/value").status_code == 200
    backend.stop()


# The review's scenario: a frontend allowed 40 connections (a quarter each for WebSockets and long polls).
SHARED_CAP = {"max_connections": 40, "client_timeout": 5.0}


def test_45_websockets_leave_room_for_plain_requests(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", SETPOINT, frontend=SHARED_CAP)
    with running_stack(config, tmp_path) as (_, frontend, url), ExitStack() as dashboards:
        live, refused = [], []
        for _ in range(45):
            try:
                socket_ = dashboards.enter_context(connect(url.replace("http", "ws") + "/ws", open_timeout=5))
            except InvalidStatus as exc:  # before the cap of its own: the frontend was full
                refused.append(exc.response.status_code)
                continue
            try:
                socket_.recv(timeout=0.5)
                live.append(socket_)
            except TimeoutError:  # open, and nothing published yet: a live one
                live.append(socket_)
            except ConnectionClosed as exc:
                refused.append(exc.rcvd.code if exc.rcvd else None)
                assert exc.rcvd is None or "try again later" in exc.rcvd.reason
        answer = httpx.get(f"{url}/setpoint/value", timeout=5)
        assert answer.status_code == 200, answer.text
        assert len(live) == 10 and refused == [1013] * 35
        assert all(socket_.protocol.state.name == "OPEN" for socket_ in live)
        assert frontend.alive()


def test_40_long_polls_leave_room_for_plain_requests(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", SETPOINT, frontend=SHARED_CAP)
    with running_stack(config, tmp_path) as (_, frontend, url):
        ramp = httpx.post(f"{url}/setpoint/ramp", json={"to": 1e6, "rate": 1.0}).json()  # runs for days

        async def scenario() -> tuple[int, list[str], list[str]]:
            limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=90) as polls:
                tasks = [asyncio.create_task(polls.get(f"{ramp['href']}?wait=60")) for _ in range(40)]
                done, pending = await asyncio.wait(tasks, timeout=5)
                async with httpx.AsyncClient(base_url=url) as other:  # a plain request, on a connection of its own
                    plain = (await other.get("/setpoint/value", timeout=5)).status_code
                at_once = [task.result().json()["status"] for task in done]
                httpx.delete(f"{url}{ramp['href']}")  # the waiting ones are answered when its status changes
                await asyncio.wait(pending, timeout=30)
                waited = [task.result().json()["status"] if task.done() else "still waiting" for task in pending]
                return plain, at_once, waited

        plain, at_once, waited = asyncio.run(scenario())
        assert plain == 200
        assert at_once == ["running"] * 30  # over the cap: answered as if wait=0
        assert waited == ["cancelled"] * 10  # a quarter of 40 waited, and heard of the change
        assert frontend.alive()


@pytest.mark.parametrize("extra", [1, 200_000])
def test_a_head_over_the_limit_in_one_write_gets_431(tmp_path: Path, extra: int) -> None:
    # The whole head, blank line and all, in one write: the parser would take it in before it was counted.
    config = write_config(tmp_path / "config.yml", SETPOINT)
    with running_stack(config, tmp_path) as (_, frontend, url):
        port = int(url.rsplit(":", 1)[1])
        head = b"GET /setpoint/value HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        head += b"a" * (MAX_HEAD_BYTES + extra - len(head) - 4) + b"\r\n\r\n"
        assert len(head) == MAX_HEAD_BYTES + extra
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head)
            sock.settimeout(5)
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        # A head just under the limit, with a body in the same write, is a request like any other.
        body = b'{"value": 4.0}'
        head = b"PUT /setpoint/value HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Big: "
        head += b"a" * (MAX_HEAD_BYTES - len(head) - 60)
        head += b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head + body)
            sock.settimeout(5)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert httpx.get(f"{url}/setpoint/value").json()["value"] == 4.0
        assert frontend.alive()


def test_a_client_that_stops_reading_a_large_answer_is_cut_off_after_client_timeout(tmp_path: Path) -> None:
    """A reader that never reads an 8 MB frame held its socket, the frame and a connection slot for ever: a graceful
    close waits for the write buffer to empty, which it never does."""
    config = write_config(tmp_path / "config.yml", {"camera": {"class": "camera.Camera"}},
                          frontend={"client_timeout": 2.0})
    with running_stack(config, tmp_path) as (_, _, url):
        port = int(url.rsplit(":", 1)[1])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /camera/frame HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/x-npy\r\n\r\n")
        begun = time.monotonic()
        wait_until(lambda: time.monotonic() - begun > 5, 10, "client_timeout (2 s) and some")  # not reading
        received = 0
        sock.settimeout(5)
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            sock.close()
        assert received < 2048 * 2048 * 2, received  # cut off, not sent in full once the client came back
