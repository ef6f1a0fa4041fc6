"""bridge_client's live values over the real frontend's WebSocket: filtering, tokens, reconnecting."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import bridge_client
from bridge_client.watch import watch_events
from tests.conftest import Stack
from tests.processes import running_stack, start_frontend, write_config

MODULE_A = {"module_a": {"class": "module_a.ModuleA", "simulate": True}}
TOKEN = "watch-token-0123456789abcdef"


def first_value(events: Iterator[bridge_client.Event], name: str, value: object, limit: int = 50) -> bridge_client.Event:
    """The first event of `name` with `value`, among the next `limit` events."""
    for _, event in zip(range(limit), events):
        if event.name == name and event.value == value:
            return event
    raise AssertionError(f"no {name} = {value!r} among {limit} events")


def test_watch_gives_the_latest_value_then_each_new_one_of_the_names_asked(stack: Stack) -> None:
    with bridge_client.connect(stack.url) as lab:
        lab.module_a.position = 11
        events = lab.watch("module_a.position", "module_a.speed")
        latest = first_value(events, "module_a.position", 11.0)
        assert (latest.unit, str(latest)) == ("mm", "module_a.position = 11.0 mm")
        lab.module_a.speed = 21
        lab.module_a.position = 12
        lab.wide.position = 5  # not asked for
        seen = [next(events) for _ in range(2)]
        assert [(e.name, e.value) for e in seen] == [("module_a.speed", 21.0), ("module_a.position", 12.0)]
        events.close()


def test_watch_refuses_a_name_the_bridge_does_not_have(stack: Stack) -> None:
    with bridge_client.connect(stack.url) as lab:
        with pytest.raises(bridge_client.UnknownAttribute, match="no attribute 'colour'"):
            lab.watch("module_a.colour")
        with pytest.raises(bridge_client.UnknownModule):
            lab.watch("module_b")


def test_watch_reconnects_by_itself_after_the_frontend_restarts(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULE_A)
    with running_stack(config, tmp_path) as (_, frontend, url):
        with bridge_client.connect(url) as lab:
            lab.module_a.position = 31
            events = lab.watch("module_a.position")
            first_value(events, "module_a.position", 31.0)
            frontend.stop()
            port = int(url.rsplit(":", 1)[1])
            restarted, _ = start_frontend(config, tmp_path / "frontend2.log", port=port)
            try:
                lab.module_a.position = 32  # the HTTP side reconnects too
                first_value(events, "module_a.position", 32.0)
            finally:
                events.close()
                restarted.stop()


def test_watch_sends_the_token_when_reads_need_one_and_a_wrong_one_is_refused_at_once(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", MODULE_A, frontend={"auth_reads": True})
    with running_stack(config, tmp_path, env={"BRIDGE_TOKEN": TOKEN}) as (_, _, url):
        with bridge_client.connect(url, token=TOKEN) as lab:
            lab.module_a.position = 41
            events = lab.watch("module_a.position")
            assert first_value(events, "module_a.position", 41.0).unit == "mm"
            events.close()

        async def with_a_wrong_token() -> None:
            async for _ in watch_events(url, "wrong-token-0123456789", set()):
                break

        with pytest.raises(bridge_client.Forbidden, match="HTTP 403"):
            asyncio.run(with_a_wrong_token())


def test_the_async_watch_yields_the_same_events(stack: Stack) -> None:
    async def watch() -> bridge_client.Event:
        async with bridge_client.AsyncBridge(stack.url) as lab:
            await lab.module_a.set("position", 51)
            async for event in lab.watch("module_a"):
                if event.name == "module_a.position" and event.value == 51.0:
                    return event
        raise AssertionError("the watch ended")

    assert str(asyncio.run(watch())) == "module_a.position = 51.0 mm"
