"""LoopSocket reads every message however sends and receives interleave (libzmq's descriptor is edge-triggered:
a send can take in the notification of a message waiting to be read), and one bad message stops nothing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import zmq

from labbridge.core.loop_socket import LoopSocket
from tests.processes import free_port


def echo_router(endpoint: str, ready: threading.Event, stop: threading.Event, delay_every: int = 0) -> None:
    """A ROUTER answering each message with itself, from its own thread (as the other process would)."""
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.linger = 0
    sock.bind(endpoint)
    ready.set()
    seen = 0
    while not stop.is_set():
        if sock.poll(50):
            frames = sock.recv_multipart()
            seen += 1
            if delay_every and seen % delay_every == 0:
                stop.wait(0.002)  # sometimes late, so replies also arrive while the client is busy sending
            sock.send_multipart(frames)
    sock.close()
    context.term()


def test_every_reply_is_read_while_tasks_send_and_replies_come_in() -> None:
    """Without the check after sends, a send takes in a waiting reply's notification and the reply is never read."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    ready, stop = threading.Event(), threading.Event()
    server = threading.Thread(target=echo_router, args=(endpoint, ready, stop, 5), daemon=True)
    server.start()
    ready.wait(5)

    async def scenario() -> list[int]:
        waiting: dict[int, asyncio.Future[None]] = {}
        answered: list[int] = []

        def on_message(frames: list[Any]) -> None:
            number = int(frames[-1])
            answered.append(number)
            waiting.pop(number).set_result(None)

        sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(endpoint)
        reader = LoopSocket(sock, on_message)
        reader.start()
        loop = asyncio.get_running_loop()

        async def client(first: int) -> None:
            # Like the frontend's requests: each sends from its own task, outside the reader, then waits.
            for number in range(first, first + 200):
                waiting[number] = loop.create_future()
                reader.send([str(number).encode()])
                await asyncio.wait_for(waiting[number], 10)  # a lost notification: the reply is never read
                if number % 3 == 0:
                    await asyncio.sleep(0.0015)  # now and then quiet for longer than libzmq's command interval

        try:
            await asyncio.gather(*(client(1000 * k) for k in range(4)))
        finally:
            reader.close()
        return answered

    try:
        answered = asyncio.run(scenario())
    finally:
        stop.set()
        server.join(5)
    assert sorted(answered) == sorted(1000 * k + n for k in range(4) for n in range(200))


async def until_received(got: list[bytes], count: int) -> None:
    """Wait up to 2 s for `count` messages in `got`."""
    for _ in range(100):
        if len(got) >= count:
            return
        await asyncio.sleep(0.02)


def connected_pair() -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    """A PULL socket and a PUSH socket connected to it over loopback TCP."""
    context = zmq.Context.instance()
    pull, push = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    port = free_port()
    pull.bind(f"tcp://127.0.0.1:{port}")
    push.connect(f"tcp://127.0.0.1:{port}")
    return pull, push


def test_messages_that_came_before_reading_started_are_read_first() -> None:
    async def scenario() -> list[bytes]:
        pull, push = connected_pair()
        for body in (b"1", b"2", b"3"):
            push.send(body)
        await asyncio.sleep(0.2)  # they are in the socket before anyone watches it
        got: list[bytes] = []
        reader = LoopSocket(pull, lambda frames: got.append(frames[0]))
        reader.start()
        await until_received(got, 3)
        reader.close()
        push.close(linger=0)
        return got

    assert asyncio.run(scenario()) == [b"1", b"2", b"3"]


def test_a_failing_handler_does_not_stop_the_reading_of_the_others() -> None:
    async def scenario() -> list[bytes]:
        pull, push = connected_pair()
        got: list[bytes] = []

        def on_message(frames: list[Any]) -> None:
            if frames[0] == b"bad":
                raise ValueError("a bug in a handler")
            got.append(frames[0])

        reader = LoopSocket(pull, on_message)
        reader.start()
        for body in (b"one", b"bad", b"two"):
            push.send(body)
        await until_received(got, 2)
        reader.close()
        push.close(linger=0)
        return got

    assert asyncio.run(scenario()) == [b"one", b"two"]


def test_the_selector_thread_pyzmq_lends_windows_proactor_loops_is_still_there() -> None:
    # On Windows' Proactor loop (which cannot watch a descriptor) LoopSocket uses pyzmq's own fallback by this name.
    from zmq.asyncio import _get_selector_windows

    loop = asyncio.new_event_loop()
    try:
        assert _get_selector_windows(loop) is loop  # a selector loop watches descriptors itself
    finally:
        loop.close()
