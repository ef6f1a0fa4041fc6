"""Polling in batches: a module's attributes due together are read in one read_many, shown to the observers one by
one, published together; and the live-event framing that carries them (core/live_events.py) to the frontend."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import zmq.asyncio

from labbridge import Attribute, BaseModule
from labbridge.core.config import ModuleSettings
from labbridge.core.live_events import decode, encode_event, encode_values
from labbridge.experiment.events import EventPublisher
from labbridge.experiment.experiment import Experiment
from labbridge.experiment.polling import JOIN
from labbridge.frontend.live import LiveFeed


class Counting(BaseModule):
    """An in-memory module that records every driver call it gets, and can fail or leave a value out."""

    a: float = Attribute(unit="V", doc="A reading.")
    b: float = Attribute(unit="A", doc="A reading.")
    c: int = Attribute(doc="A reading.")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls: list[tuple[str, list[str], float]] = []  # (hook, names, monotonic time)
        self.fail = False
        self.leave_out: set[str] = set()

    async def read(self, name: str) -> Any:
        self.calls.append(("read", [name], time.monotonic()))
        return 1.0

    async def read_many(self, names: list[str]) -> dict[str, Any]:
        self.calls.append(("read_many", list(names), time.monotonic()))
        if self.fail:
            raise RuntimeError("the instrument is unplugged")
        return {name: {"a": 1.5, "b": 2.5, "c": 3}[name] for name in names if name not in self.leave_out}


def counting(poll: dict[str, float]) -> Counting:
    return Counting("m", ModuleSettings.model_validate({"class": "tests.test_polling.Counting", "poll": poll}))


def polled(poll: dict[str, float], enough: Any, setup: Any = None) -> tuple[Counting, list[tuple[str, dict[str, Any]]],
                                                                         list[tuple[str, str, dict[str, Any]]]]:
    """Poll a Counting module until `enough(module)` (deadline 10 s): (module, batches published, observed)."""
    module = counting(poll)
    if setup is not None:
        setup(module)
    experiment = Experiment({"m": module})
    published: list[tuple[str, dict[str, Any]]] = []
    observed: list[tuple[str, str, dict[str, Any]]] = []
    experiment.publish_values = lambda name, readings: published.append((name, readings))
    experiment.observers.append(lambda name, attribute, reading: observed.append((name, attribute, reading)))

    async def scenario() -> None:
        experiment.start_polling()
        deadline = time.monotonic() + 10
        while not enough(module) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await experiment.close()

    asyncio.run(scenario())
    assert enough(module), module.calls
    return module, published, observed


def test_attributes_polled_at_one_interval_are_read_in_one_read_many_per_tick() -> None:
    module, published, observed = polled({"a": 0.05, "b": 0.05, "c": 0.05}, lambda m: len(m.calls) >= 4)
    assert all(hook == "read_many" and names == ["a", "b", "c"] for hook, names, _ in module.calls)  # never one by one
    assert published[0] == ("m", {"a": {"value": 1.5, "unit": "V"}, "b": {"value": 2.5, "unit": "A"},
                                  "c": {"value": 3, "unit": None}})
    assert len(published) >= 3 and all(readings == published[0][1] for _, readings in published)
    # The observers (alarms, interlocks) still see every polled value, one by one.
    assert observed[:3] == [("m", "a", {"value": 1.5, "unit": "V"}), ("m", "b", {"value": 2.5, "unit": "A"}),
                            ("m", "c", {"value": 3, "unit": None})]
    assert len(observed) == 3 * len(published)


def test_each_attribute_keeps_its_own_interval_and_those_due_together_share_a_read() -> None:
    module, published, _ = polled({"a": 0.05, "b": 0.2},
                                  lambda m: sum("b" in names for _, names, _ in m.calls) >= 4)
    starts = {name: [t for _, names, t in module.calls if name in names] for name in ("a", "b")}
    assert all(names in (["a"], ["a", "b"], ["b"]) for _, names, _ in module.calls)
    # b is read along with a: always on a quiet machine; a read of a late by more than its interval (a loaded
    # machine) starts a's schedule again from then, and b may be read alone until its own is late too.
    assert sum(names == ["a", "b"] for _, names, _ in module.calls) >= sum(names == ["b"] for _, names, _ in module.calls)
    # Fixed-rate: never sooner than the interval after the previous read (less the JOIN tolerance).
    for name, interval in (("a", 0.05), ("b", 0.2)):
        assert all(later - earlier >= interval - JOIN - 1e-3 for earlier, later in zip(starts[name], starts[name][1:]))
    assert len(starts["a"]) >= 2 * len(starts["b"])


def test_a_failed_read_many_publishes_an_error_for_each_attribute_and_polling_goes_on() -> None:
    def fail(module: Counting) -> None:
        module.fail = True

    module, published, observed = polled({"a": 0.05, "c": 0.05}, lambda m: len(m.calls) >= 2, fail)
    name, readings = published[0]
    assert name == "m" and list(readings) == ["a", "c"]
    assert all(r["error"] == "instrument_error" and "unplugged" in r["message"] for r in readings.values())
    assert [(attribute, reading["error"]) for _, attribute, reading in observed[:2]] == [
        ("a", "instrument_error"), ("c", "instrument_error")]
    assert len(module.calls) >= 2  # tried again at the next tick


def test_a_value_the_instrument_leaves_out_is_an_error_of_that_attribute_only() -> None:
    def leave_out_b(module: Counting) -> None:
        module.leave_out = {"b"}

    _, published, observed = polled({"a": 0.05, "b": 0.05}, lambda m: len(m.calls) >= 1, leave_out_b)
    readings = published[0][1]
    assert readings["a"] == {"value": 1.5, "unit": "V"}
    assert readings["b"]["error"] == "instrument_error" and "did not report b" in readings["b"]["message"]
    assert ("m", "b", readings["b"]) in observed


def test_a_poll_waits_its_turn_behind_a_client_request() -> None:
    """A poll takes the module's turn like a request: while a request holds the module, no read_many starts."""
    module = counting({"a": 0.05})
    experiment = Experiment({"m": module})
    experiment.publish_values = lambda name, readings: None

    async def scenario() -> tuple[float, float]:
        async with module.turns.lock:  # a client's request holding the module
            experiment.start_polling()
            await asyncio.sleep(0.2)
            assert module.calls == []
            released = time.monotonic()
        deadline = time.monotonic() + 5
        while not module.calls and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await experiment.close()
        return released, module.calls[0][2]

    released, first = asyncio.run(scenario())
    assert first >= released


