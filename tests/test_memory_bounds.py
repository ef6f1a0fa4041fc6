"""Bounded memory for every input: each attack leaves both processes under a stated bound, and serving.

Each test starts a fresh backend and frontend, reads both processes' resident memory (VmRSS) before the
attack and while the attacker still holds its connections, and asserts that neither grew by more than
BOUND_MIB, then that the bridge still answers.  The attacks are those an attack run found (issue 8):
compressed WebSocket messages, a huge frame in a CurveZMQ handshake, a flood of subscriptions to live
values, and a label of tens of megabytes.  Large answers (camera frames) that clients never read are bounded by
the frontend's `max_answer_bytes` and `max_answer_bytes_per_client` instead (issue 18).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
import zmq
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from labbridge.core.curve import generate
from labbridge.core.protocol import SUBSCRIBE
from tests.processes import Process, start_backend, start_frontend, wait_until, write_config

MIB = 1024 * 1024
BOUND_MIB = 40  # what one attack may add to either process (the attacks below bring 100 MiB and more)
# Values waiting for a locked history database: its byte budget (history.MAX_WAITING_BYTES, 8 MiB) plus slack.
HISTORY_BOUND_MIB = 20

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@dataclass
class Lab:
    backend: Process
    frontend: Process
    url: str
    config: dict[str, Any]

    def memory(self) -> tuple[float, float]:
        return rss_mib(self.backend.proc.pid), rss_mib(self.frontend.proc.pid)


@contextmanager
def lab(tmp_path: Path, tcp: bool = False, curve: bool = False, max_body_bytes: int | None = None,
        history: bool = False, settings: dict[str, Any] | None = None, camera: bool = False) -> Iterator[Lab]:
    modules: dict[str, dict[str, Any]] = {"setpoint": {"class": "setpoint.Setpoint"}}
    if camera:
        modules["camera"] = {"class": "camera.Camera"}
    settings = {**(settings or {}), **({"max_body_bytes": max_body_bytes} if max_body_bytes else {})}
    extra: dict[str, Any] = {"history": {"path": "data/history.sqlite3", "interval": 0.2}} if history else {}
    config = write_config(tmp_path / "config.yml", modules, frontend=settings or None, **extra)
    data = yaml.safe_load(config.read_text())
    if tcp:  # the hop between two machines (and on Windows): reachable by anyone who can open a TCP port
        data["experiment_socket"]["host"] = "127.0.0.1"
    if curve:
        generate(tmp_path / "keys")
        data["experiment_socket"]["curve"] = {
            "server_key": "keys/server.key_secret", "authorized_clients": "keys/authorized",
            "server_public_key": "keys/server.key", "client_key": "keys/frontend.key_secret"}
    config.write_text(yaml.safe_dump(data))
    with ExitStack() as stopping:
        if curve:  # start_backend's readiness check has no key, so it would never be answered
            backend = Process([sys.executable, "start_experiment.py", "--config", str(config)], tmp_path / "backend.log")
            stopping.callback(backend.stop)
        else:
            backend = start_backend(config, tmp_path / "backend.log")
            stopping.callback(backend.stop)
        frontend, url = start_frontend(config, tmp_path / "frontend.log")
        stopping.callback(frontend.stop)
        wait_until(lambda: httpx.get(f"{url}/setpoint/value").status_code == 200, 15, "stack serving")
        yield Lab(backend, frontend, url, data)


def attack_and_measure(bridge: Lab, attack: Callable[[ExitStack], None], name: str, bound: float = BOUND_MIB) -> None:
    """Run `attack` (which keeps its connections open in the ExitStack), then check memory and service."""
    before = bridge.memory()
    with ExitStack() as held:
        attack(held)
        after = bridge.memory()
        growth = (after[0] - before[0], after[1] - before[1])
        sys.stdout.write(f"\n{name}: backend {before[0]:.1f} -> {after[0]:.1f} MiB, "
                         f"frontend {before[1]:.1f} -> {after[1]:.1f} MiB\n")
        assert max(growth) < bound, f"{name}: grew backend {growth[0]:.1f} MiB, frontend {growth[1]:.1f} MiB"
        assert_serving(bridge)
    assert bridge.backend.alive() and bridge.frontend.alive()


def assert_serving(bridge: Lab) -> None:
    assert httpx.put(f"{bridge.url}/setpoint/value", json={"value": 7.0}).status_code == 200
    assert httpx.get(f"{bridge.url}/setpoint/value").json()["value"] == 7.0
    with connect(bridge.url.replace("http", "ws") + "/ws") as dashboard:  # a new dashboard catches up
        wait_until(lambda: '"value":7.0' in str(dashboard.recv(timeout=5)), 10, "the latest value replayed")


def test_compressed_websocket_messages(tmp_path: Path) -> None:
    """Six pages each send one message that inflates to 16 MiB (compressed: 16 KiB on the wire)."""
    def attack(held: ExitStack) -> None:
        for _ in range(6):
            page: ClientConnection = held.enter_context(
                connect(bridge.url.replace("http", "ws") + "/ws", compression="deflate", max_size=None))
            try:
                page.send("a" * (16 * MIB - 1024))  # just under uvicorn's default limit of 16 MiB
            except (ConnectionClosed, OSError):
                pass  # refused before it was all sent

    with lab(tmp_path) as bridge:
        attack_and_measure(bridge, attack, "WebSocket messages, 6 x 16 MiB inflated")


def test_a_huge_frame_in_a_curvezmq_handshake(tmp_path: Path) -> None:
    """A stranger, with no key, announces a 200 MiB handshake command and sends 100 MiB of it."""
    def attack(held: ExitStack) -> None:
        stranger = held.enter_context(socket.create_connection(("127.0.0.1", bridge.config["experiment_socket"]["port"])))
        # ZMTP 3.0 greeting: signature, version, mechanism CURVE, as client; then a long command frame.
        stranger.sendall(b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"CURVE".ljust(20, b"\x00") + bytes(32))
        stranger.sendall(b"\x06" + struct.pack(">Q", 200 * MIB))
        chunk = bytes(MIB)
        try:
            for _ in range(100):
                stranger.sendall(chunk)
        except OSError:
            pass  # the backend dropped the connection

    with lab(tmp_path, tcp=True, curve=True) as bridge:
        attack_and_measure(bridge, attack, "CurveZMQ handshake, 100 of 200 MiB sent")


def flood_events_socket(held: ExitStack, bridge: Lab, kind: int) -> None:
    """Send 20,000 subscriptions of 1 KiB to the events port as a `kind` socket, and wait until the backend
    has taken them in (live values come back after a last subscription to everything) or refused the peer."""
    context = held.enter_context(zmq.Context())
    peer = context.socket(kind)
    held.callback(peer.close, 0)
    peer.sndhwm = 0  # queue them all rather than drop what the backend has not taken in yet
    refused = peer.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_DISCONNECTED)
    held.callback(refused.close, 0)
    peer.connect(f"tcp://127.0.0.1:{bridge.config['experiment_socket']['events_port']}")
    topics = (f"{i:08d}".encode() + os.urandom(1016) for i in range(20_000))
    if kind == zmq.SUB:
        for topic in topics:
            peer.subscribe(topic)
        peer.subscribe(b"")
    else:  # the same bytes as a SUB sends, to a socket that does not take subscriptions
        for topic in topics:
            peer.send(b"\x01" + topic)
        peer.send(SUBSCRIBE)

    def taken_in_or_refused() -> bool:
        httpx.put(f"{bridge.url}/setpoint/value", json={"value": 1.0})
        return bool(peer.poll(100)) or bool(refused.poll(0))

    wait_until(taken_in_or_refused, 60, "the backend taking in the subscriptions")


def test_a_flood_of_subscriptions_to_live_values(tmp_path: Path) -> None:
    """A peer on the events port subscribes to 20,000 topics of 1 KiB each (20 MiB), as SUB and as DEALER."""
    def attack(held: ExitStack) -> None:
        flood_events_socket(held, bridge, zmq.SUB)
        flood_events_socket(held, bridge, zmq.DEALER)

    with lab(tmp_path, tcp=True) as bridge:
        attack_and_measure(bridge, attack, "2 x 20,000 subscriptions of 1 KiB")


def test_a_label_of_40_megabytes(tmp_path: Path) -> None:
    """A 40 MB string written to a str attribute (the body limit raised to let it through), then 4 new dashboards."""
    def attack(held: ExitStack) -> None:
        label = "x" * 40_000_000
        answer = httpx.put(f"{bridge.url}/setpoint/label", content=b'{"value": "' + label.encode() + b'"}', timeout=60)
        assert answer.status_code == 422
        assert answer.json()["message"] == "label must be at most 4096 characters; got 40000000"
        for _ in range(4):  # dashboards that never read what they are sent
            held.enter_context(connect(bridge.url.replace("http", "ws") + "/ws", max_size=None))

    with lab(tmp_path, max_body_bytes=48 * MIB) as bridge:
        attack_and_measure(bridge, attack, "a 40 MB label, then 4 dashboards")


def test_8000_labels_of_4_kb_while_the_history_database_is_locked(tmp_path: Path) -> None:
    """Another program holds the history database's write lock while 8,000 labels of 4 KB are written (32 MB):
    the values waiting for the database are bounded in bytes, not only in number."""
    def attack(held: ExitStack) -> None:
        db = tmp_path / "data" / "history.sqlite3"
        wait_until(db.exists, 10, "the history database created")
        locker = held.enter_context(closing(sqlite3.connect(db, isolation_level=None)))
        locker.execute("BEGIN EXCLUSIVE")
        held.callback(locker.execute, "ROLLBACK")

        async def flood() -> None:
            async with httpx.AsyncClient(base_url=bridge.url, limits=httpx.Limits(max_connections=16)) as client:
                async def worker(k: int) -> None:
                    for i in range(k, 8000, 16):
                        answer = await client.put("/setpoint/label", json={"value": f"{i:08d}" + "x" * 4088})
                        assert answer.status_code == 200

                await asyncio.gather(*(worker(k) for k in range(16)))

        asyncio.run(flood())
        status = httpx.get(f"{bridge.url}/health").json()["history"]
        assert not status["recording"] and "locked" in status["error"]
        assert status["dropped"] > 0  # the oldest went: the newest are what is kept

    with lab(tmp_path, history=True) as bridge:
        attack_and_measure(bridge, attack, "8,000 labels of 4 KB, history locked", bound=HISTORY_BOUND_MIB)


# Large answers that clients never read (issue 18).  Each attacker connection comes from its own loopback address
# (127.0.0.2 and up: another client to the frontend), with a small receive buffer so that the kernel takes little of
# the answer off the frontend's hands.
FRAME_REQUEST = "GET /camera/frame HTTP/1.1\r\nHost: {host}\r\nAccept: application/x-npy\r\n\r\n"
ANSWER_MARGIN_MIB = 24  # what the frontend may grow by besides the answers it holds (allocator, one frame in reply)


def never_reading(held: ExitStack, url: str, source: str, count: int) -> None:
    """`count` connections from `source` that each ask for a camera frame as .npy and never read the answer."""
    host = url.removeprefix("http://")
    address, port = host.split(":")
    for _ in range(count):
        sock = held.enter_context(socket.socket())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((source, 0))
        sock.connect((address, int(port)))
        sock.sendall(FRAME_REQUEST.format(host=host).encode())


def large_answers(url: str) -> tuple[float, float]:
    """(bytes of large answers the frontend holds, large reads it refused) from /metrics."""
    found = {"bridge_large_answer_bytes": 0.0, "bridge_large_answers_refused_total": 0.0}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name in found:
            found[name] = float(value)
    return found["bridge_large_answer_bytes"], found["bridge_large_answers_refused_total"]


def hold_frames(bridge: Lab, held: ExitStack, sources: list[str], per_source: int, bound_mib: float) -> float:
    """Open the never-reading connections; once the frontend has answered or refused each of them (or has grown
    past the bound), the frontend's growth in MiB."""
    before = bridge.memory()[1]
    for source in sources:
        never_reading(held, bridge.url, source, per_source)
    frame_bytes = 2048 * 2048 * 2

    def settled() -> bool:
        if bridge.memory()[1] - before > bound_mib:
            return True  # no point waiting: the bound is broken
        holding, refused = large_answers(bridge.url)
        return round(holding / frame_bytes) + refused >= len(sources) * per_source

    wait_until(settled, 30, "every frame answered or refused")
    growth = bridge.memory()[1] - before
    sys.stdout.write(f"\n{len(sources)} x {per_source} frames never read: frontend {before:.1f} -> "
                     f"{before + growth:.1f} MiB\n")
    return growth


