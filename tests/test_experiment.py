"""Experiment dispatch: routing, per-module turn-taking, deadlines, faults."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from labbridge.core.config import ModuleSettings
from labbridge.core.errors import (
    BackendBusy,
    DeadlineExceeded,
    InstrumentError,
    InstrumentTimeout,
    InvalidValue,
    ReadOnlyAttribute,
    UnknownAttribute,
    UnknownModule,
)
from labbridge.experiment.experiment import Experiment
from labbridge.core.protocol import MISSING, Request
from tests.fixture_modules import Recorder


def recorder(name: str, **settings: Any) -> Recorder:
    return Recorder(name, ModuleSettings.model_validate({"class": "tests.fixture_modules.Recorder", "port": 1, **settings}))


def req(op: str, module: str, attribute: str, value: Any = MISSING, timeout: float = 5.0) -> Request:
    return Request.new(op, module, attribute, value, timeout=timeout)  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def seconds_behind(exp: Experiment, busy: Request, probe: Request, raises: type[Exception] | None = None) -> float:
    """How long `probe` takes to be answered while `busy`, sent just before it, runs."""
    async def scenario() -> float:
        running = asyncio.create_task(exp.handle(busy))
        await asyncio.sleep(0)  # let it take its module
        start = time.perf_counter()
        if raises is None:
            await exp.handle(probe)
        else:
            with pytest.raises(raises):
                await exp.handle(probe)
        elapsed = time.perf_counter() - start
        await running
        return elapsed

    return float(run(scenario()))


def test_get_and_put_answer_with_module_attribute_value_and_unit() -> None:
    exp = Experiment({"a": recorder("a")})
    assert run(exp.handle(req("put", "a", "value", 2.5))) == {"module": "a", "attribute": "value", "value": 2.5, "unit": "V"}
    assert run(exp.handle(req("get", "a", "value")))["value"] == 2.5


@pytest.mark.parametrize(("args", "error"), [
    (("get", "b", "value"), UnknownModule),
    (("get", "a", "__class__"), UnknownAttribute),
    (("get", "a", "read"), UnknownAttribute),
    (("put", "a", "count", 3), ReadOnlyAttribute),
    (("put", "a", "attributes", 3), ReadOnlyAttribute),
    (("put", "a", "value", 11.0), InvalidValue),
])
def test_bad_requests_raise_the_matching_error(args: tuple[Any, ...], error: type[Exception]) -> None:
    module = recorder("a")
    with pytest.raises(error):
        run(Experiment({"a": module}).handle(req(*args)))
    assert module.executed == []


def test_bad_requests_are_refused_at_once_not_after_the_queue() -> None:
    module = recorder("a")
    module.state["delay"] = 0.5
    exp = Experiment({"a": module})
    assert seconds_behind(exp, req("get", "a", "value"), req("put", "a", "value", 99.0), raises=InvalidValue) < 0.25


def test_requests_to_one_module_run_one_at_a_time_in_arrival_order() -> None:
    module = recorder("a")
    module.state["delay"] = 0.02
    exp = Experiment({"a": module})

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(exp.handle(req("put", "a", "value", float(i))) for i in range(5)))

    replies = run(scenario())
    assert [r["value"] for r in replies] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [v for _, _, v, _ in module.executed] == [0.0, 1.0, 2.0, 3.0, 4.0]
    starts = [t for *_, t in module.executed]
    assert all(b - a >= 0.015 for a, b in zip(starts, starts[1:]))  # each waited for the previous


def test_a_slow_module_does_not_delay_another() -> None:
    slow, fast = recorder("slow"), recorder("fast")
    slow.state["delay"] = 1.0
    exp = Experiment({"slow": slow, "fast": fast})
    assert seconds_behind(exp, req("get", "slow", "value"), req("get", "fast", "value")) < 0.5


def test_a_request_past_its_deadline_never_reaches_the_module() -> None:
    module = recorder("a")
    module.state["delay"] = 0.3
    exp = Experiment({"a": module})
    waited = seconds_behind(exp, req("put", "a", "value", 1.0), req("put", "a", "value", 2.0, timeout=0.1),
                            raises=DeadlineExceeded)
    assert [v for op, name, v, _ in module.executed if op == "write"] == [1.0]
    # It is answered at its deadline (less the reply margin), not when the module comes free at 0.3 s.
    assert waited < 0.2, waited


def test_a_full_queue_answers_busy() -> None:
    module = recorder("a", queue_limit=2)
    module.state["delay"] = 0.2
    exp = Experiment({"a": module})

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(exp.handle(req("get", "a", "value")) for _ in range(4)), return_exceptions=True)

    results = run(scenario())
    assert sum(isinstance(r, BackendBusy) for r in results) == 2
    assert sum(isinstance(r, dict) for r in results) == 2


def test_a_module_that_raises_costs_only_that_request() -> None:
    module = recorder("a")
    module.state["mode"] = "raise"
    exp = Experiment({"a": module, "b": recorder("b")})
    with pytest.raises(InstrumentError, match="module a failed: RuntimeError: driver exploded"):
        run(exp.handle(req("get", "a", "value")))
    assert run(exp.handle(req("get", "b", "value")))["value"] == 0.0


def test_a_module_that_hangs_times_out_naming_the_module() -> None:
    module = recorder("a", timeout=0.1, connect_timeout=0.1)
    module.state["mode"] = "hang"
    with pytest.raises(InstrumentTimeout, match="module a did not finish put value.*outcome is unknown"):
        run(Experiment({"a": module}).handle(req("put", "a", "value", 1.0)))


def test_observers_see_every_scalar_value_read_or_written_and_every_failed_read() -> None:
    """Alarms and interlocks judge every value the process sees, not only the published ones (a plain GET too)."""
    module = recorder("a")
    exp = Experiment({"a": module})
    seen: list[tuple[str, str, Any]] = []
    exp.observers.append(lambda m, name, reading: seen.append((m, name, reading.get("value", reading.get("error")))))
    run(exp.handle(req("put", "a", "value", 2.5)))
    run(exp.handle(req("get", "a", "value")))
    run(exp.handle(req("get", "a", "writes")))  # a list is not a scalar attribute's value: still a value of it
    module.state["mode"] = "raise"
    with pytest.raises(InstrumentError):
        run(exp.handle(req("get", "a", "value")))
    assert seen[:2] == [("a", "value", 2.5), ("a", "value", 2.5)]
    assert seen[-1] == ("a", "value", "instrument_error")