def test_a_message_of_polls_and_events_decodes_to_the_events_each_would_have_been_alone() -> None:
    put = {"module": "m", "attribute": "a", "value": 1.0, "unit": "V", "time": 5.0}
    frames = [*encode_values("m", 7.0, {"a": {"value": 2.0, "unit": "V"}, "b": {"error": "instrument_error",
                                                                               "message": "gone"}}),
              *encode_event(put)]
    assert frames[0] == b"m\0a,b" and frames[2] == b"m\0a"
    assert decode(frames) == [{"module": "m", "attribute": "a", "value": 2.0, "unit": "V", "time": 7.0},
                              {"module": "m", "attribute": "b", "error": "instrument_error", "message": "gone",
                               "time": 7.0},
                              put]


def test_the_frontend_keeps_the_latest_value_of_each_attribute_whoever_watches(tmp_path: Path) -> None:
    """Over a real socket: values published before the frontend subscribed, while nobody watches (kept undecoded),
    and while a browser watches all end up as the latest value of each attribute, the newest winning."""
    endpoint = f"ipc://{tmp_path}/events.sock"

    async def scenario() -> None:
        context = zmq.asyncio.Context()
        publisher = EventPublisher(context)
        publisher.bind(endpoint)
        publisher.start()
        publisher.publish_values("m", 1.0, {"a": {"value": 1.0, "unit": "V"}, "b": {"value": 1.0, "unit": "A"}})
        feed = LiveFeed(endpoint, context=context)
        feed.start()
        await until(lambda: feed.latest.get(("m", "b"), {}).get("value") == 1.0)  # caught up on subscribing
        publisher.publish_values("m", 2.0, {"a": {"value": 2.0, "unit": "V"}})  # nobody watches
        publisher.publish_values("m", 3.0, {"a": {"value": 3.0, "unit": "V"}, "b": {"value": 3.0, "unit": "A"}})
        publisher.publish_values("m", 4.0, {"a": {"value": 4.0, "unit": "V"}})
        await until(lambda: feed.latest[("m", "a")]["value"] == 4.0)
        assert feed.latest[("m", "b")] == {"module": "m", "attribute": "b", "value": 3.0, "unit": "A", "time": 3.0}
        async with feed.subscribe() as queue:
            assert {(e["attribute"], e["value"]) for e in [queue.get_nowait() for _ in range(queue.qsize())]} == {
                ("a", 4.0), ("b", 3.0)}
            publisher.publish_values("m", 5.0, {"b": {"value": 5.0, "unit": "A"}})
            event = await asyncio.wait_for(queue.get(), 5)
            assert (event["attribute"], event["value"], event["time"]) == ("b", 5.0, 5.0)
        feed.close()
        publisher.close()
        context.destroy(linger=0)

    asyncio.run(scenario())


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.01)