def read_frame(url: str, source: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        return client.get(f"{url}/camera/frame", headers={"Accept": "application/x-npy"})


SLOW_READERS = {"client_timeout": 60}  # the attackers' holds last the whole test


def test_one_client_that_never_reads_its_frames_holds_at_most_its_share(tmp_path: Path) -> None:
    """50 connections from one address ask for a frame (8 MiB) and never read: they hold at most
    max_answer_bytes_per_client (16 MiB by default) and the others get 503; another client still gets frames."""
    with lab(tmp_path, camera=True, settings=SLOW_READERS) as bridge, ExitStack() as held:
        bound = 16 + ANSWER_MARGIN_MIB
        growth = hold_frames(bridge, held, ["127.0.0.2"], 50, bound)
        assert growth < bound
        holding, refused = large_answers(bridge.url)
        assert holding <= 16 * MIB and refused >= 48
        frame = read_frame(bridge.url)  # another client: served, and its frame no longer counted once written
        assert frame.status_code == 200 and len(frame.content) > 8 * MIB
        wait_until(lambda: large_answers(bridge.url)[0] == holding, 5, "the frame read no longer counted")
        assert_serving(bridge)
        refused_answer = read_frame(bridge.url, "127.0.0.2")  # the attacker's next large read waits, then 503
        assert refused_answer.status_code == 503 and refused_answer.headers["retry-after"] == "1"
        assert refused_answer.json()["error"] == "too_many_large_answers"


def test_many_clients_that_never_read_hold_at_most_the_total(tmp_path: Path) -> None:
    """10 addresses with 10 connections each: together they hold at most max_answer_bytes (here 32 MiB); small
    reads go on being answered, and a large read waits for room and then gets 503 with Retry-After."""
    settings = {**SLOW_READERS, "max_answer_bytes": 32 * MIB}
    with lab(tmp_path, camera=True, settings=settings) as bridge, ExitStack() as held:
        before = bridge.memory()[1]
        bound = 32 + ANSWER_MARGIN_MIB
        growth = hold_frames(bridge, held, [f"127.0.0.{k}" for k in range(2, 12)], 10, bound)
        assert growth < bound
        assert large_answers(bridge.url)[0] <= 32 * MIB
        assert_serving(bridge)
        refused = read_frame(bridge.url)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"] == "too_many_large_answers"
        assert 'status="503"' in httpx.get(f"{bridge.url}/metrics").text
        held.close()  # the attackers go: their answers are no longer counted, and their memory is given back
        wait_until(lambda: large_answers(bridge.url)[0] == 0, 5, "the closed connections' answers let go")
        wait_until(lambda: bridge.memory()[1] - before < ANSWER_MARGIN_MIB, 5, "memory given back")
        assert bridge.frontend.alive()


def test_memory_goes_back_to_the_system_after_large_answers(tmp_path: Path) -> None:
    """40 frames as JSON (about 20 MB each), 8 at a time from 8 addresses: once they are read, the frontend's
    memory comes back down near where it started (it kept 650 MiB)."""
    with lab(tmp_path, camera=True) as bridge:
        read_frame(bridge.url)  # the libraries a frame needs are loaded
        before = bridge.memory()[1]

        async def read_json(source: str) -> None:
            transport = httpx.AsyncHTTPTransport(local_address=source)
            async with httpx.AsyncClient(transport=transport, timeout=60) as client:
                for _ in range(5):
                    answer = await client.get(f"{bridge.url}/camera/frame")
                    assert answer.status_code in (200, 503)

        async def readers() -> None:
            await asyncio.gather(*(read_json(f"127.0.0.{k}") for k in range(2, 10)))

        asyncio.run(readers())
        peak = bridge.memory()[1]
        wait_until(lambda: bridge.memory()[1] - before < ANSWER_MARGIN_MIB, 10, "memory given back")
        sys.stdout.write(f"\n40 JSON frames: frontend {before:.1f} -> {peak:.1f} -> {bridge.memory()[1]:.1f} MiB\n")
        assert_serving(bridge)


def recorded_labels(bridge: Lab, tmp_path: Path, count: int, size: int) -> None:
    """`count` labels of `size` characters in the history database (a script that labels each run, for months)."""
    from labbridge.experiment.history_db import channel_id, stored

    now = time.time()  # recent: older than history.max_age_days would be deleted
    with closing(sqlite3.connect(tmp_path / "data" / "history.sqlite3", timeout=10)) as db:
        channel = channel_id(db, "setpoint", "label", None)
        db.executemany("INSERT INTO samples VALUES (?, ?, ?)",
                       ((channel, now - count + k, stored(f"{k:06d}" + "x" * size)) for k in range(count)))
        db.commit()


@pytest.mark.parametrize("path", ["/setpoint/label/history?limit=2000", "/setpoint/label/history?format=csv"])
def test_history_answers_that_clients_never_read_hold_at_most_the_total(tmp_path: Path, path: str) -> None:
    """10 addresses with 5 connections each ask for 2,000 recorded labels of 4 KB (8 MB of JSON, or as CSV: pages
    of as much) and never read: together they hold at most max_answer_bytes (32 MiB), as camera frames do (JSON
    held 220 MiB, CSV 1 GiB)."""
    settings = {**SLOW_READERS, "max_answer_bytes": 32 * MIB}
    with lab(tmp_path, history=True, settings=settings) as bridge, ExitStack() as held:
        wait_until(lambda: (tmp_path / "data" / "history.sqlite3").exists(), 10, "the history database")
        httpx.put(f"{bridge.url}/setpoint/label", json={"value": "first"})  # the label's channel
        wait_until(lambda: len(httpx.get(f"{bridge.url}/setpoint/label/history").json()["points"]) == 1, 10,
                   "the label recorded")
        recorded_labels(bridge, tmp_path, 2000, 4000)
        answer_bytes = 8 * 1000 * 1000  # a JSON answer, or a page of CSV
        before = bridge.memory()[1]
        bound = 32 + ANSWER_MARGIN_MIB
        host = bridge.url.removeprefix("http://")
        address, port = host.split(":")
        sources = [f"127.0.0.{k}" for k in range(2, 12)]
        for source in sources:
            for _ in range(5):
                sock = held.enter_context(socket.socket())
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.bind((source, 0))
                sock.connect((address, int(port)))
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())

        def settled() -> bool:
            if bridge.memory()[1] - before > bound:
                return True  # no point waiting: the bound is broken
            holding, refused = large_answers(bridge.url)
            return round(holding / answer_bytes) + refused >= 5 * len(sources) - 1  # one first read may be uncounted

        wait_until(settled, 30, "every history answer sent or refused")
        growth = bridge.memory()[1] - before
        sys.stdout.write(f"\n50 history answers never read: frontend {before:.1f} -> {before + growth:.1f} MiB\n")
        assert growth < bound
        assert large_answers(bridge.url)[0] <= 32 * MIB
        assert_serving(bridge)
