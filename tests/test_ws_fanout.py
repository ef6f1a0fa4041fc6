"""SubscriptionHub and SubscribedClient in one event loop: order of notices and values, pacing, the bound on notices."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from labbridge.frontend.ws_fanout import MAX_NOTICES, SubscribedClient, SubscriptionHub
from labbridge.frontend.ws_subscriptions import parse_subscription


def value(attribute: str, v: Any) -> dict[str, Any]:
    return {"module": "m", "attribute": attribute, "value": v, "unit": None, "time": 0.0}


async def sending(client: SubscribedClient, sent: list[dict[str, Any]], gate: asyncio.Event | None = None) -> None:
    async def send(text: str) -> None:
        if gate is not None:
            await gate.wait()  # a socket that takes nothing until the gate opens
        sent.append(orjson.loads(text))

    await client.run(send)


def test_a_failed_read_replaces_the_value_waiting_before_it_and_comes_before_the_one_after() -> None:
    async def scenario() -> list[dict[str, Any]]:
        hub, sent = SubscriptionHub(), list[dict[str, Any]]()
        subscription = parse_subscription('{"subscribe": ["m.a", "m.b"]}')
        client = SubscribedClient(subscription)
        hub.subscribe(client, subscription, [])
        gate = asyncio.Event()
        task = asyncio.create_task(sending(client, sent, gate))
        hub.deliver(value("a", 1))  # taken by the sender, held at the gate
        await asyncio.sleep(0)
        hub.deliver(value("a", 2))  # waits: superseded by the failure
        hub.deliver({"module": "m", "attribute": "a", "error": "instrument_error", "message": "no answer"})
        hub.deliver(value("b", 3))
        hub.deliver({"module": "m", "action": "move", "invocation": {"id": "i1"}})  # for every subscriber
        hub.deliver(value("c", 4))  # not shown: never sent
        gate.set()
        await asyncio.sleep(0.05)
        hub.deliver(value("a", 5))
        await asyncio.sleep(0.2)  # a's pause (one interval of 0.1 s) is over
        task.cancel()
        return sent

    sent = asyncio.run(scenario())
    assert [(e.get("attribute") or e.get("action"), e.get("value", e.get("error"))) for e in sent] == [
        ("a", 1), ("a", "instrument_error"), ("move", None), ("b", 3), ("a", 5)]


def test_a_fast_attribute_is_sent_ten_times_a_second_the_latest_each_time() -> None:
    async def scenario() -> list[dict[str, Any]]:
        hub, sent = SubscriptionHub(), list[dict[str, Any]]()
        subscription = parse_subscription('{"subscribe": ["m"]}')
        client = SubscribedClient(subscription)
        hub.subscribe(client, subscription, [value("a", 0)])  # the latest first
        task = asyncio.create_task(sending(client, sent))
        for i in range(1, 101):  # 1 s at 100 a second
            hub.deliver(value("a", i))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)
        task.cancel()
        return sent

    values = [e["value"] for e in asyncio.run(scenario())]
    assert 10 <= len(values) <= 13 and values == sorted(values) and values[-1] == 100, values


def test_a_client_that_leaves_too_many_notices_unsent_is_dropped_and_costs_nothing_more() -> None:
    async def scenario() -> tuple[bool, int]:
        hub, sent = SubscriptionHub(), list[dict[str, Any]]()
        subscription = parse_subscription('{"subscribe": ["m.a"]}')
        client = SubscribedClient(subscription)
        hub.subscribe(client, subscription, [])
        task = asyncio.create_task(sending(client, sent, asyncio.Event()))  # never takes anything
        hub.deliver(value("a", 1))
        await asyncio.sleep(0)  # in flight, for ever
        for i in range(MAX_NOTICES):
            hub.deliver({"module": "m", "action": "move", "invocation": {"id": f"i{i}"}})
            assert not client.overflowed
        hub.deliver({"module": "m", "action": "move", "invocation": {"id": "one too many"}})
        task.cancel()
        return client.overflowed, len(hub)

    overflowed, subscribed = asyncio.run(scenario())
    assert overflowed and subscribed == 0  # the hub forgot it: it is being closed (code 1013) to reconnect


def test_values_forgotten_while_waiting_their_turn_leave_nothing_behind() -> None:
    """A failed read forgets the value waiting before it; its entry in the client's schedule goes too, however
    long the attribute's pause (a client that did this for hours grew the frontend without bound)."""
    async def scenario() -> int:
        hub = SubscriptionHub()
        subscription = parse_subscription('{"subscribe": ["m.a"], "max_rate": 0.1}')
        client = SubscribedClient(subscription)
        hub.subscribe(client, subscription, [])
        task = asyncio.create_task(sending(client, []))
        for n in range(3):  # the burst of two sent at once; from then on each value waits its 10 s pause
            hub.deliver(value("a", -n))
            for _ in range(3):
                await asyncio.sleep(0)
        for n in range(20_000):
            hub.deliver(value("a", n))
            hub.deliver({"module": "m", "attribute": "a", "error": "instrument_error", "message": "no answer"})
        waiting = len(client._waiting)
        task.cancel()
        return waiting

    assert asyncio.run(scenario()) <= 20
